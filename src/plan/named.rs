//! The images each Dockerfile names, and what each would be pulled as: `ecrship plan`'s view of
//! `[mirror]`, from the files alone (no registry is asked, so nothing is resolved or pinned).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Plan, PlannedImage, dependency_arg};
use crate::cache_mount;
use crate::config::ValueSource;
use crate::dockerfile::{self, Dockerfile, UseKind};
use crate::reference::{DEFAULT_PLATFORM, Platform, Reference};

/// One image a Dockerfile names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    /// 1-based line of its instruction.
    pub line: usize,
    /// `from`, `copy_from`, `mount_from`, `syntax`.
    pub kind: &'static str,
    /// As the Dockerfile names it, args expanded: `node:20`.
    pub reference: String,
    /// The mirror's reference, which the builder pulls instead (`[mirror]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pulled_as: Option<String>,
    /// The image of this config it names (`depends_on`), built or reused first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Why the reference is not known before a run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

/// The images an image's Dockerfile names, or why they are not known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Names {
    Known(Vec<Named>),
    Unknown(String),
}

/// A Dockerfile as a plan reads it.
struct Read<'a> {
    parsed: Dockerfile,
    needed: Vec<usize>,
    /// The build args only a run knows (from SSM or a file).
    unknown_args: Vec<&'a str>,
    /// Each dependency's name, and its local name (the value of its arg).
    dependencies: Vec<(&'a str, &'a str)>,
}

/// `text` (the Dockerfile of `image`) parsed with the build args a plan knows: the config's
/// literal values and the environment's; an argument from SSM or a file is known only to a run.
fn read<'a>(
    plan: &'a Plan,
    image: &'a PlannedImage,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Read<'a>, String> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut dependencies = Vec::new();
    for name in &image.depends_on {
        if let Some(dep) = plan.images.iter().find(|i| &i.name == name)
            && let Some(build) = dep.builds.first()
        {
            args.insert(dependency_arg(name), build.local_name().to_owned());
            dependencies.push((name.as_str(), build.local_name()));
        }
    }
    let mut unknown_args = Vec::new();
    for (name, source) in &image.build_args {
        let value = match source {
            ValueSource::Literal { value } => Some(value.clone()),
            ValueSource::Env { name: var, .. } => env(var),
            ValueSource::Ssm { .. } | ValueSource::File { .. } => {
                // A stand-in, so that the file still parses; what uses it says it is not known.
                unknown_args.push(name.as_str());
                Some("unknown".to_owned())
            }
        };
        if let Some(value) = value {
            args.insert(name.clone(), value);
        } else {
            args.remove(name);
        }
    }
    let platform = platform_of(image).to_string();
    let parsed = dockerfile::parse(
        text,
        &dockerfile::Args {
            build_args: &args,
            platform: &platform,
            build_platform: DEFAULT_PLATFORM,
            target: image.target.as_deref(),
        },
    )
    .and_then(|parsed| {
        let needed = parsed.needed_stages(image.target.as_deref())?;
        Ok((parsed, needed))
    })
    .map_err(|e| format!("Dockerfile line {}: {}", e.line, e.message))?;
    Ok(Read {
        parsed: parsed.0,
        needed: parsed.1,
        unknown_args,
        dependencies,
    })
}

/// The platform a plan reads an image's Dockerfile for: its first build's.
fn platform_of(image: &PlannedImage) -> Platform {
    image
        .builds
        .first()
        .and_then(|b| b.platform.clone())
        .or_else(|| image.platform.clone())
        .unwrap_or_default()
}

/// One cache mount an image keeps (`cache_mounts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedMount {
    pub id: String,
    pub target: String,
    pub line: usize,
    /// Where its content is restored from and saved to.
    pub uri: String,
}

/// The cache mounts one image keeps, and why any it selects cannot be kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageMounts {
    pub kept: Vec<PlannedMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_kept: Vec<String>,
}

