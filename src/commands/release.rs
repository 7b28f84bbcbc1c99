//! `ecrship build`, `push` and `release`: the steps of a run. Each loads the plan, connects
//! what it needs (the daemon, AWS, ECR's login, the registry) and hands them to the pipeline;
//! what may be refused (a failed build phase, an artifact folder that cannot take the files,
//! the deploy preflight, a missing SSM parameter) is refused before anything is built or
//! pushed.

use std::collections::BTreeMap;

use crate::cli::{self, Global};
use crate::config::{self, Config};
use crate::docker::{self, Daemon};
use crate::error::Error;
use crate::pipeline::{self, Destination, Options, Resources, Steps, Summary};
use crate::plan::{self, Plan, RegistryHost, RegistrySource};
use crate::registry::Registry;
use crate::view::View;
use crate::{artifacts, aws};

use super::{load_plan, preflight};

/// `ecrship build`.
pub fn build(
    global: &Global,
    images: &[String],
    build: &cli::BuildFlags,
    dry_run: bool,
) -> Result<Summary, Error> {
    let request = Request {
        steps: Steps::Build,
        build: Some(build),
        push: None,
        dry_run,
    };
    run(global, images, &request)
}

/// `ecrship push`.
pub fn push(
    global: &Global,
    images: &[String],
    push: &cli::PushFlags,
    dry_run: bool,
) -> Result<Summary, Error> {
    let request = Request {
        steps: Steps::Push,
        build: None,
        push: Some(push),
        dry_run,
    };
    run(global, images, &request)
}

/// `ecrship release`.
pub fn release(
    global: &Global,
    images: &[String],
    build: &cli::BuildFlags,
    push: &cli::PushFlags,
    dry_run: bool,
) -> Result<Summary, Error> {
    let request = Request {
        steps: Steps::Release,
        build: Some(build),
        push: Some(push),
        dry_run,
    };
    run(global, images, &request)
}

/// The steps of `request`, shown on stderr as `--progress` says.
fn run(global: &Global, names: &[String], request: &Request<'_>) -> Result<Summary, Error> {
    let view = |labels: Vec<String>| {
        crate::view::choose(
            global.progress,
            global.color,
            global.quiet,
            labels.iter().map(String::as_str),
        )
    };
    crate::runtime::block_on(steps(global, names, request, view))
}

/// What one of `build`, `push`, `release` was asked to do.
pub struct Request<'a> {
    pub steps: Steps,
    pub build: Option<&'a cli::BuildFlags>,
    pub push: Option<&'a cli::PushFlags>,
    pub dry_run: bool,
}

impl Request<'_> {
    fn pushing(&self) -> bool {
        self.steps != Steps::Build && !self.dry_run
    }
}

