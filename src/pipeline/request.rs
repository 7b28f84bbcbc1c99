//! The build request of one image, from what the run knows of it: pure, so that what a build
//! is asked for can be checked without a daemon.
//!
//! - Build args: each dependency's local name under its arg first, then the config's (which
//!   win), then `BUILDKIT_INLINE_CACHE=1` for BuildKit, so that the image carries the cache the
//!   next run starts from.
//! - Labels: the per-run labels and the user's, then the inputs digest and its parts.
//! - Cache sources ([`cache_sources`]): the cache stages, then the last image, less those the
//!   registry does not hold; none with `--no-cache` or without a registry.
//! - The classic builder's cache (Docker 20.10) matches steps without their platform: after an
//!   arm64 build, an amd64 build of the same steps can get the arm64 image. A classic build of
//!   another platform than the daemon's, or of a multi-platform image, takes no cache.

use crate::context::Builder;
use crate::docker::{BuildRequest, Credentials};
use crate::inputs::Parts;
use crate::plan::{PlannedBuild, PlannedImage};
use crate::reference::Reference;
use crate::secret::Secret;

use super::{prepare, reuse};

/// What a request of this run depends on besides the image.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub builder: Builder,
    pub no_cache: bool,
    pub pull: bool,
    /// The daemon's own platform, `os/arch`.
    pub daemon_platform: &'a str,
    /// Whether the daemon takes the cache stages alone ([`reuse::stages_alone`]).
    pub stages_alone: bool,
    /// The push registry's credentials; `None` when the run reaches no registry.
    pub credentials: Option<&'a Credentials>,
}

/// What the request takes of the image's prepared job.
#[derive(Debug, Clone, Copy)]
pub struct JobArgs<'a> {
    /// Build args with their values, and whether each is secret.
    pub build_args: &'a [(String, String, bool)],
    pub labels: &'a [(String, String)],
    pub secrets: &'a [(String, Secret)],
    /// The `dockerfile` parameter.
    pub dockerfile: &'a str,
}

/// The request of one build. `dependencies` are `(arg, local name)` pairs; `absent`, the tags
/// the registry does not hold.
pub fn request(
    image: &PlannedImage,
    build: &PlannedBuild,
    job: &JobArgs<'_>,
    parts: &Parts,
    dependencies: &[(String, String)],
    absent: &[String],
    facts: &Facts<'_>,
) -> BuildRequest {
    let mut build_args: Vec<(String, String)> = dependencies.to_vec();
    build_args.extend(
        job.build_args
            .iter()
            .map(|(name, value, _)| (name.clone(), value.clone())),
    );
    if facts.builder == Builder::BuildKit {
        build_args.push(("BUILDKIT_INLINE_CACHE".into(), "1".into()));
    }
    let cache_from = if facts.credentials.is_some() && !facts.no_cache {
        cache_sources(image, build, absent, facts)
            .iter()
            .map(Reference::to_string)
            .collect()
    } else {
        Vec::new()
    };
    let mut labels = job.labels.to_vec();
    labels.extend(prepare::inputs_labels(parts));
    let cross = facts.builder == Builder::Classic
        && (!image.platforms.is_empty()
            || build
                .platform
                .as_ref()
                .is_some_and(|p| !p.to_string().starts_with(facts.daemon_platform)));
    if cross {
        tracing::info!(
            "[{}] classic builder: no build cache for {} on a {} daemon",
            image.name,
            build.platform.clone().unwrap_or_default(),
            facts.daemon_platform
        );
    }
    BuildRequest {
        tags: build.local_tags.clone(),
        dockerfile: job.dockerfile.to_owned(),
        build_args,
        labels,
        target: image.target.clone(),
        platform: build.platform.clone(),
        builder: facts.builder,
        no_cache: facts.no_cache || cross,
        pull: facts.pull,
        secrets: job.secrets.to_vec(),
        cache_from,
        credentials: facts.credentials.cloned(),
    }
}

