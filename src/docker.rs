//! The Docker Engine API through bollard (and hyper, for BuildKit builds): connect and negotiate,
//! build, tag, inspect, push.
//!
//! This is the only module that talks to the daemon. It turns bollard's streams into typed
//! results: the built image id, the pushed digest, and a [`DockerError`] that says what failed
//! and, for a build, shows the tail of the log.
//!
//! # Builders
//!
//! Both builders take the context as a tar stream in the body of `POST /build`, sent as it is
//! produced (chunked), so memory stays flat whatever the context's size.
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
//! client serves over `POST /session` (see [`crate::session`]). bollard's `build_image` opens a
//! session of its own that serves no secrets, and its session machinery is private; so for a
//! BuildKit build this module makes both requests itself, each on its own connection to the
//! daemon (`DOCKER_HOST` as `unix://` or plain `tcp://`): first `POST /session`, whose `101`
//! answer registers the session before the build can ask for it, then
//! `POST /build?version=2&session=<id>` with the streamed tar. The JSON messages of the answer are
//! decoded with bollard's `BuildInfo`, as for the classic builder. Secret values travel only as
//! gRPC answers on the session's connection: never in the URL, a build arg, the image's history
//! or layers (BuildKit mounts them in a tmpfs for the one step), nor any log line.
//!
//! Over TLS (`https://`, `DOCKER_TLS_VERIFY`) or ssh, a BuildKit build without secrets goes
//! through bollard's `build_image` (and its session); one with secrets fails with a message.
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

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::moby::buildkit::v1::StatusResponse;
use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{
    BuildImageOptions, BuilderVersion, PushImageOptions, TagImageOptions,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::context::Builder;
use crate::error::error_chain;
use crate::secret::Secret;
use crate::session::{self, SecretStore};

/// Where the daemon listens when `DOCKER_HOST` is unset (as in bollard and the Docker CLI).
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How long connecting (the first `GET /version`) may take before the daemon counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on waiting for the response head of short calls (tag, inspect, remove).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on waiting for the response head of a build or push. The classic builder answers only
/// once the whole context is uploaded, so this is generous; it does not bound the build itself.
const STREAM_TIMEOUT: Duration = Duration::from_secs(3600);
/// The oldest Engine API this module is written against (Docker Engine 20.10).
const MIN_API: (usize, usize) = (1, 41);
/// How many lines of a build's log a [`DockerError::Build`] keeps.
const TAIL_LINES: usize = 20;
/// Delays between push attempts; one more attempt than delays.
const PUSH_BACKOFF: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

/// What to build; the context itself is passed separately to [`Daemon::build`] as a tar stream.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// References to give the image (`repo:tag`); the first is set by the build, the rest by
    /// `POST /images/{id}/tag` afterwards.
    pub tags: Vec<String>,
    /// Path of the Dockerfile inside the context tar.
    pub dockerfile: String,
    /// `--build-arg` pairs; a later duplicate wins.
    pub build_args: Vec<(String, String)>,
    /// `--label` pairs.
    pub labels: Vec<(String, String)>,
    /// `--target` stage.
    pub target: Option<String>,
    /// `--platform`, such as `linux/amd64`.
    pub platform: Option<String>,
    /// Which builder runs it.
    pub builder: Builder,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: always look for a newer base image.
    pub pull: bool,
    /// BuildKit secret mounts, id → value (`RUN --mount=type=secret,id=<id>` reads the value at
    /// `/run/secrets/<id>`); a later duplicate id wins. BuildKit only.
    pub secrets: Vec<(String, Secret)>,
}

/// Registry credentials for a push. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AWS` for ECR.
    pub username: String,
    /// The secret.
    pub password: String,
    /// The registry, e.g. `https://123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
    pub server: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .field("server", &self.server)
            .finish()
    }
}

/// What [`Daemon::inspect`] reports about a local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:...`
    pub id: String,
    /// Size in bytes, as `docker image ls` shows it.
    pub size: u64,
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
    #[error("push of {image} to {registry} failed{}: {message}", attempts_note(*attempts))]
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

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `a`, `b` and `c` in backquotes, joined by commas.
fn quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    quoted.join(", ")
}

