//! The commands: one file each, and [`execute`], which matches every command line to one.
//!
//! A command reads what it needs (the config, the tag, the plan: [`load_plan`]), connects what
//! it reaches (the daemon, AWS, ECR's login, the registry), hands the work to the layers below
//! (`pipeline`, `source`, `deploy`), and returns one result, which [`execute`] prints. What a
//! command may refuse is refused before anything is built, pushed or written.
//!
//! - `tag`: the resolved tag; `plan`: what would be built and pushed; `policy`: the IAM
//!   policy; all without a daemon or AWS.
//! - `release`: `build`, `push` and `release`, the steps of a run.
//! - `manifest`: the manifest lists of a batch build, from the registry alone.
//! - `source`: the source zip and its upload.
//! - `verify`: the deploy check alone; `preflight`: the same check before a push.

mod manifest;
mod plan;
mod policy;
mod preflight;
mod release;
mod source;
mod tag;
mod verify;

use crate::cli::{Cli, Command, Global};
use crate::config::Config;
use crate::error::Error;
use crate::output::Printer;
use crate::plan::{Plan, RegistryHost, RegistrySource};
use crate::reference::{self, Platform};

/// Runs one command line, printing its result with `printer`.
pub fn execute(cli: Cli, printer: &Printer) -> Result<(), Error> {
    let global = &cli.global;
    match cli.command {
        Command::Tag => printer.result(&tag::run(global, printer)?),
        Command::Plan { images } => plan::run(global, &images, printer),
        Command::Policy {
            source,
            object,
            create_repositories,
        } => printer.result(&policy::run(global, source, &object, create_repositories)?),
        Command::Verify => printer.result(&verify::run(global)?),
        Command::Source {
            object,
            out,
            dry_run,
        } => printer.result(&source::run(global, &object, out.as_deref(), dry_run)?),
        Command::Build {
            images,
            build,
            dry_run,
        } => printer.result(&release::build(global, &images, &build, dry_run)?),
        Command::Push {
            images,
            push,
            dry_run,
        } => printer.result(&release::push(global, &images, &push, dry_run)?),
        Command::Release {
            images,
            build,
            push,
            dry_run,
        } => printer.result(&release::release(global, &images, &build, &push, dry_run)?),
        Command::Manifest { images, push } => {
            printer.result(&manifest::run(global, &images, &push)?)
        }
    }
}

/// The environment, as every command reads it.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads the config, resolves the tag and the registry, and plans the selected images.
pub fn load_plan(global: &Global, names: &[String]) -> Result<(Config, Plan), Error> {
    let root = global.directory.as_path();
    let config = Config::load(root, global.config.as_deref())?;
    let images = config.select(names).map_err(Error::Usage)?;
    config.check_paths(root)?;
    let tag = crate::tag::resolve(root, &config.tag, env)?;
    if let Some(flag) = global.registry.as_deref().filter(|r| !r.is_empty())
        && let Some(reason) = reference::registry_violation(flag)
    {
        return Err(Error::Usage(format!(
            "--registry / ECRSHIP_REGISTRY `{flag}` {reason}"
        )));
    }
    let registry =
        RegistryHost::for_plan(global.registry.as_deref(), config.registry.as_deref(), env);
    if registry.source == RegistrySource::Placeholder {
        tracing::warn!(
            "no registry known: image URIs use the placeholder `{}`; set AWS_ACCOUNT_ID and AWS_REGION, `registry` in ecrship.toml, or ECRSHIP_REGISTRY",
            registry.host
        );
    }
    let only_platform = match global.platform.as_deref() {
        Some(platform) => Some(Platform::parse(platform).map_err(|e| {
            Error::Usage(format!(
                "--platform / ECRSHIP_PLATFORM `{platform}` {}",
                e.reason()
            ))
        })?),
        None => None,
    };
    let mut plan = Plan::new(&config, &images, tag, registry, only_platform.as_ref())
        .map_err(|e| Error::Usage(e.to_string()))?;
    plan.mirrors = mirrors(global, std::mem::take(&mut plan.mirrors))?;
    Ok((config, plan))
}

/// The config's `[mirror]`, with `--mirror` / `ECRSHIP_MIRROR` over it.
pub fn mirrors(
    global: &Global,
    config: crate::config::Mirrors,
) -> Result<crate::config::Mirrors, Error> {
    match global.mirror.as_deref().filter(|m| !m.trim().is_empty()) {
        Some(flag) => {
            let over = crate::config::Mirrors::from_flag(flag)
                .map_err(|e| Error::Usage(format!("--mirror / ECRSHIP_MIRROR {e}")))?;
            Ok(config.overridden_by(over))
        }
        None => Ok(config),
    }
}