/// The images a build takes its cache from: the cache stages, then the last image, less those
/// the reuse check found `absent` (a missing one costs BuildKit a failed lookup, and the classic
/// builder the daemon's own cache). BuildKit on Docker 27 and later takes the stages alone when
/// the registry holds one ([`reuse::stages_alone`]).
pub fn cache_sources(
    image: &PlannedImage,
    build: &PlannedBuild,
    absent: &[String],
    facts: &Facts<'_>,
) -> Vec<Reference> {
    let stages = build.cache.iter().map(|c| (&c.tag, &c.uri));
    let last = image.extra_tags.iter().zip(&image.extra_uris);
    let mut sources: Vec<Reference> = stages
        .chain(last)
        .filter(|(tag, _)| !absent.contains(tag))
        .map(|(_, uri)| uri.clone())
        .collect();
    if facts.builder == Builder::BuildKit && facts.stages_alone {
        reuse::stages_alone(&mut sources, &build.cache);
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Origin};
    use crate::plan::{Plan, RegistryHost, RegistrySource};
    use crate::tag::{Tag, TagSource};

    fn plan(image: &str) -> Plan {
        let config = Config::parse(
            &format!("[tag]\nextra = [\"latest\"]\n[[image]]\nname = \"app\"\n{image}"),
            Origin::Embedded,
        )
        .unwrap();
        let images: Vec<&crate::config::Image> = config.images.iter().collect();
        let tag = Tag {
            value: "t2".into(),
            source: TagSource::Fallback,
        };
        let registry = RegistryHost {
            host: "r.example".into(),
            source: RegistrySource::Config,
        };
        Plan::new(&config, &images, tag, registry, None).unwrap()
    }

    fn credentials() -> Credentials {
        Credentials {
            username: "AWS".into(),
            password: "hunter2".into(),
            server: "r.example".into(),
        }
    }

    fn facts<'a>(builder: Builder, credentials: Option<&'a Credentials>) -> Facts<'a> {
        Facts {
            builder,
            no_cache: false,
            pull: false,
            daemon_platform: "linux/amd64",
            stages_alone: false,
            credentials,
        }
    }

    const NO_JOB: JobArgs<'static> = JobArgs {
        build_args: &[],
        labels: &[],
        secrets: &[],
        dockerfile: "Dockerfile",
    };

    #[test]
    fn cache_comes_from_the_stages_then_the_last_image_the_registry_holds() {
        let plan = plan("cache_stages = [\"deps\"]\n");
        let (image, build) = (&plan.images[0], &plan.images[0].builds[0]);
        let creds = credentials();
        let both = cache_sources(image, build, &[], &facts(Builder::BuildKit, Some(&creds)));
        assert_eq!(both, ["r.example/app:cache-deps", "r.example/app:latest"]);
        let no_stage = cache_sources(
            image,
            build,
            &["cache-deps".into()],
            &facts(Builder::BuildKit, Some(&creds)),
        );
        assert_eq!(no_stage, ["r.example/app:latest"]);
        let alone = Facts {
            stages_alone: true,
            ..facts(Builder::BuildKit, Some(&creds))
        };
        assert_eq!(
            cache_sources(image, build, &[], &alone),
            ["r.example/app:cache-deps"]
        );
        let classic = Facts {
            stages_alone: true,
            ..facts(Builder::Classic, Some(&creds))
        };
        assert_eq!(
            cache_sources(image, build, &[], &classic).len(),
            2,
            "classic takes both"
        );
    }

    #[test]
    fn the_request_carries_args_labels_and_cache_as_the_run_knows_them() {
        let plan = plan("");
        let (image, build) = (&plan.images[0], &plan.images[0].builds[0]);
        let creds = credentials();
        let parts = Parts::default();
        let job = JobArgs {
            build_args: &[("BASE_IMAGE".into(), "mine:1".into(), false)],
            labels: &[("org.opencontainers.image.revision".into(), "t2".into())],
            ..NO_JOB
        };
        let deps = [("BASE_IMAGE".to_owned(), "base:t2".to_owned())];
        let r = request(
            image,
            build,
            &job,
            &parts,
            &deps,
            &[],
            &facts(Builder::BuildKit, Some(&creds)),
        );
        assert_eq!(
            r.build_args,
            [
                ("BASE_IMAGE".to_owned(), "base:t2".to_owned()),
                ("BASE_IMAGE".to_owned(), "mine:1".to_owned()),
                ("BUILDKIT_INLINE_CACHE".to_owned(), "1".to_owned()),
            ],
            "the config's arg after the dependency's: it wins"
        );
        let labels: Vec<&str> = r.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            labels,
            [
                "org.opencontainers.image.revision",
                "dev.ecrship.inputs",
                "dev.ecrship.inputs.parts"
            ]
        );
        assert_eq!(r.cache_from, ["r.example/app:latest"]);
        assert_eq!(r.tags, ["app:t2", "app:latest"]);
        assert!(r.credentials.is_some());

        let offline = request(
            image,
            build,
            &NO_JOB,
            &parts,
            &[],
            &[],
            &facts(Builder::Classic, None),
        );
        assert!(
            offline.cache_from.is_empty(),
            "no registry, no cache source"
        );
        assert!(
            !offline
                .build_args
                .iter()
                .any(|(k, _)| k == "BUILDKIT_INLINE_CACHE")
        );
        let no_cache = Facts {
            no_cache: true,
            ..facts(Builder::BuildKit, Some(&creds))
        };
        let r = request(image, build, &NO_JOB, &parts, &[], &[], &no_cache);
        assert!(r.no_cache && r.cache_from.is_empty());
    }

    #[test]
    fn a_classic_build_of_another_platform_takes_no_cache() {
        let plan = plan("platform = \"linux/arm64\"\n");
        let (image, build) = (&plan.images[0], &plan.images[0].builds[0]);
        let creds = credentials();
        let classic = request(
            image,
            build,
            &NO_JOB,
            &Parts::default(),
            &[],
            &[],
            &facts(Builder::Classic, Some(&creds)),
        );
        assert!(classic.no_cache);
        let buildkit = request(
            image,
            build,
            &NO_JOB,
            &Parts::default(),
            &[],
            &[],
            &facts(Builder::BuildKit, Some(&creds)),
        );
        assert!(!buildkit.no_cache);
    }
}