fn attempts_note(attempts: usize) -> String {
    if attempts > 1 {
        format!(" ({attempts} attempts)")
    } else {
        String::new()
    }
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
    api: String,
    /// How to reach the daemon without bollard; `None` over TLS or ssh.
    endpoint: Option<Endpoint>,
}

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
        tracing::debug!(%address, api = %version, "connected to the Docker daemon");
        let tls = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
        Ok(Daemon {
            streaming: docker.clone().with_timeout(STREAM_TIMEOUT),
            docker: docker.with_timeout(CALL_TIMEOUT),
            endpoint: Endpoint::parse(&address, tls),
            api: version.to_string(),
            address,
        })
    }

    /// The daemon's address, as `DOCKER_HOST` gives it.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs one build and returns the image id (`sha256:...`).
    ///
    /// `context` is the tar stream of the build context (uncompressed or gzip); it is sent as it
    /// is produced, never held whole. `on_line` receives each log line as it arrives, without any
    /// prefix: the classic builder's output, or BuildKit's progress rendered as plain lines. An
    /// error in the stream (the daemon answers 200 then reports `errorDetail`) is a
    /// [`DockerError::Build`] carrying the daemon's message and the last 20 log lines.
    ///
    /// `req.secrets` are served to BuildKit through a session of this build's own (see the
    /// module docs); the classic builder refuses them ([`DockerError::SecretsNeedBuildKit`]).
    /// A secret the Dockerfile mounts but `req` lacks fails the build when the mount is
    /// `required`, and is named in a warning line otherwise.
    ///
    /// Dropping the returned future cancels the build on the daemon (see the module docs).
    pub async fn build<S>(
        &self,
        req: &BuildRequest,
        context: S,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, DockerError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        if req.builder == Builder::Classic && !req.secrets.is_empty() {
            let mut ids: Vec<String> = req.secrets.iter().map(|(id, _)| id.clone()).collect();
            ids.sort();
            ids.dedup();
            return Err(DockerError::SecretsNeedBuildKit { ids });
        }
        let mut log = BuildLog::new(on_line);
        let result = match (&self.endpoint, req.builder) {
            (Some(endpoint), Builder::BuildKit) => {
                self.run_buildkit(endpoint, req, context, &mut log).await
            }
            (None, Builder::BuildKit) if !req.secrets.is_empty() => Err(format!(
                "secret mounts need the daemon on a unix:// socket or plain tcp://, not {}",
                self.address
            )),
            _ => self.run_build(req, context, &mut log).await,
        };
        let id = match result {
            Ok(id) => id,
            Err(message) => {
                log.finish();
                return Err(DockerError::Build {
                    message,
                    tail: log.tail.into(),
                });
            }
        };
        log.finish();
        for reference in req.tags.iter().skip(1) {
            let (repo, tag) = split_reference(reference);
            self.tag(&id, repo, tag).await?;
        }
        Ok(id)
    }

    /// A build through bollard's `build_image`: the classic builder, or BuildKit where this
    /// module cannot reach the daemon itself.
    async fn run_build<S>(
        &self,
        req: &BuildRequest,
        context: S,
        log: &mut BuildLog<'_>,
    ) -> Result<String, String>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let session = (req.builder == Builder::BuildKit).then(session::new_id);
        let options = build_options(req, session);
        let mut stream =
            self.streaming
                .build_image(options, None, Some(bollard::body_try_stream(context)));
        let mut outcome = Outcome::default();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => outcome.take(info, log)?,
                Err(BollardError::DockerStreamError { error }) => return Err(error),
                Err(e) => return Err(describe(&e)),
            }
        }
        outcome.image_id(self).await
    }

    /// A BuildKit build with a session of its own that serves `req.secrets`: `POST /session`
    /// on one connection, then `POST /build?session=<id>` on another, both held by this future.
    async fn run_buildkit<S>(
        &self,
        endpoint: &Endpoint,
        req: &BuildRequest,
        context: S,
        log: &mut BuildLog<'_>,
    ) -> Result<String, String>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let id = session::new_id();
        let store = Arc::new(SecretStore::new(&req.secrets));
        let name = req.tags.first().map_or("ecrship", String::as_str);
        let upgraded = self.open_session(endpoint, &id, name).await?;
        tracing::debug!(session = %id, secrets = req.secrets.len(), "BuildKit session open");
        let result = {
            let mut build = pin!(self.post_build(endpoint, req, &id, context, log));
            let mut serve = pin!(session::serve(upgraded, Arc::clone(&store)));
            tokio::select! {
                result = &mut build => result,
                ended = &mut serve => {
                    // The build may still need no session at all: let it finish, and say why
                    // a secret could not be read if it fails.
                    let why = match ended {
                        Ok(()) => "the daemon closed the BuildKit session".to_string(),
                        Err(e) => format!("the BuildKit session failed: {}", error_chain(&e)),
                    };
                    tracing::debug!(session = %id, "{why}");
                    build.await.map_err(|message| format!("{message} ({why})"))
                }
            }
        };
        let missing = store.missing();
        if missing.is_empty() {
            return result;
        }
        let note = format!(
            "the Dockerfile mounts secret{} {} that ecrship was not given; add {} to [image.secrets]",
            plural(missing.len()),
            quoted(&missing),
            if missing.len() == 1 { "it" } else { "them" }
        );
        match result {
            Ok(id) => {
                log.emit(&format!(
                    "WARNING: {note}; the step ran without the file in /run/secrets"
                ));
                Ok(id)
            }
            Err(message) => Err(format!("{message}\n  hint: {note}")),
        }
    }

    /// Opens a BuildKit session on a connection of its own: `POST /session` with `Upgrade: h2c`,
    /// answered `101 Switching Protocols`.
    async fn open_session(
        &self,
        endpoint: &Endpoint,
        id: &str,
        name: &str,
    ) -> Result<Upgraded, String> {
        let failed = |cause: String| format!("cannot open a BuildKit session: {cause}");
        let mut request = Request::post(format!("/v{}/session", self.api))
            .header(HOST, endpoint.host())
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "h2c");
        for (header, value) in session::headers(id, name) {
            request = request.header(header, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed(e.to_string()))?;
        let io = endpoint.connect().await.map_err(&failed)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| failed(error_chain(&e)))?;
        let upgrade = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| error_chain(&e))?;
            if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                return Err(error_answer(response).await);
            }
            hyper::upgrade::on(response)
                .await
                .map_err(|e| error_chain(&e))
        };
        let upgraded = tokio::time::timeout(CALL_TIMEOUT, drive(conn.with_upgrades(), upgrade))
            .await
            .map_err(|_| "the Docker daemon did not answer in time".to_string())
            .and_then(|upgraded| upgraded);
        upgraded.map_err(failed)
    }

    /// `POST /build?version=2&session=<id>&...` with `context` as the streamed body; renders
    /// the answer's messages into `log` and returns the image id.
    async fn post_build<S>(
        &self,
        endpoint: &Endpoint,
        req: &BuildRequest,
        session: &str,
        context: S,
        log: &mut BuildLog<'_>,
    ) -> Result<String, String>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let options = build_options(req, Some(session.to_string()));
        let query = serde_urlencoded::to_string(&options).map_err(|e| e.to_string())?;
        let body = StreamBody::new(context.map_ok(Frame::data));
        let request = Request::post(format!("/v{}/build?{query}", self.api))
            .header(HOST, endpoint.host())
            .header(CONTENT_TYPE, "application/x-tar")
            .body(body)
            .map_err(|e| e.to_string())?;
        let io = endpoint.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| error_chain(&e))?;
        let work = async {
            let response = tokio::time::timeout(STREAM_TIMEOUT, sender.send_request(request))
                .await
                .map_err(|_| "the Docker daemon did not answer in time".to_string())?
                .map_err(|e| error_chain(&e))?;
            if !response.status().is_success() {
                return Err(error_answer(response).await);
            }
            let mut body = response.into_body();
            let mut lines = JsonLines::default();
            let mut outcome = Outcome::default();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| error_chain(&e))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                for line in lines.push(&data) {
                    outcome.take(parse_message(&line)?, log)?;
                }
            }
            if let Some(line) = lines.finish() {
                outcome.take(parse_message(&line)?, log)?;
            }
            Ok(outcome)
        };
        drive(conn, work).await?.image_id(self).await
    }

    /// Tags `image` (an id or reference) as `repo:tag`.
    pub async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<(), DockerError> {
        let options = TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
        };
        self.docker
            .tag_image(image, Some(options))
            .await
            .map_err(|e| api_error(format!("tag {image} as {repo}:{tag}"), &e))
    }

    /// The id and size of a local image, or `None` when the daemon does not have it.
    pub async fn inspect(&self, image: &str) -> Result<Option<ImageInfo>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(found) => Ok(Some(ImageInfo {
                id: found.id.unwrap_or_default(),
                size: found.size.unwrap_or(0).try_into().unwrap_or(0),
            })),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(api_error(format!("inspect {image}"), &e)),
        }
    }

    /// Pushes `repo:tag` and returns the digest the registry stored (`sha256:...`).
    ///
    /// Failures inside the push stream are classified by [`is_transient`]: network errors and
    /// registry 5xx are retried (4 attempts, 0.5 s, 1 s, 2 s apart), auth and naming errors are
    /// not. `on_line` receives the progress worth reading (not every layer's byte count).
    pub async fn push(
        &self,
        repo: &str,
        tag: &str,
        creds: &Credentials,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, DockerError> {
        let image = format!("{repo}:{tag}");
        let mut attempt = 0;
        loop {
            let (message, daemon_retried) = match self.push_once(repo, tag, creds, on_line).await {
                Ok(digest) => return Ok(digest),
                Err(failure) => failure,
            };
            // dockerd retries each layer upload itself (five times, up to 20 s apart): once it
            // has, another round of ours would only multiply the wait.
            let transient = is_transient(&message) && !daemon_retried;
            let Some(delay) = PUSH_BACKOFF.get(attempt).filter(|_| transient) else {
                return Err(DockerError::Push {
                    image,
                    registry: registry_of(repo).to_string(),
                    message,
                    transient,
                    attempts: attempt + 1,
                });
            };
            attempt += 1;
            tracing::warn!(%image, attempt, error = %message, "push failed, retrying");
            on_line(&format!(
                "push failed: {message}; retrying in {:.1}s (attempt {} of {})",
                delay.as_secs_f32(),
                attempt + 1,
                PUSH_BACKOFF.len() + 1
            ));
            tokio::time::sleep(*delay).await;
        }
    }

    /// One push attempt; the error is the daemon's or the transport's message, and whether the
    /// daemon had already retried an upload (`Retrying in N seconds`) before giving up.
    async fn push_once(
        &self,
        repo: &str,
        tag: &str,
        creds: &Credentials,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, (String, bool)> {
        let options = PushImageOptions {
            tag: Some(tag.to_string()),
            platform: None,
        };
        let auth = DockerCredentials {
            username: Some(creds.username.clone()),
            password: Some(creds.password.clone()),
            serveraddress: Some(creds.server.clone()),
            ..Default::default()
        };
        let mut stream = self.streaming.push_image(repo, Some(options), Some(auth));
        let mut digest = None;
        let (mut pushed, mut present) = (0, 0);
        let mut retried = false;
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(BollardError::DockerStreamError { error }) => return Err((error, retried)),
                Err(e) => return Err((describe(&e), retried)),
            };
            if let Some(detail) = &info.error_detail {
                let message = format!("the daemon reported error code {:?}", detail.code);
                return Err((message, retried));
            }
            let Some(status) = info.status.as_deref() else {
                continue;
            };
            match status {
                "Preparing" | "Waiting" | "Pushing" => {}
                "Pushed" => pushed += 1,
                "Layer already exists" => present += 1,
                s if s.starts_with("Mounted from") => present += 1,
                s if s.starts_with("Retrying in") => {
                    retried = true;
                    on_line(s);
                }
                s => {
                    if let Some(d) = parse_digest(s) {
                        on_line(&format!(
                            "layers: {pushed} pushed, {present} already in the registry"
                        ));
                        digest = Some(d);
                    }
                    on_line(s);
                }
            }
        }
        digest.ok_or_else(|| {
            let message = "the push ended without the registry reporting a digest".to_string();
            (message, retried)
        })
    }
}

