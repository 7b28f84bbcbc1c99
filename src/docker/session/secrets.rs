//! `moby.buildkit.secrets.v1.Secrets`: the values of `RUN --mount=type=secret,id=...`.
//!
//! Secrets are fetched by `GetSecret` when a step that mounts them runs. An id that ecrship was
//! not given is answered `NotFound`, which BuildKit reports as `secret <id>: not found` for a
//! `required` mount, and skips (no file in `/run/secrets`) for an optional one (the
//! Dockerfile's default); either way [`SecretStore::missing`] names it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use bollard::moby::buildkit::secrets::v1::secrets_server::Secrets;
use bollard::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use tonic::{Request, Response, Status};

use crate::secret::Secret;

/// Prefixes of the secret ids that BuildKit's HTTP source asks the session for on its own, before
/// it fetches a URL: `HTTP_AUTH_HEADER_<host>` and `HTTP_AUTH_TOKEN_<host>` (moby/buildkit,
/// `source/http`, `HTTPAuthHeaderSecretPrefix`/`HTTPAuthTokenSecretPrefix`). BuildKit 0.2x (Docker
/// 28) asks them for an uploaded build context itself (host `build-context-<id>`), and goes on
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // BuildKit's HTTP source asks these for an uploaded context: not found, not missing.
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
