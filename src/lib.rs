//! ecrship: build the images of an ECS task, push them to Amazon ECR and write the deploy artifacts.
//!
//! Data flows one way: config → tag → plan → build → push → artifacts.

pub mod artifacts;
pub mod aws;
pub mod cli;
pub mod config;
pub mod context;
pub mod docker;
pub mod error;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod secret;
pub mod source;

pub mod tag;
pub mod view;

use cli::{Cli, Command};
use config::Config;
pub use error::Error;
use output::Printer;
use plan::{Plan, PlanReport, Registry, RegistrySource};

/// The version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ECRSHIP_COMMIT"), ")");

/// Runs one command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    let printer = Printer::new(&cli.global);
    printer.init_logging();
    let root = cli.global.directory.as_path();
    let env = |name: &str| std::env::var(name).ok();
    match cli.command {
        Command::Tag => {
            // Only `[tag]` matters here: no Dockerfile needs to exist.
            let config = Config::load(root, cli.global.config.as_deref())?;
            let tag = tag::resolve(root, &config.tag, env)?;
            tracing::debug!("tag `{}` from {}", tag.value, tag.source);
            printer.result(&TagReport(&tag))
        }
        Command::Plan { images } => {
            let (_, plan) = load_plan(&cli.global, &images)?;
            printer.result(&PlanReport::new(&plan))
        }
        Command::Policy {
            source: true,
            target,
            ..
        } => {
            let config = Config::load(root, cli.global.config.as_deref())?;
            let (bucket, key) = source::target::resolve(
                target.bucket.as_deref(),
                target.key.as_deref(),
                &config.source,
                env,
            )?;
            let target = source::target::require(bucket, key, &config.origin)?;
            let scope = policy::resolve_scope(None, env);
            let policy = policy::source_policy(&target, scope.partition);
            for note in &policy.notes {
                tracing::warn!("{note}");
            }
            printer.result(&policy.document)
        }
        Command::Policy {
            create_repositories,
            ..
        } => {
            let config = Config::load(root, cli.global.config.as_deref())?;
            let registry = cli
                .global
                .registry
                .as_deref()
                .or(config.registry.as_deref());
            let scope = policy::resolve_scope(registry, env);
            let policy = policy::policy(&config, &scope, create_repositories);
            for note in &policy.notes {
                tracing::warn!("{note}");
            }
            printer.result(&policy.document)
        }
        Command::Build {
            images,
            build,
            dry_run,
        } => {
            let steps = Steps {
                build: Some(&build),
                push: None,
                dry_run,
            };
            printer.result(&steps.run(&cli.global, &images)?)
        }
        Command::Push { images, push } => {
            let steps = Steps {
                build: None,
                push: Some(&push),
                dry_run: false,
            };
            printer.result(&steps.run(&cli.global, &images)?)
        }
        Command::Source {
            target,
            out,
            dry_run,
        } => {
            let config = Config::load(root, cli.global.config.as_deref())?;
            let request = source::Request {
                bucket: target.bucket.as_deref(),
                key: target.key.as_deref(),
                out: out.as_deref(),
                dry_run,
            };
            printer.result(&source::run(root, &config, &request, &env)?)
        }
        Command::Release {
            images,
            build,
            push,
            dry_run,
        } => {
            let push = (!dry_run).then_some(&push);
            let steps = Steps {
                build: Some(&build),
                push,
                dry_run,
            };
            printer.result(&steps.run(&cli.global, &images)?)
        }
    }
}

/// Which steps a command runs: build, push, or both; a dry-run calls no AWS API.
struct Steps<'a> {
    build: Option<&'a cli::BuildFlags>,
    push: Option<&'a cli::PushFlags>,
    dry_run: bool,
}