/// The query of `POST /build` for `req`; `session` only for BuildKit. Secrets are not in it.
fn build_options(req: &BuildRequest, session: Option<String>) -> BuildImageOptions {
    let pairs = |v: &[(String, String)]| -> Option<HashMap<String, String>> {
        (!v.is_empty()).then(|| v.iter().cloned().collect())
    };
    let buildkit = req.builder == Builder::BuildKit;
    BuildImageOptions {
        dockerfile: req.dockerfile.clone(),
        t: req.tags.first().cloned(),
        nocache: req.no_cache,
        pull: req.pull.then(|| "1".to_string()),
        buildargs: pairs(&req.build_args),
        labels: pairs(&req.labels),
        platform: req.platform.clone().unwrap_or_default(),
        target: req.target.clone().unwrap_or_default(),
        rm: true,
        forcerm: true,
        version: if buildkit {
            BuilderVersion::BuilderBuildKit
        } else {
            BuilderVersion::BuilderV1
        },
        session: session.filter(|_| buildkit),
        ..Default::default()
    }
}

/// What a build's messages said so far: the image id, or the short id of an older daemon.
#[derive(Debug, Default)]
struct Outcome {
    image_id: Option<String>,
    short_id: Option<String>,
}

impl Outcome {
    /// Logs one message of the build's answer; an error in it is the build's error.
    fn take(&mut self, info: BuildInfo, log: &mut BuildLog<'_>) -> Result<(), String> {
        if let Some(detail) = &info.error_detail {
            return Err(match &detail.message {
                Some(message) => message.clone(),
                None => format!("the daemon reported error code {:?}", detail.code),
            });
        }
        if let Some(text) = &info.stream {
            for line in log.classic.push(text) {
                if let Some(id) = line.strip_prefix("Successfully built ") {
                    self.short_id = Some(id.trim().to_string());
                }
                log.emit(&line);
            }
        }
        if let Some(status) = status_line(&info) {
            log.emit(&status);
        }
        match info.aux {
            Some(BuildInfoAux::BuildKit(status)) => {
                for line in log.buildkit.render(&status) {
                    log.emit(&line);
                }
            }
            Some(BuildInfoAux::Default(image)) => {
                if let Some(id) = image.id {
                    self.image_id = Some(id);
                }
            }
            None => {}
        }
        Ok(())
    }

