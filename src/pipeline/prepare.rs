//! Everything that can be wrong with an image's input, found before the first build starts:
//! its build args and secrets from their sources, its labels, its context; and the inputs
//! digest that decides whether it must be built at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::ValueSource;
use crate::context::{self, Builder, ContextSpec, SyncedContext};
use crate::error::Error;
use crate::inputs::{self, ArgValue, ContextDigests, Inputs, Parts};
use crate::plan::{Plan, PlannedImage};
use crate::reference::Platform;
use crate::secret::Secret;

use super::bases::Analysis;

use super::{Options, Resources, image_error};

/// One image, ready to build.
#[derive(Debug)]
pub struct Job {
    /// Build args with their values, and whether each must stay secret.
    pub build_args: Vec<(String, String, bool)>,
    pub secrets: Vec<(String, Secret)>,
    /// The per-run labels (revision, creation time, build ARN) and the user's labels.
    pub labels: Vec<(String, String)>,
    pub dockerfile: Vec<u8>,
    pub context: Context,
    /// What the context was prepared from, to prepare it again around another Dockerfile.
    pub spec: ContextSpec,
}

/// How the context reaches the daemon.
#[derive(Debug, Clone)]
pub enum Context {
    /// Through the build's BuildKit session.
    Synced(SyncedContext),
    /// As a tar stream (the classic builder; BuildKit on a daemon reached over TLS or ssh).
    Tar(context::Prepared),
}

impl Context {
    /// The digest of the entries this context sends, and the context to build from: the same,
    /// checked as it is sent against what the digest read. Reads every file once (on a
    /// blocking thread: call from `spawn_blocking`).
    pub fn digest(&self) -> Result<(ContextDigests, Context), context::ContextError> {
        match self {
            Context::Synced(synced) => {
                let (digest, snapshot) = synced.digest()?;
                let checked = synced.clone().checked_against(snapshot.into());
                Ok((digest, Context::Synced(checked)))
            }
            Context::Tar(prepared) => {
                let (digest, snapshot) = prepared.digest()?;
                let checked = prepared.clone().checked_against(snapshot.into());
                Ok((digest, Context::Tar(checked)))
            }
        }
    }

    /// The `dockerfile` parameter of the build.
    pub fn dockerfile_name(&self) -> &str {
        match self {
            Context::Synced(synced) => &synced.dockerfile_name,
            Context::Tar(prepared) => &prepared.dockerfile_name,
        }
    }
}

impl Job {
    /// The context to build from when the builder reads `dockerfile` rather than the file on
    /// disk (its images pinned or routed): the file stays as it is, and the text goes to the
    /// builder through a folder of its own, kept as long as the returned guard. Through the
    /// session, that folder is the one the Dockerfile frontend syncs the Dockerfile from (with
    /// `<Dockerfile>.dockerignore`, when there is one, beside it). In a tar, it is a Dockerfile
    /// from outside the context, as `docker build -f` sends one.
    pub fn context_for(
        &self,
        dockerfile: &str,
    ) -> Result<(Context, tempfile::TempDir), context::ContextError> {
        let write = |cause| context::ContextError::Write { cause };
        let dir = tempfile::Builder::new()
            .prefix("ecrship-dockerfile.")
            .tempdir()
            .map_err(write)?;
        let name = self
            .spec
            .dockerfile
            .file_name()
            .map_or_else(|| "Dockerfile".into(), |n| n.to_os_string());
        let path = dir.path().join(&name);
        std::fs::write(&path, dockerfile).map_err(write)?;
        let context = match &self.context {
            Context::Synced(synced) => {
                let mut own = name.clone();
                own.push(".dockerignore");
                let beside = self.spec.dockerfile.with_file_name(&own);
                if beside.is_file() {
                    std::fs::copy(&beside, dir.path().join(&own)).map_err(write)?;
                }
                let mut synced = synced.clone();
                synced.dockerfile_dir = dir.path().to_path_buf();
                Context::Synced(synced)
            }
            Context::Tar(_) => Context::Tar(context::prepare(&ContextSpec {
                dockerfile: path,
                ..self.spec.clone()
            })?),
        };
        Ok((context, dir))
    }
}

