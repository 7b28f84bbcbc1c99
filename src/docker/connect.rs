//! Connecting to the daemon (`DOCKER_HOST`, API negotiation) and the short calls: tag, inspect.

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::TagImageOptions;

use super::endpoint::Endpoint;
use super::{
    CALL_TIMEOUT, CONNECT_TIMEOUT, DEFAULT_HOST, Daemon, DockerError, ImageInfo, MIN_API,
    STREAM_TIMEOUT,
};
use crate::reference::{Platform, Reference};
use crate::text::error_chain;

impl Daemon {
    /// Connects to `DOCKER_HOST`, or the default socket when it is unset, and negotiates the
    /// API version (at least 1.41). The first request (`GET /version`, which doubles as the ping)
    /// is bounded by 10 s, so a socket that accepts and never answers does not hang the run.
    pub async fn connect() -> Result<Daemon, DockerError> {
        let address = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|host| !host.is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let unreachable = |cause: String| DockerError::Unreachable {
            address: address.clone(),
            cause,
        };
        let docker = Docker::connect_with_host(&address)
            .map_err(|e| unreachable(error_chain(&e)))?
            .with_timeout(CONNECT_TIMEOUT);
        let docker = match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(docker)) => docker,
            Ok(Err(BollardError::RequestTimeoutError)) | Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(unreachable(error_chain(&e))),
        };
        let version = docker.client_version();
        if (version.major_version, version.minor_version) < MIN_API {
            return Err(DockerError::ApiTooOld {
                address,
                version: version.to_string(),
            });
        }
        let platform = match docker.version().await {
            Ok(v) => format!(
                "{}/{}",
                v.os.unwrap_or_else(|| "linux".into()),
                v.arch.unwrap_or_else(|| "amd64".into())
            ),
            Err(e) => return Err(unreachable(error_chain(&e))),
        };
        tracing::debug!(%address, api = %version, %platform, "connected to the Docker daemon");
        let tls = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
        Ok(Daemon {
            platform,
            streaming: docker.clone().with_timeout(STREAM_TIMEOUT),
            docker: docker.with_timeout(CALL_TIMEOUT),
            endpoint: Endpoint::parse(&address, tls),
            api: version,
            address,
        })
    }

    /// The daemon's address, as `DOCKER_HOST` gives it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The daemon's own platform, `os/arch`.
    pub fn platform(&self) -> &str {
        &self.platform
    }

    /// The daemon's own platform, as a value: what a build without a platform builds for.
    pub fn platform_value(&self) -> Platform {
        Platform::parse(&self.platform).unwrap_or_default()
    }

    /// Whether the negotiated Engine API is `version` (`(1, 46)`: Docker 27.0) or newer.
    pub fn api_at_least(&self, version: (usize, usize)) -> bool {
        (self.api.major_version, self.api.minor_version) >= version
    }

    /// Whether ecrship reaches the daemon itself (`unix://` or plain `tcp://`), and so can
    /// serve a BuildKit session: synced contexts and secret mounts.
    pub fn serves_sessions(&self) -> bool {
        self.endpoint.is_some()
    }

    /// Tags `image` (an id or reference) as `target`.
    pub async fn tag(&self, image: &str, target: &Reference) -> Result<(), DockerError> {
        let options = TagImageOptions {
            repo: Some(target.name()),
            tag: Some(target.identifier().to_owned()),
        };
        self.docker
            .tag_image(image, Some(options))
            .await
            .map_err(|e| api_error(format!("tag {image} as {}", target.familiar()), &e))
    }

    /// The id and size of a local image, or `None` when the daemon does not have it.
    pub async fn inspect(&self, image: &str) -> Result<Option<ImageInfo>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(found) => Ok(Some(ImageInfo {
                id: found.id.unwrap_or_default(),
                size: found.size.unwrap_or(0).try_into().unwrap_or(0),
                labels: found
                    .config
                    .and_then(|c| c.labels)
                    .map(|l| l.into_iter().collect())
                    .unwrap_or_default(),
            })),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(api_error(format!("inspect {image}"), &e)),
        }
    }
}

pub(super) fn api_error(action: String, error: &BollardError) -> DockerError {
    DockerError::Api {
        action,
        message: describe(error),
    }
}

/// A bollard error as a user reads it: the daemon's own message when it sent one.
pub(super) fn describe(error: &BollardError) -> String {
    match error {
        BollardError::DockerResponseServerError { message, .. } if !message.is_empty() => {
            message.clone()
        }
        BollardError::DockerStreamError { error } => error.clone(),
        BollardError::RequestTimeoutError => "the Docker daemon did not answer in time".into(),
        e => error_chain(e),
    }
}
