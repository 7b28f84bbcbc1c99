//! `build` and `release`: each image decided (reused, or built from the registry's cache), in
//! dependency order, at most `jobs` at a time, and in `release` pushed as soon as it is built.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::watch;

use crate::cache_mount;
use crate::context::Builder;
use crate::error::Error;
use crate::plan::{Plan, PlannedBuild, PlannedImage};
use crate::reference::{Platform, Reference};
use crate::view::State;

use super::{
    Action, Destination, Done, Options, Resources, Steps, Summary, Unit, bases, build, done_sorted,
    finish, image_error, mounts, prepare, push, request, reuse, state, summary_of, units,
    why_no_reuse, write_artifacts,
};

/// `build` and `release`: decide, build, and (in `release`) push each image.
pub(super) async fn build_all(
    plan: &Plan,
    options: &Options,
    env: &Resources<'_>,
) -> Result<Summary, Error> {
    let jobs: Vec<Arc<prepare::Job>> = prepare::jobs(plan, options, env)?
        .into_iter()
        .map(Arc::new)
        .collect();
    let job_of = |image: &PlannedImage| {
        let index = plan.images.iter().position(|i| i.name == image.name);
        Arc::clone(&jobs[index.unwrap_or_default()])
    };
    let pushing = options.steps == Steps::Release && !options.dry_run;
    let no_reuse = why_no_reuse(options, env.target.is_some(), env.no_target.as_deref());
    if let Some((why, _)) = &no_reuse {
        tracing::info!("{why}");
    }
    let units = units(plan);
    let (senders, receivers): (Vec<_>, Vec<_>) = units
        .iter()
        .map(|_| watch::channel(None::<Arc<Done>>))
        .unzip();
    let resolver = env.target.map(|target| {
        bases::Resolver::new(
            env.daemon,
            Some(&target.credentials),
            target.registry.host(),
            &plan.mirrors,
        )
    });
    if env.target.is_none() && !plan.mirrors.is_empty() {
        tracing::info!(
            "no registry is asked in this run: images are pulled as the Dockerfiles name them, not through [mirror]"
        );
    }
    let kept_mounts = kept_mounts(plan, options, env, &units, &jobs);
    let mounts = kept_mounts.map(|kept| mounts::Mounts::new(plan, &kept));
    let run = Run {
        options,
        env,
        units: &units,
        receivers: &receivers,
        pushing,
        no_reuse: no_reuse.as_ref().map(|(_, short)| short.as_str()),
        resolver: resolver.as_ref(),
        mounts: mounts.as_ref(),
    };
    for unit in &units {
        env.view.state(&unit.label(), State::Waiting);
    }
    let run = &run;
    let done: Vec<(usize, Arc<Done>)> = stream::iter(units.iter().copied())
        .map(|unit| {
            let job = job_of(unit.image);
            let sender = &senders[unit.index];
            async move {
                let label = unit.label();
                let result = run.unit(unit, &job).await;
                env.view.state(
                    &label,
                    match &result {
                        Ok(done) if done.action == Action::Reused => State::Reused,
                        Ok(_) => State::Done,
                        Err(_) => State::Failed,
                    },
                );
                let done = Arc::new(result?);
                sender.send_replace(Some(Arc::clone(&done)));
                Ok::<_, Error>((unit.index, done))
            }
        })
        .buffer_unordered(options.jobs.max(1))
        .try_collect()
        .await?;
    let done: Vec<Arc<Done>> = done_sorted(done).into_iter().map(|(_, d)| d).collect();

    let mut summary = summary_of(plan, &units, &done);
    summary.reuse_skipped = no_reuse.map(|(said, _)| said);
    if pushing {
        let target = env
            .target
            .ok_or_else(|| Error::Failed("internal: a push without a registry".into()))?;
        // The kept cache mounts are saved beside the last steps: the artifacts do not wait.
        let built: Vec<_> = units
            .iter()
            .zip(&done)
            .filter_map(|(unit, done)| {
                Some(mounts::BuiltImage {
                    image: unit.image,
                    label: unit.label(),
                    context: job_of(unit.image),
                    job: done.mounts.clone()?,
                })
            })
            .collect();
        let saves = async {
            match &mounts {
                Some(mounts) if !built.is_empty() => {
                    mounts::save_all(
                        env.daemon,
                        target,
                        mounts,
                        built,
                        plan.cache_mount_max_size,
                        env.view,
                    )
                    .await
                }
                _ => Vec::new(),
            }
        };
        let (finished, saved) = tokio::join!(
            finish::finish(plan, options, env, target, &units, &done),
            saves
        );
        finished?.report(&mut summary);
        summary.cache_mounts = saved;
    } else if options.dry_run && plan.only_platform.is_none() {
        let uris: Vec<Reference> = plan.deployed().map(|i| i.uri.clone()).collect();
        summary.artifacts = write_artifacts(env.root, plan, &uris)?;
    }
    if options.steps == Steps::Build {
        let mut state = state::State {
            tag: plan.tag.value.clone(),
            registry: plan.registry.host.clone(),
            ..state::State::default()
        };
        for (unit, done) in units.iter().zip(&done) {
            let decision = match (&done.reused, &done.built) {
                (Some(found), _) => state::Decision::Reused {
                    from: found.tag.clone(),
                    digest: found.manifest.digest.clone(),
                    inputs: done.inputs.clone(),
                },
                (None, Some(built)) => state::Decision::Built {
                    image_id: built.image_id.clone(),
                    inputs: done.inputs.clone(),
                    cache: built
                        .cache
                        .iter()
                        .map(|(stage, id)| (stage.stage.clone(), id.clone()))
                        .collect(),
                    builder_text: done.mounts.as_ref().map(|m| m.builder_text.clone()),
                },
                (None, None) => continue,
            };
            state.builds.insert(unit.label(), decision);
        }
        state.merge_and_write(env.root)?;
    }
    Ok(summary)
}