/// Prepares every image of the plan; the first bad input is the error.
pub fn jobs(plan: &Plan, options: &Options, env: &Resources<'_>) -> Result<Vec<Job>, Error> {
    let leave_out = outputs(env.root, plan);
    plan.images
        .iter()
        .map(|image| {
            let build_args = build_args(env.root, image, options, env)?;
            let secrets = secrets(env.root, image, options, env)?;
            let spec = ContextSpec {
                context: env.root.join(&image.context),
                dockerfile: env.root.join(&image.dockerfile),
                builder: options.builder,
                leave_out: leave_out.clone(),
            };
            let dockerfile = std::fs::read(&spec.dockerfile).map_err(|cause| {
                image_error(
                    image,
                    context::ContextError::Read {
                        path: PathBuf::from(&image.dockerfile),
                        cause,
                    }
                    .into(),
                )
            })?;
            let context = if options.builder == Builder::BuildKit && env.daemon.serves_sessions() {
                Context::Synced(
                    context::prepare_sync(&spec).map_err(|e| image_error(image, e.into()))?,
                )
            } else {
                Context::Tar(context::prepare(&spec).map_err(|e| image_error(image, e.into()))?)
            };
            Ok(Job {
                labels: labels(image, &plan.tag.value, env.env),
                build_args,
                secrets,
                dockerfile,
                context,
                spec,
            })
        })
        .collect()
}

/// ecrship's own outputs, never part of a context: the artifacts and the state folder.
fn outputs(root: &Path, plan: &Plan) -> Vec<PathBuf> {
    let definitions = root.join(&plan.imagedefinitions);
    vec![
        definitions.with_file_name("imageDetail.json"),
        definitions,
        root.join(super::state::FOLDER),
    ]
}

/// An image of this config that a build depends on, as its inputs see it.
#[derive(Debug, Clone)]
pub struct DependencyInputs {
    pub name: String,
    /// The build arg it reaches the build as (`BASE_IMAGE`).
    pub arg: String,
    pub inputs: String,
}

/// The parts of the inputs digest of one build of `image` (see [`crate::inputs`]). A
/// dependency's `<NAME>_IMAGE` arg counts by the dependency's inputs digest (its local name
/// holds the run's tag, its digest says what it is), unless the config gives that arg a value of
/// its own: then that value counts, and the dependency does not.
pub fn inputs_parts(
    image: &PlannedImage,
    job: &Job,
    context: &ContextDigests,
    analysis: &Analysis,
    platform: &Platform,
    builder: Builder,
    dependencies: &[DependencyInputs],
) -> Parts {
    let configured = |arg: &str| job.build_args.iter().any(|(name, _, _)| name == arg);
    let used: Vec<&DependencyInputs> = dependencies
        .iter()
        .filter(|d| !configured(&d.arg))
        .collect();
    let mut build_args: Vec<ArgValue<'_>> = job
        .build_args
        .iter()
        .map(|(name, value, secret)| ArgValue {
            name,
            value,
            secret: *secret,
        })
        .collect();
    build_args.extend(used.iter().map(|d| ArgValue {
        name: &d.arg,
        value: &d.inputs,
        secret: false,
    }));
    let dependencies: BTreeMap<String, String> = used
        .iter()
        .map(|d| (d.name.clone(), d.inputs.clone()))
        .collect();
    let platform = platform.to_string();
    Inputs {
        repository: &image.repository,
        dockerfile: &analysis.canonical,
        context,
        build_args,
        secret_names: job.secrets.iter().map(|(name, _)| name.as_str()).collect(),
        target: image.target.as_deref(),
        platform: &platform,
        builder,
        labels: &image.labels,
        bases: &analysis.bases,
        dependencies: &dependencies,
    }
    .parts()
}

/// The values of one image's build args or secrets (`kind`), from their sources. An unset
/// required variable or an unreadable file is bad input; an optional variable that is unset and,
/// in a dry-run, an SSM parameter are left out.
fn resolve_sources(
    root: &Path,
    image: &PlannedImage,
    kind: &str,
    sources: &BTreeMap<String, ValueSource>,
    options: &Options,
    env: &Resources<'_>,
) -> Result<Vec<(String, String)>, Error> {
    let bad = |message: String| image_error(image, Error::Usage(message));
    let mut values = Vec::with_capacity(sources.len());
    for (name, source) in sources {
        let value = match source {
            ValueSource::Literal { value } => Some(value.clone()),
            ValueSource::Env {
                name: var,
                optional,
            } => match (env.env)(var) {
                Some(value) => Some(value),
                None if *optional => None,
                None => {
                    return Err(bad(format!(
                        "{kind} `{name}`: environment variable `{var}` is not set"
                    )));
                }
            },
            ValueSource::File { path } => Some(
                std::fs::read_to_string(root.join(path))
                    .map_err(|e| bad(format!("{kind} `{name}`: cannot read file `{path}`: {e}")))?,
            ),
            ValueSource::Ssm { name: parameter } => match env.ssm.get(parameter) {
                Some(secret) => Some(secret.expose().to_owned()),
                None if !options.dry_run => {
                    let message =
                        format!("{kind} `{name}`: SSM parameter `{parameter}` was not fetched");
                    return Err(image_error(image, Error::Failed(message)));
                }
                None => {
                    tracing::warn!(
                        "[{}] dry-run: {kind} `{name}` (ssm {parameter}) is left unset",
                        image.name
                    );
                    None
                }
            },
        };
        if let Some(value) = value {
            values.push((name.clone(), value));
        }
    }
    Ok(values)
}

