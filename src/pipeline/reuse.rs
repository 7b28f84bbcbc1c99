//! Whether the registry already holds an image built from the same inputs.
//!
//! The candidates are the build's own tag (a re-run of the same commit), then each extra tag
//! (`latest`: the last image pushed). For a tag that names a manifest list, the image of the
//! build's platform in it is the candidate. A candidate is reused when its config carries the
//! same inputs digest ([`crate::inputs::LABEL`]) and it was created less than `max_age` ago, so
//! that base images that moved upstream under the same tag still arrive.
//!
//! What the check finds missing also decides which images a build takes its cache from
//! ([`missing`], [`stages_alone`]).

use std::time::{Duration, SystemTime};

use crate::inputs;
use crate::plan::CacheImage;
use crate::reference::{Platform as WantedPlatform, Reference};
use crate::registry::{Body, Manifest, Platform, Registry, RegistryError};

/// An image in the registry built from the same inputs.
#[derive(Debug, Clone)]
pub struct Found {
    /// The tag it was found under.
    pub tag: String,
    /// Its manifest, as stored: put under the new tags as it is.
    pub manifest: Manifest,
}

/// Why a candidate was not taken, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    Absent,
    NoLabel,
    OtherInputs,
    TooOld(Duration),
    NoPlatform,
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Absent => f.write_str("not in the registry"),
            Miss::NoLabel => f.write_str("not built by ecrship (no inputs label)"),
            Miss::OtherInputs => f.write_str("built from other inputs"),
            Miss::TooOld(age) => {
                write!(f, "built {} ago, older than reuse_max_age", human_age(*age))
            }
            Miss::NoPlatform => f.write_str("a manifest list without this platform"),
        }
    }
}

/// The first candidate tag holding an image with `inputs`, no older than `max_age`; each
/// miss before it goes to `log`. The candidates are looked up at once.
pub async fn find(
    registry: &Registry,
    repository: &str,
    candidates: &[String],
    platform: Option<&WantedPlatform>,
    inputs: &str,
    max_age: Duration,
    log: &mut (dyn FnMut(&str, Miss) + Send),
) -> Result<Option<Found>, RegistryError> {
    let now = SystemTime::now();
    let checks = candidates
        .iter()
        .map(|tag| check(registry, repository, tag, platform, inputs, max_age, now));
    let checked = futures_util::future::join_all(checks).await;
    for (tag, checked) in candidates.iter().zip(checked) {
        match checked? {
            Ok(manifest) => {
                return Ok(Some(Found {
                    tag: tag.clone(),
                    manifest,
                }));
            }
            Err(miss) => log(tag, miss),
        }
    }
    Ok(None)
}

async fn check(
    registry: &Registry,
    repository: &str,
    tag: &str,
    platform: Option<&WantedPlatform>,
    inputs: &str,
    max_age: Duration,
    now: SystemTime,
) -> Result<Result<Manifest, Miss>, RegistryError> {
    let Some(mut manifest) = registry.manifest(repository, tag).await? else {
        return Ok(Err(Miss::Absent));
    };
    let error = |message: String| RegistryError {
        registry: registry.host().to_owned(),
        repository: repository.to_owned(),
        reference: tag.to_owned(),
        action: "read manifest",
        message,
        transient: false,
        attempts: 1,
    };
    if manifest.is_index() {
        let Body::Index { manifests } = manifest.body().map_err(error)? else {
            return Ok(Err(Miss::NoPlatform));
        };
        let default = WantedPlatform::default();
        let wanted = platform.unwrap_or(&default);
        let Some(entry) = manifests.iter().find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| same_platform(p, wanted))
        }) else {
            return Ok(Err(Miss::NoPlatform));
        };
        match registry.manifest(repository, &entry.digest).await? {
            Some(child) => manifest = child,
            None => return Ok(Err(Miss::Absent)),
        }
    }
    let Body::Image { config, .. } = manifest.body().map_err(error)? else {
        return Ok(Err(Miss::NoPlatform));
    };
    let config = registry.config(repository, &config).await?;
    match config.label(inputs::LABEL) {
        None => return Ok(Err(Miss::NoLabel)),
        Some(found) if found != inputs => return Ok(Err(Miss::OtherInputs)),
        Some(_) => {}
    }
    // An image whose age cannot be read is not trusted to be young.
    match config.age(now) {
        Some(age) if age <= max_age => Ok(Ok(manifest)),
        Some(age) => Ok(Err(Miss::TooOld(age))),
        None => Ok(Err(Miss::TooOld(Duration::MAX))),
    }
}

