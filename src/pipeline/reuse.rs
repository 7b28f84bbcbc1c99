//! Whether the registry already holds an image that a fresh build of this commit would make,
//! and, when it is reused, the same image under this run's labels.
//!
//! The candidates are the build's own tag (a re-run of the same commit), then each extra tag
//! (`latest`: the last image pushed). For a tag that names a manifest list, the image of the
//! build's platform in it is the candidate. A candidate is reused only when all of these hold:
//!
//! - its config carries the same inputs digest ([`crate::inputs::LABEL`]): the same Dockerfile,
//!   context, args, bases (by digest), dependencies, platform (see [`crate::inputs`]);
//! - its config's os, architecture and variant are the build's effective platform, whatever
//!   its label says;
//! - it was created less than `max_age` ago (a `RUN` that fetches from the network is not in
//!   the digest; the age bounds how long such a step can be stale), and not more than a few
//!   minutes in the future (a clock that cannot be trusted never ages out).
//!
//! A candidate that misses says why ([`Miss`]), part by part when its label has the parts
//! ([`crate::inputs::explain`]), so that a built image says why it was not reused.
//!
//! A reused image is put under the new tag as a new image ([`relabel`]): its config gets this
//! run's revision and build ARN (its `created` and every other field kept), the layers stay
//! the same, so one small config blob and a manifest are all that is uploaded. Each commit's
//! image then names its own commit, and a digest holds its commit tag and the moving tags only,
//! so that ECR's 1,000 tags per image are never reached and a lifecycle rule on push time
//! treats it as a built image. A re-run whose tag already holds the same inputs puts nothing.
//!
//! What the check finds missing also decides which images a build takes its cache from
//! ([`missing`], [`stages_alone`]).

use std::time::{Duration, SystemTime};

use crate::inputs::{self, Parts};
use crate::plan::CacheImage;
use crate::reference::{Platform as WantedPlatform, Reference};
use crate::registry::{Body, Manifest, Platform, Registry, RegistryError};
use crate::text::human_age;

/// How far in the future a `created` time may be (clocks drift) and still count as now.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// An image in the registry built from the same inputs.
#[derive(Debug, Clone)]
pub struct Found {
    /// The tag it was found under.
    pub tag: String,
    /// Its manifest, as stored.
    pub manifest: Manifest,
    /// Its config, as stored.
    pub config: bytes::Bytes,
}

/// Why a candidate was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    Absent,
    NoLabel,
    /// Other inputs: the parts that differ, when the label says them.
    OtherInputs(Vec<String>),
    TooOld(Duration),
    /// `created` this far in the future.
    Future(Duration),
    /// Its config is for another platform than the build's.
    OtherPlatform(String),
    NoPlatform,
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Absent => f.write_str("not in the registry"),
            Miss::NoLabel => f.write_str("not built by ecrship (no inputs label)"),
            Miss::OtherInputs(reasons) if reasons.is_empty() => {
                f.write_str("built from other inputs")
            }
            Miss::OtherInputs(reasons) => {
                write!(f, "built from other inputs: {}", reasons.join("; "))
            }
            Miss::TooOld(age) => {
                write!(f, "built {} ago, older than reuse_max_age", human_age(*age))
            }
            Miss::Future(ahead) => write!(
                f,
                "its creation time is {} in the future: its age cannot be known",
                human_age(*ahead)
            ),
            Miss::OtherPlatform(found) => write!(f, "a {found} image"),
            Miss::NoPlatform => f.write_str("a manifest list without this platform"),
        }
    }
}

/// What the check found: an image to reuse, or each candidate's miss, in order.
#[derive(Debug)]
pub enum Outcome {
    Found(Found),
    Missed(Vec<(String, Miss)>),
}

