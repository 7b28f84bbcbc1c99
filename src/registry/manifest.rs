//! What a registry holds, read without I/O: manifests, manifest lists and image configs.
//!
//! Media types and fields follow the OCI image spec (`image-spec/manifest.md`, `image-index.md`,
//! `config.md`) and Docker's schema 2 (`distribution/docs/spec/manifest-v2-2.md`); Docker's
//! types carry the same JSON shape under other media types.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Every manifest type ecrship reads, for `Accept`.
pub const ALL_MANIFESTS: [&str; 4] = [DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_LIST, OCI_INDEX];

/// A manifest exactly as the registry stored it: re-PUT under another tag, the same bytes keep
/// the same digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `sha256:...` of `bytes`.
    pub digest: String,
    pub media_type: String,
    pub bytes: bytes::Bytes,
}

/// A content descriptor: what a manifest says about a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of one entry of a manifest list, or of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The body of a manifest, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// One image: its config blob and layers.
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    /// A manifest list or index: one manifest per platform.
    Index { manifests: Vec<Descriptor> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBody {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

impl Manifest {
    /// A manifest read from `bytes`; its media type is the body's `mediaType`, else `served`
    /// (the registry's `Content-Type`), else guessed from its fields (an OCI manifest may omit it).
    pub fn new(bytes: bytes::Bytes, served: Option<&str>) -> Result<Manifest, String> {
        let raw: RawBody = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the manifest is not valid JSON: {e}"))?;
        let media_type = raw
            .media_type
            .filter(|m| !m.is_empty())
            .or_else(|| {
                served
                    .filter(|s| ALL_MANIFESTS.contains(s))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| {
                if raw.manifests.is_some() {
                    OCI_INDEX.to_owned()
                } else {
                    OCI_MANIFEST.to_owned()
                }
            });
        Ok(Manifest {
            digest: sha256_digest(&bytes),
            media_type,
            bytes,
        })
    }

    /// The manifest's config and layers, or its entries when it is a list.
    pub fn body(&self) -> Result<Body, String> {
        let raw: RawBody = serde_json::from_slice(&self.bytes)
            .map_err(|e| format!("the manifest is not valid JSON: {e}"))?;
        match (raw.config, raw.manifests) {
            (Some(config), _) => Ok(Body::Image {
                config,
                layers: raw.layers.unwrap_or_default(),
            }),
            (None, Some(manifests)) => Ok(Body::Index { manifests }),
            (None, None) => Err(format!(
                "the manifest ({}) has neither a config nor a list of manifests",
                self.media_type
            )),
        }
    }

    /// Whether this is a manifest list or an OCI index.
    pub fn is_index(&self) -> bool {
        self.media_type == DOCKER_LIST || self.media_type == OCI_INDEX
    }

    /// A descriptor of this manifest, for a manifest list.
    pub fn descriptor(&self, platform: Option<Platform>) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform,
        }
    }
}

/// The parts of an image config ecrship reads (`config.md`: `created`, `os`, `architecture`,
/// `variant`, `config.Labels`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<RunConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RunConfig {
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("the image config is not valid: {e}"))
    }

    /// A label of the image, when set.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.config
            .as_ref()?
            .labels
            .as_ref()?
            .get(name)
            .map(String::as_str)
    }

    /// The image's platform.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }

    /// When the image was created; `None` when it says nothing, or nothing readable.
    pub fn created(&self) -> Option<SystemTime> {
        parse_rfc3339(self.created.as_deref()?)
    }

    /// How long ago the image was created, from its `created` time; `None` when it has none
    /// or it cannot be read. A time in the future counts as zero.
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        Some(now.duration_since(self.created()?).unwrap_or_default())
    }
}

/// An RFC 3339 time (`2026-11-27T06:18:40.123456789Z`, or with an offset) as a `SystemTime`.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let time = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
    let nanos = time.timestamp_nanos_opt()?;
    let nanos = u64::try_from(nanos).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:aaaa"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":32,"digest":"sha256:bbbb"}]}"#;

    #[test]
    fn manifests_keep_their_bytes_and_name_their_kind() {
        let m = Manifest::new(bytes::Bytes::from_static(IMAGE.as_bytes()), None).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert_eq!(m.digest, sha256_digest(IMAGE.as_bytes()));
        assert_eq!(m.bytes, IMAGE.as_bytes());
        assert!(!m.is_index());
        let Body::Image { config, layers } = m.body().unwrap() else {
            panic!("an image");
        };
        assert_eq!((config.digest.as_str(), config.size), ("sha256:aaaa", 1469));
        assert_eq!(layers.len(), 1);

        // An OCI manifest without mediaType: the served type, else guessed.
        let oci = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:cc"},"layers":[]}"#;
        let m = Manifest::new(oci.into(), Some("text/plain")).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":7,"digest":"sha256:dd","platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#;
        let m = Manifest::new(index.into(), None).unwrap();
        assert_eq!(m.media_type, OCI_INDEX);
        assert!(m.is_index());
        let Body::Index { manifests } = m.body().unwrap() else {
            panic!("an index");
        };
        assert_eq!(
            manifests[0].platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
        let m = Manifest::new(index.into(), Some(DOCKER_LIST)).unwrap();
        assert_eq!(m.media_type, DOCKER_LIST);

        assert!(Manifest::new("nope".into(), None).is_err());
        let empty = Manifest::new("{}".into(), None).unwrap();
        assert!(empty.body().unwrap_err().contains("neither"));
    }

    #[test]
    fn configs_give_labels_platform_and_age() {
        let config = r#"{"architecture":"arm64","os":"linux","variant":"v8","created":"2026-11-20T06:00:00.5Z","config":{"Labels":{"dev.ecrship.inputs":"sha256:11"}}}"#;
        let c = ImageConfig::parse(config.as_bytes()).unwrap();
        assert_eq!(c.label("dev.ecrship.inputs"), Some("sha256:11"));
        assert_eq!(c.label("other"), None);
        assert_eq!(c.platform().to_string(), "linux/arm64/v8");
        let now = parse_rfc3339("2026-11-27T06:00:00.5Z").unwrap();
        assert_eq!(c.age(now), Some(Duration::from_secs(7 * 86_400)));
        let earlier = parse_rfc3339("2026-11-19T00:00:00Z").unwrap();
        assert_eq!(c.age(earlier), Some(Duration::ZERO));

        let bare = ImageConfig::parse(br#"{"architecture":"amd64","os":"linux"}"#).unwrap();
        assert_eq!(bare.label("x"), None);
        assert_eq!(bare.age(now), None);
        assert_eq!(bare.platform().to_string(), "linux/amd64");
        assert!(ImageConfig::parse(b"[").is_err());
    }

    #[test]
    fn rfc3339_times() {
        let t = |s| {
            parse_rfc3339(s).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
        };
        assert_eq!(t("1970-01-01T00:00:10Z"), Some(10));
        assert_eq!(t("1970-01-01T01:00:10+01:00"), Some(10));
        assert_eq!(t("2026-11-27T06:18:40.123456789Z"), Some(1_795_760_320));
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("1969-12-31T23:59:59Z"), None);
    }
}
