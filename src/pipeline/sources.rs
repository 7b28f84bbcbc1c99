//! `push` after a separate `build`: what `build` left for each image, checked against the
//! daemon before anything is pushed, then pushed (or, for a reused image, put under its tag).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::docker::Daemon;
use crate::error::Error;
use crate::plan::Plan;
use crate::reference::{Platform, Reference};
use crate::view::State;

use super::{
    Action, Done, ListSummary, Options, Resources, ReusedFrom, Summary, Unit, done_sorted, finish,
    image_error, mounts, prepare, push, reuse, state, summary, summary_of, units,
};

/// What `push` pushes for one unit: what `build` left.
enum Source {
    /// The local image `build` built: its id, size, and its cache stages' images.
    Local {
        id: String,
        size: u64,
        cache: Vec<(crate::plan::CacheImage, String)>,
        /// The Dockerfile the builder got, when the image keeps cache mounts.
        builder_text: Option<String>,
    },
    /// The registry's image `build` chose to reuse, under the tag it was found under.
    Reused { from: String, digest: String },
}

/// What `build` left for each unit, checked against the daemon before anything is pushed: a
/// recorded build's local image must still be the one it built.
async fn sources(
    root: &Path,
    plan: &Plan,
    registry: Option<&str>,
    units: &[Unit<'_>],
    daemon: &Daemon,
) -> Result<Vec<Source>, Error> {
    let (state, unrecorded) = match state::load(root, &plan.tag.value, registry)? {
        state::Record::Found(state) => (state, None),
        state::Record::Absent(why) => (state::State::default(), Some(why)),
    };
    let mut sources = Vec::with_capacity(units.len());
    for unit in units {
        let local = unit.build.local_name();
        let not_built = || {
            image_error(
                unit.image,
                Error::Failed(format!(
                    "image {local} is not built here; run `ecrship build` first"
                )),
            )
        };
        let source = match state.builds.get(&unit.label()) {
            Some(state::Decision::Reused { from, digest, .. }) => Source::Reused {
                from: from.clone(),
                digest: digest.clone(),
            },
            Some(state::Decision::Built {
                image_id,
                cache,
                builder_text,
                ..
            }) => {
                let info = daemon.inspect(local).await?.ok_or_else(not_built)?;
                if &info.id != image_id {
                    return Err(image_error(
                        unit.image,
                        Error::Failed(format!(
                            "{local} is {} now, not {image_id}, which `ecrship build` built and recorded in {}; it was retagged or rebuilt since, so nothing was pushed: run `ecrship build` again",
                            info.id,
                            state::path_shown()
                        )),
                    ));
                }
                let cache = unit
                    .build
                    .cache
                    .iter()
                    .filter_map(|stage| Some((stage.clone(), cache.get(&stage.stage)?.clone())))
                    .collect();
                Source::Local {
                    id: info.id,
                    size: info.size,
                    cache,
                    builder_text: builder_text.clone(),
                }
            }
            None => {
                let info = daemon.inspect(local).await?.ok_or_else(not_built)?;
                let why = unrecorded
                    .clone()
                    .unwrap_or_else(|| format!("{} has no record of it", state::path_shown()));
                if !info.labels.contains_key(crate::inputs::LABEL) {
                    return Err(image_error(
                        unit.image,
                        Error::Failed(format!(
                            "{local} was not built by ecrship (it has no `{}` label) and {why}; nothing was pushed: run `ecrship build` first",
                            crate::inputs::LABEL
                        )),
                    ));
                }
                tracing::warn!(
                    "[{}] {why}; pushing the local {local} ({}), which ecrship built",
                    unit.label(),
                    summary::short_id(&info.id)
                );
                let mut cache = Vec::new();
                for stage in &unit.build.cache {
                    if let Some(found) = daemon.inspect(&stage.local_name).await? {
                        cache.push((stage.clone(), found.id));
                    }
                }
                Source::Local {
                    id: info.id,
                    size: info.size,
                    cache,
                    builder_text: None,
                }
            }
        };
        sources.push(source);
    }
    Ok(sources)
}

/// `push`: push what `build` left here (or retag what it reused), then finish.
pub(super) async fn push_built(
    plan: &Plan,
    options: &Options,
    env: &Resources<'_>,
) -> Result<Summary, Error> {
    let target = env
        .target
        .ok_or_else(|| Error::Failed("internal: a push without a registry".into()))?;
    let units = units(plan);
    // Everything is found and checked before anything is pushed.
    let found = sources(
        env.root,
        plan,
        Some(&plan.registry.host),
        &units,
        env.daemon,
    )
    .await?;
    let builder_texts: Vec<Option<String>> = found
        .iter()
        .map(|source| match source {
            Source::Local { builder_text, .. } => builder_text.clone(),
            Source::Reused { .. } => None,
        })
        .collect();
    let mut sources = Vec::with_capacity(found.len());
    for (unit, source) in units.iter().zip(found) {
        let reused = match &source {
            Source::Reused { from, digest } => {
                Some(push::fetch_found(target, unit.image, from, digest).await?)
            }
            Source::Local { .. } => None,
        };
        sources.push((source, reused));
    }
    let labels = prepare::run_labels(&plan.tag.value, env.env);
    let labels = &labels;
    let view = env.view;
    let done: Vec<(usize, Arc<Done>)> = stream::iter(units.iter().zip(sources))
        .map(|(unit, (source, manifest))| async move {
            let label = unit.label();
            view.state(&label, State::Pushing);
            let result = async {
                match (source, manifest) {
                    (Source::Local { id, cache, .. }, _) => {
                        let (digest, seconds) = push::push_local(
                            env.daemon,
                            target,
                            unit.image,
                            &label,
                            &id,
                            &unit.build.uri,
                            view,
                        )
                        .await?;
                        Ok::<_, Error>(Done {
                            inputs: String::new(),
                            action: Action::Built,
                            reused: None,
                            built: None,
                            not_reused: None,
                            cache,
                            digest: Some(digest),
                            push_seconds: Some(seconds),
                            mounts: None,
                        })
                    }
                    (Source::Reused { .. }, Some(found)) => {
                        let started = Instant::now();
                        let manifest =
                            push::put_reused(target, unit.image, &unit.build.tag, &found, labels)
                                .await?;
                        view.line(
                            &label,
                            &format!("tagged {} (reused, {})", unit.build.uri, manifest.digest),
                        );
                        Ok(Done {
                            inputs: String::new(),
                            action: Action::Reused,
                            cache: Vec::new(),
                            digest: Some(manifest.digest.clone()),
                            push_seconds: Some(started.elapsed().as_secs_f64()),
                            reused: Some(reuse::Found { manifest, ..found }),
                            built: None,
                            not_reused: None,
                            mounts: None,
                        })
                    }
                    (Source::Reused { .. }, None) => Err(Error::Failed(
                        "internal: a reused image without its manifest".into(),
                    )),
                }
            }
            .await;
            view.state(
                &label,
                match &result {
                    Ok(done) if done.action == Action::Reused => State::Reused,
                    Ok(_) => State::Done,
                    Err(_) => State::Failed,
                },
            );
            Ok::<_, Error>((unit.index, Arc::new(result?)))
        })
        .buffer_unordered(options.jobs.max(1))
        .try_collect()
        .await?;
    let done: Vec<Arc<Done>> = done_sorted(done).into_iter().map(|(_, d)| d).collect();
    let mut summary = summary_of(plan, &units, &done);
    // The cache mounts `build` kept are saved beside the last steps.
    let saves = async {
        if builder_texts.iter().all(Option::is_none) {
            return Vec::new();
        }
        match mounts::from_records(plan, options, env, target, &units, &builder_texts) {
            Ok((mounts, built)) => {
                mounts::save_all(
                    env.daemon,
                    target,
                    &mounts,
                    built,
                    plan.cache_mount_max_size,
                    env.view,
                )
                .await
            }
            Err(e) => {
                tracing::warn!("the cache mounts were not saved: {e}");
                Vec::new()
            }
        }
    };
    let (finished, saved) = tokio::join!(
        finish::finish(plan, options, env, target, &units, &done),
        saves
    );
    finished?.report(&mut summary);
    summary.cache_mounts = saved;
    Ok(summary)
}

/// `push --dry-run`: what a push would do, from the local images and `build`'s decisions; no
/// login, no registry, nothing written.
pub async fn push_dry_run(root: &Path, plan: &Plan, daemon: &Daemon) -> Result<Summary, Error> {
    let mut summary = Summary {
        tag: plan.tag.value.clone(),
        ..Summary::default()
    };
    let units = units(plan);
    let found = sources(root, plan, None, &units, daemon).await?;
    for (unit, source) in units.iter().zip(found) {
        let mut row = unit.row();
        row.would_push.push(unit.build.uri.to_string());
        row.would_push
            .extend(unit.build.extra_uris.iter().map(Reference::to_string));
        match source {
            Source::Reused { from, digest } => {
                row.action = Some(Action::Reused);
                row.reused_from = Some(ReusedFrom { tag: from, digest });
            }
            Source::Local {
                id, size, cache, ..
            } => {
                row.action = Some(Action::Built);
                row.image_id = Some(id);
                row.size = Some(size);
                row.would_push
                    .extend(cache.into_iter().map(|(stage, _)| stage.uri.to_string()));
            }
        }
        summary.images.push(row);
    }
    if plan.only_platform.is_none() {
        for image in plan.images.iter().filter(|i| !i.platforms.is_empty()) {
            summary.lists.push(ListSummary {
                name: image.name.clone(),
                uri: image.uri.to_string(),
                digest: "(not joined in a dry-run)".into(),
                media_type: String::new(),
                platforms: image.platforms.iter().map(Platform::to_string).collect(),
            });
        }
    }
    tracing::info!("dry-run: nothing was pushed and no artifact was written");
    Ok(summary)
}
