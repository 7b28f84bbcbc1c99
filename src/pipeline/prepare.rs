//! Everything that can be wrong with an image's input, found before the first build starts:
//! its build args and secrets from their sources, its labels, its context; and the inputs
//! digest that decides whether it must be built at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::Source;
use crate::context::{self, Builder, ContextSpec, SyncedContext};
use crate::error::Error;
use crate::inputs::{self, ArgValue, Inputs};
use crate::plan::{Plan, PlannedBuild, PlannedImage};
use crate::secret::Secret;

use super::{Env, Options, image_error};

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
}

/// How the context reaches the daemon.
#[derive(Debug)]
pub enum Context {
    /// Through the build's BuildKit session.
    Synced(SyncedContext),
    /// As a tar stream (the classic builder; BuildKit on a daemon reached over TLS or ssh).
    Tar(context::Prepared),
}

impl Context {
    /// The digest of the entries this context sends; reads every file once (on a blocking
    /// thread: call from `spawn_blocking`).
    pub fn digest(&self) -> Result<String, context::ContextError> {
        match self {
            Context::Synced(synced) => synced.digest(),
            Context::Tar(prepared) => prepared.digest(),
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

/// Prepares every image of the plan; the first bad input is the error.
pub fn jobs(plan: &Plan, options: &Options, env: &Env<'_>) -> Result<Vec<Job>, Error> {
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

/// The inputs digest of one build of `image` (see [`crate::inputs`]). `dependency_inputs`
/// replaces the value of each `<NAME>_IMAGE` arg ecrship sets: a dependency's local name holds
/// the run's tag, its inputs digest says what it is.
pub fn inputs_digest(
    image: &PlannedImage,
    build: &PlannedBuild,
    job: &Job,
    context_digest: &str,
    builder: Builder,
    dependency_inputs: &BTreeMap<String, String>,
) -> String {
    let platform = build.platform.as_ref().map(ToString::to_string);
    let build_args = job
        .build_args
        .iter()
        .map(|(name, value, secret)| ArgValue {
            name,
            value: dependency_inputs.get(name).map_or(value, |d| d.as_str()),
            secret: *secret,
        })
        .collect();
    Inputs {
        repository: &image.repository,
        dockerfile: &job.dockerfile,
        context: context_digest,
        build_args,
        secret_names: job.secrets.iter().map(|(name, _)| name.as_str()).collect(),
        target: image.target.as_deref(),
        platform: platform.as_deref(),
        builder,
        labels: &image.labels,
    }
    .digest()
}

/// The values of one image's build args or secrets (`kind`), from their sources. An unset
/// required variable or an unreadable file is bad input; an optional variable that is unset and,
/// in a dry-run, an SSM parameter are left out.
fn resolve_sources(
    root: &Path,
    image: &PlannedImage,
    kind: &str,
    sources: &BTreeMap<String, Source>,
    options: &Options,
    env: &Env<'_>,
) -> Result<Vec<(String, String)>, Error> {
    let bad = |message: String| image_error(image, Error::Usage(message));
    let mut values = Vec::with_capacity(sources.len());
    for (name, source) in sources {
        let value = match source {
            Source::Literal { value } => Some(value.clone()),
            Source::Env {
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
            Source::File { path } => Some(
                std::fs::read_to_string(root.join(path))
                    .map_err(|e| bad(format!("{kind} `{name}`: cannot read file `{path}`: {e}")))?,
            ),
            Source::Ssm { name: parameter } => match env.ssm.get(parameter) {
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
    env: &Env<'_>,
) -> Result<Vec<(String, String, bool)>, Error> {
    let args = resolve_sources(root, image, "build arg", &image.build_args, options, env)?;
    let mut out = Vec::with_capacity(args.len());
    for (name, value) in args {
        let from_ssm = matches!(image.build_args.get(&name), Some(Source::Ssm { .. }));
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
    env: &Env<'_>,
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

/// OCI labels on every image, then the config's own (which may override them).
fn labels(
    image: &PlannedImage,
    tag: &str,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Vec<(String, String)> {
    let mut labels = BTreeMap::new();
    labels.insert(
        "org.opencontainers.image.revision".to_owned(),
        tag.to_owned(),
    );
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
    if let Some(arn) = env("CODEBUILD_BUILD_ARN").filter(|a| !a.is_empty()) {
        labels.insert("com.amazonaws.codebuild.build-arn".to_owned(), arn);
    }
    labels.extend(image.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.into_iter().collect()
}

/// RFC 3339 UTC time, as the OCI `created` annotation wants it.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// The label that carries the inputs digest, for a build.
pub fn inputs_label(digest: &str) -> (String, String) {
    (inputs::LABEL.to_owned(), digest.to_owned())
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