/// The cache mounts each image of `plan` keeps (read under `root`).
pub fn cache_mounts(plan: &Plan, root: &std::path::Path) -> BTreeMap<String, ImageMounts> {
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    let mut all = BTreeMap::new();
    for image in plan.images.iter().filter(|i| !i.cache_mounts.is_off()) {
        let text = std::fs::read_to_string(root.join(&image.dockerfile)).unwrap_or_default();
        let read = match read(plan, image, &text, &|name| std::env::var(name).ok()) {
            Ok(read) => read,
            Err(why) => {
                let not_kept = vec![format!("its cache mounts are not known: {why}")];
                all.insert(
                    image.name.clone(),
                    ImageMounts {
                        kept: Vec::new(),
                        not_kept,
                    },
                );
                continue;
            }
        };
        let mut mounts = Vec::new();
        let mut refused = Vec::new();
        let several = !image.platforms.is_empty();
        for build in &image.builds {
            let suffix = build
                .platform
                .as_ref()
                .filter(|_| several)
                .map(Platform::suffix);
            let (kept, not) = cache_mount::kept(
                &read.parsed,
                &read.needed,
                &image.cache_mounts,
                suffix.as_deref(),
            );
            for kept in kept {
                let repository = owners
                    .entry(kept.tag.clone())
                    .or_insert_with(|| image.repository.clone());
                mounts.push(PlannedMount {
                    id: kept.mount.id.clone(),
                    target: kept.mount.target.clone(),
                    line: kept.mount.line,
                    uri: format!("{}/{repository}:{}", plan.registry.host, kept.tag),
                });
            }
            for why in not {
                if !refused.contains(&why) {
                    refused.push(why);
                }
            }
        }
        all.insert(
            image.name.clone(),
            ImageMounts {
                kept: mounts,
                not_kept: refused,
            },
        );
    }
    all
}

/// For each image of `plan`, the images its Dockerfile names (read under `root`).
pub fn all(plan: &Plan, root: &std::path::Path) -> BTreeMap<String, Names> {
    plan.images
        .iter()
        .map(|image| {
            let names = match std::fs::read(root.join(&image.dockerfile)) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => names(plan, image, &text, &|name| std::env::var(name).ok()),
                    Err(_) => Names::Unknown("the Dockerfile is not UTF-8".into()),
                },
                Err(e) => Names::Unknown(format!("{} cannot be read: {e}", image.dockerfile)),
            };
            (image.name.clone(), names)
        })
        .collect()
}

