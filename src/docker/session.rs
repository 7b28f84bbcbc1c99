//! The BuildKit session ecrship serves to the daemon during a BuildKit build: the secrets of
//! `RUN --mount=type=secret,id=...`, the health checks the daemon makes, and an auth provider
//! that has no registry credentials.
//!
//! # Protocol (moby's `/session` endpoint, buildkit's `session` package)
//!
//! The client opens a session with `POST /session`, `Connection: Upgrade`, `Upgrade: h2c` and
//! the headers of [`headers`]; the daemon answers `101 Switching Protocols` and from then on
//! the connection carries HTTP/2 in which the *daemon* is the gRPC client and ecrship the
//! server. The daemon refuses an id it already has (`session <id> already exists`), keeps only
//! the methods announced in `X-Docker-Expose-Session-Grpc-Method` as supported, and checks
//! `grpc.health.v1.Health/Check` about every second: a failing check closes the session. A
//! build names its session with `POST /build?session=<id>`, and BuildKit waits for that id to
//! register, so the session is opened (and answered 101) before the build request is sent.
//!
//! Secrets are fetched by `moby.buildkit.secrets.v1.Secrets/GetSecret` when a step that mounts
//! them runs. An id that ecrship was not given is answered `NotFound`, which BuildKit reports
//! as `secret <id>: not found` for a `required` mount, and skips (no file in `/run/secrets`)
//! for an optional one (the Dockerfile's default); either way [`SecretStore::missing`] names it.
//!
//! This module only serves; docker.rs opens the connection and runs the build next to it.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bollard::health::health_check_response::ServingStatus;
use bollard::health::health_server::{Health, HealthServer};
use bollard::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bollard::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use tonic::codegen::Service as _;
use tonic::{Request, Response, Status};

use crate::secret::Secret;

/// The session's id; required, unique among the daemon's open sessions.
pub const HEADER_ID: &str = "X-Docker-Expose-Session-Uuid";
/// A name for the session, shown in the daemon's debug logs.
pub const HEADER_NAME: &str = "X-Docker-Expose-Session-Name";
/// Key under which BuildKit shares local sources between sessions (unused: no local sources).
pub const HEADER_SHARED_KEY: &str = "X-Docker-Expose-Session-Sharedkey";
/// One per gRPC method the session serves.
pub const HEADER_METHOD: &str = "X-Docker-Expose-Session-Grpc-Method";

const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
const GET_SECRET: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
const AUTH_CREDENTIALS: &str = "/moby.filesync.v1.Auth/Credentials";

/// The methods announced to the daemon: the ones answered with something else than
/// `Unimplemented`.
pub const METHODS: [&str; 3] = [HEALTH_CHECK, GET_SECRET, AUTH_CREDENTIALS];

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
pub fn headers(id: &str, name: &str) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (HEADER_ID, id.to_string()),
        (HEADER_NAME, name.to_string()),
        (HEADER_SHARED_KEY, id.to_string()),
    ];
    headers.extend(METHODS.iter().map(|m| (HEADER_METHOD, (*m).to_string())));
    headers
}

/// Prefixes of the secret ids that BuildKit's HTTP source asks the session for on its own, before
/// it fetches a URL: `HTTP_AUTH_HEADER_<host>` and `HTTP_AUTH_TOKEN_<host>` (moby/buildkit,
/// `source/http`, `HTTPAuthHeaderSecretPrefix`/`HTTPAuthTokenSecretPrefix`). BuildKit 0.2x (Docker
/// 28) asks them for the uploaded build context itself (host `build-context-<id>`), and goes on
/// without a header when they are not found. No Dockerfile mounts them, so they are answered
/// `NotFound` like any unknown id but never reported as missing.
const HTTP_AUTH_PREFIXES: [&str; 2] = ["HTTP_AUTH_HEADER_", "HTTP_AUTH_TOKEN_"];

/// The secrets of one build, by id, and the ids the build asked for that it did not have.
#[derive(Debug, Default)]
pub struct SecretStore {
    values: HashMap<String, Secret>,
    missing: Mutex<BTreeSet<String>>,
}

impl SecretStore {
    /// The store of `secrets` (id → value); a later duplicate id wins.
    pub fn new(secrets: &[(String, Secret)]) -> SecretStore {
        SecretStore {
            values: secrets.iter().cloned().collect(),
            missing: Mutex::default(),
        }
    }

    /// The value of secret `id`, or `NotFound` (and `id` is remembered as missing, unless it is
    /// one of BuildKit's own HTTP auth lookups).
    pub fn lookup(&self, id: &str) -> Result<&Secret, Status> {
        match self.values.get(id) {
            Some(secret) => Ok(secret),
            None => {
                if !HTTP_AUTH_PREFIXES.iter().any(|p| id.starts_with(p)) {
                    self.missing
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(id.to_string());
                }
                Err(Status::not_found(format!("secret {id} not found")))
            }
        }
    }

