//! The Docker Engine API through bollard (and hyper, for BuildKit builds): connect and negotiate,
//! build, tag, inspect, push.
//!
//! This is the only module that talks to the daemon. It turns bollard's streams into typed
//! results: the built image id, the pushed digest, and a [`DockerError`] that says what failed
//! and, for a build, shows the tail of the log.
//!
//! The pieces: `connect` negotiates with `DOCKER_HOST` and makes the short calls (tag, inspect);
//! `build` sends `POST /build` and reads its answer, handing BuildKit builds to `buildkit`, which
//! reaches the daemon through `endpoint` and serves `session` beside the build; `progress` turns
//! both builders' output into plain lines; `push` pushes with retries; `pull` pulls.
//!
//! # Builders
//!
//! A build's context reaches the daemon one of two ways ([`BuildContext`]): as a tar stream in
//! the body of `POST /build`, sent as it is produced (chunked), or through the build's BuildKit
//! session, which the daemon asks for the files it needs (`remote=client-session`). Either way
//! memory stays flat whatever the context's size.
//!
//! - Classic (`version=1`), through bollard: the daemon streams `{"stream":"Step 1/3 : ..."}`
//!   text, which is split into lines. It cannot mount secrets: a request with secrets is refused
//!   with [`DockerError::SecretsNeedBuildKit`] before anything is sent.
//! - BuildKit (`version=2`): the daemon streams `{"id":"moby.buildkit.trace","aux":"<base64
//!   StatusResponse>"}` messages, rendered by [`BuildkitProgress`] like buildkit's plain progress
//!   output (`#3 [2/3] RUN make`, `#3 output line`, `#3 DONE 1.2s`).
//!
//! # BuildKit sessions and secrets
//!
//! A BuildKit build reads its secrets (`RUN --mount=type=secret,id=NAME`) from a session the
//! client serves over `POST /session` (see [`session`]). bollard's `build_image` opens a
//! session of its own that serves no secrets, and its session machinery is private; so for a
//! BuildKit build this module makes both requests itself, each on its own connection to the
//! daemon (`DOCKER_HOST` as `unix://` or plain `tcp://`): first `POST /session`, whose `101`
//! answer registers the session before the build can ask for it, then
//! `POST /build?version=2&session=<id>&remote=client-session`: the session serves the context and
//! the Dockerfile's folder, the secrets, and the push registry's credentials. The JSON messages
//! of the answer are decoded with bollard's `BuildInfo`, as for the classic builder. Secret values travel only as
//! gRPC answers on the session's connection: never in the URL, a build arg, the image's history
//! or layers (BuildKit mounts them in a tmpfs for the one step), nor any log line.
//!
//! Over TLS (`https://`, `DOCKER_TLS_VERIFY`) or ssh, where ecrship cannot serve a session, a
//! BuildKit build without secrets goes through bollard's `build_image` with the context as a tar
//! (and bollard's session); one with secrets fails with a message.
//!
//! # Cancellation
//!
//! Dropping the future returned by [`Daemon::build`] drops the HTTP request and closes its
//! connection. The daemon notices the closed connection and cancels the build; both
//! builders stop (checked against Engine 20.10.24): the classic builder kills and removes the
//! running `RUN` container; BuildKit cancels the solve and kills the `RUN` process. No
//! `POST /build/cancel` call is needed. The session's connection belongs to the same future and
//! is closed with it (and as soon as the build ends), so the daemon forgets the session.
//!
//! # Secrets
//!
//! Registry credentials travel only in the `X-Registry-Auth` header and never reach a log line
//! or a `Debug` output ([`Credentials`] prints `***`). Build arguments are query parameters of
//! `POST /build`, and bollard logs request URIs at `debug` level through the `log` crate: the
//! subscriber must keep `bollard` below `debug` for secret build args to stay out of the logs.
//! Secret mounts ([`BuildRequest::secrets`]) are [`Secret`]s, which print `***`.

mod build;
mod buildkit;
mod connect;
mod endpoint;
mod files;
mod progress;
mod pull;
mod push;
pub mod session;

use std::time::Duration;

use bollard::Docker;

use crate::context::Builder;
pub use crate::context::SyncedContext;
pub use crate::registry::Credentials;
use crate::secret::Secret;
use crate::text::{plural, quoted};
use endpoint::Endpoint;
pub use progress::BuildkitProgress;
pub use push::{is_transient, parse_digest};

/// Where the daemon listens when `DOCKER_HOST` is unset (as in bollard and the Docker CLI).
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How long connecting (the first `GET /version`) may take before the daemon counts as unreachable.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on waiting for the response head of short calls (tag, inspect, remove).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on waiting for the response head of a build or push. The classic builder answers only
/// once the whole context is uploaded, so this is generous; it does not bound the build itself.
pub(crate) const STREAM_TIMEOUT: Duration = Duration::from_secs(3600);
/// The oldest Engine API this module is written against (Docker Engine 20.10).
const MIN_API: (usize, usize) = (1, 41);