/// Build args, each marked secret when it comes from SSM or its name looks secret; one warning
/// for each of those, since build args are stored in the image history. The `<NAME>_IMAGE` args
/// of the image's dependencies are added by the pipeline, unless given here.
fn build_args(
    root: &Path,
    image: &PlannedImage,
    options: &Options,
    env: &Resources<'_>,
) -> Result<Vec<(String, String, bool)>, Error> {
    let args = resolve_sources(root, image, "build arg", &image.build_args, options, env)?;
    let mut out = Vec::with_capacity(args.len());
    for (name, value) in args {
        let from_ssm = matches!(image.build_args.get(&name), Some(ValueSource::Ssm { .. }));
        let secret = from_ssm || crate::secret::looks_secret(&name);
        if secret {
            crate::secret::register(&value);
            tracing::warn!(
                "[{}] build arg `{name}` {} is stored in the image history, readable by anyone who can pull the image; pass it in [image.secrets] as a BuildKit secret mount instead",
                image.name,
                if from_ssm {
                    "comes from SSM and"
                } else {
                    "looks secret and"
                }
            );
        }
        out.push((name, value, secret));
    }
    Ok(out)
}

/// Secrets for `RUN --mount=type=secret,id=NAME`: BuildKit only, never build args.
fn secrets(
    root: &Path,
    image: &PlannedImage,
    options: &Options,
    env: &Resources<'_>,
) -> Result<Vec<(String, Secret)>, Error> {
    if !image.secrets.is_empty() && options.builder == Builder::Classic {
        let ids: Vec<&str> = image.secrets.keys().map(String::as_str).collect();
        return Err(image_error(
            image,
            Error::Usage(format!(
                "secrets {} need BuildKit (RUN --mount=type=secret); the classic builder cannot mount them: use builder = \"buildkit\"",
                ids.join(", ")
            )),
        ));
    }
    let values = resolve_sources(root, image, "secret", &image.secrets, options, env)?;
    Ok(values
        .into_iter()
        .map(|(id, value)| (id, Secret::new(value)))
        .collect())
}

/// The labels that say which run made an image: the revision (the tag) and, inside CodeBuild,
/// the build's ARN. A reused image takes these, and keeps the rest.
pub fn run_labels(
    tag: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Vec<(String, String)> {
    let mut labels = vec![(
        "org.opencontainers.image.revision".to_owned(),
        tag.to_owned(),
    )];
    if let Some(arn) = env("CODEBUILD_BUILD_ARN").filter(|a| !a.is_empty()) {
        labels.push(("com.amazonaws.codebuild.build-arn".to_owned(), arn));
    }
    labels
}

/// OCI labels on every image, then the config's own (which may override them).
fn labels(
    image: &PlannedImage,
    tag: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Vec<(String, String)> {
    let mut labels: BTreeMap<String, String> = run_labels(tag, env).into_iter().collect();
    // SOURCE_DATE_EPOCH (seconds) gives reproducible builds a fixed creation time.
    let created = env("SOURCE_DATE_EPOCH")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or_else(SystemTime::now, |secs| {
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
        });
    labels.insert(
        "org.opencontainers.image.created".to_owned(),
        rfc3339(created),
    );
    labels.extend(image.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.into_iter().collect()
}

/// RFC 3339 UTC time to the second, as the OCI `created` annotation wants it.
pub fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The labels that carry the inputs digest and its parts, for a build.
pub fn inputs_labels(parts: &Parts) -> [(String, String); 2] {
    [
        (inputs::LABEL.to_owned(), parts.digest()),
        (inputs::PARTS_LABEL.to_owned(), parts.to_label()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        let at = |secs| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_798_761_599), "2026-12-31T23:59:59Z");
    }
}