/// Which of `tags` the registry does not hold. A tag that cannot be looked up is not called
/// missing: the build may still find it.
pub async fn missing<'a>(
    registry: &Registry,
    repository: &str,
    tags: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    let lookups = tags.map(|tag| async move {
        match registry.manifest(repository, tag).await {
            Ok(None) => Some(tag.to_owned()),
            Ok(Some(_)) | Err(_) => None,
        }
    });
    futures_util::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Whether a manifest list entry's (or a config's) platform is `wanted`; a wanted platform
/// without a variant takes any variant.
pub fn same_platform(platform: &Platform, wanted: &WantedPlatform) -> bool {
    platform.os == wanted.os()
        && platform.architecture == wanted.architecture()
        && wanted
            .variant()
            .is_none_or(|v| platform.variant.as_deref() == Some(v))
}

/// From this Engine API version on (Docker 27.0), a BuildKit build whose cache stages are in the
/// registry takes its cache from them alone ([`stages_alone`]). Docker 28.5 is the one seen to
/// need it; 26.1 (API 1.45) and 20.10 never missed with both, and keep the last image.
pub const STAGES_ALONE_FROM_API: (usize, usize) = (1, 46);

/// Keeps only the cache stages' images among a BuildKit build's cache sources, when the
/// registry holds at least one of them. BuildKit merges what it imports from several images
/// concurrently and in no set order; Docker 28.5, given a cache stage and the last image,
/// runs the stage's steps again in about half of the builds on an empty daemon, and never
/// with the stages alone. The last image stays the source when there is no stage to take.
pub fn stages_alone(cache_from: &mut Vec<Reference>, stages: &[CacheImage]) {
    let is_stage = |uri: &Reference| stages.iter().any(|s| &s.uri == uri);
    if cache_from.iter().any(is_stage) {
        cache_from.retain(is_stage);
    }
}

/// `3d 4h`, `5h 2m`, `40s`: an age in its two largest units.
fn human_age(age: Duration) -> String {
    if age == Duration::MAX {
        return "an unknown time".into();
    }
    let secs = age.as_secs();
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_match_with_or_without_variant() {
        let p = |arch: &str, variant: Option<&str>| Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.map(str::to_owned),
        };
        let w = |s: &str| WantedPlatform::parse(s).unwrap();
        assert!(same_platform(&p("arm64", Some("v8")), &w("linux/arm64")));
        assert!(same_platform(&p("arm64", Some("v8")), &w("linux/arm64/v8")));
        assert!(!same_platform(&p("arm64", None), &w("linux/arm64/v8")));
        assert!(!same_platform(&p("amd64", None), &w("linux/arm64")));
        assert!(same_platform(&p("amd64", None), &w("linux/amd64")));
    }

    #[test]
    fn misses_say_why() {
        assert_eq!(
            Miss::TooOld(Duration::from_secs(8 * 86_400 + 3 * 3600)).to_string(),
            "built 8d 3h ago, older than reuse_max_age"
        );
        assert_eq!(human_age(Duration::from_secs(42)), "42s");
        assert_eq!(human_age(Duration::from_secs(3 * 3600 + 120)), "3h 2m");
        assert_eq!(Miss::OtherInputs.to_string(), "built from other inputs");
    }

    #[test]
    fn the_stages_alone_are_the_cache_when_the_registry_holds_one() {
        let stage = |name: &str| CacheImage {
            stage: name.into(),
            tag: format!("cache-{name}"),
            local_name: format!("app:cache-{name}"),
            uri: Reference::parse(&format!("r.example/app:cache-{name}")).unwrap(),
        };
        let stages = [stage("deps"), stage("build")];
        let latest = Reference::parse("r.example/app:latest").unwrap();

        let mut both = vec![stages[0].uri.clone(), latest.clone()];
        stages_alone(&mut both, &stages);
        assert_eq!(both, [stages[0].uri.clone()]);

        let mut only_latest = vec![latest.clone()];
        stages_alone(&mut only_latest, &stages);
        assert_eq!(only_latest, std::slice::from_ref(&latest));

        let mut no_stages = vec![latest.clone()];
        stages_alone(&mut no_stages, &[]);
        assert_eq!(no_stages, [latest]);
    }
}
