//! The OCI distribution API: ecrship's one door to a registry's data plane, for ECR and any v2
//! registry. The Docker daemon still pushes image layers (`POST /images/{name}/push`); everything
//! else ecrship asks of a registry goes through [`Registry`]: reading a tag's manifest and
//! config (to reuse an image built from the same inputs), putting a manifest under new tags
//! (retagging without a pull or a push), and reading the images a manifest list will join.
//!
//! `auth` says who ecrship is and how a host is reached; `manifest` reads manifests, lists and
//! configs without I/O. The HTTP work is oci-client's (oras-project/rust-oci-client), wrapped
//! here with retries for transient failures and errors that name the registry, the repository
//! and the reference. Requests follow the distribution spec (`spec.md`: "Pulling manifests",
//! "Pushing manifests", "Pulling blobs"), with the `Accept` and `Content-Type` of each manifest
//! type (see [`manifest`]).

pub mod auth;
pub mod manifest;

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

pub use auth::Credentials;
pub use manifest::{Body, Descriptor, ImageConfig, Manifest, Platform};

use crate::text::error_chain;

/// Every registry call is small (a manifest, a config, a HEAD): an attempt that takes longer
/// than this is a registry that stopped answering, and ends as a transient failure. With
/// [`crate::retry`]'s four attempts a call gives up after 63.5 s at most.
pub const POLICY: crate::retry::Policy = crate::retry::Policy {
    attempt_timeout: Some(Duration::from_secs(15)),
};
/// An image config larger than this is not an image config.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// A call to a registry that failed, after its retries when the failure was transient.
#[derive(Debug, thiserror::Error)]
#[error("registry {registry}: {action} of {repository}:{reference} failed{}: {message}", crate::retry::attempts_note(*attempts))]
pub struct RegistryError {
    pub registry: String,
    pub repository: String,
    pub reference: String,
    pub action: &'static str,
    pub message: String,
    /// Whether the last failure was one that a later attempt may not meet (network, 5xx, 429).
    pub transient: bool,
    pub attempts: usize,
}

/// A blob upload streams a file of any size: an attempt is bounded only by the connection's
/// own timeouts.
const UPLOAD_POLICY: crate::retry::Policy = crate::retry::Policy {
    attempt_timeout: None,
};

/// One registry host, with the credentials for it.
pub struct Registry {
    host: String,
    client: Client,
    /// For blobs streamed from files: one `PUT` of the whole blob, as ECR takes a layer of any
    /// size (the chunked upload sends parts of 4 MiB).
    uploads: Client,
    auth: RegistryAuth,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .finish()
    }
}