/// What to build; the context itself is passed separately to [`Daemon::build`] as a tar stream.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// References to give the image (`repo:tag`); the first is set by the build, the rest by
    /// `POST /images/{id}/tag` afterwards.
    pub tags: Vec<String>,
    /// The Dockerfile's path inside the context tar, or its name in its folder when the
    /// files go through the session.
    pub dockerfile: String,
    /// `--build-arg` pairs; a later duplicate wins.
    pub build_args: Vec<(String, String)>,
    /// `--label` pairs.
    pub labels: Vec<(String, String)>,
    /// `--target` stage.
    pub target: Option<String>,
    /// `--platform`, such as `linux/amd64`.
    pub platform: Option<crate::reference::Platform>,
    /// Which builder runs it.
    pub builder: Builder,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: always look for a newer base image.
    pub pull: bool,
    /// BuildKit secret mounts, id → value (`RUN --mount=type=secret,id=<id>` reads the value at
    /// `/run/secrets/<id>`); a later duplicate id wins. BuildKit only.
    pub secrets: Vec<(String, Secret)>,
    /// Images whose layers the build may reuse (`--cache-from`): with BuildKit, their inline
    /// cache is read from the registry; the classic builder needs them pulled first.
    pub cache_from: Vec<String>,
    /// Credentials for the registry ecrship pushes to, handed to BuildKit through the session
    /// for that registry only (cache imports, a base image there).
    pub credentials: Option<Credentials>,
}

/// What a build is made from.
pub enum BuildContext {
    /// The context as a tar stream, the body of `POST /build` (uncompressed or gzip), sent as
    /// it is produced.
    Tar(
        std::pin::Pin<
            Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>,
        >,
    ),
    /// Folders the daemon syncs through the build's session (`remote=client-session`): the
    /// context, and the Dockerfile's folder. BuildKit on a `unix://` or plain `tcp://` daemon.
    Synced(crate::context::SyncedContext),
}

/// What [`Daemon::inspect`] reports about a local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:...`
    pub id: String,
    /// Size in bytes, as `docker image ls` shows it.
    pub size: u64,
    /// The labels of its config.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A failure talking to the daemon or reported by it.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The daemon did not answer.
    #[error(
        "cannot reach the Docker daemon at {address}: {cause}\n  hint: is dockerd running? is DOCKER_HOST right? in CodeBuild, enable privileged mode"
    )]
    Unreachable { address: String, cause: String },

    /// The daemon answers but speaks an older API than this tool needs.
    #[error(
        "the Docker daemon at {address} speaks API {version}, older than the 1.41 (Docker Engine 20.10) that ecrship needs"
    )]
    ApiTooOld { address: String, version: String },

    /// A build failed; `tail` holds the last lines of its log.
    #[error("build failed: {message}{}", render_tail(tail))]
    Build { message: String, tail: Vec<String> },

    /// A push failed after its retries; `transient` tells whether the last failure was one
    /// that a later run may not meet (network, registry 5xx) rather than auth or naming.
    #[error("push of {image} to {registry} failed{}: {message}", crate::retry::attempts_note(*attempts))]
    Push {
        image: String,
        registry: String,
        message: String,
        transient: bool,
        /// How many times the push was tried (more than one when failures were transient).
        attempts: usize,
    },

    /// Any other call the daemon refused or that failed on the way.
    #[error("docker {action} failed: {message}")]
    Api { action: String, message: String },

    /// Secret mounts were asked of the classic builder, which has none.
    #[error(
        "secret{} {} need{} BuildKit: the classic builder cannot mount secrets\n  hint: build with BuildKit (--builder buildkit), or remove [image.secrets]",
        plural(ids.len()),
        quoted(ids),
        if ids.len() == 1 { "s" } else { "" }
    )]
    SecretsNeedBuildKit { ids: Vec<String> },
}

fn render_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut out = format!("\n  last {} lines of the build log:", tail.len());
    for line in tail {
        out.push_str("\n  | ");
        out.push_str(line);
    }
    out
}

/// A connection to a Docker daemon whose API version has been negotiated.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// For short calls, bounded by [`CALL_TIMEOUT`].
    docker: Docker,
    /// The same connection pool, for builds and pushes, bounded by [`STREAM_TIMEOUT`].
    streaming: Docker,
    address: String,
    /// The negotiated API version, such as `1.41`, for the requests made without bollard.
    api: bollard::ClientVersion,
    /// How to reach the daemon without bollard; `None` over TLS or ssh.
    endpoint: Option<Endpoint>,
    /// The daemon's own platform, `os/arch` (`linux/amd64`).
    platform: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_error_shows_the_tail() {
        let err = DockerError::Build {
            message: "exit code: 3".into(),
            tail: vec![
                "#5 [2/2] RUN exit 3".into(),
                "#5 ERROR: exit code: 3".into(),
            ],
        };
        assert_eq!(
            err.to_string(),
            "build failed: exit code: 3\n  last 2 lines of the build log:\n  | #5 [2/2] RUN exit 3\n  | #5 ERROR: exit code: 3"
        );
    }

    #[test]
    fn classic_builds_refuse_secrets() {
        let err = DockerError::SecretsNeedBuildKit {
            ids: vec!["skb".into()],
        };
        assert_eq!(
            err.to_string(),
            "secret `skb` needs BuildKit: the classic builder cannot mount secrets\n  hint: build with BuildKit (--builder buildkit), or remove [image.secrets]"
        );
        let err = DockerError::SecretsNeedBuildKit {
            ids: vec!["a".into(), "b".into()],
        };
        assert!(
            err.to_string()
                .starts_with("secrets `a`, `b` need BuildKit:"),
            "{err}"
        );
    }
}