/// Why none of `misses` (the candidates in order) was reused, for the summary: the first
/// candidate the registry holds, with its reason; else that there is no earlier image.
pub fn why_missed(repository: &str, misses: &[(String, Miss)]) -> String {
    match misses.iter().find(|(_, miss)| *miss != Miss::Absent) {
        Some((tag, Miss::OtherInputs(reasons))) if !reasons.is_empty() => format!(
            "{repository}:{tag} was built from other inputs: {}",
            reasons.join("; ")
        ),
        Some((tag, miss)) => format!("{repository}:{tag}: {miss}"),
        None => {
            let tags: Vec<&str> = misses.iter().map(|(tag, _)| tag.as_str()).collect();
            format!(
                "no earlier image ({} not in the registry)",
                tags.iter()
                    .map(|t| format!("{repository}:{t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// The first candidate tag holding an image built from `ours` for `platform`, no older than
/// `max_age`; else why each missed. The candidates are looked up at once.
pub async fn find(
    registry: &Registry,
    repository: &str,
    candidates: &[String],
    platform: &WantedPlatform,
    ours: &Parts,
    max_age: Duration,
) -> Result<Outcome, RegistryError> {
    let now = SystemTime::now();
    let inputs = ours.digest();
    let checks = candidates.iter().map(|tag| {
        check(
            registry, repository, tag, platform, ours, &inputs, max_age, now,
        )
    });
    let checked = futures_util::future::join_all(checks).await;
    let mut misses = Vec::new();
    for (tag, checked) in candidates.iter().zip(checked) {
        match checked? {
            Ok((manifest, config)) => {
                return Ok(Outcome::Found(Found {
                    tag: tag.clone(),
                    manifest,
                    config,
                }));
            }
            Err(miss) => misses.push((tag.clone(), miss)),
        }
    }
    Ok(Outcome::Missed(misses))
}

#[allow(clippy::too_many_arguments)]
async fn check(
    registry: &Registry,
    repository: &str,
    tag: &str,
    platform: &WantedPlatform,
    ours: &Parts,
    inputs: &str,
    max_age: Duration,
    now: SystemTime,
) -> Result<Result<(Manifest, bytes::Bytes), Miss>, RegistryError> {
    let Some(mut manifest) = registry.manifest(repository, tag).await? else {
        return Ok(Err(Miss::Absent));
    };
    let error = |message: String| RegistryError {
        registry: registry.host().to_owned(),
        repository: repository.to_owned(),
        reference: tag.to_owned(),
        action: "read manifest",
        message,
        transient: false,
        attempts: 1,
    };
    if manifest.is_index() {
        let Body::Index { manifests } = manifest.body().map_err(error)? else {
            return Ok(Err(Miss::NoPlatform));
        };
        let Some(entry) = manifests.iter().find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| same_platform(p, platform))
        }) else {
            return Ok(Err(Miss::NoPlatform));
        };
        match registry.manifest(repository, &entry.digest).await? {
            Some(child) => manifest = child,
            None => return Ok(Err(Miss::Absent)),
        }
    }
    let Body::Image { config, .. } = manifest.body().map_err(error)? else {
        return Ok(Err(Miss::NoPlatform));
    };
    let bytes = registry.config_bytes(repository, &config).await?;
    let config = crate::registry::ImageConfig::parse(&bytes).map_err(error)?;
    match config.label(inputs::LABEL) {
        None => return Ok(Err(Miss::NoLabel)),
        Some(found) if found != inputs => {
            let reasons = config
                .label(inputs::PARTS_LABEL)
                .and_then(Parts::from_label)
                .map(|theirs| inputs::explain(ours, &theirs))
                .unwrap_or_default();
            return Ok(Err(Miss::OtherInputs(reasons)));
        }
        Some(_) => {}
    }
    let found = config.platform();
    if !exactly_the_platform(&found, platform) {
        return Ok(Err(Miss::OtherPlatform(found.to_string())));
    }
    // An image whose age cannot be read is not trusted to be young.
    match config.created().map(|created| created.duration_since(now)) {
        Some(Ok(ahead)) if ahead > CLOCK_SKEW => return Ok(Err(Miss::Future(ahead))),
        None => return Ok(Err(Miss::TooOld(Duration::MAX))),
        _ => {}
    }
    match config.age(now) {
        Some(age) if age <= max_age => Ok(Ok((manifest, bytes))),
        Some(age) => Ok(Err(Miss::TooOld(age))),
        None => Ok(Err(Miss::TooOld(Duration::MAX))),
    }
}

/// The labels a reused image takes from this run (the rest of its config is kept): which
/// commit it is, and which build put it there.
pub const RUN_LABELS: [&str; 2] = [
    "org.opencontainers.image.revision",
    "com.amazonaws.codebuild.build-arn",
];

/// `found` with this run's `labels` (those of [`RUN_LABELS`]; one this run does not set is
/// removed): its config with those labels uploaded as a blob, and a manifest naming it instead
/// of the old config. Returns `found`'s own manifest when the labels are already this run's.
pub async fn relabel(
    registry: &Registry,
    repository: &str,
    found: &Found,
    labels: &[(String, String)],
) -> Result<Manifest, RegistryError> {
    let fail = |message: String| RegistryError {
        registry: registry.host().to_owned(),
        repository: repository.to_owned(),
        reference: found.manifest.digest.clone(),
        action: "re-label",
        message,
        transient: false,
        attempts: 1,
    };
    let Some(config) = relabelled_config(&found.config, labels).map_err(fail)? else {
        return Ok(found.manifest.clone());
    };
    let digest = registry.put_blob(repository, config.clone().into()).await?;
    let manifest = relabelled_manifest(&found.manifest, &digest, config.len()).map_err(fail)?;
    Ok(manifest)
}

/// The config with `labels` (of [`RUN_LABELS`]) set, or `None` when it already has them.
fn relabelled_config(
    config: &[u8],
    labels: &[(String, String)],
) -> Result<Option<Vec<u8>>, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| format!("the image config is not JSON: {e}"))?;
    let object = value
        .as_object_mut()
        .ok_or("the image config is not a JSON object")?;
    let run_config = object
        .entry("config")
        .or_insert_with(|| serde_json::json!({}));
    let run_config = run_config
        .as_object_mut()
        .ok_or("the image config's `config` is not an object")?;
    let current = run_config
        .entry("Labels")
        .or_insert_with(|| serde_json::json!({}));
    if current.is_null() {
        *current = serde_json::json!({});
    }
    let current = current
        .as_object_mut()
        .ok_or("the image config's labels are not an object")?;
    let mut changed = false;
    for key in RUN_LABELS {
        let wanted = labels.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let now = current.get(key).and_then(|v| v.as_str());
        match wanted {
            Some(value) if now != Some(value.as_str()) => {
                current.insert(key.to_owned(), serde_json::Value::String(value.clone()));
                changed = true;
            }
            None if now.is_some() => {
                current.remove(key);
                changed = true;
            }
            _ => {}
        }
    }
    if !changed {
        return Ok(None);
    }
    serde_json::to_vec(&value)
        .map(Some)
        .map_err(|e| format!("cannot write the image config: {e}"))
}

/// `manifest` naming the config `digest` of `size` bytes instead of its own; every other
/// field kept.
fn relabelled_manifest(manifest: &Manifest, digest: &str, size: usize) -> Result<Manifest, String> {
    let mut value: serde_json::Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| format!("the manifest is not JSON: {e}"))?;
    let config = value
        .get_mut("config")
        .and_then(|c| c.as_object_mut())
        .ok_or("the manifest names no config")?;
    config.insert(
        "digest".into(),
        serde_json::Value::String(digest.to_owned()),
    );
    config.insert("size".into(), serde_json::Value::from(size));
    let bytes =
        serde_json::to_vec(&value).map_err(|e| format!("cannot write the manifest: {e}"))?;
    Manifest::new(bytes.into(), Some(&manifest.media_type))
}

