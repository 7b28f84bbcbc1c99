//! The BuildKit session ecrship serves to the daemon beside a BuildKit build: the build's
//! files, its secrets, registry credentials for the push registry, and the health checks the
//! daemon makes.
//!
//! # Protocol (moby's `/session` endpoint, buildkit's `session` package)
//!
//! The client opens a session with `POST /session`, `Connection: Upgrade`, `Upgrade: h2c` and
//! the headers of [`headers`]; the daemon answers `101 Switching Protocols` and from then on
//! the connection carries HTTP/2 in which the *daemon* is the gRPC client and ecrship the
//! server. The daemon refuses an id it already has (`session <id> already exists`), uses the
//! file sync only when `X-Docker-Expose-Session-Grpc-Method` announces
//! `/moby.filesync.v1.FileSync/DiffCopy`, and checks `grpc.health.v1.Health/Check` every
//! second (20.10) or five (later engines): a failing check closes the session. A build names
//! its session with `POST /build?session=<id>`, and BuildKit waits for that id to register, so
//! the session is opened (and answered 101) before the build request is sent.
//!
//! The daemon's requests carry their arguments as HTTP/2 headers: a file sync's `exclude-patterns`
//! are the ignore file's lines, one header each. The session accepts a header list as large as
//! buildx's does ([`crate::context::sync::MAX_HEADER_LIST`]), not hyper's default of 16 KiB,
//! which a `.dockerignore` of about 260 lines already exceeds.
//!
//! `filesync` sends the `context` and `dockerfile` folders, `secrets` answers
//! `RUN --mount=type=secret`, `auth` hands the push registry's credentials to that registry
//! only. This module only serves; `docker::buildkit` opens the connection and runs the build
//! next to it.

pub mod auth;
pub mod filesync;
pub mod secrets;

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::health::health_check_response::ServingStatus;
use bollard::health::health_server::{Health, HealthServer};
use bollard::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard::moby::buildkit::secrets::v1::secrets_server::SecretsServer;
use bollard::moby::filesync::v1::auth_server::AuthServer;
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use tonic::codegen::Service as _;
use tonic::{Request, Response, Status};

pub use auth::RegistryLogin;
pub use filesync::{Files, Local};
pub use secrets::SecretStore;

/// The session's id; required, unique among the daemon's open sessions.
pub const HEADER_ID: &str = "X-Docker-Expose-Session-Uuid";
/// A name for the session, shown in the daemon's debug logs.
pub const HEADER_NAME: &str = "X-Docker-Expose-Session-Name";
/// Key under which BuildKit keeps the synced folders for the next build to diff against.
pub const HEADER_SHARED_KEY: &str = "X-Docker-Expose-Session-Sharedkey";
/// One per gRPC method the session serves.
pub const HEADER_METHOD: &str = "X-Docker-Expose-Session-Grpc-Method";

const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
const GET_SECRET: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
const AUTH_CREDENTIALS: &str = "/moby.filesync.v1.Auth/Credentials";
const DIFF_COPY: &str = "/moby.filesync.v1.FileSync/DiffCopy";

/// The methods announced to the daemon: the ones answered with something else than
/// `Unimplemented`.
pub const METHODS: [&str; 4] = [HEALTH_CHECK, GET_SECRET, AUTH_CREDENTIALS, DIFF_COPY];

/// Everything one session serves.
#[derive(Debug, Clone)]
pub struct Services {
    pub files: Arc<Files>,
    pub secrets: Arc<SecretStore>,
    pub login: RegistryLogin,
}

/// A fresh session id (`ecrship-` and 32 hex digits): random enough that concurrent builds, and
/// other clients of the same daemon, never pick the same one.
pub fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let word = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    format!("ecrship-{:016x}{:016x}", word(), word())
}

/// The headers of `POST /session`, besides `Connection` and `Upgrade`: the id, the name, the
/// shared key and one line per served method.
///
/// BuildKit keeps each synced folder under the shared key and diffs the next sync against it,
/// asking only for files whose size, time, mode or owner changed. The docker CLI makes the key
/// from a random id of the machine and the context folder (docker/cli `getBuildSharedKey`);
/// [`shared_key`] makes it from the machine and the folder the same way, so that two projects
/// never diff against each other's files.
pub fn headers(id: &str, name: &str, shared_key: &str) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (HEADER_ID, id.to_string()),
        (HEADER_NAME, name.to_string()),
        (HEADER_SHARED_KEY, shared_key.to_string()),
    ];
    headers.extend(METHODS.iter().map(|m| (HEADER_METHOD, (*m).to_string())));
    headers
}