/// The shared state of one `build_all`.
struct Run<'a> {
    options: &'a Options,
    env: &'a Resources<'a>,
    units: &'a [Unit<'a>],
    receivers: &'a [watch::Receiver<Option<Arc<Done>>>],
    pushing: bool,
    /// Why the run reuses nothing, when it does not.
    no_reuse: Option<&'a str>,
    /// Resolves the images the Dockerfiles name; `None` when no registry may be asked.
    resolver: Option<&'a bases::Resolver<'a>>,
    /// The kept cache mounts; `None` when none is restored in this run (no registry to ask,
    /// the classic builder, `--no-cache`, or no image keeps any).
    mounts: Option<&'a mounts::Mounts>,
}

/// What a unit needs of one image it depends on.
struct Dependency {
    /// Its name in the config.
    name: String,
    arg: String,
    local_name: String,
    inputs: String,
    /// The registry's image, when the dependency was reused rather than built here.
    reused: Option<Reference>,
}

impl Run<'_> {
    /// Decides, builds or reuses, and pushes one unit.
    async fn unit(&self, unit: Unit<'_>, job: &Arc<prepare::Job>) -> Result<Done, Error> {
        let (image, build) = (unit.image, unit.build);
        let label = unit.label();
        let view = self.env.view;
        let deps = self.dependencies(unit).await?;

        // What the Dockerfile names, resolved; the builder gets it pinned.
        let platform = build
            .platform
            .clone()
            .unwrap_or_else(|| self.env.daemon.platform_value());
        let analysis = self.analyse(image, build, job, &deps, &platform).await;
        if let Some(fatal) = &analysis.fatal {
            return Err(image_error(image, Error::Failed(fatal.clone())));
        }
        for doubt in &analysis.doubts {
            tracing::warn!("[{label}] {doubt}; not reused");
        }
        for (name, via) in &analysis.routed {
            view.line(
                &label,
                &format!("{name} is pulled through the mirror as {via}"),
            );
        }
        let pinned = match &analysis.for_builder {
            Some(text) => Some(
                job.context_for(text)
                    .map_err(|e| image_error(image, e.into()))?,
            ),
            None => None,
        };
        let context = pinned.as_ref().map_or(&job.context, |(context, _)| context);

        let (context_digest, context) = {
            let context = context.clone();
            tokio::task::spawn_blocking(move || context.digest())
                .await
                .map_err(|e| Error::Failed(format!("the context walk stopped: {e}")))?
                .map_err(|e| image_error(image, e.into()))?
        };
        let context = &context;
        let dependency_inputs: Vec<prepare::DependencyInputs> = deps
            .iter()
            .map(|d| prepare::DependencyInputs {
                name: d.name.clone(),
                arg: d.arg.clone(),
                inputs: d.inputs.clone(),
            })
            .collect();
        let parts = prepare::inputs_parts(
            image,
            job,
            &context_digest,
            &analysis,
            &platform,
            self.options.builder,
            &dependency_inputs,
        );
        let inputs = parts.digest();
        tracing::debug!("[{label}] inputs {inputs}");

        // Tags the reuse check found missing from the registry: no cache comes from them.
        let mut absent: Vec<String> = Vec::new();
        let mut not_reused = self.no_reuse.map(str::to_owned);
        if !image.reuse {
            not_reused = Some("reuse = false".into());
        } else if let Some(doubt) = analysis.doubts.first() {
            not_reused.get_or_insert_with(|| doubt.clone());
        }
        if let (None, Some(target)) = (&not_reused, self.env.target) {
            view.state(&label, State::Checking);
            let candidates: Vec<String> = std::iter::once(build.tag.clone())
                .chain(image.extra_tags.iter().cloned())
                .collect();
            let (outcome, missing_stages) = tokio::join!(
                reuse::find(
                    &target.registry,
                    &image.repository,
                    &candidates,
                    &platform,
                    &parts,
                    self.options.max_age,
                ),
                reuse::missing(
                    &target.registry,
                    &image.repository,
                    build.cache.iter().map(|c| c.tag.as_str()),
                ),
            );
            absent.extend(missing_stages);
            match outcome {
                Ok(reuse::Outcome::Found(found)) => {
                    view.line(
                        &label,
                        &format!(
                            "reused {}:{} ({}): same inputs, no build",
                            image.repository, found.tag, found.manifest.digest
                        ),
                    );
                    let mut done = Done {
                        inputs,
                        action: Action::Reused,
                        reused: None,
                        built: None,
                        not_reused: None,
                        cache: Vec::new(),
                        digest: Some(found.manifest.digest.clone()),
                        push_seconds: None,
                        mounts: None,
                    };
                    if self.pushing {
                        view.state(&label, State::Pushing);
                        let started = Instant::now();
                        let manifest =
                            push::put_reused(target, image, &build.tag, &found, &job.labels)
                                .await?;
                        view.line(
                            &label,
                            &format!("tagged {} ({})", build.uri, manifest.digest),
                        );
                        done.digest = Some(manifest.digest.clone());
                        done.push_seconds = Some(started.elapsed().as_secs_f64());
                        done.reused = Some(reuse::Found { manifest, ..found });
                    } else {
                        done.reused = Some(found);
                    }
                    return Ok(done);
                }
                Ok(reuse::Outcome::Missed(misses)) => {
                    for (tag, miss) in &misses {
                        view.line(&label, &format!("{}:{tag}: {miss}", image.repository));
                        if *miss == reuse::Miss::Absent {
                            absent.push(tag.clone());
                        }
                    }
                    let why = reuse::why_missed(&image.repository, &misses);
                    view.line(&label, &format!("not reused: {why}"));
                    not_reused = Some(why);
                }
                // `build` builds anyway; `push` and `release` must not push what they cannot
                // compare.
                Err(e) if !self.pushing && self.options.steps == Steps::Build => {
                    tracing::warn!("[{label}] {e}; building it");
                    not_reused = Some(format!("the registry could not be asked ({e})"));
                }
                Err(e) => return Err(image_error(image, e.into())),
            }
        }

        for dep in deps.iter().filter(|d| d.reused.is_some()) {
            self.fetch_dependency(image, &label, dep).await?;
        }
        view.state(&label, State::Building);
        let dependencies: Vec<(String, String)> = deps
            .iter()
            .map(|d| (d.arg.clone(), d.local_name.clone()))
            .collect();
        let job_args = request::JobArgs {
            build_args: &job.build_args,
            labels: &job.labels,
            secrets: &job.secrets,
            dockerfile: job.context.dockerfile_name(),
        };
        let facts = self.facts();
        let mut request = request::request(
            image,
            build,
            &job_args,
            &parts,
            &dependencies,
            &absent,
            &facts,
        );
        if let Some(target) = self.env.target
            && self.options.builder == Builder::Classic
        {
            let sources = request::cache_sources(image, build, &absent, &facts);
            request.cache_from = self.classic_cache(&label, build, &sources, target).await;
        }
        if analysis.for_builder.is_some() {
            request.dockerfile = context.dockerfile_name().to_owned();
        }
        let mount_job = match self.mounts {
            Some(mounts) => {
                self.restore_mounts(
                    mounts, image, build, job, &deps, &analysis, &request, &platform, &label,
                )
                .await
            }
            None => None,
        };
        let built = build::build(
            self.env.daemon,
            image,
            &label,
            context,
            &request,
            &build.cache,
            view,
        )
        .await
        .map_err(|e| through_the_mirror(e, &analysis.routed))?;
        drop(pinned);
        let mut done = Done {
            inputs,
            action: Action::Built,
            reused: None,
            built: None,
            not_reused,
            cache: built.cache.clone(),
            digest: None,
            push_seconds: None,
            mounts: mount_job,
        };
        if self.pushing {
            let target = self
                .env
                .target
                .ok_or_else(|| Error::Failed("internal: a push without a registry".into()))?;
            view.state(&label, State::Pushing);
            // The cache stages go up beside the image, off the critical path: their tags are
            // the next run's cache, which nothing deploys from.
            let cache = futures_util::future::try_join_all(done.cache.iter().map(|(stage, id)| {
                push::push_cache(self.env.daemon, target, image, &label, id, &stage.uri, view)
            }));
            let main = push::push_local(
                self.env.daemon,
                target,
                image,
                &label,
                &built.image_id,
                &build.uri,
                view,
            );
            let ((digest, seconds), _) = tokio::try_join!(main, cache)?;
            done.cache.clear();
            done.digest = Some(digest);
            done.push_seconds = Some(seconds);
        }
        done.built = Some(built);
        Ok(done)
    }

    /// Restores the cache mounts `image` keeps that the daemon does not hold; what saving them
    /// later needs, when it keeps any.
    #[allow(clippy::too_many_arguments)]
    async fn restore_mounts(
        &self,
        mounts: &mounts::Mounts,
        image: &PlannedImage,
        build: &PlannedBuild,
        job: &prepare::Job,
        deps: &[Dependency],
        analysis: &bases::Analysis,
        request: &crate::docker::BuildRequest,
        platform: &Platform,
        label: &str,
    ) -> Option<Arc<mounts::MountJob>> {
        let target = self.env.target?;
        if image.cache_mounts.is_off() {
            return None;
        }
        let builder_text = match &analysis.for_builder {
            Some(text) => text.clone(),
            None => String::from_utf8(job.dockerfile.clone()).ok()?,
        };
        let (kept, _) = mounts::kept(
            image,
            &builder_text,
            &builder_args(job, deps),
            platform,
            self.env.daemon.platform(),
            !image.platforms.is_empty() && build.platform.is_some(),
        );
        if kept.is_empty() {
            return None;
        }
        let mount_job = mounts::MountJob {
            kept,
            builder_text,
            request: request.clone(),
            platform: platform.clone(),
        };
        mounts
            .restore(
                self.env.daemon,
                target,
                image,
                label,
                job,
                &mount_job,
                self.env.view,
            )
            .await;
        Some(Arc::new(mount_job))
    }

    /// What `build`'s Dockerfile names, resolved (when a registry may be asked).
    async fn analyse(
        &self,
        image: &PlannedImage,
        build: &PlannedBuild,
        job: &prepare::Job,
        deps: &[Dependency],
        platform: &Platform,
    ) -> bases::Analysis {
        let args = builder_args(job, deps);
        let dependencies: Vec<(String, String)> = deps
            .iter()
            .filter(|d| args.get(&d.arg) == Some(&d.local_name))
            .map(|d| (d.name.clone(), d.local_name.clone()))
            .collect();
        let platform = platform.to_string();
        let build_platform = self.env.daemon.platform().to_owned();
        let input = bases::Build {
            text: &job.dockerfile,
            build_args: &args,
            platform: &platform,
            build_platform: &build_platform,
            target: image.target.as_deref(),
            dependencies: &dependencies,
        };
        let _ = build;
        bases::analyse(&input, self.resolver).await
    }

    /// Waits for the images `unit` depends on, and says what each brings to its build.
    async fn dependencies(&self, unit: Unit<'_>) -> Result<Vec<Dependency>, Error> {
        let mut deps = Vec::new();
        for name in &unit.image.depends_on {
            let candidates: Vec<&Unit<'_>> = self
                .units
                .iter()
                .filter(|u| &u.image.name == name)
                .collect();
            let wanted = unit.build.platform.as_ref();
            let default = Platform::default();
            let dep = candidates
                .iter()
                .find(|u| u.build.platform.as_ref() == wanted)
                .or_else(|| (candidates.len() == 1).then(|| &candidates[0]))
                .or_else(|| {
                    candidates
                        .iter()
                        .find(|u| u.build.platform.as_ref() == Some(&default))
                });
            let Some(dep) = dep else {
                return Err(image_error(
                    unit.image,
                    Error::Usage(format!(
                        "depends on `{name}`, which this run does not build for {}",
                        wanted.unwrap_or(&default)
                    )),
                ));
            };
            let mut receiver = self.receivers[dep.index].clone();
            let done = match receiver.wait_for(Option::is_some).await {
                Ok(done) => done.clone(),
                Err(_) => None,
            };
            let Some(done) = done else {
                return Err(image_error(
                    unit.image,
                    Error::Failed(format!("`{name}`, which it depends on, did not build")),
                ));
            };
            deps.push(Dependency {
                name: name.clone(),
                arg: crate::plan::dependency_arg(name),
                local_name: dep.build.local_name().to_owned(),
                inputs: done.inputs.clone(),
                reused: match &done.reused {
                    Some(found) => Some(
                        dep.build
                            .uri
                            .pinned(&found.manifest.digest)
                            .map_err(|e| image_error(unit.image, Error::Failed(e.to_string())))?,
                    ),
                    None => None,
                },
            });
        }
        Ok(deps)
    }

    /// A dependency that was reused exists only in the registry: pulled, and named as a
    /// build here would have named it, so that `FROM ${NAME_IMAGE}` finds it.
    async fn fetch_dependency(
        &self,
        image: &PlannedImage,
        label: &str,
        dep: &Dependency,
    ) -> Result<(), Error> {
        let Some(reference) = &dep.reused else {
            return Ok(());
        };
        if let Some(target) = self.env.target {
            self.env
                .view
                .line(label, &format!("pulling {reference} as {}", dep.local_name));
            let found = self
                .env
                .daemon
                .pull(reference, None, Some(&target.credentials))
                .await
                .map_err(|e| image_error(image, e.into()))?;
            if found {
                let local = Reference::parse(&dep.local_name)
                    .map_err(|e| image_error(image, Error::Failed(e.to_string())))?;
                self.env
                    .daemon
                    .tag(&reference.to_string(), &local)
                    .await
                    .map_err(|e| image_error(image, e.into()))?;
            }
        }
        Ok(())
    }

    /// What a build request of this run depends on besides the image.
    fn facts(&self) -> request::Facts<'_> {
        request::Facts {
            builder: self.options.builder,
            no_cache: self.options.no_cache,
            pull: self.options.pull,
            daemon_platform: self.env.daemon.platform(),
            stages_alone: self.env.daemon.api_at_least(reuse::STAGES_ALONE_FROM_API),
            credentials: self.env.target.map(|t| &t.credentials),
        }
    }

    /// The classic builder takes `cachefrom` images only from the daemon's store, and once
    /// given any, it takes cache only from them (moby `image/cache`: a local hit counts only
    /// when it is a parent of a `cachefrom` image): the registry's images are pulled first, and
    /// the `cachefrom` of the build is those that are now here, with this image's own local
    /// names, so that a warm daemon keeps its cache. A missing image is no error; none at all
    /// leaves `cachefrom` out, and the daemon's whole cache in.
    async fn classic_cache(
        &self,
        label: &str,
        build: &PlannedBuild,
        cache_from: &[Reference],
        target: &Destination,
    ) -> Vec<String> {
        let daemon = self.env.daemon;
        let mut sources = Vec::new();
        for reference in cache_from {
            let platform = build.platform.as_ref();
            match daemon
                .pull(reference, platform, Some(&target.credentials))
                .await
            {
                Ok(true) => {
                    self.env
                        .view
                        .line(label, &format!("pulled {reference} as cache"));
                    sources.push(reference.to_string());
                }
                Ok(false) => tracing::debug!("[{label}] no {reference} to start the cache from"),
                Err(e) => tracing::warn!("[{label}] cache image {reference} not pulled: {e}"),
            }
        }
        if !sources.is_empty() {
            for local in &build.local_tags {
                if let Ok(Some(_)) = daemon.inspect(local).await {
                    sources.push(local.clone());
                }
            }
        }
        sources
    }
}

