//! Once every image is in its commit tag: the manifest lists, the staged artifacts, the moving
//! tags, and the artifacts in place, in that order.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::artifacts;
use crate::error::Error;
use crate::plan::{Plan, PlannedImage};
use crate::reference::Reference;

use super::{
    Destination, Done, ListSummary, Options, Resources, Summary, Unit, image_error, list, push,
};

/// What the last steps of a push left.
pub(super) struct Finished {
    lists: Vec<ListSummary>,
    artifacts: Vec<String>,
    /// Per unit: the URI the artifacts name for it, when it differs from its push URI.
    uris: Vec<Option<Reference>>,
}

impl Finished {
    /// Puts what was finished into the run's summary, whose rows are the units in order.
    pub(super) fn report(self, summary: &mut Summary) {
        summary.lists = self.lists;
        summary.artifacts = self.artifacts;
        for (row, uri) in summary.images.iter_mut().zip(self.uris) {
            if let Some(uri) = uri {
                row.uri = uri.to_string();
            }
        }
    }
}

/// Once every image is in its commit tag. In this order, so that nothing anything deploys from
/// moves before the artifacts are safe on disk:
///
/// 1. each multi-platform image's manifest list, put under its commit tag;
/// 2. the artifacts, written whole and synced to temporary files beside their destinations
///    ([`artifacts::stage`]): a full disk or a read-only folder stops the run here;
/// 3. the moving tags (`[tag] extra`, `extra_tags`) of every image and list, all at once, and
///    the cache stages' tags of what `build` left (a `release` pushed its own beside each
///    image: nothing deploys from them);
/// 4. the artifacts renamed into place. A tag that fails to move in step 3 removes the
///    temporary files, and the old artifacts stay.
pub(super) async fn finish(
    plan: &Plan,
    options: &Options,
    env: &Resources<'_>,
    target: &Destination,
    units: &[Unit<'_>],
    done: &[Arc<Done>],
) -> Result<Finished, Error> {
    // What each moving tag will hold: a single-platform image's manifest...
    let mut moves = Vec::new();
    for (unit, done) in units.iter().zip(done) {
        if unit.build.extra_uris.is_empty() {
            continue;
        }
        let manifest = match (&done.reused, &done.digest) {
            (Some(found), _) => found.manifest.clone(),
            (None, Some(digest)) => push::fetch(target, unit.image, digest).await?,
            (None, None) => continue,
        };
        for tag in &unit.image.extra_tags {
            moves.push((unit.image, unit.label(), tag.clone(), manifest.clone()));
        }
    }

    // ...or a multi-platform image's list, joined here when this run built every platform.
    let mut lists = Vec::new();
    let mut list_digests: HashMap<String, String> = HashMap::new();
    if plan.only_platform.is_none() {
        for image in plan.images.iter().filter(|i| !i.platforms.is_empty()) {
            let (joined, manifest) = list::join(&target.registry, image, options.jobs).await?;
            list_digests.insert(image.name.clone(), joined.digest.clone());
            env.view.line(
                &image.name,
                &format!("wrote the manifest list {}", joined.uri),
            );
            for tag in &image.extra_tags {
                moves.push((image, image.name.clone(), tag.clone(), manifest.clone()));
            }
            lists.push(joined);
        }
    }

    let mut uris = vec![None; units.len()];
    let staged = if plan.only_platform.is_none() {
        let mut definitions = Vec::new();
        for image in plan.deployed() {
            let digest = match list_digests.get(&image.name) {
                Some(digest) => Some(digest.clone()),
                None => units
                    .iter()
                    .zip(done)
                    .find(|(u, _)| u.image.name == image.name)
                    .and_then(|(_, d)| d.digest.clone()),
            };
            let uri = match (options.pin_digest, digest) {
                (true, Some(digest)) => pinned_uri(image, &digest)?,
                _ => image.uri.clone(),
            };
            for (index, unit) in units.iter().enumerate() {
                if unit.image.name == image.name && unit.image.platforms.is_empty() {
                    uris[index] = Some(uri.clone());
                }
            }
            definitions.push(uri);
        }
        Some(stage_artifacts(env.root, plan, &definitions)?)
    } else {
        tracing::info!(
            "only {} was built: the artifacts are written by `ecrship manifest`, once every platform is in",
            plan.only_platform.clone().unwrap_or_default()
        );
        None
    };

    let tags = stream::iter(moves)
        .map(|(image, label, tag, manifest)| async move {
            push::put_tag(&target.registry, image, &tag, &manifest).await?;
            env.view.line(
                &label,
                &format!(
                    "tagged {}/{}:{tag}",
                    target.registry.host(),
                    image.repository
                ),
            );
            Ok::<_, Error>(())
        })
        .buffer_unordered(options.jobs.max(1))
        .try_collect::<Vec<()>>();
    let cache = units.iter().zip(done).flat_map(|(unit, done)| {
        done.cache
            .iter()
            .map(move |(stage, id)| (*unit, stage.clone(), id.clone()))
    });
    let cache = stream::iter(cache)
        .map(|(unit, stage, id)| async move {
            push::push_cache(
                env.daemon,
                target,
                unit.image,
                &unit.label(),
                &id,
                &stage.uri,
                env.view,
            )
            .await
        })
        .buffer_unordered(options.jobs.max(1))
        .try_collect::<Vec<()>>();
    // Dropping `staged` on an error removes the temporary files.
    tokio::try_join!(tags, cache)?;

    let artifacts_written = match staged {
        Some(staged) => staged.commit()?,
        None => Vec::new(),
    };
    Ok(Finished {
        lists,
        artifacts: artifacts_written,
        uris,
    })
}

/// `<registry>/<repository>@sha256:...`: the image by digest, for `--pin-digest`.
pub fn pinned_uri(image: &PlannedImage, digest: &str) -> Result<Reference, Error> {
    image
        .uri
        .pinned(digest)
        .map_err(|e| image_error(image, Error::Failed(e.to_string())))
}

/// Writes `imagedefinitions.json` (and `imageDetail.json` when configured) under `root`;
/// `uris` are the deployed images' URIs, in plan order.
pub fn write_artifacts(root: &Path, plan: &Plan, uris: &[Reference]) -> Result<Vec<String>, Error> {
    stage_artifacts(root, plan, uris)?.commit()
}

/// The artifacts of a run, written and synced beside their destinations, not yet in place.
pub struct StagedArtifacts {
    staged: artifacts::Staged,
    /// The paths, as configured (relative to the project root).
    names: Vec<String>,
}

impl StagedArtifacts {
    /// Renames the artifacts into place; returns their paths as configured (the summary says
    /// them).
    pub fn commit(self) -> Result<Vec<String>, Error> {
        self.staged.commit()?;
        Ok(self.names)
    }
}

/// Stages `imagedefinitions.json` (and `imageDetail.json` when configured) under `root`;
/// `uris` are the deployed images' URIs, in plan order.
pub fn stage_artifacts(
    root: &Path,
    plan: &Plan,
    uris: &[Reference],
) -> Result<StagedArtifacts, Error> {
    let deployed: Vec<&PlannedImage> = plan.deployed().collect();
    let uris: Vec<String> = uris.iter().map(Reference::to_string).collect();
    let text = artifacts::image_definitions(
        deployed
            .iter()
            .zip(&uris)
            .map(|(i, u)| (i.name.as_str(), u.as_str())),
    );
    let mut names = vec![plan.imagedefinitions.clone()];
    let mut files = vec![(root.join(&plan.imagedefinitions), text)];
    // image_detail names an image of the config; it may not be among those selected.
    if let Some(index) = plan
        .image_detail
        .as_ref()
        .and_then(|name| deployed.iter().position(|i| &i.name == name))
    {
        let path = Path::new(&plan.imagedefinitions).with_file_name("imageDetail.json");
        files.push((root.join(&path), artifacts::image_detail(&uris[index])));
        names.push(path.to_string_lossy().into_owned());
    }
    Ok(StagedArtifacts {
        staged: artifacts::stage(&files)?,
        names,
    })
}
