//! plan → (reuse | build) → push → artifacts: the steps of a run, their order and concurrency.
//!
//! `prepare` checks every image's input before anything starts and computes what decides it
//! (the inputs digest). For each build, `reuse` asks the registry for an image with the same
//! inputs; one that is there is tagged instead of built. `build` runs the others on the daemon
//! (from the registry's cache), `push` gets them into the registry, `list` joins the platforms
//! of a multi-architecture image, `state` hands `build`'s decisions to a later `push`, and
//! `summary` is what the run prints.
//!
//! Order and concurrency: builds run at once, at most `jobs` at a time, an image after the
//! images it depends on. In `release`, each image's own tag is pushed as soon as it is built,
//! while the others still build (a commit tag that nothing deploys from is harmless); the extra
//! tags (`latest`), the cache tags and the artifacts move only once every image succeeded. The
//! first failure stops the run: nothing that anything deploys from moves, and no artifact is
//! written.

mod bases;
mod build;
mod finish;
pub mod list;
mod mounts;
mod prepare;
mod push;
mod request;
mod reuse;
mod run;
mod sources;
pub mod state;
mod summary;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::context::Builder;
use crate::docker::Daemon;
use crate::error::Error;
use crate::plan::{Plan, PlannedBuild, PlannedImage};
use crate::secret::Secret;
use crate::view::View;

pub use finish::{StagedArtifacts, pinned_uri, stage_artifacts, write_artifacts};
pub use prepare::rfc3339;
pub use push::Destination;
pub use sources::push_dry_run;
pub use summary::{Action, ImageSummary, ListSummary, ReusedFrom, Summary};

/// Which steps a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    /// Build (or find reusable) images and record what was decided.
    Build,
    /// Push what `build` left, and write the artifacts.
    Push,
    /// Both, in one process.
    Release,
}

/// How a run builds and pushes.
#[derive(Debug, Clone)]
pub struct Options {
    pub steps: Steps,
    /// Build for real, reach no registry and no AWS, push nothing; still write the artifacts.
    pub dry_run: bool,
    /// Builds at once.
    pub jobs: usize,
    pub builder: Builder,
    pub no_cache: bool,
    pub pull: bool,
    /// Build every image, whatever the registry holds.
    pub rebuild: bool,
    /// Write `repository@sha256:...` URIs into the artifacts.
    pub pin_digest: bool,
    /// How old a registry image may be and still be reused.
    pub max_age: Duration,
}

/// What a run reaches, and where it reports.
pub struct Resources<'a> {
    pub root: &'a Path,
    pub daemon: &'a Daemon,
    /// The registry, when the run may reach it (never in a dry-run).
    pub target: Option<&'a Destination>,
    /// Why there is no `target` in a run that could have used one (said once).
    pub no_target: Option<String>,
    /// SSM parameters fetched for this run, by name.
    pub ssm: &'a BTreeMap<String, Secret>,
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
    pub view: &'a dyn View,
}

/// Runs `options.steps` for the plan.
pub async fn run(plan: &Plan, options: &Options, env: &Resources<'_>) -> Result<Summary, Error> {
    match options.steps {
        Steps::Push => sources::push_built(plan, options, env).await,
        Steps::Build | Steps::Release => run::build_all(plan, options, env).await,
    }
}

/// One image built (or reused) by the run: an image, or one platform of a multi-platform one.
#[derive(Debug, Clone, Copy)]
struct Unit<'a> {
    index: usize,
    image: &'a PlannedImage,
    build: &'a PlannedBuild,
}

impl Unit<'_> {
    /// The name its lines and states go under: `app`, or `app/arm64`.
    fn label(&self) -> String {
        match (&self.build.platform, self.image.platforms.is_empty()) {
            (Some(platform), false) => format!("{}/{}", self.image.name, platform.suffix()),
            _ => self.image.name.clone(),
        }
    }
}

impl Unit<'_> {
    /// The unit's summary row, before anything is known of it.
    fn row(&self) -> ImageSummary {
        ImageSummary::new(
            &self.image.name,
            self.build.platform.as_ref(),
            !self.image.platforms.is_empty(),
            self.build.local_name().to_owned(),
            &self.build.uri,
        )
    }
}

