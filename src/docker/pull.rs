//! `POST /images/create?fromImage=`: pulling an image from the registry into the daemon, for
//! the classic builder's `cachefrom` (it reads only local images) and for an image that
//! another one is built `FROM` when it was reused rather than built here.

use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

use super::connect::describe;
use super::{Credentials, Daemon, DockerError};
use crate::reference::{Platform, Reference};

impl Daemon {
    /// Pulls `reference` with `credentials` (sent only to their own registry, in
    /// `X-Registry-Auth`); `Ok(false)` when the registry has no such image. `platform` selects
    /// one image of a manifest list.
    pub async fn pull(
        &self,
        reference: &Reference,
        platform: Option<&Platform>,
        credentials: Option<&Credentials>,
    ) -> Result<bool, DockerError> {
        // By digest, the API takes the digest as the tag.
        let (repo, tag) = (reference.name(), reference.identifier());
        let auth = credentials
            .filter(|c| c.is_for(reference.registry()))
            .map(|c| DockerCredentials {
                username: Some(c.username.clone()),
                password: Some(c.password.clone()),
                serveraddress: Some(c.server.clone()),
                ..Default::default()
            });
        let options = CreateImageOptions {
            from_image: Some(repo),
            tag: Some(tag.to_owned()),
            platform: platform.map(Platform::to_string).unwrap_or_default(),
            ..Default::default()
        };
        let mut stream = self.streaming.create_image(Some(options), None, auth);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        let message = detail.message.unwrap_or_default();
                        return not_found_or(reference, message);
                    }
                }
                Err(BollardError::DockerStreamError { error }) => {
                    return not_found_or(reference, error);
                }
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(false),
                Err(e) => return not_found_or(reference, describe(&e)),
            }
        }
        Ok(true)
    }
}

/// A pull that failed because the image is not there is `Ok(false)`; anything else an error.
fn not_found_or(reference: &Reference, message: String) -> Result<bool, DockerError> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("not found")
        || lower.contains("manifest unknown")
        || lower.contains("name unknown")
    {
        return Ok(false);
    }
    Err(DockerError::Api {
        action: format!("pull {reference}"),
        message,
    })
}