/// Per image, the cache mounts it keeps, read from its Dockerfile before any build (a
/// dependency's image is not known yet; it does not name a mount); each selected mount that
/// cannot be kept is said once. `None` when this run restores none: no registry to ask, the
/// classic builder (which has no cache mounts), `--no-cache`, or no image that keeps any.
fn kept_mounts(
    plan: &Plan,
    options: &Options,
    env: &Resources<'_>,
    units: &[Unit<'_>],
    jobs: &[Arc<prepare::Job>],
) -> Option<Vec<(String, Vec<cache_mount::Kept>)>> {
    let keeping: Vec<&PlannedImage> = plan
        .images
        .iter()
        .filter(|i| !i.cache_mounts.is_off())
        .collect();
    if keeping.is_empty() {
        return None;
    }
    let why_not = if options.builder == Builder::Classic {
        Some("the classic builder has no cache mounts")
    } else if options.no_cache {
        Some("--no-cache starts every cache mount empty")
    } else if env.target.is_none() {
        Some("no registry is asked in this run")
    } else {
        None
    };
    if let Some(why) = why_not {
        tracing::info!("cache_mounts: nothing is restored or saved ({why})");
        return None;
    }
    let mut kept = Vec::new();
    for image in keeping {
        let Some(index) = plan.images.iter().position(|i| i.name == image.name) else {
            continue;
        };
        let job = &jobs[index];
        let Ok(text) = std::str::from_utf8(&job.dockerfile) else {
            continue;
        };
        let args = builder_args(job, &[]);
        let mut mounts = Vec::new();
        for unit in units.iter().filter(|u| u.image.name == image.name) {
            let platform = unit
                .build
                .platform
                .clone()
                .unwrap_or_else(|| env.daemon.platform_value());
            let one_of_several = !image.platforms.is_empty() && unit.build.platform.is_some();
            let (found, refused) = mounts::kept(
                image,
                text,
                &args,
                &platform,
                env.daemon.platform(),
                one_of_several,
            );
            for why in refused {
                tracing::warn!("[{}] {why}", unit.label());
            }
            if found.is_empty() && !image.cache_mounts.is_off() {
                tracing::warn!(
                    "[{}] cache_mounts is set, but the stages it builds mount no cache it can keep",
                    unit.label()
                );
            }
            mounts.extend(found);
        }
        kept.push((image.name.clone(), mounts));
    }
    Some(kept)
}

/// The build args as the builder gets them: each dependency's local name first, so that an arg
/// of the config with the same name wins.
fn builder_args(job: &prepare::Job, deps: &[Dependency]) -> BTreeMap<String, String> {
    let mut args: BTreeMap<String, String> = deps
        .iter()
        .map(|d| (d.arg.clone(), d.local_name.clone()))
        .collect();
    args.extend(
        job.build_args
            .iter()
            .map(|(name, value, _)| (name.clone(), value.clone())),
    );
    args
}

/// A failed build whose images came through a mirror names both references of each, so that a
/// mirror that does not hold an image is told from an image that does not exist. One that met
/// Docker Hub's pull limit says where the way around it is.
fn through_the_mirror(error: Error, routed: &[(String, Reference)]) -> Error {
    if routed.is_empty() {
        return match error {
            Error::Image { image, source } if source.to_string().contains("toomanyrequests") => {
                Error::Image {
                    image,
                    source: Box::new(Error::Failed(format!(
                        "{source} (Docker Hub's pull limit: pull through ECR's cache with [mirror], see \"Docker Hub rate limits\" in the README)"
                    ))),
                }
            }
            other => other,
        };
    }
    let pairs: Vec<String> = routed
        .iter()
        .map(|(name, via)| format!("{name} as {via}"))
        .collect();
    match error {
        Error::Image { image, source } => Error::Image {
            image,
            source: Box::new(Error::Failed(format!(
                "{source} (pulled through the mirror: {})",
                pairs.join(", ")
            ))),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(text: &str) -> Error {
        Error::Image {
            image: "app".into(),
            source: Box::new(Error::Failed(text.into())),
        }
    }

    #[test]
    fn a_failed_build_names_the_mirror_or_the_way_around_the_pull_limit() {
        let via = Reference::parse("r.example/docker-hub/library/node:20").unwrap();
        let routed = [("node:20".to_owned(), via)];
        let text = through_the_mirror(failed("not found"), &routed).to_string();
        assert!(
            text.contains(
                "(pulled through the mirror: node:20 as r.example/docker-hub/library/node:20)"
            ),
            "{text}"
        );
        let limited = "toomanyrequests: You have reached your unauthenticated pull rate limit";
        let text = through_the_mirror(failed(limited), &[]).to_string();
        assert!(
            text.contains("[mirror]") && text.contains("Docker Hub rate limits"),
            "{text}"
        );
        let text = through_the_mirror(failed("no space left on device"), &[]).to_string();
        assert!(!text.contains("[mirror]"), "{text}");
    }
}
