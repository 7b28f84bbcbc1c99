//! Getting images into the registry: the daemon pushes what was built here (layers and all);
//! the registry client puts a manifest already there under more tags (the extra tags, a reused
//! image's new tag) in one request each, without a pull or a push.
//!
//! ECR repositories with immutable tags refuse to move a tag that exists. A tag that already
//! holds this very image (a re-run, a retry) is a success; one that holds another image is a
//! failure that says so; a cache tag that cannot move is left where it is, with a warning: the
//! next run then starts from an older cache, which is slower but never wrong.

use std::time::Instant;

use crate::docker::{Credentials, Daemon, DockerError};
use crate::error::Error;
use crate::plan::PlannedImage;
use crate::reference::Reference;
use crate::registry::{Manifest, Registry};
use crate::view::View;

use super::image_error;

/// The registry a run pushes to, and the credentials it was given.
#[derive(Debug)]
pub struct Destination {
    pub registry: Registry,
    pub credentials: Credentials,
    /// ECR, to tell an immutable tag that already holds this very image (a re-run: success)
    /// from one that holds another (a failure). `None` when the registry is not ECR's.
    pub ecr: Option<aws_config::SdkConfig>,
}

/// Tags the local image `id` as `uri` and pushes it; returns the digest the registry holds and
/// how long the push took.
pub async fn push_local(
    daemon: &Daemon,
    target: &Destination,
    image: &PlannedImage,
    label: &str,
    id: &str,
    uri: &Reference,
    view: &dyn View,
) -> Result<(String, f64), Error> {
    let started = Instant::now();
    let tag = uri.identifier();
    let digest = match tag_and_push(daemon, target, image, label, id, uri, view).await? {
        Ok(digest) => digest,
        Err(e) if is_immutable_tag(&e.to_string()) => {
            already_there(target, image, label, tag, id, view)
                .await
                .map_err(|e| image_error(image, e))?
        }
        Err(e) => return Err(image_error(image, e.into())),
    };
    let seconds = started.elapsed().as_secs_f64();
    view.line(label, &format!("pushed {uri} ({digest}) in {seconds:.1}s"));
    Ok((digest, seconds))
}

/// Tags the local image `id` as `uri` and has the daemon push it: the daemon's own failure is
/// the inner error, for the caller to judge.
async fn tag_and_push(
    daemon: &Daemon,
    target: &Destination,
    image: &PlannedImage,
    label: &str,
    id: &str,
    uri: &Reference,
    view: &dyn View,
) -> Result<Result<String, DockerError>, Error> {
    daemon
        .tag(id, uri)
        .await
        .map_err(|e| image_error(image, e.into()))?;
    view.line(label, &format!("pushing {uri}"));
    let mut on_line = |line: &str| view.line(label, line);
    let mut on_bytes = |done, total| view.push_progress(label, done, total);
    Ok(daemon
        .push(uri, &target.credentials, &mut on_line, &mut on_bytes)
        .await)
}

/// Puts `manifest` under `tag` in the image's repository.
pub async fn put_tag(
    registry: &Registry,
    image: &PlannedImage,
    tag: &str,
    manifest: &Manifest,
) -> Result<(), Error> {
    match registry
        .put_manifest(&image.repository, tag, manifest)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_immutable_tag(&e.message) => {
            let held = registry
                .manifest(&image.repository, tag)
                .await
                .map_err(|e| image_error(image, e.into()))?;
            match held {
                Some(held) if held.digest == manifest.digest => Ok(()),
                held => Err(image_error(
                    image,
                    immutable_error(image, tag, held.as_ref().map(|m| m.digest.as_str())),
                )),
            }
        }
        Err(e) => Err(image_error(image, e.into())),
    }
}

/// The image `build` chose to reuse, found under `from` with `digest`: its manifest and config.
pub async fn fetch_found(
    target: &Destination,
    image: &PlannedImage,
    from: &str,
    digest: &str,
) -> Result<super::reuse::Found, Error> {
    let manifest = fetch(target, image, digest).await?;
    let config = match manifest.body() {
        Ok(crate::registry::Body::Image { config, .. }) => config,
        Ok(crate::registry::Body::Index { .. }) => {
            return Err(image_error(
                image,
                Error::Failed(format!(
                    "{}@{digest} is a manifest list, not the image `ecrship build` chose",
                    image.repository
                )),
            ));
        }
        Err(e) => return Err(image_error(image, Error::Failed(e))),
    };
    let config = target
        .registry
        .config_bytes(&image.repository, &config)
        .await
        .map_err(|e| image_error(image, e.into()))?;
    Ok(super::reuse::Found {
        tag: from.to_owned(),
        manifest,
        config,
    })
}