impl Steps<'_> {
    fn run(&self, global: &cli::Global, names: &[String]) -> Result<pipeline::Summary, Error> {
        let (config, plan) = load_plan(global, names)?;
        let root = global.directory.as_path();
        if self.push.is_some()
            && std::env::var("CODEBUILD_BUILD_SUCCEEDING").is_ok_and(|v| v.trim() == "0")
        {
            return Err(Error::Failed(
                "the build phase failed (CODEBUILD_BUILD_SUCCEEDING=0): nothing was pushed and no artifact was written, \
                 so the last good deploy stays in place"
                    .into(),
            ));
        }
        // The artifacts are written last, after the pushes: a folder that cannot take them
        // must fail the run before anything is built or pushed.
        if self.push.is_some() || self.dry_run {
            artifacts::check_writable(&root.join(&plan.imagedefinitions))?;
        }
        let env = |name: &str| std::env::var(name).ok();
        let view = view::Plain;
        block_on(async {
            let daemon = docker::Daemon::connect().await?;
            let ssm_names = if self.build.is_some() {
                plan.ssm_parameters()
            } else {
                Default::default()
            };
            let aws = if self.dry_run || (self.push.is_none() && ssm_names.is_empty()) {
                None
            } else {
                Some(aws::load().await?)
            };
            let mut summary = pipeline::Summary::new(&plan);
            if let Some(flags) = self.build {
                let ssm = match &aws {
                    Some(aws) => aws::ssm::parameters(aws, &ssm_names).await?,
                    None => Default::default(),
                };
                let options = pipeline::BuildOptions {
                    jobs: flags
                        .jobs
                        .map(usize::from)
                        .or(config.jobs)
                        .unwrap_or(plan.images.len()),
                    builder: flags.builder.unwrap_or(config.builder),
                    no_cache: flags.no_cache,
                    pull: flags.pull,
                    aws: aws.is_some(),
                    ssm,
                };
                let built = pipeline::build(&daemon, root, &plan, &options, &env, &view).await?;
                summary = summary.with_build(&built);
            }
            let Some(flags) = self.push else {
                if !self.dry_run {
                    return Ok(summary);
                }
                let uris: Vec<String> = plan.images.iter().map(|i| i.uri.clone()).collect();
                let written = pipeline::write_artifacts(root, &plan, &uris)?;
                return Ok(summary.with_artifacts(written));
            };
            let aws = aws
                .as_ref()
                .ok_or_else(|| Error::Failed("internal: push without AWS".into()))?;
            let login = aws::ecr::login(aws).await?;
            let plan = match plan.registry.source {
                RegistrySource::Flag | RegistrySource::Config => plan,
                _ => plan.with_registry(Registry {
                    host: login.host.clone(),
                    source: RegistrySource::Ecr,
                }),
            };
            if flags.create_repositories {
                let repositories: Vec<&str> =
                    plan.images.iter().map(|i| i.repository.as_str()).collect();
                aws::ecr::create_repositories(aws, &repositories).await?;
            }
            let credentials = docker::Credentials {
                server: plan.registry.host.clone(),
                ..login.credentials
            };
            let jobs = config.jobs.unwrap_or(plan.images.len());
            // Only ECR can tell what an immutable tag holds; another registry has no immutable tags.
            let is_ecr = plan.registry.source == RegistrySource::Ecr
                || plan::ecr_registry(&plan.registry.host).is_some();
            let ecr = is_ecr.then_some(aws);
            let pushed = pipeline::push(
                &daemon,
                &plan,
                &credentials,
                &pipeline::PushOptions {
                    jobs,
                    ecr,
                    view: &view,
                },
            )
            .await?;
            let uris: Vec<String> = plan
                .images
                .iter()
                .zip(&pushed)
                .map(|(image, p)| {
                    if flags.pin_digest {
                        pipeline::pinned_uri(image, &p.digest)
                    } else {
                        image.uri.clone()
                    }
                })
                .collect();
            let written = pipeline::write_artifacts(root, &plan, &uris)?;
            Ok(summary.with_push(&pushed, &uris).with_artifacts(written))
        })
    }
}

/// Runs the async part of a command on a runtime made for it, and ends it early on SIGINT or
/// SIGTERM: dropping the work cancels the builds and pushes, and no artifact is written.
fn block_on<T>(work: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(async {
        tokio::select! {
            result = work => result,
            interrupted = signals() => Err(interrupted),
        }
    });
    // Work still in flight (a context walker blocked on a full channel, a BuildKit session)
    // must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

async fn signals() -> Error {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Error::Interrupted { name: "SIGINT", code: 130 },
        _ = term.recv() => Error::Interrupted { name: "SIGTERM", code: 143 },
    }
}

/// Loads the config, resolves the tag and the registry, and plans the selected images.
pub fn load_plan(global: &cli::Global, names: &[String]) -> Result<(Config, Plan), Error> {
    let root = global.directory.as_path();
    let config = Config::load(root, global.config.as_deref())?;
    let images = config.select(names).map_err(Error::Usage)?;
    config.check_paths(root)?;
    let env = |name: &str| std::env::var(name).ok();
    let tag = tag::resolve(root, &config.tag, env)?;
    let registry = Registry::for_plan(global.registry.as_deref(), config.registry.as_deref(), env);
    if registry.source == plan::RegistrySource::Placeholder {
        tracing::warn!(
            "no registry known: image URIs use the placeholder `{}` ({})",
            registry.host,
            registry.source
        );
    }
    let plan = Plan::new(&config, &images, tag, registry);
    Ok((config, plan))
}

/// `ecrship tag`'s result: the tag alone, or with its source at `-v`.
struct TagReport<'a>(&'a tag::Tag);

impl std::fmt::Display for TagReport<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.0.value)
    }
}

impl serde::Serialize for TagReport<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Prints the error once, on stderr, and returns the exit code.
pub fn report(error: &Error) -> u8 {
    output::print_error(error);
    error.exit_code()
}

/// An environment for unit tests: the given variables and nothing else.
#[cfg(test)]
pub(crate) mod test_env {
    pub fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }
}