/// Runs `build`, `push` or `release` for the images named (all when none); `view` makes what
/// shows the run, given the names of its builds in order.
async fn steps(
    global: &Global,
    names: &[String],
    request: &Request<'_>,
    view: impl FnOnce(Vec<String>) -> Box<dyn View>,
) -> Result<Summary, Error> {
    let (config, plan) = load_plan(global, names)?;
    let root = global.directory.as_path();
    if request.steps == Steps::Push && request.dry_run {
        let daemon = Daemon::connect().await?;
        return pipeline::push_dry_run(root, &plan, &daemon).await;
    }
    if request.pushing() {
        refuse_after_failed_build()?;
    }
    // The artifacts are written last, after the pushes: a folder that cannot take them must
    // fail the run before anything is built or pushed.
    if (request.pushing() || request.dry_run) && plan.only_platform.is_none() {
        artifacts::check_writable(&root.join(&plan.imagedefinitions))?;
    }
    let daemon = Daemon::connect().await?;
    let building = request.steps != Steps::Push;
    // `push` saves the cache mounts `build` kept, with the same args and secrets.
    let keeps_mounts = plan.images.iter().any(|i| !i.cache_mounts.is_off());
    let ssm_names = if building || (keeps_mounts && !request.dry_run) {
        plan.ssm_parameters()
    } else {
        Default::default()
    };
    // AWS: for SSM parameters, for the push, and for the reuse check of `build`.
    let (aws, no_aws) = if request.dry_run {
        (None, None)
    } else {
        match aws::load().await {
            Ok(aws) => (Some(aws), None),
            Err(e) if !request.pushing() && ssm_names.is_empty() => (None, Some(format!("{e}"))),
            Err(e) => return Err(e.into()),
        }
    };
    // The deploy preflight ([deploy]): before anything is built or pushed.
    match &aws {
        Some(aws) if request.pushing() => preflight::before_push(aws, &config, &plan).await?,
        _ if request.dry_run && config.deploy.is_some() => {
            tracing::info!("--dry-run calls no AWS API: the deploy preflight is skipped")
        }
        _ => {}
    }
    let ssm = match &aws {
        Some(aws) => aws::ssm::parameters(aws, &ssm_names)
            .await
            .map_err(|(name, e)| ssm_error(&config, &plan, &name, e))?,
        None => BTreeMap::new(),
    };
    let (plan, target, no_target) = match &aws {
        None => (
            plan,
            None,
            no_aws.map(|why| {
                format!(
                    "the registry is not asked for images to reuse ({why}); every image is built"
                )
            }),
        ),
        Some(aws) => match connect_registry(aws, plan.clone(), request).await {
            Ok((plan, target)) => (plan, Some(target), None),
            Err(e) if !request.pushing() => (
                plan,
                None,
                Some(format!(
                    "the registry is not asked for images to reuse ({e}); every image is built"
                )),
            ),
            Err(e) => return Err(e),
        },
    };
    if let (Some(aws), Some(target)) = (&aws, &target) {
        pull_through_rules(aws, &plan, target).await?;
    }
    let options = options(&config, &plan, request);
    let view = view(pipeline::labels(&plan));
    let env = |name: &str| std::env::var(name).ok();
    let env = Resources {
        root,
        daemon: &daemon,
        target: target.as_ref(),
        no_target,
        ssm: &ssm,
        env: &env,
        view: view.as_ref(),
    };
    pipeline::run(&plan, &options, &env).await
}

/// Logs in to ECR and aims the plan at the registry: ECR's own, unless `--registry` or the
/// config names another (then with ECR's credentials).
pub(super) async fn connect_registry(
    aws: &aws_config::SdkConfig,
    plan: Plan,
    request: &Request<'_>,
) -> Result<(Plan, Destination), Error> {
    let login = aws::ecr::login(aws).await?;
    let plan = match plan.registry.source {
        RegistrySource::Flag | RegistrySource::Config => plan,
        _ => plan
            .with_registry(RegistryHost {
                host: login.host.clone(),
                source: RegistrySource::Ecr,
            })
            .map_err(|e| {
                Error::Failed(format!(
                    "ECR's authorization token names the registry `{}`: {e}",
                    login.host
                ))
            })?,
    };
    if request.pushing() && request.push.is_some_and(|p| p.create_repositories) {
        let repositories: Vec<&str> = plan.images.iter().map(|i| i.repository.as_str()).collect();
        aws::ecr::create_repositories(aws, &repositories).await?;
    }
    let credentials = docker::Credentials {
        server: plan.registry.host.clone(),
        ..login.credentials
    };
    // Only ECR can tell what an immutable tag holds; another registry has no immutable tags.
    let is_ecr = plan.registry.source == RegistrySource::Ecr
        || plan::ecr_registry(&plan.registry.host).is_some();
    let target = Destination {
        registry: Registry::new(&plan.registry.host, Some(&credentials)),
        credentials,
        ecr: is_ecr.then(|| aws.clone()),
    };
    Ok((plan, target))
}

