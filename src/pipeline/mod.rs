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
pub mod list;
mod prepare;
mod push;
mod reuse;
pub mod state;
mod summary;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::watch;

use crate::artifacts;
use crate::context::Builder;
use crate::docker::{BuildRequest, Daemon};
use crate::error::Error;
use crate::plan::{Plan, PlannedBuild, PlannedImage};
use crate::reference::{Platform, Reference};
use crate::secret::Secret;
use crate::view::{State, View};

pub use prepare::rfc3339;
pub use push::Destination;
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
        Steps::Push => push_built(plan, options, env).await,
        Steps::Build | Steps::Release => build_all(plan, options, env).await,
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

/// The builds of the plan, every image after the images it depends on (then in plan order).
fn units(plan: &Plan) -> Vec<Unit<'_>> {
    let mut ordered: Vec<&PlannedImage> = Vec::with_capacity(plan.images.len());
    fn place<'a>(image: &'a PlannedImage, plan: &'a Plan, ordered: &mut Vec<&'a PlannedImage>) {
        if ordered.iter().any(|i| i.name == image.name) {
            return;
        }
        for dep in &image.depends_on {
            if let Some(dep) = plan.images.iter().find(|i| &i.name == dep) {
                place(dep, plan, ordered);
            }
        }
        ordered.push(image);
    }
    for image in &plan.images {
        place(image, plan, &mut ordered);
    }
    ordered
        .into_iter()
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
}

/// `build` and `release`: decide, build, and (in `release`) push each image.
async fn build_all(plan: &Plan, options: &Options, env: &Resources<'_>) -> Result<Summary, Error> {
    let jobs: Vec<Arc<prepare::Job>> = prepare::jobs(plan, options, env)?
        .into_iter()
        .map(Arc::new)
        .collect();
    let job_of = |image: &PlannedImage| {
        let index = plan.images.iter().position(|i| i.name == image.name);
        Arc::clone(&jobs[index.unwrap_or_default()])
    };
    let pushing = options.steps == Steps::Release && !options.dry_run;
    let no_reuse = why_no_reuse(options, env);
    if let Some((why, _)) = &no_reuse {
        tracing::info!("{why}");
    }
    let units = units(plan);
    let (senders, receivers): (Vec<_>, Vec<_>) = units
        .iter()
        .map(|_| watch::channel(None::<Arc<Done>>))
        .unzip();
    let resolver = env
        .target
        .map(|target| bases::Resolver::new(env.daemon, Some(&target.credentials)));
    let run = Run {
        options,
        env,
        units: &units,
        receivers: &receivers,
        pushing,
        no_reuse: no_reuse.as_ref().map(|(_, short)| short.as_str()),
        resolver: resolver.as_ref(),
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
        finish(plan, options, env, target, &units, &done)
            .await?
            .report(&mut summary);
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
                },
                (None, None) => continue,
            };
            state.builds.insert(unit.label(), decision);
        }
        state.merge_and_write(env.root)?;
    }
    Ok(summary)
}

fn done_sorted(mut done: Vec<(usize, Arc<Done>)>) -> Vec<(usize, Arc<Done>)> {
    done.sort_by_key(|(index, _)| *index);
    done
}