    /// The full image id; older daemons print only `Successfully built <short id>`, which is
    /// resolved through `daemon`.
    async fn image_id(self, daemon: &Daemon) -> Result<String, String> {
        if let Some(id) = self.image_id {
            return Ok(id);
        }
        let resolved = match self.short_id {
            Some(short) => daemon.inspect(&short).await.ok().flatten(),
            None => None,
        };
        resolved
            .map(|info| info.id)
            .ok_or_else(|| "the daemon ended the build without reporting an image id".to_string())
    }
}

/// One JSON message of a build's answer.
fn parse_message(line: &[u8]) -> Result<BuildInfo, String> {
    serde_json::from_slice(line).map_err(|e| {
        let text = String::from_utf8_lossy(&line[..line.len().min(200)]);
        format!("cannot read the daemon's build output ({e}): {text}")
    })
}

/// Splits a byte stream into its non-blank lines (JSON messages, one per line).
#[derive(Debug, Default)]
struct JsonLines {
    partial: Vec<u8>,
}

impl JsonLines {
    fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.partial.extend_from_slice(data);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        complete
            .split(|&b| b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|line| !line.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.partial);
        let rest = rest.trim_ascii();
        (!rest.is_empty()).then(|| rest.to_vec())
    }
}

/// The message of an error answer (`{"message":"..."}`, or its text), read up to 64 kB.
async fn error_answer(response: http::Response<Incoming>) -> String {
    let status = response.status();
    let body = Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await;
    let text = match body {
        Ok(body) => {
            let bytes = body.to_bytes();
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(json) if json["message"].is_string() => {
                    json["message"].as_str().unwrap_or_default().to_string()
                }
                _ => String::from_utf8_lossy(&bytes).trim().to_string(),
            }
        }
        Err(e) => format!("(unreadable answer: {e})"),
    };
    if text.is_empty() {
        format!("the daemon answered {status}")
    } else {
        format!("{text} (HTTP {})", status.as_u16())
    }
}

/// Runs `work` while driving `conn`, the HTTP connection `work` talks over. When the connection
/// ends first (closed, or handed over by an upgrade), `work` still runs to its end, with what
/// was received or the connection's error.
async fn drive<C, W, T>(conn: C, work: W) -> T
where
    C: Future<Output = Result<(), hyper::Error>>,
    W: Future<Output = T>,
{
    let mut work = pin!(work);
    tokio::select! {
        done = &mut work => done,
        ended = conn => {
            if let Err(e) = ended {
                tracing::debug!("connection to the Docker daemon ended: {}", error_chain(&e));
            }
            work.await
        }
    }
}

/// Where the daemon listens, for the requests made without bollard.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

/// A connection to the daemon, whatever its transport.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Endpoint {
    /// `DOCKER_HOST` as `unix://PATH`, `tcp://HOST:PORT` or `http://HOST:PORT` (port 2375 when
    /// none is given); `None` for what only bollard reaches: TLS (`https://`, or `tcp://` with
    /// `DOCKER_TLS_VERIFY`), ssh, named pipes.
    fn parse(address: &str, tls_verify: bool) -> Option<Endpoint> {
        if let Some(path) = address.strip_prefix("unix://") {
            return (!path.is_empty()).then(|| Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = address
            .strip_prefix("tcp://")
            .or_else(|| address.strip_prefix("http://"))
            .filter(|_| !tls_verify)?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return None;
        }
        let has_port = match authority.rsplit_once(':') {
            Some((host, port)) => {
                !port.is_empty() && (!host.starts_with('[') || host.ends_with(']'))
            }
            None => false,
        };
        Some(Endpoint::Tcp(if has_port {
            authority.to_string()
        } else {
            format!("{authority}:2375")
        }))
    }

    /// The `Host` header: any name will do on a socket; the address over TCP.
    fn host(&self) -> &str {
        match self {
            Endpoint::Unix(_) => "docker",
            Endpoint::Tcp(authority) => authority,
        }
    }

    async fn connect(&self) -> Result<TokioIo<Box<dyn Io>>, String> {
        let connect = async {
            let io: Box<dyn Io> = match self {
                Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
                Endpoint::Tcp(authority) => {
                    let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
                    stream.set_nodelay(true)?;
                    Box::new(stream)
                }
            };
            Ok::<_, std::io::Error>(io)
        };
        let shown = || match self {
            Endpoint::Unix(path) => path.display().to_string(),
            Endpoint::Tcp(authority) => authority.clone(),
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(io)) => Ok(TokioIo::new(io)),
            Ok(Err(e)) => Err(format!(
                "cannot connect to the Docker daemon at {}: {e}",
                shown()
            )),
            Err(_) => Err(format!(
                "cannot connect to the Docker daemon at {}: no answer within {}s",
                shown(),
                CONNECT_TIMEOUT.as_secs()
            )),
        }
    }
}