impl Registry {
    /// A client for `host` (`name[:port]`); `credentials` are used only when they are for this
    /// very host (see [`Credentials::is_for`]), else it goes anonymous.
    pub fn new(host: &str, credentials: Option<&Credentials>) -> Registry {
        let protocol = if auth::is_loopback(host) {
            ClientProtocol::HttpsExcept(vec![host.to_owned()])
        } else {
            ClientProtocol::Https
        };
        let config = || ClientConfig {
            protocol: protocol.clone(),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("ecrship/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let auth = credentials
            .filter(|c| c.is_for(host))
            .map_or(RegistryAuth::Anonymous, Credentials::registry_auth);
        let uploads = Client::new(ClientConfig {
            use_monolithic_push: true,
            read_timeout: Some(Duration::from_secs(600)),
            ..config()
        });
        Registry {
            host: host.to_owned(),
            client: Client::new(config()),
            uploads,
            auth,
        }
    }

    /// The host, as given.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The manifest `repository:reference` names (a tag or a digest), as stored; `None` when
    /// the repository or the reference does not exist.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        let image = self.reference(repository, reference);
        let fetched = self
            .retry(POLICY, "GET manifest", repository, reference, || async {
                match self
                    .client
                    .pull_manifest_raw(&image, &self.auth, &manifest::ALL_MANIFESTS)
                    .await
                {
                    Ok((bytes, _)) => Ok(Some(bytes)),
                    Err(e) if is_not_found(&e) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let Some(bytes) = fetched else {
            return Ok(None);
        };
        Manifest::new(bytes, None)
            .map(Some)
            .map_err(|message| self.error("GET manifest", repository, reference, message))
    }

    /// The digest of the manifest `repository:reference` names, asked with `HEAD` (the
    /// `Docker-Content-Digest` header; a `GET` only when the registry does not send it): Docker
    /// Hub counts a manifest `GET` as a pull against its rate limit, and a `HEAD` not. `None`
    /// when the repository or the reference does not exist. For a multi-platform image, the
    /// list's digest.
    pub async fn digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let image = self.reference(repository, reference);
        self.retry(POLICY, "HEAD manifest", repository, reference, || async {
            match self.client.fetch_manifest_digest(&image, &self.auth).await {
                Ok(digest) => Ok(Some(digest)),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Uploads `bytes` as a blob of `repository` (an image config), unless the registry holds
    /// it already; returns its digest.
    pub async fn put_blob(
        &self,
        repository: &str,
        bytes: bytes::Bytes,
    ) -> Result<String, RegistryError> {
        let digest = manifest::sha256_digest(&bytes);
        let image = self.reference(repository, &digest);
        self.client
            .store_auth_if_needed(image.resolve_registry(), &self.auth)
            .await;
        self.retry(POLICY, "PUT blob", repository, &digest, || async {
            if self.client.blob_exists(&image, &digest).await? {
                return Ok(());
            }
            self.client
                .push_blob(&image, bytes.clone(), &digest)
                .await
                .map(drop)
        })
        .await?;
        Ok(digest)
    }

    /// Whether `repository` holds the blob `digest`.
    pub async fn has_blob(&self, repository: &str, digest: &str) -> Result<bool, RegistryError> {
        let image = self.reference(repository, digest);
        self.client
            .store_auth_if_needed(image.resolve_registry(), &self.auth)
            .await;
        self.retry(POLICY, "HEAD blob", repository, digest, || async {
            self.client.blob_exists(&image, digest).await
        })
        .await
    }

    /// Uploads the file `path` (`size` bytes, whose digest is `digest`) as a blob of
    /// `repository`, streamed, in one `PUT`.
    pub async fn put_blob_file(
        &self,
        repository: &str,
        path: &std::path::Path,
        digest: &str,
        size: u64,
    ) -> Result<(), RegistryError> {
        let image = self.reference(repository, digest);
        self.uploads
            .store_auth_if_needed(image.resolve_registry(), &self.auth)
            .await;
        self.retry(UPLOAD_POLICY, "PUT blob", repository, digest, || async {
            let file = tokio::fs::File::open(path).await?;
            let stream = futures_util::StreamExt::map(
                tokio_util::io::ReaderStream::with_capacity(file, 1 << 20),
                |chunk| chunk.map_err(OciDistributionError::IoError),
            );
            self.uploads
                .push_blob_stream(&image, stream, digest, Some(size))
                .await
                .map(drop)
        })
        .await
    }

    /// Puts `manifest` (its exact bytes and media type) under `tag`; the registry then names
    /// the same digest by that tag.
    pub async fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: &Manifest,
    ) -> Result<(), RegistryError> {
        let image = self.reference(repository, tag);
        let content_type = http::HeaderValue::from_str(&manifest.media_type).map_err(|_| {
            self.error(
                "PUT manifest",
                repository,
                tag,
                format!("`{}` is not a media type", manifest.media_type),
            )
        })?;
        self.retry(POLICY, "PUT manifest", repository, tag, || async {
            self.client
                .push_manifest_raw(&image, manifest.bytes.clone(), content_type.clone())
                .await
                .map(drop)
        })
        .await
    }

    /// The image config `config` describes, from `repository`'s blobs.
    pub async fn config(
        &self,
        repository: &str,
        config: &Descriptor,
    ) -> Result<ImageConfig, RegistryError> {
        let bytes = self.config_bytes(repository, config).await?;
        ImageConfig::parse(&bytes)
            .map_err(|message| self.error("GET config", repository, &config.digest, message))
    }

    /// The bytes of the image config `config` describes, as stored.
    pub async fn config_bytes(
        &self,
        repository: &str,
        config: &Descriptor,
    ) -> Result<bytes::Bytes, RegistryError> {
        let fail = |message: String| self.error("GET config", repository, &config.digest, message);
        if config.size > MAX_CONFIG_BYTES {
            return Err(fail(format!(
                "the config is {} bytes, more than an image config holds",
                config.size
            )));
        }
        let image = self.reference(repository, &config.digest);
        let descriptor = OciDescriptor {
            media_type: config.media_type.clone(),
            digest: config.digest.clone(),
            size: config.size as i64,
            ..OciDescriptor::default()
        };
        let bytes = self
            .retry(POLICY, "GET config", repository, &config.digest, || async {
                let mut out = Vec::with_capacity(config.size as usize);
                self.client
                    .pull_blob(&image, &descriptor, &mut out)
                    .await
                    .map(|()| out)
            })
            .await?;
        Ok(bytes.into())
    }

    fn reference(&self, repository: &str, reference: &str) -> Reference {
        if reference.contains(':') {
            Reference::with_digest(
                self.host.clone(),
                repository.to_owned(),
                reference.to_owned(),
            )
        } else {
            Reference::with_tag(
                self.host.clone(),
                repository.to_owned(),
                reference.to_owned(),
            )
        }
    }

    fn error(
        &self,
        action: &'static str,
        repository: &str,
        reference: &str,
        message: String,
    ) -> RegistryError {
        RegistryError {
            registry: self.host.clone(),
            repository: repository.to_owned(),
            reference: reference.to_owned(),
            action,
            message,
            transient: false,
            attempts: 1,
        }
    }

    /// Runs `call`, retried by `policy` while it fails transiently ([`POLICY`] for a request,
    /// [`UPLOAD_POLICY`] for a layer's upload).
    async fn retry<T, F, Fut>(
        &self,
        policy: crate::retry::Policy,
        action: &'static str,
        repository: &str,
        reference: &str,
        call: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, OciDistributionError>>,
    {
        let what = format!(
            "registry {}: {action} of {repository}:{reference}",
            self.host
        );
        let mut call = call;
        crate::retry::run(
            policy,
            &what,
            || {
                let attempt = call();
                async move { attempt.await.map_err(Described) }
            },
            |e| is_transient(&e.0),
            &mut crate::retry::log_retry,
        )
        .await
        .map_err(|gave_up| RegistryError {
            transient: gave_up.transient,
            attempts: gave_up.attempts,
            ..self.error(action, repository, reference, gave_up.last.to_string())
        })
    }
}

/// A failed call, shown in the registry's own words ([`describe`]).
#[derive(Debug)]
struct Described(OciDistributionError);

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(&self.0))
    }
}

/// Whether the registry said the repository or the reference does not exist.
fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code: 404, .. } => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
            )
        }),
        _ => false,
    }
}

