//! `cache_mounts` in a run ([`crate::cache_mount`]): each kept mount restored from the registry
//! before the first build that uses it, on a daemon that does not hold it; and, after a release
//! pushed every image, saved once, beside the last steps, never holding up the artifacts.
//!
//! Both are only a cache: a failure is a warning, and the run goes on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::OnceCell;

use crate::cache_mount::{self, Kept, layers};
use crate::docker::{BuildRequest, Daemon};
use crate::error::Error;
use crate::plan::{Plan, PlannedImage};
use crate::reference::Platform;
use crate::registry::Manifest;
use crate::view::View;

use super::{Destination, build, prepare};

/// What one image's build needs to restore and save its kept mounts.
#[derive(Debug)]
pub(super) struct MountJob {
    pub kept: Vec<Kept>,
    /// The Dockerfile as the builder got it (its images pinned).
    pub builder_text: String,
    /// The image's build request: its args, secrets, platform and credentials.
    pub request: BuildRequest,
    pub platform: Platform,
}

/// The mounts `image` keeps in `text` (its Dockerfile, or the builder's copy of it), read with
/// the build's `args` for `platform`, and why any other selected mount is not kept.
pub(super) fn kept(
    image: &PlannedImage,
    text: &str,
    args: &BTreeMap<String, String>,
    platform: &Platform,
    build_platform: &str,
    one_of_several: bool,
) -> (Vec<Kept>, Vec<String>) {
    let platform_text = platform.to_string();
    let parsed = crate::dockerfile::parse(
        text,
        &crate::dockerfile::Args {
            build_args: args,
            platform: &platform_text,
            build_platform,
            target: image.target.as_deref(),
        },
    )
    .and_then(|parsed| {
        let needed = parsed.needed_stages(image.target.as_deref())?;
        Ok((parsed, needed))
    });
    match parsed {
        Ok((parsed, needed)) => {
            let suffix = one_of_several.then(|| platform.suffix());
            cache_mount::kept(&parsed, &needed, &image.cache_mounts, suffix.as_deref())
        }
        Err(e) => (
            Vec::new(),
            vec![format!(
                "its cache mounts are not kept: Dockerfile line {}: {}",
                e.line, e.message
            )],
        ),
    }
}

/// One kept mount's save, as the summary reports it.
#[derive(Debug, Clone, Serialize)]
pub struct MountSummary {
    pub image: String,
    pub id: String,
    /// `<registry>/<repository>:cache-mount-<id>`.
    pub uri: String,
    /// `saved`, `unchanged`, or `not saved`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    pub layers: usize,
    pub layers_uploaded: usize,
    pub bytes_uploaded: u64,
}

/// The run's kept mounts: where each is stored, and which were restored.
pub(super) struct Mounts {
    /// By tag: the repository that stores it, that of the first image of the plan keeping it.
    owners: HashMap<String, String>,
    restored: tokio::sync::Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    /// The daemon's cache-mount records, read once.
    records: OnceCell<Vec<String>>,
}

impl Mounts {
    /// `kept` holds, per image of the plan, the mounts it keeps (in plan order).
    pub fn new(plan: &Plan, kept: &[(String, Vec<Kept>)]) -> Mounts {
        let mut owners = HashMap::new();
        for (name, kept) in kept {
            let Some(image) = plan.images.iter().find(|i| &i.name == name) else {
                continue;
            };
            for mount in kept {
                owners
                    .entry(mount.tag.clone())
                    .or_insert_with(|| image.repository.clone());
            }
        }
        Mounts {
            owners,
            restored: tokio::sync::Mutex::new(HashMap::new()),
            records: OnceCell::new(),
        }
    }

    fn owner<'a>(&'a self, kept: &Kept, image: &'a PlannedImage) -> &'a str {
        self.owners
            .get(&kept.tag)
            .map_or(image.repository.as_str(), String::as_str)
    }