/// Why a run will not reuse images, or `None` when it may: said once for the run, and, in
/// short, for each image built.
fn why_no_reuse(options: &Options, env: &Resources<'_>) -> Option<(String, String)> {
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
    } else if env.target.is_none() {
        (
            env.no_target.clone().unwrap_or_else(|| {
                "no registry to ask for images to reuse; every image is built".into()
            }),
            "no registry was asked",
        )
    } else {
        return None;
    };
    Some((said, short.to_owned()))
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
        for doubt in &analysis.doubts {
            tracing::warn!("[{label}] {doubt}; not reused");
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
        let mut request = self.request(image, build, job, &parts, &deps, &absent);
        if let Some(target) = self.env.target
            && self.options.builder == Builder::Classic
        {
            let sources = self.cache_sources(image, build, &absent);
            request.cache_from = self.classic_cache(&label, build, &sources, target).await;
        }
        if analysis.for_builder.is_some() {
            request.dockerfile = context.dockerfile_name().to_owned();
        }
        let built = build::build(
            self.env.daemon,
            image,
            &label,
            context,
            &request,
            &build.cache,
            view,
        )
        .await?;
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

    /// What `build`'s Dockerfile names, resolved (when a registry may be asked).
    async fn analyse(
        &self,
        image: &PlannedImage,
        build: &PlannedBuild,
        job: &prepare::Job,
        deps: &[Dependency],
        platform: &Platform,
    ) -> bases::Analysis {
        // The args as the builder gets them: each dependency's local name first, so that an
        // arg of the config with the same name wins.
        let mut args: BTreeMap<String, String> = deps
            .iter()
            .map(|d| (d.arg.clone(), d.local_name.clone()))
            .collect();
        args.extend(
            job.build_args
                .iter()
                .map(|(name, value, _)| (name.clone(), value.clone())),
        );
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

    /// The build request of one unit.
    fn request(
        &self,
        image: &PlannedImage,
        build: &PlannedBuild,
        job: &prepare::Job,
        parts: &crate::inputs::Parts,
        deps: &[Dependency],
        absent: &[String],
    ) -> BuildRequest {
        let mut build_args: Vec<(String, String)> = Vec::new();
        // A dependency's arg first, so that an explicit build arg of the same name wins.
        for dep in deps {
            build_args.push((dep.arg.clone(), dep.local_name.clone()));
        }
        build_args.extend(
            job.build_args
                .iter()
                .map(|(name, value, _)| (name.clone(), value.clone())),
        );
        let target = self.env.target;
        if self.options.builder == Builder::BuildKit {
            // Records inline cache in the image's config for the next run's `cachefrom`.
            build_args.push(("BUILDKIT_INLINE_CACHE".into(), "1".into()));
        }
        let cache_from = if target.is_some() && !self.options.no_cache {
            self.cache_sources(image, build, absent)
                .iter()
                .map(Reference::to_string)
                .collect()
        } else {
            Vec::new()
        };
        let mut labels = job.labels.clone();
        labels.extend(prepare::inputs_labels(parts));
        // The classic builder's cache (Docker 20.10) matches steps without their platform: after
        // an arm64 build, an amd64 build of the same steps can get the arm64 image. A classic
        // build of another platform than the daemon's, or of a multi-platform image, takes no
        // cache.
        let cross = self.options.builder == Builder::Classic
            && (!image.platforms.is_empty()
                || build
                    .platform
                    .as_ref()
                    .is_some_and(|p| !p.to_string().starts_with(self.env.daemon.platform())));
        if cross {
            tracing::info!(
                "[{}] classic builder: no build cache for {} on a {} daemon",
                image.name,
                build.platform.clone().unwrap_or_default(),
                self.env.daemon.platform()
            );
        }
        BuildRequest {
            tags: build.local_tags.clone(),
            dockerfile: job.context.dockerfile_name().to_owned(),
            build_args,
            labels,
            target: image.target.clone(),
            platform: build.platform.clone(),
            builder: self.options.builder,
            no_cache: self.options.no_cache || cross,
            pull: self.options.pull,
            secrets: job.secrets.clone(),
            cache_from,
            credentials: target.map(|t| t.credentials.clone()),
        }
    }

    /// The images a build takes its cache from: the cache stages, then the last image, less
    /// those the reuse check found `absent` (a missing one costs BuildKit a failed lookup, and
    /// the classic builder the daemon's own cache). BuildKit on Docker 27 and later takes the
    /// stages alone when the registry holds one ([`reuse::stages_alone`]).
    fn cache_sources(
        &self,
        image: &PlannedImage,
        build: &PlannedBuild,
        absent: &[String],
    ) -> Vec<Reference> {
        let stages = build.cache.iter().map(|c| (&c.tag, &c.uri));
        let last = image.extra_tags.iter().zip(&image.extra_uris);
        let mut sources: Vec<Reference> = stages
            .chain(last)
            .filter(|(tag, _)| !absent.contains(tag))
            .map(|(_, uri)| uri.clone())
            .collect();
        if self.options.builder == Builder::BuildKit
            && self.env.daemon.api_at_least(reuse::STAGES_ALONE_FROM_API)
        {
            reuse::stages_alone(&mut sources, &build.cache);
        }
        sources
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

/// What `push` pushes for one unit: what `build` left.
enum Source {
    /// The local image `build` built: its id, size, and its cache stages' images.
    Local {
        id: String,
        size: u64,
        cache: Vec<(crate::plan::CacheImage, String)>,
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
                image_id, cache, ..
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
                }
            }
        };
        sources.push(source);
    }
    Ok(sources)
}

/// `push`: push what `build` left here (or retag what it reused), then finish.
async fn push_built(plan: &Plan, options: &Options, env: &Resources<'_>) -> Result<Summary, Error> {
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
    finish(plan, options, env, target, &units, &done)
        .await?
        .report(&mut summary);
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
            Source::Local { id, size, cache } => {
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

/// What the last steps of a push left.
struct Finished {
    lists: Vec<ListSummary>,
    artifacts: Vec<String>,
    /// Per unit: the URI the artifacts name for it, when it differs from its push URI.
    uris: Vec<Option<Reference>>,
}

impl Finished {
    /// Puts what was finished into the run's summary, whose rows are the units in order.
    fn report(self, summary: &mut Summary) {
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
async fn finish(
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

pub(crate) fn image_error(image: &PlannedImage, source: Error) -> Error {
    Error::Image {
        image: image.name.clone(),
        source: Box::new(source),
    }
}