/// The summary of what `units` came to (`done`, in the same order).
fn summary_of(plan: &Plan, units: &[Unit<'_>], done: &[Arc<Done>]) -> Summary {
    let images = units
        .iter()
        .zip(done)
        .map(|(unit, done)| {
            let mut row = unit.row();
            row.action = Some(done.action);
            row.not_reused.clone_from(&done.not_reused);
            row.inputs = (!done.inputs.is_empty()).then(|| done.inputs.clone());
            if let Some(found) = &done.reused {
                row.reused_from = Some(ReusedFrom {
                    tag: found.tag.clone(),
                    digest: found.manifest.digest.clone(),
                });
            }
            if let Some(built) = &done.built {
                row.image_id = Some(built.image_id.clone());
                row.size = Some(built.size);
                row.build_seconds = Some(built.seconds);
            }
            row.digest.clone_from(&done.digest);
            row.push_seconds = done.push_seconds;
            row
        })
        .collect();
    Summary {
        tag: plan.tag.value.clone(),
        images,
        ..Summary::default()
    }
}

/// The names the builds of `plan` show under, in the order they start.
pub fn labels(plan: &Plan) -> Vec<String> {
    units(plan).iter().map(Unit::label).collect()
}

/// The builds of the plan, in build order ([`crate::plan::build_order`]): every image after the
/// images it depends on, each group in plan order.
fn units(plan: &Plan) -> Vec<Unit<'_>> {
    crate::plan::build_order(plan)
        .into_iter()
        .flatten()
        .filter_map(|name| plan.images.iter().find(|i| i.name == name))
        .flat_map(|image| image.builds.iter().map(move |build| (image, build)))
        .enumerate()
        .map(|(index, (image, build))| Unit {
            index,
            image,
            build,
        })
        .collect()
}

/// What one unit came to.
#[derive(Debug, Clone)]
struct Done {
    inputs: String,
    action: Action,
    /// The registry's image it reused.
    reused: Option<reuse::Found>,
    /// What its build here produced.
    built: Option<build::Built>,
    /// Why it was built rather than reused.
    not_reused: Option<String>,
    /// The cache stages' local images (built now, or by an earlier `build`), to push.
    cache: Vec<(crate::plan::CacheImage, String)>,
    /// Pushed under its own tag: the digest, and when.
    digest: Option<String>,
    push_seconds: Option<f64>,
    /// Its kept cache mounts, when it was built and keeps any.
    mounts: Option<Arc<mounts::MountJob>>,
}

fn done_sorted(mut done: Vec<(usize, Arc<Done>)>) -> Vec<(usize, Arc<Done>)> {
    done.sort_by_key(|(index, _)| *index);
    done
}

/// Why a run will not reuse images, or `None` when it may: said once for the run, and, in
/// short, for each image built.
fn why_no_reuse(
    options: &Options,
    registry: bool,
    no_registry: Option<&str>,
) -> Option<(String, String)> {
    let (said, short) = if options.dry_run {
        (
            "dry-run: the registry is not asked for images to reuse; every image is built".into(),
            "dry-run",
        )
    } else if options.rebuild {
        ("--rebuild: every image is built".into(), "--rebuild")
    } else if options.no_cache {
        (
            "--no-cache: every image is built, without the build cache".into(),
            "--no-cache",
        )
    } else if options.pull {
        (
            "--pull: every image is built, with its base images pulled again".into(),
            "--pull",
        )
    } else if !registry {
        (
            no_registry.map_or_else(
                || "no registry to ask for images to reuse; every image is built".to_owned(),
                str::to_owned,
            ),
            "no registry was asked",
        )
    } else {
        return None;
    };
    Some((said, short.to_owned()))
}

pub(crate) fn image_error(image: &PlannedImage, source: Error) -> Error {
    Error::Image {
        image: image.name.clone(),
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            steps: Steps::Release,
            dry_run: false,
            jobs: 1,
            builder: Builder::BuildKit,
            no_cache: false,
            pull: false,
            rebuild: false,
            pin_digest: false,
            max_age: Duration::from_secs(7 * 86_400),
        }
    }

    #[test]
    fn a_run_says_once_why_it_reuses_nothing() {
        assert_eq!(why_no_reuse(&options(), true, None), None);
        let short =
            |o: Options, registry: bool| why_no_reuse(&o, registry, Some("no AWS")).map(|(_, s)| s);
        let cases = [
            (
                Options {
                    dry_run: true,
                    ..options()
                },
                true,
                "dry-run",
            ),
            (
                Options {
                    rebuild: true,
                    ..options()
                },
                true,
                "--rebuild",
            ),
            (
                Options {
                    no_cache: true,
                    ..options()
                },
                true,
                "--no-cache",
            ),
            (
                Options {
                    pull: true,
                    ..options()
                },
                true,
                "--pull",
            ),
            (options(), false, "no registry was asked"),
        ];
        for (o, registry, want) in cases {
            assert_eq!(short(o, registry).as_deref(), Some(want));
        }
        let (said, _) =
            why_no_reuse(&options(), false, Some("no AWS: the region is unset")).unwrap();
        assert_eq!(said, "no AWS: the region is unset");
    }
}
