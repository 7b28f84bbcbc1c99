//! plan → build → push → artifacts: the steps of a run, their concurrency and their summary.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Instant, SystemTime};

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use crate::artifacts;
use crate::config::Source;
use crate::context::{self, Builder, ContextSpec};
use crate::docker::{BuildRequest, Credentials, Daemon};
use crate::error::Error;
use crate::plan::{Plan, PlannedImage};
use crate::secret::Secret;
use crate::view::{State, View};

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub jobs: usize,
    pub builder: Builder,
    pub no_cache: bool,
    pub pull: bool,
    /// Whether AWS may be called (false in dry-runs): SSM-sourced values are then left unset.
    pub aws: bool,
    /// SSM parameters fetched for this run, by name.
    pub ssm: BTreeMap<String, Secret>,
}

/// What the build of one image produced.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub name: String,
    /// `<repository>:<tag>`.
    pub image: String,
    pub image_id: String,
    pub size: u64,
    pub build_seconds: f64,
}

/// Builds the plan's images, at most `jobs` at once. The first failure cancels the others.
pub async fn build(
    daemon: &Daemon,
    root: &Path,
    plan: &Plan,
    options: &BuildOptions,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    view: &dyn View,
) -> Result<Vec<Built>, Error> {
    // Everything that can be wrong with the input is found before the first build starts.
    let mut jobs = Vec::with_capacity(plan.images.len());
    for image in &plan.images {
        let build_args = build_args(root, image, options, env)?;
        let secrets = secrets(root, image, options, env)?;
        let spec = ContextSpec {
            context: root.join(&image.context),
            dockerfile: root.join(&image.dockerfile),
            builder: options.builder,
        };
        let prepared = context::prepare(&spec).map_err(|e| image_error(image, e.into()))?;
        let request = BuildRequest {
            tags: image.local_tags.clone(),
            dockerfile: prepared.dockerfile_name.clone(),
            build_args,
            labels: labels(image, &plan.tag.value, env),
            target: image.target.clone(),
            platform: image.platform.clone(),
            builder: options.builder,
            no_cache: options.no_cache,
            pull: options.pull,
            secrets,
        };
        jobs.push((image, prepared, request));
    }

    let mut built: Vec<(usize, Built)> = stream::iter(jobs.into_iter().enumerate())
        .map(|(index, (image, prepared, request))| async move {
            let result = build_one(daemon, image, prepared, &request, view).await;
            view.state(
                &image.name,
                if result.is_ok() {
                    State::Done
                } else {
                    State::Failed
                },
            );
            result.map(|done| (index, done))
        })
        .buffer_unordered(options.jobs.max(1))
        .try_collect()
        .await?;
    built.sort_by_key(|(index, _)| *index);
    Ok(built.into_iter().map(|(_, b)| b).collect())
}

/// Builds one image: streams its context to the daemon and reports its lines to `view`.
async fn build_one(
    daemon: &Daemon,
    image: &PlannedImage,
    prepared: context::Prepared,
    request: &BuildRequest,
    view: &dyn View,
) -> Result<Built, Error> {
    let started = Instant::now();
    view.state(&image.name, State::Building);
    view.line(
        &image.name,
        &format!("building {} from {}", image.local_name(), image.dockerfile),
    );
    let (body, walk) = prepared.stream();
    let mut on_line = |line: &str| view.line(&image.name, line);
    let result = daemon.build(request, body, &mut on_line).await;
    // A context that could not be read aborts the upload; its error is the real cause.
    match walk.await {
        Ok(Err(e)) => return Err(image_error(image, e.into())),
        Err(e) => {
            return Err(image_error(
                image,
                Error::Failed(format!("the context walker stopped: {e}")),
            ));
        }
        Ok(Ok(_)) => {}
    }
    let image_id = result.map_err(|e| image_error(image, Error::Docker(e)))?;
    let size = match daemon.inspect(&image_id).await {
        Ok(Some(info)) => info.size,
        _ => 0,
    };
    let done = Built {
        name: image.name.clone(),
        image: image.local_name().to_owned(),
        image_id,
        size,
        build_seconds: started.elapsed().as_secs_f64(),
    };
    view.line(
        &image.name,
        &format!(
            "built {} ({}) in {:.1}s",
            done.image,
            short_id(&done.image_id),
            done.build_seconds
        ),
    );
    Ok(done)
}

