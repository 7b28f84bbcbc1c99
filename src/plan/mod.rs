//! The plan: which images are built, from what, and where they go. Computed once from the config,
//! the tag and the registry; `plan`, dry-runs and real runs all read the same value.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::artifacts;
use crate::config::{Config, Image, Mirrors, ValueSource};
use crate::reference::{Platform, Reference, ReferenceError};
use crate::tag::Tag;

pub mod named;

/// The registry host and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryHost {
    pub host: String,
    pub source: RegistrySource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrySource {
    /// `--registry` / `ECRSHIP_REGISTRY`.
    Flag,
    /// `registry` in the config file.
    Config,
    /// `AWS_ACCOUNT_ID` and the region.
    Account,
    /// The `proxyEndpoint` of the ECR authorization token.
    Ecr,
    /// Nothing said where: a stand-in that tells what to set.
    Placeholder,
}

impl fmt::Display for RegistrySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegistrySource::Flag => "from --registry / ECRSHIP_REGISTRY",
            RegistrySource::Config => "from `registry` in the config",
            RegistrySource::Account => "from AWS_ACCOUNT_ID and the region",
            RegistrySource::Ecr => "from the ECR authorization token",
            RegistrySource::Placeholder => "a placeholder: no registry is known",
        })
    }
}

/// The stand-in host used when nothing names the registry (a host name, so that the URIs made
/// with it still read as references).
pub const PLACEHOLDER_REGISTRY: &str = "ACCOUNT-ID.dkr.ecr.REGION.amazonaws.com";

impl RegistryHost {
    /// The registry for plan and dry-runs: the flag or `ECRSHIP_REGISTRY`, the config, then
    /// `AWS_ACCOUNT_ID` with `AWS_REGION` (or `AWS_DEFAULT_REGION`), else a placeholder.
    pub fn for_plan(
        flag: Option<&str>,
        config: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> RegistryHost {
        let nonempty = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(host) = flag.filter(|h| !h.is_empty()) {
            return RegistryHost {
                host: host.to_owned(),
                source: RegistrySource::Flag,
            };
        }
        if let Some(host) = config {
            return RegistryHost {
                host: host.to_owned(),
                source: RegistrySource::Config,
            };
        }
        let region = nonempty("AWS_REGION").or_else(|| nonempty("AWS_DEFAULT_REGION"));
        match (nonempty("AWS_ACCOUNT_ID"), region) {
            (Some(account), Some(region)) => RegistryHost {
                host: ecr_host(&account, &region),
                source: RegistrySource::Account,
            },
            _ => RegistryHost {
                host: PLACEHOLDER_REGISTRY.to_owned(),
                source: RegistrySource::Placeholder,
            },
        }
    }
}

/// `<account>.dkr.ecr.<region>.amazonaws.com`, or `.amazonaws.com.cn` in the China regions.
pub fn ecr_host(account: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("{account}.dkr.ecr.{region}.{suffix}")
}

/// The account and region of an ECR registry host
/// (`<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`, optionally with a port), else `None`.
/// The placeholder `ACCOUNT-ID.dkr.ecr.REGION.amazonaws.com` is not an ECR host.
pub fn ecr_registry(host: &str) -> Option<(&str, &str)> {
    let host = host.trim();
    let host = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let (account, rest) = rest.split_once('.')?;
    let region = rest
        .strip_prefix("dkr.ecr.")
        .or_else(|| rest.strip_prefix("dkr.ecr-fips."))?;
    let is_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    (is_account && is_region(region)).then_some((account, region))
}

/// `us-east-1`, `cn-north-1`, `us-gov-west-1`: lowercase words joined by `-`, ending in a number.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// One image of the plan: its config, and the names and builds this run gives it. Its config's
/// fields are read through it (`image.name`); `extra_tags` is the run's, not the config's.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedImage {
    #[serde(flatten)]
    pub config: Image,
    /// `<registry>/<repository>:<tag>`: what the artifacts name (for a multi-platform image,
    /// the manifest list).
    pub uri: Reference,
    /// The tags given after the tag: `[tag] extra`, then the image's `extra_tags`.
    pub extra_tags: Vec<String>,
    /// `<registry>/<repository>:<extra>` for each extra tag, pushed after `uri`.
    pub extra_uris: Vec<Reference>,
    /// What is built: one image, or one per platform of `platforms` that this run builds.
    pub builds: Vec<PlannedBuild>,
}

impl std::ops::Deref for PlannedImage {
    type Target = Image;