/// Puts a reused image under `tag` with this run's `labels` ([`super::reuse::relabel`]), unless
/// it was found under `tag` itself (a re-run of the same commit: nothing moves). Returns the
/// manifest `tag` holds.
pub async fn put_reused(
    target: &Destination,
    image: &PlannedImage,
    tag: &str,
    found: &super::reuse::Found,
    labels: &[(String, String)],
) -> Result<Manifest, Error> {
    if found.tag == tag {
        return Ok(found.manifest.clone());
    }
    let manifest = super::reuse::relabel(&target.registry, &image.repository, found, labels)
        .await
        .map_err(|e| image_error(image, e.into()))?;
    put_tag(&target.registry, image, tag, &manifest).await?;
    Ok(manifest)
}

/// The manifest the registry holds under `digest`, for tagging it again.
pub async fn fetch(
    target: &Destination,
    image: &PlannedImage,
    digest: &str,
) -> Result<Manifest, Error> {
    match target.registry.manifest(&image.repository, digest).await {
        Ok(Some(manifest)) => Ok(manifest),
        Ok(None) => Err(image_error(
            image,
            Error::Failed(format!(
                "the registry no longer holds {}@{digest}",
                image.repository
            )),
        )),
        Err(e) => Err(image_error(image, e.into())),
    }
}

/// Pushes a cache stage's image; a tag an immutable repository will not move is a warning.
pub async fn push_cache(
    daemon: &Daemon,
    target: &Destination,
    image: &PlannedImage,
    label: &str,
    id: &str,
    uri: &Reference,
    view: &dyn View,
) -> Result<(), Error> {
    match tag_and_push(daemon, target, image, label, id, uri, view).await? {
        Ok(_) => Ok(()),
        Err(e) if is_immutable_tag(&e.to_string()) => {
            tracing::warn!(
                "[{label}] {uri} was not moved: repository `{}` has immutable tags, so the next run starts from the older cache; keep cache stages in a repository with mutable tags to refresh it",
                image.repository
            );
            Ok(())
        }
        Err(e) => Err(image_error(image, e.into())),
    }
}

/// Whether a push or PUT failed because the tag exists in an immutable ECR repository.
fn is_immutable_tag(message: &str) -> bool {
    message.contains("already exists") && message.contains("immutable")
}

fn immutable_error(image: &PlannedImage, tag: &str, found: Option<&str>) -> Error {
    Error::Failed(format!(
        "repository `{}` is immutable and its tag `{tag}` already holds another image{}; push under a new tag (or drop `{tag}` from [tag] extra)",
        image.repository,
        found.map(|d| format!(" ({d})")).unwrap_or_default()
    ))
}

/// An immutable tag refused the push: success when it already holds this very image (a re-run
/// or a retry), else a failure that names the repository and the tag.
async fn already_there(
    target: &Destination,
    image: &PlannedImage,
    label: &str,
    tag: &str,
    local_id: &str,
    view: &dyn View,
) -> Result<String, Error> {
    let Some(ecr) = &target.ecr else {
        return Err(immutable_error(image, tag, None));
    };
    let account = crate::plan::ecr_registry(target.registry.host()).map(|(account, _)| account);
    match crate::aws::ecr::tagged_image(ecr, account, &image.repository, tag).await? {
        Some(found) if found.config_digest.as_deref() == Some(local_id) => {
            view.line(
                label,
                &format!(
                    "{}:{tag} already holds this image ({})",
                    image.repository, found.digest
                ),
            );
            Ok(found.digest)
        }
        Some(found) => Err(immutable_error(image, tag, Some(&found.digest))),
        None => Err(immutable_error(image, tag, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immutable_tag_errors_are_recognised() {
        let ecr = "push of r/app:v1 to r failed: tag invalid: The image tag 'v1' already exists in the 'app' repository and cannot be overwritten because the repository is immutable.";
        assert!(is_immutable_tag(ecr));
        assert!(!is_immutable_tag(
            "push of r/app:v1 to r failed: unauthorized: authentication required"
        ));
    }
}