/// The values of one image's build args or secrets (`kind`), from their sources. An unset
/// required variable or an unreadable file is bad input; an optional variable that is unset and,
/// in a dry-run, an SSM parameter are left out.
fn resolve_sources(
    root: &Path,
    image: &PlannedImage,
    kind: &str,
    sources: &BTreeMap<String, Source>,
    options: &BuildOptions,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Vec<(String, String)>, Error> {
    let bad = |message: String| image_error(image, Error::Usage(message));
    let mut values = Vec::with_capacity(sources.len());
    for (name, source) in sources {
        let value = match source {
            Source::Literal { value } => Some(value.clone()),
            Source::Env {
                name: var,
                optional,
            } => match env(var) {
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
            Source::Ssm { name: parameter } => match options.ssm.get(parameter) {
                Some(secret) => Some(secret.expose().to_owned()),
                None if options.aws => {
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

/// Build args, with one warning for each that is secret (from SSM, or by its name): build args
/// are stored in the image history.
fn build_args(
    root: &Path,
    image: &PlannedImage,
    options: &BuildOptions,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Vec<(String, String)>, Error> {
    let args = resolve_sources(root, image, "build arg", &image.build_args, options, env)?;
    for (name, value) in &args {
        let from_ssm = matches!(image.build_args.get(name), Some(Source::Ssm { .. }));
        if from_ssm || crate::secret::looks_secret(name) {
            crate::secret::register(value);
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
    }
    Ok(args)
}

/// Secrets for `RUN --mount=type=secret,id=NAME`: BuildKit only, never build args.
fn secrets(
    root: &Path,
    image: &PlannedImage,
    options: &BuildOptions,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
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

fn image_error(image: &PlannedImage, source: Error) -> Error {
    Error::Image {
        image: image.name.clone(),
        source: Box::new(source),
    }
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// How to push.
#[derive(Clone)]
pub struct PushOptions<'a> {
    pub jobs: usize,
    /// Where the push's lines and states go.
    pub view: &'a dyn View,
    /// ECR, to tell an immutable tag that already holds this very image (a re-run: success)
    /// from one that holds another (a failure). `None` when the registry is not ECR's.
    pub ecr: Option<&'a aws_config::SdkConfig>,
}

/// What the push of one image produced.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    pub name: String,
    /// `sha256:...` as the registry stored it.
    pub digest: String,
    pub push_seconds: f64,
}

/// Pushes the plan's images (already built here) to the plan's registry: for each image the
/// tag first, then the extra tags. Nothing is pushed unless every image is present locally.
pub async fn push(
    daemon: &Daemon,
    plan: &Plan,
    credentials: &Credentials,
    options: &PushOptions<'_>,
) -> Result<Vec<Pushed>, Error> {
    let view = options.view;
    let mut local = Vec::with_capacity(plan.images.len());
    for image in &plan.images {
        match daemon.inspect(image.local_name()).await? {
            Some(info) => local.push((image, info.id)),
            None => {
                return Err(Error::Failed(format!(
                    "image {} is not built here; run `ecrship build` first",
                    image.local_name()
                )));
            }
        }
    }
    // Every image's own tag first; the extra tags (`latest`) move only once all of them are in,
    // so a failure never leaves `latest` on an image that the artifact does not name.
    let started = Instant::now();
    let mut pushed: Vec<(usize, Pushed)> = stream::iter(local.iter().enumerate())
        .map(|(index, (image, id))| async move {
            view.state(&image.name, State::Pushing);
            let digest = push_one(daemon, plan, credentials, options, image, id, &image.uri)
                .await
                .inspect_err(|_| view.state(&image.name, State::Failed))?;
            let done = Pushed {
                name: image.name.clone(),
                digest,
                push_seconds: started.elapsed().as_secs_f64(),
            };
            view.line(
                &image.name,
                &format!(
                    "pushed {} ({}) in {:.1}s",
                    image.uri, done.digest, done.push_seconds
                ),
            );
            Ok::<_, Error>((index, done))
        })
        .buffer_unordered(options.jobs.max(1))
        .try_collect()
        .await?;
    let extras = local
        .iter()
        .flat_map(|(image, id)| image.extra_uris.iter().map(move |uri| (*image, id, uri)));
    stream::iter(extras)
        .map(|(image, id, uri)| async move {
            push_one(daemon, plan, credentials, options, image, id, uri)
                .await
                .inspect_err(|_| view.state(&image.name, State::Failed))
        })
        .buffer_unordered(options.jobs.max(1))
        .try_collect::<Vec<String>>()
        .await?;
    for (image, _) in &local {
        view.state(&image.name, State::Done);
    }
    pushed.sort_by_key(|(index, _)| *index);
    Ok(pushed.into_iter().map(|(_, p)| p).collect())
}

/// Tags the local image `id` as `uri` and pushes it; returns the digest the registry holds.
async fn push_one(
    daemon: &Daemon,
    plan: &Plan,
    credentials: &Credentials,
    options: &PushOptions<'_>,
    image: &PlannedImage,
    id: &str,
    uri: &str,
) -> Result<String, Error> {
    let view = options.view;
    let (repo, tag) = uri.rsplit_once(':').unwrap_or((uri, "latest"));
    daemon
        .tag(id, repo, tag)
        .await
        .map_err(|e| image_error(image, e.into()))?;
    view.line(&image.name, &format!("pushing {uri}"));
    let mut on_line = |line: &str| view.line(&image.name, line);
    let mut on_bytes = |done, total| view.push_progress(&image.name, done, total);
    let pushed = daemon
        .push_reporting(repo, tag, credentials, &mut on_line, &mut on_bytes)
        .await;
    match pushed {
        Ok(digest) => Ok(digest),
        Err(e) if is_immutable_tag(&e.to_string()) => {
            already_there(options.ecr, &plan.registry.host, image, tag, id)
                .await
                .map_err(|e| image_error(image, e))
        }
        Err(e) => Err(image_error(image, e.into())),
    }
}

/// Whether a push failed because the tag exists in an immutable ECR repository.
fn is_immutable_tag(message: &str) -> bool {
    message.contains("already exists") && message.contains("immutable")
}

/// An immutable tag refused the push: success when it already holds this very image (a re-run
/// or a retry), else a failure that names the repository and the tag.
async fn already_there(
    ecr: Option<&aws_config::SdkConfig>,
    registry_host: &str,
    image: &PlannedImage,
    tag: &str,
    local_id: &str,
) -> Result<String, Error> {
    let other = |found: Option<&str>| {
        Error::Failed(format!(
            "repository `{}` is immutable and its tag `{tag}` already holds another image{}; push under a new tag (or drop `{tag}` from [tag] extra)",
            image.repository,
            found.map(|d| format!(" ({d})")).unwrap_or_default()
        ))
    };
    let Some(ecr) = ecr else {
        return Err(other(None));
    };
    let account = crate::plan::ecr_registry(registry_host).map(|(account, _)| account);
    match crate::aws::ecr::tagged_image(ecr, account, &image.repository, tag).await? {
        Some(found) if found.config_digest.as_deref() == Some(local_id) => {
            tracing::info!(
                "[{}] {}:{tag} already holds this image ({})",
                image.name,
                image.repository,
                found.digest
            );
            Ok(found.digest)
        }
        Some(found) => Err(other(Some(&found.digest))),
        None => Err(other(None)),
    }
}

/// `<registry>/<repository>@sha256:...`: the image by digest, for `--pin-digest`.
pub fn pinned_uri(image: &PlannedImage, digest: &str) -> String {
    let base = image
        .uri
        .rsplit_once(':')
        .map_or(image.uri.as_str(), |(b, _)| b);
    format!("{base}@{digest}")
}

/// Writes `imagedefinitions.json` (and `imageDetail.json` when configured) under `root`.
pub fn write_artifacts(root: &Path, plan: &Plan, uris: &[String]) -> Result<Vec<String>, Error> {
    let text = artifacts::image_definitions(
        plan.images
            .iter()
            .zip(uris)
            .map(|(i, u)| (i.name.as_str(), u.as_str())),
    );
    // image_detail names an image of the config; it may not be among those selected.
    let detail = plan
        .image_detail
        .as_ref()
        .and_then(|name| plan.images.iter().position(|i| &i.name == name))
        .map(|index| artifacts::image_detail(&uris[index]));
    let mut written = Vec::new();
    let definitions = root.join(&plan.imagedefinitions);
    artifacts::write_atomic(&definitions, &text)?;
    written.push(plan.imagedefinitions.clone());
    if let Some(detail) = detail {
        let path = Path::new(&plan.imagedefinitions).with_file_name("imageDetail.json");
        artifacts::write_atomic(&root.join(&path), &detail)?;
        written.push(path.to_string_lossy().into_owned());
    }
    for path in &written {
        tracing::info!("wrote {path}");
    }
    Ok(written)
}

/// The result of a run, printed at the end.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub tag: String,
    pub images: Vec<ImageSummary>,
    pub artifacts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ImageSummary {
    pub name: String,
    /// `<repository>:<tag>`, the local name.
    pub image: String,
    /// The URI the artifacts name.
    pub uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_seconds: Option<f64>,
}

impl Summary {
    pub fn new(plan: &Plan) -> Summary {
        let images = plan
            .images
            .iter()
            .map(|p| ImageSummary {
                name: p.name.clone(),
                image: p.local_name().to_owned(),
                uri: p.uri.clone(),
                image_id: None,
                size: None,
                build_seconds: None,
                digest: None,
                push_seconds: None,
            })
            .collect();
        Summary {
            tag: plan.tag.value.clone(),
            images,
            artifacts: Vec::new(),
        }
    }

    /// Adds what the builds reported (same order as the plan).
    pub fn with_build(mut self, built: &[Built]) -> Summary {
        for (image, b) in self.images.iter_mut().zip(built) {
            image.image_id = Some(b.image_id.clone());
            image.size = Some(b.size);
            image.build_seconds = Some(b.build_seconds);
        }
        self
    }

    /// Adds what the pushes reported (same order as the plan); `uris` are what the artifacts name.
    pub fn with_push(mut self, pushed: &[Pushed], uris: &[String]) -> Summary {
        for ((image, p), uri) in self.images.iter_mut().zip(pushed).zip(uris) {
            image.digest = Some(p.digest.clone());
            image.push_seconds = Some(p.push_seconds);
            image.uri = uri.clone();
        }
        self
    }

    pub fn with_artifacts(mut self, written: Vec<String>) -> Summary {
        self.artifacts = written;
        self
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let built = self.images.iter().any(|i| i.image_id.is_some());
        let pushed = self.images.iter().any(|i| i.digest.is_some());
        let mut header = vec!["IMAGE", "TAG"];
        if built {
            header.extend(["IMAGE ID", "SIZE", "BUILD"]);
        }
        if pushed {
            header.extend(["DIGEST", "PUSH"]);
        }
        let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
        let seconds = |s: Option<f64>| s.map(|s| format!("{s:.1}s")).unwrap_or_default();
        for image in &self.images {
            let mut row = vec![image.name.clone(), self.tag.clone()];
            if built {
                row.push(
                    image
                        .image_id
                        .as_deref()
                        .map(short_id)
                        .unwrap_or_default()
                        .to_owned(),
                );
                row.push(image.size.map(human_size).unwrap_or_default());
                row.push(seconds(image.build_seconds));
            }
            if pushed {
                row.push(image.digest.clone().unwrap_or_default());
                row.push(seconds(image.push_seconds));
            }
            rows.push(row);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            writeln!(f, "{}", line.join("  ").trim_end())?;
        }
        for path in &self.artifacts {
            writeln!(f, "wrote {path}")?;
        }
        Ok(())
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
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

    #[test]
    fn immutable_tag_errors_are_recognised() {
        let ecr = "push of r/app:v1 to r failed: tag invalid: The image tag 'v1' already exists in the 'app' repository and cannot be overwritten because the repository is immutable.";
        assert!(is_immutable_tag(ecr));
        assert!(!is_immutable_tag(
            "push of r/app:v1 to r failed: unauthorized: authentication required"
        ));
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(12_300_000), "12.3MB");
    }
}