    /// Restores each of `job`'s mounts the daemon does not hold from the registry, once per
    /// mount for the run.
    #[allow(clippy::too_many_arguments)]
    pub async fn restore(
        &self,
        daemon: &Daemon,
        target: &Destination,
        image: &PlannedImage,
        label: &str,
        context: &prepare::Job,
        job: &MountJob,
        view: &dyn View,
    ) {
        for kept in &job.kept {
            let once = {
                let mut restored = self.restored.lock().await;
                Arc::clone(restored.entry(kept.tag.clone()).or_default())
            };
            once.get_or_init(|| async {
                match self
                    .restore_one(daemon, target, image, context, job, kept)
                    .await
                {
                    Ok(Some(from)) => view.line(
                        label,
                        &format!("restored the cache mount `{}` from {from}", kept.mount.id),
                    ),
                    Ok(None) => {}
                    Err(why) => tracing::warn!(
                        "[{label}] the cache mount `{}` was not restored ({why}); building without it",
                        kept.mount.id
                    ),
                }
            })
            .await;
        }
    }

    /// `Ok(Some(uri))` when restored from `uri`; `Ok(None)` when there was nothing to do.
    async fn restore_one(
        &self,
        daemon: &Daemon,
        target: &Destination,
        image: &PlannedImage,
        context: &prepare::Job,
        job: &MountJob,
        kept: &Kept,
    ) -> Result<Option<String>, String> {
        let records = self
            .records
            .get_or_init(|| async {
                daemon.cache_mount_records().await.unwrap_or_else(|e| {
                    tracing::debug!("the daemon's build cache: {e}");
                    Vec::new()
                })
            })
            .await;
        if cache_mount::is_warm(records, kept) {
            tracing::debug!("the daemon holds the cache mount `{}`", kept.mount.id);
            return Ok(None);
        }
        let repository = self.owner(kept, image);
        let uri = format!("{}/{repository}:{}", target.registry.host(), kept.tag);
        let digest = match target.registry.digest(repository, &kept.tag).await {
            Ok(Some(digest)) => digest,
            Ok(None) => {
                tracing::info!(
                    "the cache mount `{}` starts empty: {uri} is not in the registry yet",
                    kept.mount.id
                );
                return Ok(None);
            }
            Err(e) => return Err(e.to_string()),
        };
        let stored = format!("{}/{repository}@{digest}", target.registry.host());
        let nonce = nonce();
        let text = cache_mount::restore_dockerfile(&job.builder_text, kept, &stored, &nonce);
        let tag = format!("ecrship-cache-mount-restore:{nonce}");
        helper(daemon, image, context, job, &text, &tag).await?;
        if let Err(e) = daemon.remove_image(&tag).await {
            tracing::debug!("{e}");
        }
        Ok(Some(uri))
    }
}