    fn deref(&self) -> &Image {
        &self.config
    }
}

/// One image built: of a single-platform image, or one platform of a multi-platform one.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedBuild {
    /// The platform asked of the daemon, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The tag it is pushed under: the run's tag, or `<tag>-<arch>` for one platform of many.
    pub tag: String,
    /// Local names given by the build: `<repository>:<tag>` first, then the extra tags (of a
    /// single-platform image).
    pub local_tags: Vec<String>,
    /// `<registry>/<repository>:<tag>`.
    pub uri: Reference,
    /// `<registry>/<repository>:<extra>`, pushed after `uri` (a single-platform image's only).
    pub extra_uris: Vec<Reference>,
    /// The cache stages' images: `<repository>:cache-<stage>[-<arch>]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache: Vec<CacheImage>,
}

/// The image of one cache stage.
#[derive(Debug, Clone, Serialize)]
pub struct CacheImage {
    pub stage: String,
    pub tag: String,
    pub local_name: String,
    pub uri: Reference,
}

impl PlannedBuild {
    /// `<repository>:<tag>`, the local name of the build result.
    pub fn local_name(&self) -> &str {
        &self.local_tags[0]
    }
}

pub use crate::reference::dependency_arg;

/// Everything a run will do, before it does anything.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub tag: Tag,
    pub extra_tags: Vec<String>,
    pub registry: RegistryHost,
    pub images: Vec<PlannedImage>,
    pub imagedefinitions: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_detail: Option<String>,
    /// The one platform this run builds (`--platform`), if restricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_platform: Option<Platform>,
    /// Where each upstream registry's images are pulled from instead (`[mirror]`, `--mirror`).
    #[serde(skip_serializing_if = "Mirrors::is_empty")]
    pub mirrors: Mirrors,
    /// A cache mount larger than this (bytes) is not saved.
    #[serde(skip)]
    pub cache_mount_max_size: u64,
}