pub(super) fn options(config: &Config, plan: &Plan, request: &Request<'_>) -> Options {
    let build = request.build;
    Options {
        steps: request.steps,
        dry_run: request.dry_run,
        jobs: build
            .and_then(|b| b.jobs.map(usize::from))
            .or(config.jobs)
            .unwrap_or_else(|| {
                plan.images
                    .iter()
                    .map(|i| i.builds.len())
                    .sum::<usize>()
                    .max(1)
            }),
        builder: build.and_then(|b| b.builder).unwrap_or(config.builder),
        no_cache: build.is_some_and(|b| b.no_cache),
        pull: build.is_some_and(|b| b.pull),
        rebuild: build.is_some_and(|b| b.rebuild),
        pin_digest: request.push.is_some_and(|p| p.pin_digest),
        max_age: config.reuse_max_age,
    }
}

/// Each `[mirror]` through an ECR pull-through cache needs its rule in the push registry: a
/// mirror without one stops the run before anything is built, saying how to create it. A role
/// that may not read the rules gets a warning, and the run goes on.
async fn pull_through_rules(
    aws: &aws_config::SdkConfig,
    plan: &Plan,
    target: &Destination,
) -> Result<(), Error> {
    let through: Vec<&config::Mirror> = plan
        .mirrors
        .0
        .iter()
        .filter(|m| matches!(m.via, config::Via::PullThrough(_)))
        .collect();
    if through.is_empty() || target.ecr.is_none() {
        return Ok(());
    }
    let host = target.registry.host();
    let account = plan::ecr_registry(host).map(|(account, _)| account);
    let rules = match aws::ecr::pull_through_rules(aws, account).await {
        Ok(rules) => rules,
        Err(e) => {
            tracing::warn!("cannot check the pull-through cache rules of [mirror]: {e}");
            return Ok(());
        }
    };
    for mirror in through {
        if let Some(missing) = config::mirror::missing_rule(mirror, &rules, host) {
            return Err(Error::Failed(missing));
        }
    }
    Ok(())
}

/// An SSM parameter that could not be fetched, said of the first image, build arg or secret
/// that reads it, with its line in the config.
fn ssm_error(config: &Config, plan: &Plan, parameter: &str, error: aws::AwsError) -> Error {
    let reads = |sources: &BTreeMap<String, config::ValueSource>| {
        sources
            .iter()
            .find(|(_, s)| matches!(s, config::ValueSource::Ssm { name } if name == parameter))
            .map(|(arg, _)| arg.clone())
    };
    let user = plan.images.iter().find_map(|image| {
        let configured = config.images.iter().find(|i| i.name == image.name)?;
        let lines = &configured.source_lines;
        let (kind, line, arg) = match reads(&image.build_args) {
            Some(arg) => ("build arg", lines.build_args.get(&arg).copied(), arg),
            None => {
                let arg = reads(&image.secrets)?;
                ("secret", lines.secrets.get(&arg).copied(), arg)
            }
        };
        Some((image.name.clone(), kind, line, arg))
    });
    let Some((image, kind, line, arg)) = user else {
        return error.into();
    };
    let error = match error {
        aws::AwsError::Call { call, cause, hint } => {
            let line = match (&config.origin, line) {
                (config::Origin::File(_), Some(line)) => {
                    format!(" ({} line {line})", config.origin)
                }
                _ => String::new(),
            };
            aws::AwsError::Call {
                call: format!("{kind} `{arg}`{line}: {call}"),
                cause,
                hint,
            }
        }
        other => other,
    };
    Error::Image {
        image,
        source: Box::new(error.into()),
    }
}

/// CodeBuild runs `post_build` even when `build` failed: then nothing may be pushed.
pub(super) fn refuse_after_failed_build() -> Result<(), Error> {
    if std::env::var("CODEBUILD_BUILD_SUCCEEDING").is_ok_and(|v| v.trim() == "0") {
        return Err(Error::Failed(
            "the build phase failed (CODEBUILD_BUILD_SUCCEEDING=0): nothing was pushed and no artifact was written, \
             so the last good deploy stays in place"
                .into(),
        ));
    }
    Ok(())
}