/// For `push` after a separate `build`: the kept mounts of each unit `build` built, from the
/// Dockerfile it gave the builder (`builder_texts`, by unit), with the args and secrets read
/// again.
pub(super) fn from_records<'a>(
    plan: &Plan,
    options: &super::Options,
    env: &super::Resources<'_>,
    target: &Destination,
    units: &[super::Unit<'a>],
    builder_texts: &[Option<String>],
) -> Result<(Mounts, Vec<BuiltImage<'a>>), Error> {
    let jobs: Vec<Arc<prepare::Job>> = prepare::jobs(plan, options, env)?
        .into_iter()
        .map(Arc::new)
        .collect();
    let mut kept_by_image: Vec<(String, Vec<Kept>)> = Vec::new();
    let mut built = Vec::new();
    for (unit, text) in units.iter().zip(builder_texts) {
        let Some(text) = text else { continue };
        let Some(index) = plan.images.iter().position(|i| i.name == unit.image.name) else {
            continue;
        };
        let job = Arc::clone(&jobs[index]);
        let mut args: BTreeMap<String, String> = unit
            .image
            .depends_on
            .iter()
            .filter_map(|name| {
                let dep = plan.images.iter().find(|i| &i.name == name)?;
                let build = dep
                    .builds
                    .iter()
                    .find(|b| b.platform == unit.build.platform)
                    .or(dep.builds.first())?;
                Some((
                    crate::plan::dependency_arg(name),
                    build.local_name().to_owned(),
                ))
            })
            .collect();
        args.extend(
            job.build_args
                .iter()
                .map(|(n, v, _)| (n.clone(), v.clone())),
        );
        let platform = unit
            .build
            .platform
            .clone()
            .unwrap_or_else(|| env.daemon.platform_value());
        let one_of_several = !unit.image.platforms.is_empty() && unit.build.platform.is_some();
        let (kept, _) = kept(
            unit.image,
            text,
            &args,
            &platform,
            env.daemon.platform(),
            one_of_several,
        );
        if kept.is_empty() {
            continue;
        }
        kept_by_image.push((unit.image.name.clone(), kept.clone()));
        let request = BuildRequest {
            build_args: args.into_iter().collect(),
            secrets: job.secrets.clone(),
            platform: unit.build.platform.clone(),
            builder: options.builder,
            credentials: Some(target.credentials.clone()),
            ..BuildRequest::default()
        };
        built.push(BuiltImage {
            image: unit.image,
            label: unit.label(),
            context: job,
            job: Arc::new(MountJob {
                kept,
                builder_text: text.clone(),
                request,
                platform,
            }),
        });
    }
    Ok((Mounts::new(plan, &kept_by_image), built))
}

/// One image built that keeps cache mounts.
pub(super) struct BuiltImage<'a> {
    pub image: &'a PlannedImage,
    pub label: String,
    pub context: Arc<prepare::Job>,
    pub job: Arc<MountJob>,
}