impl Plan {
    /// The plan for `images` (already selected from `config`), all platforms, or only
    /// `only_platform`. A URI that is not a reference (a tag with a platform's suffix over 128
    /// characters) is the error.
    pub fn new(
        config: &Config,
        images: &[&Image],
        tag: Tag,
        registry: RegistryHost,
        only_platform: Option<&Platform>,
    ) -> Result<Plan, ReferenceError> {
        let extra_tags: Vec<String> = config
            .tag
            .extra
            .iter()
            .filter(|t| **t != tag.value)
            .cloned()
            .collect();
        let images = images
            .iter()
            .map(|image| {
                plan_image(
                    image,
                    &tag.value,
                    &extra_tags,
                    &registry.host,
                    only_platform,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Plan {
            tag,
            extra_tags,
            registry,
            images,
            imagedefinitions: config.imagedefinitions.clone(),
            image_detail: config.image_detail.clone(),
            only_platform: only_platform.cloned(),
            mirrors: config.mirrors.clone(),
            cache_mount_max_size: config.cache_mount_max_size,
        })
    }

    /// The same plan aimed at another registry (the one ECR reports at push time).
    pub fn with_registry(&self, registry: RegistryHost) -> Result<Plan, ReferenceError> {
        let host = registry.host.clone();
        let retarget = |uri: &mut Reference| -> Result<(), ReferenceError> {
            *uri = uri.with_registry(&host)?;
            Ok(())
        };
        let mut plan = self.clone();
        for image in &mut plan.images {
            retarget(&mut image.uri)?;
            image.extra_uris.iter_mut().try_for_each(retarget)?;
            for build in &mut image.builds {
                retarget(&mut build.uri)?;
                build.extra_uris.iter_mut().try_for_each(retarget)?;
                build
                    .cache
                    .iter_mut()
                    .try_for_each(|c| retarget(&mut c.uri))?;
            }
        }
        plan.registry = registry;
        Ok(plan)
    }

    /// Names of the SSM parameters the build args and secrets of the plan's images read.
    pub fn ssm_parameters(&self) -> std::collections::BTreeSet<String> {
        self.images
            .iter()
            .flat_map(|i| i.build_args.values().chain(i.secrets.values()))
            .filter_map(|s| match s {
                ValueSource::Ssm { name } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// The images the artifacts name (`deploy = false` ones left out), in config order.
    pub fn deployed(&self) -> impl Iterator<Item = &PlannedImage> {
        self.images.iter().filter(|i| i.deploy)
    }

    /// `imagedefinitions.json` naming each deployed image by its tag's URI.
    pub fn image_definitions(&self) -> String {
        let uris: Vec<(&str, String)> = self
            .deployed()
            .map(|i| (i.name.as_str(), i.uri.to_string()))
            .collect();
        artifacts::image_definitions(uris.iter().map(|(name, uri)| (*name, uri.as_str())))
    }
}

fn plan_image(
    image: &Image,
    tag: &str,
    global_extras: &[String],
    registry: &str,
    only_platform: Option<&Platform>,
) -> Result<PlannedImage, ReferenceError> {
    let repo = &image.repository;
    let uri = |t: &str| Reference::new(registry, repo, Some(t), None);
    let mut extra_tags: Vec<String> = Vec::new();
    for t in global_extras.iter().chain(&image.extra_tags) {
        if t != tag && !extra_tags.contains(t) {
            extra_tags.push(t.clone());
        }
    }
    let extra_uris = || {
        extra_tags
            .iter()
            .map(|t| uri(t))
            .collect::<Result<Vec<_>, _>>()
    };
    let cache = |suffix: &str| -> Result<Vec<CacheImage>, ReferenceError> {
        image
            .cache_stages
            .iter()
            .map(|stage| {
                let tag = format!("cache-{stage}{suffix}");
                Ok(CacheImage {
                    stage: stage.clone(),
                    local_name: format!("{repo}:{tag}"),
                    uri: uri(&tag)?,
                    tag,
                })
            })
            .collect()
    };
    let builds = if image.platforms.is_empty() {
        let platform = image.platform.clone().unwrap_or_default();
        if only_platform.is_none_or(|p| *p == platform) {
            vec![PlannedBuild {
                platform: image.platform.clone(),
                tag: tag.to_owned(),
                local_tags: std::iter::once(tag)
                    .chain(extra_tags.iter().map(String::as_str))
                    .map(|t| format!("{repo}:{t}"))
                    .collect(),
                uri: uri(tag)?,
                extra_uris: extra_uris()?,
                cache: cache("")?,
            }]
        } else {
            Vec::new()
        }
    } else {
        image
            .platforms
            .iter()
            .filter(|p| only_platform.is_none_or(|only| only == *p))
            .map(|platform| {
                let suffix = platform.suffix();
                let tag = format!("{tag}-{suffix}");
                Ok(PlannedBuild {
                    platform: Some(platform.clone()),
                    local_tags: vec![format!("{repo}:{tag}")],
                    uri: uri(&tag)?,
                    extra_uris: Vec::new(),
                    cache: cache(&format!("-{suffix}"))?,
                    tag,
                })
            })
            .collect::<Result<_, ReferenceError>>()?
    };
    Ok(PlannedImage {
        config: image.clone(),
        uri: uri(tag)?,
        extra_uris: extra_uris()?,
        extra_tags,
        builds,
    })
}

/// `ecrship plan`'s result: the plan, the order images build in, and the artifact it would
/// write.
#[derive(Debug, Serialize)]
pub struct PlanReport<'a> {
    #[serde(flatten)]
    pub plan: &'a Plan,
    /// The images in build order: each group builds at once, after the groups before it
    /// (`depends_on`).
    pub order: Vec<Vec<String>>,
    /// The exact bytes of the imagedefinitions.json a run would write.
    pub imagedefinitions_json: serde_json::Value,
    /// The images each image's Dockerfile names, and what each is pulled as ([`named`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub references: BTreeMap<String, named::Names>,
    /// The cache mounts each image keeps, and why any it selects cannot be kept.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cache_mounts: BTreeMap<String, named::ImageMounts>,
}

impl<'a> PlanReport<'a> {
    pub fn new(plan: &'a Plan) -> PlanReport<'a> {
        let text = plan.image_definitions();
        PlanReport {
            plan,
            order: build_order(plan),
            imagedefinitions_json: serde_json::from_str(&text).unwrap_or_default(),
            references: BTreeMap::new(),
            cache_mounts: BTreeMap::new(),
        }
    }

    /// With the images each Dockerfile under `root` names.
    pub fn with_references(mut self, root: &std::path::Path) -> PlanReport<'a> {
        self.references = named::all(self.plan, root);
        self.cache_mounts = named::cache_mounts(self.plan, root);
        self
    }
}

/// The images in groups: the first group depends on nothing of this plan, each later group
/// only on images of the groups before it ([`crate::order`]; the config has no cycles: it was
/// checked).
pub fn build_order(plan: &Plan) -> Vec<Vec<String>> {
    let names: Vec<&str> = plan.images.iter().map(|i| i.name.as_str()).collect();
    let depends_on = |name: &str| {
        plan.images
            .iter()
            .find(|i| i.name == name)
            .map_or(&[][..], |i| i.depends_on.as_slice())
    };
    crate::order::groups(&names, depends_on)
        .unwrap_or_else(|_| vec![names.clone()])
        .into_iter()
        .map(|group| group.into_iter().map(str::to_owned).collect())
        .collect()
}

impl fmt::Display for PlanReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = self.plan;
        writeln!(f, "tag       {} (from {})", plan.tag.value, plan.tag.source)?;
        writeln!(
            f,
            "registry  {} ({})",
            plan.registry.host, plan.registry.source
        )?;
        if let Some(platform) = &plan.only_platform {
            writeln!(f, "platform  {platform} only")?;
        }
        if self.order.len() > 1 {
            let groups: Vec<String> = self.order.iter().map(|g| g.join(", ")).collect();
            writeln!(f, "order     {}", groups.join(" -> "))?;
        }
        for image in &plan.images {
            writeln!(f)?;
            writeln!(f, "{}", image.name)?;
            writeln!(f, "  repository  {}", image.repository)?;
            writeln!(f, "  dockerfile  {}", image.dockerfile)?;
            writeln!(f, "  context     {}", image.context)?;
            if let Some(target) = &image.target {
                writeln!(f, "  target      {target}")?;
            }
            if let Some(platform) = &image.platform {
                writeln!(f, "  platform    {platform}")?;
            }
            if !image.platforms.is_empty() {
                let platforms: Vec<String> =
                    image.platforms.iter().map(Platform::to_string).collect();
                writeln!(f, "  platforms   {}", platforms.join(", "))?;
            }
            if !image.depends_on.is_empty() {
                let args: Vec<String> = image
                    .depends_on
                    .iter()
                    .map(|d| {
                        format!(
                            "{d} (as {}_IMAGE)",
                            d.to_ascii_uppercase().replace('-', "_")
                        )
                    })
                    .collect();
                writeln!(f, "  depends on  {}", args.join(", "))?;
            }
            let list = |m: &BTreeMap<String, ValueSource>| {
                m.iter()
                    .map(|(k, v)| format!("{k} ({v})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            match self.references.get(&image.name) {
                Some(named::Names::Known(names)) => {
                    for (i, name) in names.iter().enumerate() {
                        let head = if i == 0 { "pulls     " } else { "          " };
                        writeln!(f, "  {head}  {name}")?;
                    }
                }
                Some(named::Names::Unknown(why)) => {
                    writeln!(f, "  pulls       not known: {why}")?;
                }
                None => {}
            }
            if let Some(mounts) = self.cache_mounts.get(&image.name) {
                for (i, mount) in mounts.kept.iter().enumerate() {
                    let head = if i == 0 { "cache mount" } else { "           " };
                    writeln!(
                        f,
                        "  {head} {} (line {}): restored from and saved to {}",
                        mount.id, mount.line, mount.uri
                    )?;
                }
                for why in &mounts.not_kept {
                    writeln!(f, "  not kept    {why}")?;
                }
            }
            if !image.build_args.is_empty() {
                writeln!(f, "  build args  {}", list(&image.build_args))?;
            }
            if !image.secrets.is_empty() {
                writeln!(f, "  secrets     {}", list(&image.secrets))?;
            }
            if !image.reuse {
                writeln!(f, "  reuse       no (always built)")?;
            }
            let mut pushes: Vec<&Reference> = Vec::new();
            for build in &image.builds {
                pushes.push(&build.uri);
                pushes.extend(&build.extra_uris);
            }
            if !image.platforms.is_empty() && plan.only_platform.is_none() {
                pushes.push(&image.uri);
                pushes.extend(&image.extra_uris);
            }
            for build in &image.builds {
                pushes.extend(build.cache.iter().map(|c| &c.uri));
            }
            if pushes.is_empty() {
                writeln!(f, "  push        nothing (not built for this platform)")?;
            }
            for (i, uri) in pushes.iter().enumerate() {
                let note = if !image.platforms.is_empty() && image.uri == **uri {
                    " (manifest list)"
                } else {
                    ""
                };
                writeln!(
                    f,
                    "  {}  {uri}{note}",
                    if i == 0 { "push      " } else { "          " }
                )?;
            }
            if !image.deploy {
                writeln!(f, "  deploy      no (left out of the artifacts)")?;
            }
        }
        writeln!(f)?;
        if plan.only_platform.is_some() {
            writeln!(
                f,
                "{} is not written by a run restricted to one platform: `ecrship manifest` writes it:",
                plan.imagedefinitions
            )?;
        } else {
            writeln!(f, "{} would be:", plan.imagedefinitions)?;
        }
        f.write_str(&plan.image_definitions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;
    use crate::tag::TagSource;
    use crate::test_env::env;

    #[test]
    fn registry_resolution_order() {
        let r = RegistryHost::for_plan(Some("127.0.0.1:5000"), Some("cfg"), env(&[]));
        assert_eq!(
            (r.host.as_str(), r.source),
            ("127.0.0.1:5000", RegistrySource::Flag)
        );
        let r = RegistryHost::for_plan(None, Some("cfg.example"), env(&[("AWS_ACCOUNT_ID", "1")]));
        assert_eq!(r.source, RegistrySource::Config);
        let r = RegistryHost::for_plan(
            None,
            None,
            env(&[
                ("AWS_ACCOUNT_ID", "123456789012"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
            ]),
        );
        assert_eq!(r.host, "123456789012.dkr.ecr.us-east-1.amazonaws.com");
        let r = RegistryHost::for_plan(
            None,
            None,
            env(&[
                ("AWS_ACCOUNT_ID", "123456789012"),
                ("AWS_REGION", "cn-north-1"),
            ]),
        );
        assert_eq!(r.host, "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn");
        let r = RegistryHost::for_plan(None, None, env(&[("AWS_REGION", "us-east-1")]));
        assert_eq!(
            (r.host.as_str(), r.source),
            (PLACEHOLDER_REGISTRY, RegistrySource::Placeholder)
        );
    }

    fn sample_plan() -> Plan {
        let config = Config::parse(
            "[tag]\nextra = [\"latest\", \"stable\"]\n[[image]]\nname = \"app\"\nrepository = \"team/app\"\n[[image]]\nname = \"web\"\n",
            Origin::Embedded,
        )
        .unwrap();
        let images: Vec<&Image> = config.images.iter().collect();
        let tag = Tag {
            value: "abc12345".into(),
            source: TagSource::Fallback,
        };
        let registry = RegistryHost {
            host: "r.example".into(),
            source: RegistrySource::Config,
        };
        Plan::new(&config, &images, tag, registry, None).unwrap()
    }

    #[test]
    fn uris_and_local_tags() {
        let plan = sample_plan();
        let app = &plan.images[0];
        assert_eq!(app.uri, "r.example/team/app:abc12345");
        assert_eq!(
            app.extra_uris,
            ["r.example/team/app:latest", "r.example/team/app:stable"]
        );
        assert_eq!(
            app.builds[0].local_tags,
            ["team/app:abc12345", "team/app:latest", "team/app:stable"]
        );

        let moved = plan
            .with_registry(RegistryHost {
                host: "127.0.0.1:5000".into(),
                source: RegistrySource::Ecr,
            })
            .unwrap();
        assert_eq!(moved.images[0].uri, "127.0.0.1:5000/team/app:abc12345");
        assert_eq!(moved.images[1].extra_uris[0], "127.0.0.1:5000/web:latest");
    }

    #[test]
    fn tag_equal_to_an_extra_is_not_pushed_twice() {
        let config = Config::parse("[[image]]\nname = \"app\"\n", Origin::Embedded).unwrap();
        let images: Vec<&Image> = config.images.iter().collect();
        let tag = Tag {
            value: "latest".into(),
            source: TagSource::Fallback,
        };
        let registry = RegistryHost {
            host: "r.example".into(),
            source: RegistrySource::Config,
        };
        let plan = Plan::new(&config, &images, tag, registry, None).unwrap();
        assert!(plan.images[0].extra_uris.is_empty());
        assert_eq!(plan.images[0].builds[0].local_tags, ["app:latest"]);
    }

    #[test]
    fn report_shows_sources_never_literal_values() {
        let config = Config::parse(
            "[[image]]\nname = \"app\"\n[image.build_args]\nA = \"hunter2\"\nB = { ssm = \"/p/B\" }\n\
             C = { env = \"C\", optional = true }\n",
            Origin::Embedded,
        )
        .unwrap();
        let images: Vec<&Image> = config.images.iter().collect();
        let tag = Tag {
            value: "t".into(),
            source: TagSource::Fallback,
        };
        let registry = RegistryHost {
            host: "r.example".into(),
            source: RegistrySource::Config,
        };
        let plan = Plan::new(&config, &images, tag, registry, None).unwrap();
        let report = PlanReport::new(&plan);
        let text = report.to_string();
        let json = serde_json::to_string(&report).unwrap();
        for out in [&text, &json] {
            assert!(!out.contains("hunter2"), "{out}");
            assert!(out.contains("/p/B"), "{out}");
        }
        assert!(
            text.contains("A (literal), B (ssm /p/B), C (env C, optional)"),
            "{text}"
        );
        assert!(
            json.contains(r#""C":{"from":"env","name":"C","optional":true}"#),
            "{json}"
        );
    }

    fn plan_of(text: &str, only: Option<&str>) -> Plan {
        let config = Config::parse(text, Origin::Embedded).unwrap();
        let images: Vec<&Image> = config.images.iter().collect();
        let tag = Tag {
            value: "t1".into(),
            source: TagSource::Fallback,
        };
        let registry = RegistryHost {
            host: "r.example".into(),
            source: RegistrySource::Config,
        };
        let only = only.map(|p| Platform::parse(p).unwrap());
        Plan::new(&config, &images, tag, registry, only.as_ref()).unwrap()
    }

    #[test]
    fn dependencies_order_the_build_and_name_an_arg() {
        let plan = plan_of(
            "[[image]]\nname = \"app\"\ndepends_on = [\"app-base\"]\n\
             [[image]]\nname = \"worker\"\ndepends_on = [\"app-base\"]\n\
             [[image]]\nname = \"app-base\"\ndeploy = false\n[[image]]\nname = \"web\"\n",
            None,
        );
        assert_eq!(
            build_order(&plan),
            [vec!["app-base", "web"], vec!["app", "worker"]]
        );
        assert_eq!(dependency_arg("app-base"), "APP_BASE_IMAGE");
        assert_eq!(dependency_arg("base"), "BASE_IMAGE");
        let text = PlanReport::new(&plan).to_string();
        assert!(
            text.contains("order     app-base, web -> app, worker"),
            "{text}"
        );
        assert!(
            text.contains("depends on  app-base (as APP_BASE_IMAGE)"),
            "{text}"
        );
        assert!(text.contains("deploy      no"), "{text}");
        // app-base is built and pushed, but not deployed.
        let deployed: Vec<&str> = plan.deployed().map(|i| i.name.as_str()).collect();
        assert_eq!(deployed, ["app", "worker", "web"]);
        assert!(!plan.image_definitions().contains("app-base"));
    }

    #[test]
    fn platforms_get_a_build_each_and_a_run_may_take_one() {
        let text = "[tag]\nextra = [\"latest\"]\n\
                    [[image]]\nname = \"app\"\nplatforms = [\"linux/amd64\", \"linux/arm64\", \"linux/arm/v7\"]\ncache_stages = [\"deps\"]\n\
                    [[image]]\nname = \"web\"\nextra_tags = [\"stable\"]\n\
                    [[image]]\nname = \"log\"\nplatform = \"linux/arm64\"\n";
        let plan = plan_of(text, None);
        let app = &plan.images[0];
        let tags: Vec<&str> = app.builds.iter().map(|b| b.tag.as_str()).collect();
        assert_eq!(tags, ["t1-amd64", "t1-arm64", "t1-arm-v7"]);
        assert_eq!(app.builds[1].uri, "r.example/app:t1-arm64");
        assert_eq!(app.builds[1].cache[0].uri, "r.example/app:cache-deps-arm64");
        assert!(app.builds.iter().all(|b| b.extra_uris.is_empty()));
        assert_eq!(app.uri, "r.example/app:t1");
        assert_eq!(app.extra_uris, ["r.example/app:latest"]);
        let web = &plan.images[1];
        assert_eq!(web.extra_tags, ["latest", "stable"]);
        assert_eq!(
            web.builds[0].local_tags,
            ["web:t1", "web:latest", "web:stable"]
        );

        // One platform: app's arm64 image and the images of that platform only.
        let arm = plan_of(text, Some("linux/arm64"));
        let builds: Vec<(&str, usize)> = arm
            .images
            .iter()
            .map(|i| (i.name.as_str(), i.builds.len()))
            .collect();
        assert_eq!(builds, [("app", 1), ("web", 0), ("log", 1)]);
        assert_eq!(arm.images[0].builds[0].tag, "t1-arm64");
        let amd = plan_of(text, Some("linux/amd64"));
        let builds: Vec<usize> = amd.images.iter().map(|i| i.builds.len()).collect();
        assert_eq!(builds, [1, 1, 0]);
    }
}