/// Which of `tags` the registry does not hold. A tag that cannot be looked up is not called
/// missing: the build may still find it.
pub async fn missing<'a>(
    registry: &Registry,
    repository: &str,
    tags: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let lookups = tags.map(|tag| async move {
        match registry.manifest(repository, tag).await {
            Ok(None) => Some(tag.to_owned()),
            Ok(Some(_)) | Err(_) => None,
        }
    });
    futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Whether an image config's os, architecture and variant are `wanted`'s, the variants as
/// containerd normalises them (`arm64/v8` is `arm64`, `arm` is `arm/v7`).
pub fn exactly_the_platform(platform: &Platform, wanted: &WantedPlatform) -> bool {
    let variant = |arch: &str, variant: Option<&str>| -> Option<String> {
        match (arch, variant.filter(|v| !v.is_empty())) {
            ("arm64", Some("v8")) => None,
            ("arm", None) => Some("v7".into()),
            (_, v) => v.map(str::to_owned),
        }
    };
    platform.os == wanted.os()
        && platform.architecture == wanted.architecture()
        && variant(&platform.architecture, platform.variant.as_deref())
            == variant(wanted.architecture(), wanted.variant())
}

/// Whether a manifest list entry's (or a config's) platform is `wanted`; a wanted platform
/// without a variant takes any variant.
pub fn same_platform(platform: &Platform, wanted: &WantedPlatform) -> bool {
    platform.os == wanted.os()
        && platform.architecture == wanted.architecture()
        && wanted
            .variant()
            .is_none_or(|v| platform.variant.as_deref() == Some(v))
}