/// The status line of a classic build message worth showing (pulls of base images), skipping
/// byte-count progress.
fn status_line(info: &BuildInfo) -> Option<String> {
    let status = info.status.as_deref()?;
    let progress = info
        .progress_detail
        .as_ref()
        .is_some_and(|p| p.current.is_some() || p.total.is_some());
    if progress {
        return None;
    }
    Some(match info.id.as_deref() {
        Some(id) if !id.is_empty() => format!("{id}: {status}"),
        _ => status.to_string(),
    })
}

/// Splits `repo:tag` at the tag's colon (not a registry port's); no tag means `latest`.
fn split_reference(reference: &str) -> (&str, &str) {
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

/// The registry host of a repository name, as Docker reads it: the first component when it has
/// a `.` or `:` or is `localhost`, else Docker Hub.
fn registry_of(repo: &str) -> &str {
    match repo.split_once('/') {
        Some((host, _)) if host.contains(['.', ':']) || host == "localhost" => host,
        _ => "docker.io",
    }
}

/// The digest in the push's final status line, `<tag>: digest: sha256:<64 hex> size: <n>`.
pub fn parse_digest(status: &str) -> Option<String> {
    let (_, rest) = status.split_once("digest: ")?;
    let digest = rest.split_whitespace().next()?;
    let hex = digest.strip_prefix("sha256:")?;
    let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then(|| digest.to_string())
}

/// Whether a push failure is worth retrying: network trouble and registry 5xx are; auth,
/// naming, manifest and tag-immutability errors are not, and neither is anything unknown.
pub fn is_transient(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    const PERMANENT: &[&str] = &[
        "unauthorized",
        "authentication required",
        "denied",
        "no basic auth credentials",
        "name unknown",
        "name_unknown",
        "name invalid",
        "invalid reference",
        "repository does not exist",
        "does not exist locally",
        "no such image",
        "manifest invalid",
        "manifest_invalid",
        "tag invalid",
        "immutable",
        "forbidden",
        "no such host",
        "x509",
        "certificate",
        "server gave http response to https client",
    ];
    const TRANSIENT: &[&str] = &[
        "connection reset",
        "connection refused",
        "broken pipe",
        "eof",
        "i/o timeout",
        "tls handshake timeout",
        "timeout",
        "timed out",
        "temporary failure",
        "server misbehaving",
        "network is unreachable",
        "request canceled",
        "blob upload unknown",
        "toomanyrequests",
        "too many requests",
        "500 internal server error",
        "502 bad gateway",
        "503 service unavailable",
        "504 gateway timeout",
        "unexpected http status: 5",
        "status code 5",
    ];
    if PERMANENT.iter().any(|p| lower.contains(p)) {
        return false;
    }
    TRANSIENT.iter().any(|t| lower.contains(t))
}

fn api_error(action: String, error: &BollardError) -> DockerError {
    DockerError::Api {
        action,
        message: describe(error),
    }
}

/// A bollard error as a user reads it: the daemon's own message when it sent one.
fn describe(error: &BollardError) -> String {
    match error {
        BollardError::DockerResponseServerError { message, .. } if !message.is_empty() => {
            message.clone()
        }
        BollardError::DockerStreamError { error } => error.clone(),
        BollardError::RequestTimeoutError => "the Docker daemon did not answer in time".into(),
        e => error_chain(e),
    }
}

/// The lines of one build: passes each to the caller and keeps the last [`TAIL_LINES`].
struct BuildLog<'a> {
    on_line: &'a mut (dyn FnMut(&str) + Send),
    tail: VecDeque<String>,
    classic: LineSplitter,
    buildkit: BuildkitProgress,
}

impl<'a> BuildLog<'a> {
    fn new(on_line: &'a mut (dyn FnMut(&str) + Send)) -> Self {
        BuildLog {
            on_line,
            tail: VecDeque::with_capacity(TAIL_LINES),
            classic: LineSplitter::default(),
            buildkit: BuildkitProgress::default(),
        }
    }

    fn emit(&mut self, line: &str) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
        (self.on_line)(line);
    }

    /// Emits what is still buffered: a last line without a newline, unfinished vertex output.
    fn finish(&mut self) {
        let mut rest: Vec<String> = self.classic.finish().into_iter().collect();
        rest.extend(self.buildkit.finish());
        for line in rest {
            self.emit(&line);
        }
    }
}

/// Splits text that arrives in arbitrary chunks into lines; a `\r` progress line keeps only
/// its last state; blank lines are dropped.
#[derive(Debug, Default)]
struct LineSplitter {
    partial: String,
}

impl LineSplitter {
    fn push(&mut self, text: &str) -> Vec<String> {
        self.partial.push_str(text);
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        complete.lines().filter_map(clean_line).collect()
    }

    fn finish(&mut self) -> Option<String> {
        clean_line(&std::mem::take(&mut self.partial))
    }
}

fn clean_line(line: &str) -> Option<String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let line = line.rsplit('\r').next().unwrap_or(line);
    let line = strip_ansi(line);
    let line = line.trim_end();
    (!line.is_empty()).then(|| line.to_string())
}

/// Removes ANSI escape sequences (CSI, such as the classic builder's red around stderr), which
/// would otherwise bleed colour into the next prefixed line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            // Parameters and intermediates, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// Renders BuildKit's `StatusResponse` messages as plain lines, in the manner of buildkit's
/// `--progress=plain`: each vertex gets a number in order of appearance, its name is printed
/// once when it starts, then its output (`#3 text`), completed transfers, and how it ended
/// (`#3 CACHED`, `#3 DONE 0.4s`, `#3 ERROR: ...`, `#3 CANCELED`).
#[derive(Debug, Default)]
pub struct BuildkitProgress {
    vertices: HashMap<String, VertexState>,
    next_index: usize,
}