/// Network trouble, 5xx and 429 are worth another attempt; anything the registry refused is
/// not, and neither is a host name that does not resolve (it will not in the seconds the
/// retries take; a registry out of reach is then named at once).
fn is_transient(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::RequestError(e) if is_unresolved_name(e) => false,
        OciDistributionError::RequestError(e) => {
            e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| matches!(e.code, OciErrorCode::Toomanyrequests)),
        _ => false,
    }
}

/// Whether a request failed because the registry's host name does not resolve.
fn is_unresolved_name(error: &(dyn std::error::Error + 'static)) -> bool {
    let chain = error_chain(error).to_ascii_lowercase();
    chain.contains("dns error") || chain.contains("failed to lookup address")
}

/// The registry's own words, on one line.
fn describe(error: &OciDistributionError) -> String {
    let text = match error {
        OciDistributionError::UnauthorizedError { .. } => {
            "unauthorized: the registry refused the credentials".to_owned()
        }
        OciDistributionError::AuthenticationFailure(reason) => {
            format!("authentication failed: {reason}")
        }
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .map(|e| {
                let code = serde_json::to_value(&e.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("{code}: {}", e.message)
            })
            .collect::<Vec<_>>()
            .join("; "),
        OciDistributionError::ServerError { code, message, .. } => {
            format!("HTTP {code}: {}", message.trim())
        }
        e => error_chain(e),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::{OciEnvelope, OciError};

    fn envelope(code: OciErrorCode) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: OciEnvelope {
                errors: vec![OciError {
                    code,
                    message: "manifest unknown".into(),
                    detail: serde_json::Value::Null,
                }],
            },
            url: "http://r/v2/app/manifests/v1".into(),
        }
    }

    #[test]
    fn failures_are_sorted_into_absent_transient_and_final() {
        assert!(is_not_found(&envelope(OciErrorCode::ManifestUnknown)));
        assert!(is_not_found(&envelope(OciErrorCode::NameUnknown)));
        assert!(!is_not_found(&envelope(OciErrorCode::Denied)));
        let server = |code| OciDistributionError::ServerError {
            code,
            url: "u".into(),
            message: " Service\nUnavailable ".into(),
        };
        assert!(is_not_found(&server(404)));
        assert!(is_transient(&server(503)));
        assert!(is_transient(&server(429)));
        assert!(!is_transient(&server(400)));
        assert!(!is_transient(&OciDistributionError::UnauthorizedError {
            url: "u".into()
        }));
        assert!(is_transient(&envelope(OciErrorCode::Toomanyrequests)));
        assert_eq!(describe(&server(503)), "HTTP 503: Service Unavailable");
        assert_eq!(
            describe(&envelope(OciErrorCode::ManifestUnknown)),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
    }

    #[test]
    fn errors_name_registry_repository_and_reference() {
        let r = Registry::new("127.0.0.1:5000", None);
        let e = RegistryError {
            attempts: 4,
            ..r.error("GET manifest", "app", "v1", "HTTP 503: down".into())
        };
        assert_eq!(
            e.to_string(),
            "registry 127.0.0.1:5000: GET manifest of app:v1 failed (4 attempts): HTTP 503: down"
        );
    }
}