    /// The ids asked for and not found, sorted.
    pub fn missing(&self) -> Vec<String> {
        let missing = self.missing.lock().unwrap_or_else(PoisonError::into_inner);
        missing.iter().cloned().collect()
    }
}

#[tonic::async_trait]
impl Secrets for SecretStore {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = &request.get_ref().id;
        let secret = self.lookup(id)?;
        tracing::debug!(%id, "the daemon fetched secret `{id}`");
        Ok(Response::new(GetSecretResponse {
            data: secret.expose().as_bytes().to_vec(),
        }))
    }
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

/// An auth provider without credentials: registries are reached anonymously, as bollard's
/// `build_image` does when given none (base images come from the daemon's store or a public
/// registry; pushes go through `POST /images/.../push` with their own credentials).
struct NoCredentials;

#[tonic::async_trait]
impl Auth for NoCredentials {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        tracing::debug!(host = %request.get_ref().host, "no registry credentials for the build");
        Ok(Response::new(CredentialsResponse::default()))
    }

    async fn fetch_token(
        &self,
        _request: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("no token provider"))
    }

    async fn get_token_authority(
        &self,
        _request: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }

    async fn verify_token_authority(
        &self,
        _request: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }
}

/// Serves the session's gRPC services over `io`, the connection `POST /session` upgraded,
/// until the daemon closes it or the returned future is dropped (which closes it).
pub async fn serve<I>(io: I, secrets: Arc<SecretStore>) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let secrets = SecretsServer::from_arc(secrets);
    let health = HealthServer::new(Healthy);
    let auth = AuthServer::new(NoCredentials);
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let (mut secrets, mut health, mut auth) = (secrets.clone(), health.clone(), auth.clone());
        async move {
            let path = request.uri().path();
            let service = path.strip_prefix('/').and_then(|p| p.split_once('/'));
            let response = match service.map(|(service, _)| service) {
                Some("moby.buildkit.secrets.v1.Secrets") => secrets.call(request).await?,
                Some("grpc.health.v1.Health") => health.call(request).await?,
                Some("moby.filesync.v1.Auth") => auth.call(request).await?,
                _ => {
                    tracing::debug!(%path, "the daemon called a method this session does not serve");
                    Status::unimplemented(format!("{path} is not served")).into_http()
                }
            };
            Ok::<_, Infallible>(response)
        }
    });
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_announce_the_id_and_every_served_method() {
        let got = headers("ecrship-0123", "app:v1");
        let want = [
            ("X-Docker-Expose-Session-Uuid", "ecrship-0123"),
            ("X-Docker-Expose-Session-Name", "app:v1"),
            ("X-Docker-Expose-Session-Sharedkey", "ecrship-0123"),
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
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(got, want);
        for (name, value) in headers(&new_id(), "app:v1") {
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

    #[test]
    fn lookup_finds_known_ids_and_remembers_unknown_ones() {
        let store = SecretStore::new(&[
            ("skb".into(), Secret::new("first-value".into())),
            ("npm".into(), Secret::new("npm-token".into())),
            ("skb".into(), Secret::new("later-value".into())),
        ]);
        assert_eq!(store.lookup("skb").unwrap().expose(), "later-value");
        assert_eq!(store.lookup("npm").unwrap().expose(), "npm-token");
        let err = store.lookup("SKB").unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert_eq!(err.message(), "secret SKB not found");
        store.lookup("aws").unwrap_err();
        store.lookup("SKB").unwrap_err();
        // BuildKit's HTTP source asks these for the uploaded context: not found, not missing.
        let err = store
            .lookup("HTTP_AUTH_HEADER_build-context-rsy82s4hasl6z30trq64vrd0h")
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        store
            .lookup("HTTP_AUTH_TOKEN_build-context-rsy82s4hasl6z30trq64vrd0h")
            .unwrap_err();
        assert_eq!(store.missing(), ["SKB", "aws"]);
        assert!(!format!("{store:?}").contains("later-value"));
    }

    #[tokio::test]
    async fn get_secret_answers_the_value_or_not_found() {
        let store = SecretStore::new(&[("skb".into(), Secret::new("s3cret-skb".into()))]);
        let request = |id: &str| {
            Request::new(GetSecretRequest {
                id: id.into(),
                ..Default::default()
            })
        };
        let found = store.get_secret(request("skb")).await.unwrap();
        assert_eq!(found.get_ref().data, b"s3cret-skb");
        let missing = store.get_secret(request("nope")).await.unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        assert_eq!(store.missing(), ["nope"]);
    }
}