/// From this Engine API version on (Docker 27.0), a BuildKit build whose cache stages are in the
/// registry takes its cache from them alone ([`stages_alone`]). Docker 28.5 is the one seen to
/// need it; 26.1 (API 1.45) and 20.10 never missed with both, and keep the last image.
pub const STAGES_ALONE_FROM_API: (usize, usize) = (1, 46);

/// Keeps only the cache stages' images among a BuildKit build's cache sources, when the
/// registry holds at least one of them. BuildKit merges what it imports from several images
/// concurrently and in no set order; Docker 28.5, given a cache stage and the last image,
/// runs the stage's steps again in about half of the builds on an empty daemon, and never
/// with the stages alone. The last image stays the source when there is no stage to take.
pub fn stages_alone(cache_from: &mut Vec<Reference>, stages: &[CacheImage]) {
    let is_stage = |uri: &Reference| stages.iter().any(|s| &s.uri == uri);
    if cache_from.iter().any(is_stage) {
        cache_from.retain(is_stage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_match_with_or_without_variant() {
        let p = |arch: &str, variant: Option<&str>| Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.map(str::to_owned),
        };
        let w = |s: &str| WantedPlatform::parse(s).unwrap();
        assert!(same_platform(&p("arm64", Some("v8")), &w("linux/arm64")));
        assert!(same_platform(&p("arm64", Some("v8")), &w("linux/arm64/v8")));
        assert!(!same_platform(&p("arm64", None), &w("linux/arm64/v8")));
        assert!(!same_platform(&p("amd64", None), &w("linux/arm64")));
        assert!(same_platform(&p("amd64", None), &w("linux/amd64")));
        assert!(exactly_the_platform(
            &p("arm64", Some("v8")),
            &w("linux/arm64")
        ));
        assert!(exactly_the_platform(
            &p("arm64", None),
            &w("linux/arm64/v8")
        ));
        assert!(exactly_the_platform(&p("arm", None), &w("linux/arm/v7")));
        assert!(!exactly_the_platform(
            &p("arm", Some("v6")),
            &w("linux/arm/v7")
        ));
        assert!(!exactly_the_platform(&p("arm64", None), &w("linux/amd64")));
    }

    #[test]
    fn misses_say_why() {
        assert_eq!(
            Miss::TooOld(Duration::from_secs(8 * 86_400 + 3 * 3600)).to_string(),
            "built 8d 3h ago, older than reuse_max_age"
        );
        assert_eq!(
            Miss::OtherInputs(Vec::new()).to_string(),
            "built from other inputs"
        );
        let misses = [
            ("t2".to_owned(), Miss::Absent),
            (
                "latest".to_owned(),
                Miss::OtherInputs(vec!["the context (lib)".into(), "build args (A)".into()]),
            ),
        ];
        assert_eq!(
            why_missed("app", &misses),
            "app:latest was built from other inputs: the context (lib); build args (A)"
        );
        let none = [
            ("t2".to_owned(), Miss::Absent),
            ("latest".to_owned(), Miss::Absent),
        ];
        assert_eq!(
            why_missed("app", &none),
            "no earlier image (app:t2, app:latest not in the registry)"
        );
        let other = [(
            "latest".to_owned(),
            Miss::OtherPlatform("linux/arm64".into()),
        )];
        assert_eq!(why_missed("app", &other), "app:latest: a linux/arm64 image");
    }

    #[test]
    fn relabelling_changes_the_run_labels_and_nothing_else() {
        let config = br#"{"architecture":"amd64","os":"linux","created":"2026-11-20T06:00:00Z","config":{"Labels":{"dev.ecrship.inputs":"sha256:11","org.opencontainers.image.revision":"c1","com.amazonaws.codebuild.build-arn":"arn:1","team":"web"}},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        let labels = vec![
            (
                "org.opencontainers.image.revision".to_owned(),
                "c2".to_owned(),
            ),
            (
                "org.opencontainers.image.created".to_owned(),
                "2026-12-01T00:00:00Z".to_owned(),
            ),
        ];
        let out = relabelled_config(config, &labels).unwrap().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let got = &value["config"]["Labels"];
        assert_eq!(got["org.opencontainers.image.revision"], "c2");
        assert!(
            got.get("com.amazonaws.codebuild.build-arn").is_none(),
            "not this run's"
        );
        assert_eq!(got["dev.ecrship.inputs"], "sha256:11");
        assert_eq!(got["team"], "web");
        assert!(
            got.get("org.opencontainers.image.created").is_none(),
            "created is kept as it was"
        );
        assert_eq!(value["created"], "2026-11-20T06:00:00Z");
        assert_eq!(value["rootfs"]["diff_ids"][0], "sha256:aa");
        // Already this run's labels: nothing to do.
        assert_eq!(relabelled_config(&out, &labels).unwrap(), None);

        let manifest = Manifest::new(
            bytes::Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":10,"digest":"sha256:00"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":32,"digest":"sha256:bb"}]}"#),
            None,
        )
        .unwrap();
        let new = relabelled_manifest(&manifest, "sha256:cc", 99).unwrap();
        assert_eq!(new.media_type, manifest.media_type);
        assert_ne!(new.digest, manifest.digest);
        let Body::Image { config, layers } = new.body().unwrap() else {
            panic!("an image");
        };
        assert_eq!((config.digest.as_str(), config.size), ("sha256:cc", 99));
        assert_eq!(layers[0].digest, "sha256:bb");
    }

    #[test]
    fn the_stages_alone_are_the_cache_when_the_registry_holds_one() {
        let stage = |name: &str| CacheImage {
            stage: name.into(),
            tag: format!("cache-{name}"),
            local_name: format!("app:cache-{name}"),
            uri: Reference::parse(&format!("r.example/app:cache-{name}")).unwrap(),
        };
        let stages = [stage("deps"), stage("build")];
        let latest = Reference::parse("r.example/app:latest").unwrap();

        let mut both = vec![stages[0].uri.clone(), latest.clone()];
        stages_alone(&mut both, &stages);
        assert_eq!(both, [stages[0].uri.clone()]);

        let mut only_latest = vec![latest.clone()];
        stages_alone(&mut only_latest, &stages);
        assert_eq!(only_latest, std::slice::from_ref(&latest));

        let mut no_stages = vec![latest.clone()];
        stages_alone(&mut no_stages, &[]);
        assert_eq!(no_stages, [latest]);
    }
}