/// The save of every kept mount of the images built, each once (by the first unit that built
/// it), in the registry; never an error.
pub(super) async fn save_all(
    daemon: &Daemon,
    target: &Destination,
    mounts: &Mounts,
    built: Vec<BuiltImage<'_>>,
    max_size: u64,
    view: &dyn View,
) -> Vec<MountSummary> {
    let mut once: BTreeMap<String, (&BuiltImage<'_>, &Kept)> = BTreeMap::new();
    for image in &built {
        for kept in &image.job.kept {
            once.entry(kept.tag.clone()).or_insert((image, kept));
        }
    }
    let saves = once.into_values().map(|(built, kept)| async move {
        let BuiltImage {
            image,
            label,
            context,
            job,
        } = built;
        let repository = mounts.owner(kept, image).to_owned();
        let uri = format!("{}/{repository}:{}", target.registry.host(), kept.tag);
        let mut summary = MountSummary {
            image: image.name.clone(),
            id: kept.mount.id.clone(),
            uri: uri.clone(),
            outcome: "not saved".into(),
            why: None,
            layers: 0,
            layers_uploaded: 0,
            bytes_uploaded: 0,
        };
        match save(
            daemon,
            target,
            image,
            &repository,
            context,
            job,
            kept,
            max_size,
            &mut summary,
        )
        .await
        {
            Ok(()) => view.line(
                label,
                &match (summary.outcome.as_str(), &summary.why) {
                    (_, Some(why)) => {
                        format!("cache mount `{}` not saved: {why}", kept.mount.id)
                    }
                    ("unchanged", _) => format!(
                        "cache mount `{}` unchanged since {uri}: nothing uploaded",
                        kept.mount.id
                    ),
                    _ => format!(
                        "saved the cache mount `{}` as {uri} ({} of {} layers uploaded, {})",
                        kept.mount.id,
                        summary.layers_uploaded,
                        summary.layers,
                        crate::text::human_bytes(summary.bytes_uploaded)
                    ),
                },
            ),
            Err(why) => {
                tracing::warn!(
                    "[{label}] the cache mount `{}` was not saved: {why}",
                    kept.mount.id
                );
                summary.why = Some(why);
            }
        }
        summary
    });
    futures_util::future::join_all(saves).await
}

#[allow(clippy::too_many_arguments)]
async fn save(
    daemon: &Daemon,
    target: &Destination,
    image: &PlannedImage,
    repository: &str,
    context: &prepare::Job,
    job: &MountJob,
    kept: &Kept,
    max_size: u64,
    summary: &mut MountSummary,
) -> Result<(), String> {
    let nonce = nonce();
    let text = cache_mount::save_dockerfile(&job.builder_text, kept, max_size / 1024, &nonce);
    let tag = format!("ecrship-cache-mount-save:{nonce}");
    helper(daemon, image, context, job, &text, &tag).await?;
    let read = read_copy(daemon, &tag, kept, max_size).await;
    if let Err(e) = daemon.remove_image(&tag).await {
        tracing::debug!("{e}");
    }
    let (split, dir) = read?;
    if split.layers.is_empty() {
        summary.why = Some("the mount is empty".into());
        return Ok(());
    }
    if split.left_out > 0 {
        tracing::debug!(
            "cache mount `{}`: {} entries left out (hard links across top-level folders, special files)",
            kept.mount.id,
            split.left_out
        );
    }
    let (config, manifest) = layers::image(&split.layers, &job.platform, &kept.mount.id);
    let digest = layers::sha256_digest(&manifest);
    summary.layers = split.layers.len();
    let registry = &target.registry;
    if registry
        .digest(repository, &kept.tag)
        .await
        .map_err(|e| e.to_string())?
        == Some(digest)
    {
        summary.outcome = "unchanged".into();
        return Ok(());
    }
    for layer in &split.layers {
        if registry
            .has_blob(repository, &layer.digest)
            .await
            .map_err(|e| e.to_string())?
        {
            continue;
        }
        registry
            .put_blob_file(repository, &layer.file, &layer.digest, layer.size)
            .await
            .map_err(|e| e.to_string())?;
        summary.layers_uploaded += 1;
        summary.bytes_uploaded += layer.size;
    }
    drop(dir);
    registry
        .put_blob(repository, config.into())
        .await
        .map_err(|e| e.to_string())?;
    let manifest = Manifest::new(
        manifest.into(),
        Some(crate::registry::manifest::DOCKER_MANIFEST),
    )
    .map_err(|e| e.to_string())?;
    match registry
        .put_manifest(repository, &kept.tag, &manifest)
        .await
    {
        Ok(()) => {
            summary.outcome = "saved".into();
            Ok(())
        }
        Err(e) if e.message.contains("immutable") => Err(format!(
            "repository `{repository}` has immutable tags, so the next run starts from the older content; keep cache mounts in a repository with mutable tags to refresh them"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The mount's copy in the save helper's image `tag`, in layers (written to the returned
/// folder); an error when the mount is larger than `max_size`.
async fn read_copy(
    daemon: &Daemon,
    tag: &str,
    kept: &Kept,
    max_size: u64,
) -> Result<(layers::Split, tempfile::TempDir), String> {
    let mut size_tar = Vec::new();
    daemon
        .copy_from_image(tag, cache_mount::SIZE_FILE, &mut size_tar)
        .await
        .map_err(|e| e.to_string())?;
    let kib = size_from_tar(&size_tar).ok_or("the helper did not measure the mount")?;
    if kib.saturating_mul(1024) > max_size {
        return Err(format!(
            "it holds {}, more than cache_mount_max_size ({})",
            crate::text::human_bytes(kib.saturating_mul(1024)),
            crate::text::human_bytes(max_size)
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("ecrship-cache-mount.")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let (mut writer, reader) = tokio::io::duplex(1 << 20);
    let out = dir.path().to_path_buf();
    let split = tokio::task::spawn_blocking(move || {
        let reader = tokio_util::io::SyncIoBridge::new(reader);
        layers::split(std::io::BufReader::new(reader), &out)
    });
    let copied = daemon
        .copy_from_image(tag, cache_mount::COPY, &mut writer)
        .await;
    drop(writer);
    let split = split.await.map_err(|e| e.to_string())?;
    copied.map_err(|e| e.to_string())?;
    let split = split.map_err(|e| format!("reading the copy of `{}`: {e}", kept.mount.id))?;
    Ok((split, dir))
}

/// The KiB the save helper wrote into its size file, from the tar the daemon sent of it.
fn size_from_tar(tar: &[u8]) -> Option<u64> {
    let mut archive = tar::Archive::new(tar);
    let mut entry = archive.entries().ok()?.next()?.ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut entry, &mut text).ok()?;
    text.trim().parse().ok()
}

/// Builds a helper (`text`, the builder's Dockerfile with the helper stage) as `tag`, its log
/// to the debug log only.
async fn helper(
    daemon: &Daemon,
    image: &PlannedImage,
    context: &prepare::Job,
    job: &MountJob,
    text: &str,
    tag: &str,
) -> Result<(), String> {
    let (helper_context, _dir) = context.context_for(text).map_err(|e| e.to_string())?;
    let request = BuildRequest {
        tags: vec![tag.to_owned()],
        dockerfile: helper_context.dockerfile_name().to_owned(),
        target: Some(cache_mount::STAGE.to_owned()),
        labels: Vec::new(),
        cache_from: Vec::new(),
        no_cache: false,
        pull: false,
        ..job.request.clone()
    };
    let mut on_line = |line: &str| tracing::debug!("[cache mount] {line}");
    build::once(daemon, image, &helper_context, &request, &mut on_line)
        .await
        .map(drop)
        .map_err(|e| match e {
            Error::Image { source, .. } => source.to_string(),
            other => other.to_string(),
        })
}

/// A value no other helper build of this daemon has had.
fn nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_shared_by_two_images_is_stored_once_by_the_first() {
        let config = crate::config::Config::parse(
            "[[image]]\nname = \"web\"\nrepository = \"shop/web\"\ncache_mounts = true\n\
             [[image]]\nname = \"app\"\nrepository = \"shop/app\"\ncache_mounts = true\n",
            crate::config::Origin::Embedded,
        )
        .unwrap();
        let images: Vec<&crate::config::Image> = config.images.iter().collect();
        let tag = crate::tag::Tag {
            value: "t".into(),
            source: crate::tag::TagSource::Fallback,
        };
        let registry = crate::plan::RegistryHost {
            host: "r.example".into(),
            source: crate::plan::RegistrySource::Config,
        };
        let plan = Plan::new(&config, &images, tag, registry, None).unwrap();
        let text = "FROM node:20\nRUN --mount=type=cache,id=npm,target=/root/.npm npm ci\n";
        let kept_of = |image: &PlannedImage| {
            let (kept, _) = kept(
                image,
                text,
                &BTreeMap::new(),
                &Platform::default(),
                "linux/amd64",
                false,
            );
            (image.name.clone(), kept)
        };
        let kept: Vec<(String, Vec<Kept>)> = plan.images.iter().map(kept_of).collect();
        let mounts = Mounts::new(&plan, &kept);
        let npm = &kept[1].1[0];
        assert_eq!(npm.tag, "cache-mount-npm");
        assert_eq!(
            mounts.owner(npm, &plan.images[1]),
            "shop/web",
            "the first image's repository"
        );
    }

    #[test]
    fn the_size_is_read_from_the_daemons_tar() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        tar.append_data(&mut header, "ecrship-cache-mount.size", &b"1234\n"[..])
            .unwrap();
        assert_eq!(size_from_tar(&tar.into_inner().unwrap()), Some(1234));
        assert_eq!(size_from_tar(b"not a tar"), None);
    }
}