/// The images `text` (the Dockerfile of `image`) names in the stages its build needs, with the
/// build args a plan knows: the config's literal values and the environment's; an argument
/// from SSM or a file is known only to a run, and a reference that uses one says so.
pub fn names(
    plan: &Plan,
    image: &PlannedImage,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Names {
    let read = match read(plan, image, text, env) {
        Ok(read) => read,
        Err(why) => return Names::Unknown(why),
    };
    let Read {
        parsed,
        needed,
        unknown_args,
        dependencies,
    } = &read;
    let mut named = Vec::new();
    for image_use in parsed
        .images()
        .filter(|u| u.stage.is_none_or(|stage| needed.contains(&stage)))
    {
        let kind = match image_use.kind {
            UseKind::Syntax => "syntax",
            UseKind::From => "from",
            UseKind::CopyFrom => "copy_from",
            UseKind::MountFrom => "mount_from",
        };
        let uses_unknown = unknown_args.iter().any(|arg| {
            let written = &image_use.written;
            written.contains(&format!("${arg}")) || written.contains(&format!("${{{arg}"))
        });
        let dependency = dependencies
            .iter()
            .find(|(_, local)| *local == image_use.value);
        let mut named_image = Named {
            line: image_use.line,
            kind,
            reference: image_use.written.clone(),
            pulled_as: None,
            image: None,
            unknown: None,
        };
        if let Some((name, _)) = dependency {
            named_image.image = Some((*name).to_owned());
        } else if uses_unknown {
            named_image.unknown = Some("it uses a build arg from SSM or a file".to_owned());
        } else {
            match Reference::parse(&image_use.value) {
                Ok(reference) => {
                    named_image.reference = reference.familiar();
                    named_image.pulled_as = plan
                        .mirrors
                        .route(&reference, &plan.registry.host)
                        .map(|(via, _)| via.to_string());
                }
                Err(e) => {
                    named_image.reference = image_use.value.clone();
                    named_image.unknown = Some(e.to_string());
                }
            }
        }
        named.push(named_image);
    }
    Names::Known(named)
}

/// `node:20 (line 1) as <mirror>/docker-hub/library/node:20`.
impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            "syntax" => ", # syntax",
            "copy_from" => ", COPY --from",
            "mount_from" => ", RUN --mount",
            _ => "",
        };
        write!(f, "{} (line {}{kind})", self.reference, self.line)?;
        if let Some(via) = &self.pulled_as {
            write!(f, " as {via}")?;
        }
        if let Some(image) = &self.image {
            write!(f, ": the image {image} of this config")?;
        }
        if let Some(why) = &self.unknown {
            write!(f, ": not known before a run, {why}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Image, Mirrors, Origin};
    use crate::plan::{RegistryHost, RegistrySource};
    use crate::tag::{Tag, TagSource};

    fn plan(config: &str, mirror: Option<&str>) -> Plan {
        let config = Config::parse(config, Origin::Embedded).unwrap();
        let images: Vec<&Image> = config.images.iter().collect();
        let tag = Tag {
            value: "t1".into(),
            source: TagSource::Fallback,
        };
        let registry = RegistryHost {
            host: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
            source: RegistrySource::Config,
        };
        let mut plan = Plan::new(&config, &images, tag, registry, None).unwrap();
        if let Some(flag) = mirror {
            plan.mirrors = Mirrors::from_flag(flag).unwrap();
        }
        plan
    }

    fn shown(plan: &Plan, image: &str, text: &str) -> Vec<String> {
        let image = plan.images.iter().find(|i| i.name == image).unwrap();
        match names(plan, image, text, &|name| {
            (name == "FROM_ENV").then(|| "alpine:3".into())
        }) {
            Names::Known(named) => named.iter().map(ToString::to_string).collect(),
            Names::Unknown(why) => vec![format!("unknown: {why}")],
        }
    }

    const CONFIG: &str = "[[image]]\nname = \"base\"\ndeploy = false\n\
        [[image]]\nname = \"app\"\ndepends_on = [\"base\"]\n\
        build_args = { V = \"22\", E = { env = \"FROM_ENV\" }, S = { ssm = \"/p/s\" } }\n";

    const DOCKERFILE: &str = "# syntax=docker/dockerfile:1\n\
        ARG V=20\nARG E\nARG S\nARG BASE_IMAGE\n\
        FROM node:${V} AS build\n\
        FROM ${S} AS unused\n\
        FROM ${E} AS tools\n\
        FROM ${BASE_IMAGE}\n\
        COPY --from=build /b /b\n\
        COPY --from=tools /t /t\n\
        COPY --from=ghcr.io/org/tool:1 /t /t\n\
        RUN --mount=type=bind,from=busybox,target=/e true\n";

    #[test]
    fn each_reference_is_shown_as_it_would_be_pulled() {
        let plan = plan(CONFIG, Some("docker.io=docker-hub"));
        let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        assert_eq!(
            shown(&plan, "app", DOCKERFILE),
            [
                format!(
                    "docker/dockerfile:1 (line 1, # syntax) as {ecr}/docker-hub/docker/dockerfile:1"
                ),
                format!("node:22 (line 6) as {ecr}/docker-hub/library/node:22"),
                format!("alpine:3 (line 8) as {ecr}/docker-hub/library/alpine:3"),
                "${BASE_IMAGE} (line 9): the image base of this config".to_owned(),
                "ghcr.io/org/tool:1 (line 12, COPY --from)".to_owned(),
                format!("busybox (line 13, RUN --mount) as {ecr}/docker-hub/library/busybox"),
            ],
            "the stage no build needs is left out"
        );
    }

    #[test]
    fn what_only_a_run_knows_is_said() {
        let plan = plan(CONFIG, None);
        let text = "ARG S\nFROM ${S}\n";
        assert_eq!(
            shown(&plan, "app", text),
            ["${S} (line 2): not known before a run, it uses a build arg from SSM or a file"]
        );
        let no_mirror = shown(&plan, "app", "FROM node:20\n");
        assert_eq!(no_mirror, ["node:20 (line 1)"]);
        let broken = shown(&plan, "app", "FROM\n");
        assert!(
            broken[0].starts_with("unknown: Dockerfile line 1"),
            "{broken:?}"
        );
    }
}
