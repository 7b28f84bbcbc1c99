//! `moby.filesync.v1.Auth`: registry credentials for the daemon's own registry requests during
//! a BuildKit build (pulling a base image, importing inline cache).
//!
//! BuildKit asks after a registry answered `401` (buildkit `session/auth`, `util/resolver`):
//! `Credentials(host)` for a Basic challenge, and for a Bearer challenge first
//! `GetTokenAuthority`, which answered `Unimplemented` makes the daemon fetch the token itself
//! with the same credentials. `host` is the registry's `host[:port]` as dialled.
//!
//! Only the registry ecrship pushes to gets an answer with credentials, matched on the exact
//! host and port ([`Credentials::is_for`]); any other host, such as one a Dockerfile's `FROM`
//! names, is answered with none and reached anonymously. The ECR password therefore never
//! leaves for a registry the Dockerfile chose.

use bollard::moby::filesync::v1::auth_server::Auth;
use bollard::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use tonic::{Request, Response, Status};

use crate::registry::Credentials;

/// The credentials of one registry, or none.
#[derive(Debug, Clone, Default)]
pub struct RegistryLogin(pub Option<Credentials>);

impl RegistryLogin {
    /// The answer for `host`: the credentials when they are for it, else empty (anonymous).
    pub fn answer(&self, host: &str) -> CredentialsResponse {
        match &self.0 {
            Some(creds) if creds.is_for(host) => CredentialsResponse {
                username: creds.username.clone(),
                secret: creds.password.clone(),
            },
            _ => CredentialsResponse::default(),
        }
    }
}

#[tonic::async_trait]
impl Auth for RegistryLogin {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = &request.get_ref().host;
        let answer = self.answer(host);
        if answer.username.is_empty() {
            tracing::debug!(%host, "the daemon asked for credentials; none for this registry");
        } else {
            tracing::debug!(%host, "the daemon asked for credentials; answered with the push registry's");
        }
        Ok(Response::new(answer))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_to_their_own_host_only() {
        let login = RegistryLogin(Some(Credentials {
            username: "AWS".into(),
            password: "ecr-password".into(),
            server: "127.0.0.1:5000".into(),
        }));
        let answer = login.answer("127.0.0.1:5000");
        assert_eq!(
            (answer.username.as_str(), answer.secret.as_str()),
            ("AWS", "ecr-password")
        );
        for other in [
            "127.0.0.1:5001",
            "registry-1.docker.io",
            "localhost:5000",
            "",
        ] {
            let answer = login.answer(other);
            assert!(
                answer.username.is_empty() && answer.secret.is_empty(),
                "{other}"
            );
        }
        assert!(
            RegistryLogin::default()
                .answer("127.0.0.1:5000")
                .secret
                .is_empty()
        );
    }
}