#[derive(Debug, Default)]
struct VertexState {
    index: usize,
    name: String,
    announced: bool,
    ended: bool,
    output: LineSplitter,
    statuses_done: HashSet<String>,
}

impl VertexState {
    fn flush(&mut self, lines: &mut Vec<String>) {
        if let Some(line) = self.output.finish() {
            lines.push(format!("#{} {line}", self.index));
        }
    }
}

impl BuildkitProgress {
    /// The lines one status message adds to the log.
    pub fn render(&mut self, status: &StatusResponse) -> Vec<String> {
        let mut lines = Vec::new();
        for v in &status.vertexes {
            let state = self.vertex(&v.digest);
            if !v.name.is_empty() {
                state.name.clone_from(&v.name);
            }
            if v.started.is_some() || v.cached || v.completed.is_some() {
                announce(state, &mut lines);
            }
        }
        for s in &status.statuses {
            let state = self.vertex(&s.vertex);
            if s.completed.is_none() || !state.statuses_done.insert(s.id.clone()) {
                continue;
            }
            announce(state, &mut lines);
            let amount = match (s.current, s.total) {
                (_, 0) if s.current == 0 => String::new(),
                (current, 0) => format!(" {}", human_bytes(current)),
                (current, total) => format!(" {} / {}", human_bytes(current), human_bytes(total)),
            };
            lines.push(format!("#{} {}{amount} done", state.index, s.id));
        }
        for log in &status.logs {
            let state = self.vertex(&log.vertex);
            announce(state, &mut lines);
            let text = String::from_utf8_lossy(&log.msg);
            for line in state.output.push(&text) {
                lines.push(format!("#{} {line}", state.index));
            }
        }
        for w in &status.warnings {
            let state = self.vertex(&w.vertex);
            announce(state, &mut lines);
            let short = String::from_utf8_lossy(&w.short);
            lines.push(format!("#{} WARN: {}", state.index, short.trim_end()));
        }
        for v in &status.vertexes {
            let state = self.vertex(&v.digest);
            if state.ended {
                continue;
            }
            let end = if v.cached {
                "CACHED".to_string()
            } else if v.error.contains("context canceled") {
                "CANCELED".to_string()
            } else if !v.error.is_empty() {
                format!("ERROR: {}", v.error)
            } else if let (Some(start), Some(end)) = (&v.started, &v.completed) {
                let secs =
                    (end.seconds - start.seconds) as f64 + f64::from(end.nanos - start.nanos) / 1e9;
                format!("DONE {:.1}s", secs.max(0.0))
            } else if v.completed.is_some() {
                "DONE 0.0s".to_string()
            } else {
                continue;
            };
            state.flush(&mut lines);
            state.ended = true;
            lines.push(format!("#{} {end}", state.index));
        }
        lines
    }

    /// Output still buffered without a trailing newline.
    pub fn finish(&mut self) -> Vec<String> {
        let mut states: Vec<_> = self.vertices.values_mut().collect();
        states.sort_by_key(|s| s.index);
        let mut lines = Vec::new();
        for state in states {
            state.flush(&mut lines);
        }
        lines
    }

    fn vertex(&mut self, digest: &str) -> &mut VertexState {
        let next = &mut self.next_index;
        self.vertices.entry(digest.to_string()).or_insert_with(|| {
            *next += 1;
            VertexState {
                index: *next,
                ..Default::default()
            }
        })
    }
}

fn announce(state: &mut VertexState, lines: &mut Vec<String>) {
    if !state.announced && !state.name.is_empty() {
        state.announced = true;
        lines.push(format!("#{} {}", state.index, state.name));
    }
}

