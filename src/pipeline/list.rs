//! Joining the platforms of a multi-architecture image into one manifest list, from the
//! registry alone: the step `docker manifest create` + `push` makes in AWS's multi-architecture
//! CodeBuild pattern.
//!
//! For each platform of the image, `<tag>-<arch>` must be in the registry, as one image (not a
//! list) whose config says that platform's os and architecture. The list names them in the
//! config's order of platforms, with their digests, sizes and platforms (`image-index.md`); it
//! is a Docker manifest list when every image is a Docker manifest, else an OCI index. It goes
//! under the tag first; the extra tags move to it only once the artifacts are staged (see
//! `finish` in the pipeline). The same images always give the same bytes, so a re-run puts the
//! same digest again.

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use crate::error::Error;
use crate::plan::PlannedImage;
use crate::reference::Platform as WantedPlatform;
use crate::registry::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX};
use crate::registry::{Body, Descriptor, Manifest, Platform, Registry};

use super::ListSummary;
use super::image_error;
use super::reuse::same_platform;

/// One platform's image, found and checked.
struct Entry {
    descriptor: Descriptor,
}

/// Finds every platform's image of `image`, puts the list under its tag (not the extra tags),
/// and says what it wrote. A platform that is missing or wrong is an error and nothing is
/// written.
pub async fn join(
    registry: &Registry,
    image: &PlannedImage,
    jobs: usize,
) -> Result<(ListSummary, Manifest), Error> {
    let manifest = assemble(registry, image, jobs).await?;
    super::push::put_tag(registry, image, image.uri.identifier(), &manifest).await?;
    let summary = ListSummary::new(image, &manifest);
    Ok((summary, manifest))
}

/// The manifest list of `image`'s platforms, from the registry; written nowhere.
pub async fn assemble(
    registry: &Registry,
    image: &PlannedImage,
    jobs: usize,
) -> Result<Manifest, Error> {
    let tag = image.uri.identifier();
    let entries: Vec<Entry> = stream::iter(image.platforms.iter())
        .map(|platform| {
            let tag = format!("{tag}-{}", platform.suffix());
            async move { find(registry, image, &tag, platform).await }
        })
        .buffered(jobs.max(1))
        .try_collect()
        .await?;
    let oci = entries
        .iter()
        .any(|e| e.descriptor.media_type != DOCKER_MANIFEST);
    let media_type = if oci { OCI_INDEX } else { DOCKER_LIST };
    let list = List {
        schema_version: 2,
        media_type,
        manifests: entries.into_iter().map(|e| e.descriptor).collect(),
    };
    let bytes = serde_json::to_vec_pretty(&list)
        .map_err(|e| Error::Failed(format!("cannot render the manifest list: {e}")))?;
    Manifest::new(bytes.into(), Some(media_type)).map_err(|e| image_error(image, Error::Failed(e)))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct List {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// `repository:tag`, checked to be one image of `platform`.
async fn find(
    registry: &Registry,
    image: &PlannedImage,
    tag: &str,
    platform: &WantedPlatform,
) -> Result<Entry, Error> {
    let missing = |why: &str| {
        image_error(
            image,
            Error::Failed(format!(
                "{}:{tag} (platform {platform}) {why}; push it first (`ecrship release --platform {platform}`)",
                image.repository
            )),
        )
    };
    let Some(manifest) = registry
        .manifest(&image.repository, tag)
        .await
        .map_err(|e| image_error(image, e.into()))?
    else {
        return Err(missing("is not in the registry"));
    };
    let config = match manifest.body() {
        Ok(Body::Image { config, .. }) => config,
        Ok(Body::Index { .. }) => return Err(missing("is a manifest list, not one image")),
        Err(e) => return Err(image_error(image, Error::Failed(e))),
    };
    let config = registry
        .config(&image.repository, &config)
        .await
        .map_err(|e| image_error(image, e.into()))?;
    let found = config.platform();
    if !same_platform(&found, platform) {
        return Err(image_error(
            image,
            Error::Failed(format!(
                "{}:{tag} is a {found} image, not {platform}",
                image.repository
            )),
        ));
    }
    Ok(Entry {
        descriptor: manifest.descriptor(Some(Platform {
            architecture: found.architecture,
            os: found.os,
            variant: found.variant,
        })),
    })
}

/// `ecrship manifest`: every multi-platform image's list is assembled and every
/// single-platform image found before anything is written; then the lists go under their tags,
/// the artifacts are staged, the lists' extra tags move, and the artifacts go into place. A
/// missing image or platform writes nothing.
pub async fn manifest(
    root: &std::path::Path,
    plan: &crate::plan::Plan,
    options: &super::Options,
    target: &super::Destination,
) -> Result<super::Summary, Error> {
    let registry = &target.registry;
    let found: Vec<(Manifest, bool)> = stream::iter(plan.images.iter())
        .map(|image| async move {
            if image.platforms.is_empty() {
                let tag = image.uri.identifier();
                match registry
                    .manifest(&image.repository, tag)
                    .await
                    .map_err(|e| image_error(image, e.into()))?
                {
                    Some(manifest) => Ok((manifest, false)),
                    None => Err(image_error(
                        image,
                        Error::Failed(format!(
                            "{}:{tag} is not in the registry; push it first (`ecrship release {}`)",
                            image.repository, image.name
                        )),
                    )),
                }
            } else {
                Ok((assemble(registry, image, options.jobs).await?, true))
            }
        })
        .buffered(options.jobs.max(1))
        .try_collect()
        .await?;
    let mut summary = super::Summary {
        tag: plan.tag.value.clone(),
        ..super::Summary::default()
    };
    // Every list under its commit tag at once: the puts are independent, and every list was
    // found whole above, before anything was written.
    let lists = || {
        plan.images
            .iter()
            .zip(&found)
            .filter(|(_, (_, is_list))| *is_list)
    };
    stream::iter(lists().map(|(image, (manifest, _))| {
        super::push::put_tag(registry, image, image.uri.identifier(), manifest)
    }))
    .buffer_unordered(options.jobs.max(1))
    .try_collect::<()>()
    .await?;
    let mut uris = Vec::new();
    for (image, (manifest, is_list)) in plan.images.iter().zip(&found) {
        if *is_list {
            tracing::info!(
                "[{}] wrote the manifest list {} ({})",
                image.name,
                image.uri,
                manifest.digest
            );
            summary.lists.push(ListSummary::new(image, manifest));
        }
        let uri = if options.pin_digest {
            super::pinned_uri(image, &manifest.digest)?
        } else {
            image.uri.clone()
        };
        let mut row = super::ImageSummary::new(
            &image.name,
            None,
            false,
            format!("{}:{}", image.repository, plan.tag.value),
            &uri,
        );
        row.digest = Some(manifest.digest.clone());
        summary.images.push(row);
        if image.deploy {
            uris.push(uri);
        }
    }
    let staged = super::stage_artifacts(root, plan, &uris)?;
    stream::iter(lists().flat_map(|(image, (manifest, _))| {
        image
            .extra_tags
            .iter()
            .map(move |tag| super::push::put_tag(registry, image, tag, manifest))
    }))
    .buffer_unordered(options.jobs.max(1))
    .try_collect::<()>()
    .await?;
    summary.artifacts = staged.commit()?;
    Ok(summary)
}