/// The shared key of a context folder on this machine: hex SHA-256 of the machine's id (or
/// host name) and the folder's absolute path.
pub fn shared_key(folder: &std::path::Path) -> String {
    use sha2::Digest as _;
    let machine = std::fs::read_to_string("/etc/machine-id")
        .or_else(|_| std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .unwrap_or_default();
    let mut sha = sha2::Sha256::new();
    sha.update(machine.trim().as_bytes());
    sha.update(b":");
    sha.update(folder.as_os_str().as_encoded_bytes());
    hex::encode(sha.finalize())
}

/// Always serving: the session is healthy as long as its connection is open.
struct Healthy;

#[tonic::async_trait]
impl Health for Healthy {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        }))
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let status = HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        };
        Ok(Response::new(HealthListResponse {
            statuses: HashMap::from([(String::new(), status)]),
        }))
    }

    type WatchStream = futures_util::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("health watch is not served"))
    }
}

/// Serves the session's gRPC services over `io`, the connection `POST /session` upgraded,
/// until the daemon closes it or the returned future is dropped (which closes it).
pub async fn serve<I>(io: I, services: Services) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let secrets = SecretsServer::from_arc(services.secrets);
    let health = HealthServer::new(Healthy);
    let auth = AuthServer::new(services.login);
    let files = filesync::DiffCopy(services.files);
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let (mut secrets, mut health, mut auth, files) =
            (secrets.clone(), health.clone(), auth.clone(), files.clone());
        async move {
            let path = request.uri().path();
            let service = path.strip_prefix('/').and_then(|p| p.split_once('/'));
            let response = match service.map(|(service, _)| service) {
                Some("moby.buildkit.secrets.v1.Secrets") => secrets.call(request).await?,
                Some("grpc.health.v1.Health") => health.call(request).await?,
                Some("moby.filesync.v1.Auth") => auth.call(request).await?,
                Some("moby.filesync.v1.FileSync") if path == DIFF_COPY => {
                    let codec =
                        tonic_prost::ProstCodec::<filesync::Packet, filesync::Packet>::default();
                    let mut grpc = tonic::server::Grpc::new(codec)
                        .apply_max_message_size_config(Some(16 << 20), Some(16 << 20));
                    grpc.streaming(files, request).await
                }
                _ => {
                    tracing::debug!(%path, "the daemon called a method this session does not serve");
                    Status::unimplemented(format!("{path} is not served")).into_http()
                }
            };
            Ok::<_, Infallible>(response)
        }
    });
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .max_header_list_size(crate::context::sync::MAX_HEADER_LIST)
        .serve_connection(io, service)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn headers_announce_the_id_and_every_served_method() {
        let got = headers("ecrship-0123", "app:v1", "k3y");
        let want = [
            ("X-Docker-Expose-Session-Uuid", "ecrship-0123"),
            ("X-Docker-Expose-Session-Name", "app:v1"),
            ("X-Docker-Expose-Session-Sharedkey", "k3y"),
            (
                "X-Docker-Expose-Session-Grpc-Method",
                "/grpc.health.v1.Health/Check",
            ),
            (
                "X-Docker-Expose-Session-Grpc-Method",
                "/moby.buildkit.secrets.v1.Secrets/GetSecret",
            ),
            (
                "X-Docker-Expose-Session-Grpc-Method",
                "/moby.filesync.v1.Auth/Credentials",
            ),
            (
                "X-Docker-Expose-Session-Grpc-Method",
                "/moby.filesync.v1.FileSync/DiffCopy",
            ),
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(got, want);
        let key = shared_key(std::path::Path::new("/src/app"));
        assert_eq!(key.len(), 64);
        assert_eq!(key, shared_key(std::path::Path::new("/src/app")));
        assert_ne!(key, shared_key(std::path::Path::new("/src/web")));
        for (name, value) in headers(&new_id(), "app:v1", &key) {
            http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            http::HeaderValue::from_str(&value).unwrap();
        }
    }

    #[test]
    fn ids_are_fresh_and_well_formed() {
        let ids: BTreeSet<String> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let hex = id.strip_prefix("ecrship-").unwrap();
            assert_eq!(hex.len(), 32, "{id}");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    }
}