/// Bytes in decimal units with up to 4 significant digits, as Docker prints them (`2.35kB`).
fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n}B");
    }
    let decimals = if value >= 100.0 {
        1
    } else if value >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::moby::buildkit::v1::{Vertex, VertexLog, VertexStatus};

    #[test]
    fn push_errors_are_classified() {
        let cases = [
            // Registry down or flaky: retry.
            (
                r#"Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused"#,
                true,
            ),
            (
                "read tcp 10.0.0.1:4242->52.1.2.3:443: read: connection reset by peer",
                true,
            ),
            (
                "Put https://x.dkr.ecr.us-east-1.amazonaws.com/v2/app/blobs/uploads/1: EOF",
                true,
            ),
            ("net/http: TLS handshake timeout", true),
            (
                "dial tcp: lookup x on 10.0.0.2:53: read udp: i/o timeout",
                true,
            ),
            (
                "received unexpected HTTP status: 503 Service Unavailable",
                true,
            ),
            ("received unexpected HTTP status: 502 Bad Gateway", true),
            ("blob upload unknown", true),
            ("toomanyrequests: Rate exceeded", true),
            // Auth and naming: never retry.
            ("unauthorized: authentication required", false),
            (
                "denied: Your authorization token has expired. Reauthenticate and try again.",
                false,
            ),
            ("no basic auth credentials", false),
            (
                "name unknown: The repository with name 'app' does not exist in the registry with id '123'",
                false,
            ),
            ("manifest invalid: manifest invalid", false),
            (
                "tag invalid: The image tag 'v1' already exists in the 'app' repository and cannot be overwritten because the repository is immutable.",
                false,
            ),
            (
                "An image does not exist locally with the tag: 127.0.0.1:5000/x",
                false,
            ),
            // Both kinds of words: the permanent one wins.
            (
                "unauthorized: connection reset while reading the token",
                false,
            ),
            // Unknown: do not retry.
            ("something odd happened", false),
        ];
        for (message, transient) in cases {
            assert_eq!(is_transient(message), transient, "{message}");
        }
    }

    #[test]
    fn digest_is_parsed_from_the_final_status_line() {
        let hex = "2fb8703f82bfcec3dde65d0c7e54deb554179bb403477bb791e716c2192f1d5e";
        assert_eq!(
            parse_digest(&format!("v1.2.0: digest: sha256:{hex} size: 20673")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            parse_digest(&format!("latest: digest: sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(parse_digest("Pushed"), None);
        assert_eq!(parse_digest("x: digest: sha256:abc size: 1"), None);
        assert_eq!(
            parse_digest(&format!("x: digest: sha256:{} size: 1", hex.to_uppercase())),
            None
        );
        assert_eq!(
            parse_digest(&format!("x: digest: sha512:{hex} size: 1")),
            None
        );
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let creds = Credentials {
            username: "AWS".into(),
            password: "hunter2".into(),
            server: "https://r.example".into(),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***") && shown.contains("AWS"), "{shown}");
    }

    #[test]
    fn references_split_at_the_tag_not_the_port() {
        assert_eq!(split_reference("app:v1"), ("app", "v1"));
        assert_eq!(
            split_reference("127.0.0.1:5000/app:v1"),
            ("127.0.0.1:5000/app", "v1")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app", "latest")
        );
        assert_eq!(registry_of("127.0.0.1:5000/app"), "127.0.0.1:5000");
        assert_eq!(
            registry_of("1.dkr.ecr.eu-west-1.amazonaws.com/app"),
            "1.dkr.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(registry_of("library/app"), "docker.io");
        assert_eq!(registry_of("localhost/app"), "localhost");
    }

    #[test]
    fn classic_stream_text_is_split_into_lines() {
        let mut s = LineSplitter::default();
        assert_eq!(
            s.push("Step 1/2 : FROM scratch\n ---> "),
            vec!["Step 1/2 : FROM scratch"]
        );
        assert_eq!(s.push("abc\n\nStep 2/2"), vec![" ---> abc"]);
        assert_eq!(s.push(" : COPY a /a\r\n"), vec!["Step 2/2 : COPY a /a"]);
        assert_eq!(s.push("10%\r50%\r100%\n"), vec!["100%"]);
        assert_eq!(
            s.push("\u{1b}[91mto-stderr\n\u{1b}[0mRemoving intermediate container 1e8f\n"),
            vec!["to-stderr", "Removing intermediate container 1e8f"]
        );
        assert_eq!(s.push("\u{1b}[1;31mred\u{1b}[0m text\n"), vec!["red text"]);
        assert_eq!(s.push("no newline"), Vec::<String>::new());
        assert_eq!(s.finish().as_deref(), Some("no newline"));
        assert_eq!(s.finish(), None);
    }

    fn vertex(digest: &str, name: &str) -> Vertex {
        Vertex {
            digest: digest.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn at(v: &mut Vertex, start: (i64, i32), end: Option<(i64, i32)>) {
        let mut t = v.started.unwrap_or_default();
        (t.seconds, t.nanos) = start;
        v.started = Some(t);
        if let Some((s, n)) = end {
            let mut t = v.started.unwrap_or_default();
            (t.seconds, t.nanos) = (s, n);
            v.completed = Some(t);
        }
    }

    fn log(digest: &str, msg: &str) -> VertexLog {
        VertexLog {
            vertex: digest.into(),
            msg: msg.as_bytes().to_vec(),
            stream: 1,
            ..Default::default()
        }
    }

    #[test]
    fn buildkit_status_renders_like_plain_progress() {
        let mut p = BuildkitProgress::default();

        // A vertex that is only known (not started) prints nothing.
        let pending = vertex("sha256:run", "[2/3] RUN echo hi");
        let msg = StatusResponse {
            vertexes: vec![pending.clone()],
            ..Default::default()
        };
        assert!(p.render(&msg).is_empty());

        // Context transfer: started, then a completed status, then done.
        let mut ctx = vertex("sha256:ctx", "[internal] load build context");
        at(&mut ctx, (10, 0), None);
        let transfer = VertexStatus {
            id: "transferring context:".into(),
            vertex: "sha256:ctx".into(),
            current: 2350,
            completed: ctx.started,
            ..Default::default()
        };
        let msg = StatusResponse {
            vertexes: vec![ctx.clone()],
            statuses: vec![transfer.clone()],
            ..Default::default()
        };
        assert_eq!(
            p.render(&msg),
            vec![
                "#2 [internal] load build context",
                "#2 transferring context: 2.35kB done",
            ]
        );
        // The same completed status again is not repeated.
        let msg = StatusResponse {
            statuses: vec![transfer],
            ..Default::default()
        };
        assert!(p.render(&msg).is_empty());
        at(&mut ctx, (10, 0), Some((10, 400_000_000)));
        let msg = StatusResponse {
            vertexes: vec![ctx.clone()],
            ..Default::default()
        };
        assert_eq!(p.render(&msg), vec!["#2 DONE 0.4s"]);

        // A cached step: name once, then CACHED, and nothing when it is sent again.
        let mut cached = vertex("sha256:copy", "[1/3] COPY a /a");
        cached.cached = true;
        at(&mut cached, (11, 0), Some((11, 0)));
        let msg = StatusResponse {
            vertexes: vec![cached.clone()],
            ..Default::default()
        };
        assert_eq!(p.render(&msg), vec!["#3 [1/3] COPY a /a", "#3 CACHED"]);
        assert!(p.render(&msg).is_empty());

        // A RUN step with output split across messages, then a failure.
        let mut run = pending;
        at(&mut run, (12, 0), None);
        let msg = StatusResponse {
            vertexes: vec![run.clone()],
            logs: vec![log("sha256:run", "hi\nhal")],
            ..Default::default()
        };
        assert_eq!(p.render(&msg), vec!["#1 [2/3] RUN echo hi", "#1 hi"]);
        run.error =
            "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3".into();
        at(&mut run, (12, 0), Some((13, 0)));
        let msg = StatusResponse {
            vertexes: vec![run],
            logs: vec![log("sha256:run", "f")],
            ..Default::default()
        };
        assert_eq!(
            p.render(&msg),
            vec![
                "#1 half",
                "#1 ERROR: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3",
            ]
        );

        // A canceled step, and unfinished output flushed at the end.
        let mut other = vertex("sha256:other", "[3/3] RUN sleep 9");
        at(&mut other, (12, 0), None);
        let msg = StatusResponse {
            vertexes: vec![other.clone()],
            logs: vec![log("sha256:other", "partial")],
            ..Default::default()
        };
        assert_eq!(p.render(&msg), vec!["#4 [3/3] RUN sleep 9"]);
        assert_eq!(p.finish(), vec!["#4 partial"]);
        other.error = "context canceled".into();
        at(&mut other, (12, 0), Some((14, 0)));
        let msg = StatusResponse {
            vertexes: vec![other],
            ..Default::default()
        };
        assert_eq!(p.render(&msg), vec!["#4 CANCELED"]);
    }

    #[test]
    fn bytes_are_human_sized() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(999), "999B");
        assert_eq!(human_bytes(2350), "2.35kB");
        assert_eq!(human_bytes(12_345_678), "12.35MB");
        assert_eq!(human_bytes(123_456_789), "123.5MB");
        assert_eq!(human_bytes(1_000_000), "1MB");
    }

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
    fn build_options_follow_the_request() {
        let req = BuildRequest {
            tags: vec!["app:v1".into(), "app:latest".into()],
            dockerfile: "docker/Dockerfile".into(),
            build_args: vec![("A".into(), "1".into()), ("A".into(), "2".into())],
            target: Some("prod".into()),
            pull: true,
            ..Default::default()
        };
        let o = build_options(&req, Some("ecrship-1".into()));
        assert_eq!(o.t.as_deref(), Some("app:v1"));
        assert_eq!(o.buildargs.as_ref().unwrap()["A"], "2");
        assert_eq!(o.target, "prod");
        assert_eq!(o.pull.as_deref(), Some("1"));
        assert_eq!(o.version, BuilderVersion::BuilderBuildKit);
        assert_eq!(o.session.as_deref(), Some("ecrship-1"));
        let query = serde_urlencoded::to_string(&o).unwrap();
        for part in [
            "dockerfile=docker%2FDockerfile",
            "t=app%3Av1",
            "buildargs=%7B%22A%22%3A%222%22%7D",
            "version=2",
            "session=ecrship-1",
            "target=prod",
        ] {
            assert!(query.split('&').any(|p| p == part), "{part} in {query}");
        }
        let classic = build_options(
            &BuildRequest {
                builder: Builder::Classic,
                ..req
            },
            Some("ecrship-2".into()),
        );
        assert_eq!(classic.version, BuilderVersion::BuilderV1);
        assert_eq!(classic.session, None);
    }

    #[test]
    fn secrets_stay_out_of_the_build_query() {
        let req = BuildRequest {
            tags: vec!["app:v1".into()],
            secrets: vec![("skb".into(), Secret::new("query-secret-value".into()))],
            ..Default::default()
        };
        let query = serde_urlencoded::to_string(build_options(&req, Some("s".into()))).unwrap();
        assert!(
            !query.contains("query-secret-value") && !query.contains("skb"),
            "{query}"
        );
        assert!(!format!("{req:?}").contains("query-secret-value"));
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

    #[test]
    fn endpoints_follow_docker_host() {
        let unix = |p: &str| Some(Endpoint::Unix(p.into()));
        let tcp = |a: &str| Some(Endpoint::Tcp(a.into()));
        let cases = [
            (
                "unix:///var/run/docker.sock",
                false,
                unix("/var/run/docker.sock"),
            ),
            (
                "unix:///run/user/1000/docker.sock",
                true,
                unix("/run/user/1000/docker.sock"),
            ),
            ("tcp://127.0.0.1:2375", false, tcp("127.0.0.1:2375")),
            ("tcp://docker:2375/", false, tcp("docker:2375")),
            ("http://docker", false, tcp("docker:2375")),
            ("tcp://[::1]:2376", false, tcp("[::1]:2376")),
            ("tcp://[::1]", false, tcp("[::1]:2375")),
            ("tcp://127.0.0.1:2376", true, None),
            ("https://docker:2376", false, None),
            ("ssh://me@host", false, None),
            ("npipe:////./pipe/docker_engine", false, None),
            ("unix://", false, None),
            ("tcp://", false, None),
        ];
        for (address, tls, want) in cases {
            assert_eq!(Endpoint::parse(address, tls), want, "{address} tls={tls}");
        }
        assert_eq!(Endpoint::Tcp("h:1".into()).host(), "h:1");
        assert_eq!(Endpoint::Unix("/s".into()).host(), "docker");
    }

    #[test]
    fn json_messages_are_split_into_lines() {
        let mut lines = JsonLines::default();
        assert!(lines.push(b"{\"stream\":").is_empty());
        assert_eq!(
            lines.push(b"\"a\"}\r\n\r\n{\"aux\":1}\n{\"id\""),
            vec![b"{\"stream\":\"a\"}".to_vec(), b"{\"aux\":1}".to_vec()]
        );
        assert_eq!(lines.push(b":2}").len(), 0);
        assert_eq!(lines.finish(), Some(b"{\"id\":2}".to_vec()));
        assert_eq!(lines.finish(), None);
        let info = parse_message(br#"{"errorDetail":{"message":"boom"},"error":"boom"}"#).unwrap();
        assert_eq!(info.error_detail.unwrap().message.as_deref(), Some("boom"));
        assert!(parse_message(b"not json").unwrap_err().contains("not json"));
    }
}
