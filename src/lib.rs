//! ecrship: build the images of an ECS task, push them to Amazon ECR and write the deploy artifacts.
//!
//! Data flows one way: config → tag → plan → build → push → artifacts.

pub mod artifacts;
pub mod aws;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod deploy;
pub mod docker;
pub mod dockerfile;
pub mod error;
pub mod inputs;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod preflight;
pub mod reference;
pub mod registry;
pub mod retry;
pub mod secret;
pub mod source;

pub mod tag;
pub mod view;

use cli::{Cli, Command};
use config::Config;
pub use error::Error;
use output::Printer;
use plan::{Plan, PlanReport, Registry};

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
        Command::Verify => {
            let config = Config::load(root, cli.global.config.as_deref())?;
            printer.result(&preflight::verify(root, &config)?)
        }
        Command::Build {
            images,
            build,
            dry_run,
        } => {
            let request = commands::Request {
                steps: pipeline::Steps::Build,
                build: Some(&build),
                push: None,
                dry_run,
            };
            printer.result(&run_steps(&cli.global, &images, &request)?)
        }
        Command::Push {
            images,
            push,
            dry_run,
        } => {
            let request = commands::Request {
                steps: pipeline::Steps::Push,
                build: None,
                push: Some(&push),
                dry_run,
            };
            printer.result(&run_steps(&cli.global, &images, &request)?)
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
            let request = commands::Request {
                steps: pipeline::Steps::Release,
                build: Some(&build),
                push: Some(&push),
                dry_run,
            };
            printer.result(&run_steps(&cli.global, &images, &request)?)
        }
        Command::Manifest { images, push } => {
            let summary = block_on(commands::manifest(&cli.global, &images, &push))?;
            printer.result(&summary)
        }
    }
}

/// `build`, `push` or `release`, shown on stderr as `--progress` says.
fn run_steps(
    global: &cli::Global,
    names: &[String],
    request: &commands::Request<'_>,
) -> Result<pipeline::Summary, Error> {
    let view = |labels: Vec<String>| {
        view::choose(
            global.progress,
            global.color,
            global.quiet,
            labels.iter().map(String::as_str),
        )
    };
    block_on(commands::steps(global, names, request, view))
}

/// Runs the async part of a command on a runtime made for it, and ends it early on SIGINT or
/// SIGTERM: dropping the work cancels the builds and pushes, and no artifact is written.
pub(crate) fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
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
    if let Some(flag) = global.registry.as_deref().filter(|r| !r.is_empty())
        && let Some(reason) = reference::registry_violation(flag)
    {
        return Err(Error::Usage(format!(
            "--registry / ECRSHIP_REGISTRY `{flag}` {reason}"
        )));
    }
    let registry = Registry::for_plan(global.registry.as_deref(), config.registry.as_deref(), env);
    if registry.source == plan::RegistrySource::Placeholder {
        tracing::warn!(
            "no registry known: image URIs use the placeholder `{}`; set AWS_ACCOUNT_ID and AWS_REGION, `registry` in ecrship.toml, or ECRSHIP_REGISTRY",
            registry.host
        );
    }
    let only_platform = match global.platform.as_deref() {
        Some(platform) => Some(reference::Platform::parse(platform).map_err(|e| {
            Error::Usage(format!(
                "--platform / ECRSHIP_PLATFORM `{platform}` {}",
                e.reason()
            ))
        })?),
        None => None,
    };
    let plan = Plan::new(&config, &images, tag, registry, only_platform.as_ref())
        .map_err(|e| Error::Usage(e.to_string()))?;
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
