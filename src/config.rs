//! `ecrship.toml`, and the embedded default that reproduces the seed's `dockerfiles/{app,web,log}`.
//!
//! Loading is strict: unknown keys, wrong types and values outside their grammar are errors that
//! name the file, the line and the key or value. Paths are checked separately
//! ([`Config::check_paths`]) so that `ecrship tag` works in any folder.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::context::Builder;
use crate::reference::{
    Platform, bucket_violation, container_name_violation, ecs_name_violation, key_violation,
    registry_violation, repository_violation, tag_violation,
};

/// The file looked for at the project root when `-c` is not given.
pub const DEFAULT_FILE: &str = "ecrship.toml";

const EMBEDDED: &str = include_str!("default.toml");

/// Where the configuration came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Embedded,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => {
                let path = path.strip_prefix(".").unwrap_or(path);
                write!(f, "{}", path.display())
            }
            Origin::Embedded => f.write_str("the built-in seed layout"),
        }
    }
}

/// A configuration error: what is wrong, and where.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct ConfigError {
    pub origin: Origin,
    pub line: Option<usize>,
    pub message: String,
}

/// The `[tag]` table: how the image tag is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TagConfig {
    /// File at the project root whose first line is the tag.
    pub file: String,
    /// Environment variables tried in order after the file.
    pub env: Vec<String>,
    /// The tag when nothing else yields one.
    pub fallback: String,
    /// Further tags given to every image and pushed after the main one.
    pub extra: Vec<String>,
    /// Keep only this many characters of a file or environment value.
    pub length: Option<usize>,
}

impl Default for TagConfig {
    fn default() -> Self {
        TagConfig {
            file: ".git-commit-hash".into(),
            env: vec!["CODEBUILD_RESOLVED_SOURCE_VERSION".into()],
            fallback: "latest".into(),
            extra: vec!["latest".into()],
            length: None,
        }
    }
}

/// The `[source]` table: what `ecrship source` puts in the source zip, and where the zip goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceConfig {
    /// The S3 bucket that CodePipeline's source stage watches.
    pub bucket: Option<Located>,
    /// The object key in that bucket.
    pub key: Option<Located>,
    /// Paths (files or folders) to put in the zip; `None`: every file git tracks.
    pub include: Option<Vec<Located>>,
    /// Paths (files or folders) to leave out of what `include` (or git) gives.
    pub exclude: Vec<Located>,
}

/// A value of the config, with the line it was written on (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub value: String,
    pub line: usize,
}

/// Where a build argument or secret takes its value from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "lowercase")]
pub enum Source {
    /// A value written in the config. Never printed: it may be anything.
    Literal {
        #[serde(skip)]
        value: String,
    },
    /// An environment variable; an optional one that is unset is left out, as `--build-arg NAME` does.
    Env { name: String, optional: bool },
    /// An SSM Parameter Store parameter (SecureString decrypted).
    Ssm { name: String },
    /// A file, relative to the project root.
    File { path: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Literal { .. } => f.write_str("literal"),
            Source::Env { name, optional } => {
                write!(f, "env {name}")?;
                if *optional {
                    f.write_str(" (optional)")?;
                }
                Ok(())
            }
            Source::Ssm { name } => write!(f, "ssm {name}"),
            Source::File { path } => write!(f, "file {path}"),
        }
    }
}

/// One image of the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    /// The container name in the ECS task definition.
    pub name: String,
    /// The ECR repository.
    pub repository: String,
    /// Build context, relative to the project root, `/`-separated, `.` for the root.
    pub context: String,
    /// Dockerfile, relative to the project root.
    pub dockerfile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    pub build_args: BTreeMap<String, Source>,
    pub secrets: BTreeMap<String, Source>,
    pub labels: BTreeMap<String, String>,
    /// Whether an image with the same inputs in the registry is reused instead of built.
    pub reuse: bool,
    /// Stages built and pushed as `<repository>:cache-<stage>`, whose inline cache the next
    /// run starts from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_stages: Vec<String>,
    /// Tags pushed after the image's own, besides `[tag] extra`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_tags: Vec<String>,
    /// Images of this config that must be built first; each reaches the build as the build
    /// arg `<NAME>_IMAGE`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Whether the image goes into the artifacts (a base image for others does not).
    pub deploy: bool,
    /// Platforms of a multi-architecture image (`linux/amd64`, `linux/arm64`), one image each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
    /// Line of the `[[image]]` entry, for messages (0 for the embedded default).
    #[serde(skip)]
    pub line: usize,
    /// The line of each build arg's and each secret's source, by name (for messages).
    #[serde(skip)]
    pub source_lines: SourceLines,
}

/// Lines of the config where build args and secrets take their values from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceLines {
    pub build_args: BTreeMap<String, usize>,
    pub secrets: BTreeMap<String, usize>,
}

/// The `[deploy]` table: the ECS service the images are deployed to, which the deploy preflight
/// reads before a push (see `deploy.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployConfig {
    /// The ECS cluster's name.
    pub cluster: String,
    /// The ECS service's name.
    pub service: String,
    /// Line of the `[deploy]` table, for messages.
    #[serde(skip)]
    pub line: usize,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub origin: Origin,
    pub registry: Option<String>,
    pub jobs: Option<usize>,
    pub builder: Builder,
    pub tag: TagConfig,
    pub imagedefinitions: String,
    pub image_detail: Option<String>,
    /// How old an image in the registry may be and still be reused (base images move upstream).
    pub reuse_max_age: std::time::Duration,
    pub images: Vec<Image>,
    pub deploy: Option<DeployConfig>,
    pub source: SourceConfig,
}

/// `reuse_max_age` when the config says nothing: base-image updates still arrive weekly.
pub const DEFAULT_REUSE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

impl Config {
    /// Loads `explicit` if given, else `<root>/ecrship.toml` if it exists, else the embedded default.
    pub fn load(root: &Path, explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(path) => Some(path.to_path_buf()),
            None => Some(root.join(DEFAULT_FILE)).filter(|p| p.is_file()),
        };
        match path {
            Some(path) => {
                let origin = Origin::File(path.clone());
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
                    origin: origin.clone(),
                    line: None,
                    message: format!("cannot read the config file: {e}"),
                })?;
                Config::parse(&text, origin)
            }
            None => Config::parse(EMBEDDED, Origin::Embedded),
        }
    }

    /// Parses and validates a configuration text.
    pub fn parse(text: &str, origin: Origin) -> Result<Config, ConfigError> {
        let at = |span: Option<std::ops::Range<usize>>, message: String| ConfigError {
            origin: origin.clone(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = match e.span().and_then(|s| key_at(text, s.start)) {
                Some(key) if !e.message().contains(key) => {
                    format!("`{key}`: {}", one_line(e.message()))
                }
                _ => one_line(e.message()),
            };
            at(e.span(), message)
        })?;

        let mut images = Vec::with_capacity(raw.image.len());
        let mut names = HashSet::new();
        for spanned in raw.image {
            let span = spanned.span();
            let raw_image = spanned.into_inner();
            let image = raw_image
                .validate(raw.reuse.unwrap_or(true))
                .map_err(|(s, m)| at(Some(s.unwrap_or(span.clone())), m))?;
            if !names.insert(image.name.clone()) {
                return Err(at(
                    Some(span),
                    format!("image name `{}` is used twice", image.name),
                ));
            }
            let lines = |offsets: &BTreeMap<String, usize>| -> BTreeMap<String, usize> {
                offsets
                    .iter()
                    .map(|(name, &offset)| (name.clone(), line_of(text, offset)))
                    .collect()
            };
            let source_lines = SourceLines {
                build_args: lines(&image.source_lines.build_args),
                secrets: lines(&image.source_lines.secrets),
            };
            images.push(Image {
                line: line_of(text, span.start),
                source_lines,
                ..image
            });
        }
        if images.is_empty() {
            return Err(at(
                None,
                "no images: add at least one [[image]] with a `name`".into(),
            ));
        }
        check_dependencies(&images).map_err(|(line, m)| ConfigError {
            origin: origin.clone(),
            line: Some(line),
            message: m,
        })?;
        let reuse_max_age = match &raw.reuse_max_age {
            Some(age) => parse_duration(age.get_ref()).map_err(|m| {
                at(
                    Some(age.span()),
                    format!("reuse_max_age `{}`: {m}", age.get_ref()),
                )
            })?,
            None => DEFAULT_REUSE_MAX_AGE,
        };

        let tag = raw.tag;
        validate_tag_config(&tag).map_err(|m| at(None, m))?;
        let registry = match raw.registry {
            Some(r) => {
                let value = r.get_ref().trim().to_owned();
                if let Some(reason) = registry_violation(&value) {
                    return Err(at(Some(r.span()), format!("registry `{value}` {reason}")));
                }
                Some(value)
            }
            None => None,
        };
        let jobs = match raw.jobs {
            Some(j) if *j.get_ref() == 0 => {
                return Err(at(Some(j.span()), "jobs must be at least 1".into()));
            }
            j => j.map(Spanned::into_inner),
        };
        let artifacts = raw.artifacts;
        let imagedefinitions =
            clean_relative(artifacts.imagedefinitions.get_ref()).map_err(|m| {
                at(
                    Some(artifacts.imagedefinitions.span()),
                    format!("imagedefinitions: {m}"),
                )
            })?;
        let image_detail = match artifacts.image_detail {
            Some(name) if !names.contains(name.get_ref()) => {
                return Err(at(
                    Some(name.span()),
                    format!(
                        "image_detail names `{}`, which is not an image of this config",
                        name.get_ref()
                    ),
                ));
            }
            name => name.map(Spanned::into_inner),
        };

        let deploy = match raw.deploy {
            Some(table) => {
                let line = line_of(text, table.span().start);
                let table = table.into_inner();
                for (what, name) in [("cluster", &table.cluster), ("service", &table.service)] {
                    if let Some(reason) = ecs_name_violation(name.get_ref()) {
                        return Err(at(
                            Some(name.span()),
                            format!("[deploy] {what} `{}` {reason}", name.get_ref()),
                        ));
                    }
                }
                Some(DeployConfig {
                    cluster: table.cluster.into_inner(),
                    service: table.service.into_inner(),
                    line,
                })
            }
            None => None,
        };
        let source = raw
            .source
            .validate(&|span: Span| line_of(text, span.start))
            .map_err(|(span, m)| at(Some(span), m))?;

        Ok(Config {
            origin,
            registry,
            jobs,
            builder: raw.builder.unwrap_or_default(),
            tag,
            imagedefinitions,
            image_detail,
            reuse_max_age,
            images,
            deploy,
            source,
        })
    }

    /// Checks that every image's context is a folder and its Dockerfile a file under `root`.
    pub fn check_paths(&self, root: &Path) -> Result<(), ConfigError> {
        for image in &self.images {
            let hint = match self.origin {
                Origin::Embedded => {
                    " (with no ecrship.toml, ecrship expects dockerfiles/{app,web,log}; write an ecrship.toml to describe other images)"
                }
                Origin::File(_) => "",
            };
            let err = |message: String| ConfigError {
                origin: self.origin.clone(),
                line: (self.origin != Origin::Embedded).then_some(image.line),
                message: format!("image `{}`: {message}{hint}", image.name),
            };
            if !root.join(&image.context).is_dir() {
                return Err(err(format!("context `{}` is not a folder", image.context)));
            }
            if !root.join(&image.dockerfile).is_file() {
                return Err(err(format!("Dockerfile `{}` not found", image.dockerfile)));
            }
        }
        Ok(())
    }

    /// The images named on the command line, in config order; all when `names` is empty.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Image>, String> {
        if let Some(unknown) = names
            .iter()
            .find(|n| !self.images.iter().any(|i| &i.name == *n))
        {
            let known: Vec<&str> = self.images.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "no image named `{unknown}` (images: {})",
                known.join(", ")
            ));
        }
        Ok(self
            .images
            .iter()
            .filter(|i| names.is_empty() || names.contains(&i.name))
            .collect())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    registry: Option<Spanned<String>>,
    jobs: Option<Spanned<usize>>,
    builder: Option<Builder>,
    reuse: Option<bool>,
    reuse_max_age: Option<Spanned<String>>,
    #[serde(default)]
    tag: TagConfig,
    #[serde(default)]
    artifacts: RawArtifacts,
    #[serde(default)]
    image: Vec<Spanned<RawImage>>,
    deploy: Option<Spanned<RawDeploy>>,
    #[serde(default)]
    source: RawSource,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    cluster: Spanned<String>,
    service: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawSource {
    bucket: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    include: Option<Spanned<Vec<Spanned<String>>>>,
    exclude: Vec<Spanned<String>>,
}

impl RawSource {
    /// Checks the bucket and key against S3's rules and cleans the listed paths.
    fn validate(self, line: &dyn Fn(Span) -> usize) -> Result<SourceConfig, (Span, String)> {
        let located = |s: &Spanned<String>, value: String| Located {
            value,
            line: line(s.span()),
        };
        let bucket = match &self.bucket {
            Some(b) => {
                let value = b.get_ref().trim().to_owned();
                if let Some(reason) = bucket_violation(&value) {
                    return Err((b.span(), format!("[source] bucket `{value}` {reason}")));
                }
                Some(located(b, value))
            }
            None => None,
        };
        let key = match &self.key {
            Some(k) => {
                let value = k.get_ref().clone();
                if let Some(reason) = key_violation(&value) {
                    return Err((k.span(), format!("[source] key `{value}` {reason}")));
                }
                Some(located(k, value))
            }
            None => None,
        };
        let paths = |list: &[Spanned<String>], what: &str| {
            list.iter()
                .map(|p| {
                    clean_relative(p.get_ref())
                        .map(|value| located(p, value))
                        .map_err(|m| (p.span(), format!("[source] {what}: {m}")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let include = match &self.include {
            Some(list) if list.get_ref().is_empty() => {
                return Err((
                    list.span(),
                    "[source] include is empty: list the paths to zip, or leave `include` out to zip every file git tracks".into(),
                ));
            }
            Some(list) => Some(paths(list.get_ref(), "include")?),
            None => None,
        };
        let exclude = paths(&self.exclude, "exclude")?;
        Ok(SourceConfig {
            bucket,
            key,
            include,
            exclude,
        })
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawArtifacts {
    imagedefinitions: Spanned<String>,
    image_detail: Option<Spanned<String>>,
}

impl Default for RawArtifacts {
    fn default() -> Self {
        RawArtifacts {
            imagedefinitions: Spanned::new(0..0, "imagedefinitions.json".into()),
            image_detail: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    name: Spanned<String>,
    repository: Option<Spanned<String>>,
    context: Option<Spanned<String>>,
    dockerfile: Option<Spanned<String>>,
    target: Option<String>,
    platform: Option<Spanned<String>>,
    #[serde(default)]
    build_args: BTreeMap<String, Spanned<Source>>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<Source>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    reuse: Option<bool>,
    #[serde(default = "empty_list")]
    cache_stages: Spanned<Vec<String>>,
    #[serde(default = "empty_list")]
    extra_tags: Spanned<Vec<String>>,
    #[serde(default = "empty_list")]
    depends_on: Spanned<Vec<String>>,
    deploy: Option<bool>,
    #[serde(default = "empty_list")]
    platforms: Spanned<Vec<String>>,
}

type Span = std::ops::Range<usize>;

fn empty_list() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}

impl RawImage {
    fn validate(self, reuse: bool) -> Result<Image, (Option<Span>, String)> {
        let name = self.name.get_ref().clone();
        if let Some(reason) = container_name_violation(&name) {
            return Err((
                Some(self.name.span()),
                format!("image name `{name}` {reason}"),
            ));
        }
        let fail = |span: Span, message: String| (Some(span), format!("image `{name}`: {message}"));

        let repository = match &self.repository {
            Some(r) => {
                if let Some(reason) = repository_violation(r.get_ref()) {
                    return Err(fail(
                        r.span(),
                        format!("repository `{}` {reason}", r.get_ref()),
                    ));
                }
                r.get_ref().clone()
            }
            None => match repository_violation(&name) {
                None => name.clone(),
                Some(reason) => {
                    let msg = format!(
                        "the repository defaults to the name `{name}`, which {reason}; set `repository`"
                    );
                    return Err(fail(self.name.span(), msg));
                }
            },
        };
        let context = match &self.context {
            Some(c) => {
                clean_relative(c.get_ref()).map_err(|m| fail(c.span(), format!("context: {m}")))?
            }
            None => ".".to_owned(),
        };
        let dockerfile = match &self.dockerfile {
            Some(d) => clean_relative(d.get_ref())
                .map_err(|m| fail(d.span(), format!("dockerfile: {m}")))?,
            None if context == "." => "Dockerfile".to_owned(),
            None => format!("{context}/Dockerfile"),
        };
        for (key, source) in self.build_args.iter().chain(&self.secrets) {
            if key.is_empty() || key.contains('=') || key.chars().any(char::is_whitespace) {
                return Err(fail(
                    source.span(),
                    format!("`{key}` is not a valid build argument or secret name"),
                ));
            }
            if let Source::File { path } = source.get_ref() {
                clean_relative(path)
                    .map_err(|m| fail(source.span(), format!("{key}: file: {m}")))?;
            }
        }
        let unspan = |m: BTreeMap<String, Spanned<Source>>| -> BTreeMap<String, Source> {
            m.into_iter().map(|(k, v)| (k, v.into_inner())).collect()
        };
        // Byte offsets for now: `Config::parse` turns them into lines.
        let offsets = |m: &BTreeMap<String, Spanned<Source>>| -> BTreeMap<String, usize> {
            m.iter().map(|(k, v)| (k.clone(), v.span().start)).collect()
        };
        let source_lines = SourceLines {
            build_args: offsets(&self.build_args),
            secrets: offsets(&self.secrets),
        };
        for stage in self.cache_stages.get_ref() {
            if let Some(reason) = tag_violation(&format!("cache-{stage}")) {
                return Err(fail(
                    self.cache_stages.span(),
                    format!("cache stage `{stage}` cannot name the tag `cache-{stage}`: {reason}"),
                ));
            }
        }
        for tag in self.extra_tags.get_ref() {
            if let Some(reason) = tag_violation(tag) {
                return Err(fail(
                    self.extra_tags.span(),
                    format!("extra tag `{tag}` is not a valid Docker tag: {reason}"),
                ));
            }
        }
        let platforms = self
            .platforms
            .get_ref()
            .iter()
            .map(|p| Platform::parse(p).map_err(|e| fail(self.platforms.span(), e.to_string())))
            .collect::<Result<Vec<Platform>, _>>()?;
        let platform = match &self.platform {
            Some(platform) if !platforms.is_empty() => {
                return Err(fail(
                    platform.span(),
                    "give either `platform` or `platforms`, not both".into(),
                ));
            }
            Some(platform) => Some(
                Platform::parse(platform.get_ref())
                    .map_err(|e| fail(platform.span(), e.to_string()))?,
            ),
            None => None,
        };
        let mut seen = HashSet::new();
        if let Some(dup) = platforms.iter().find(|p| !seen.insert(*p)) {
            return Err(fail(
                self.platforms.span(),
                format!("platform `{dup}` is listed twice"),
            ));
        }
        Ok(Image {
            name,
            repository,
            context,
            dockerfile,
            target: self.target,
            platform,
            build_args: unspan(self.build_args),
            secrets: unspan(self.secrets),
            labels: self.labels,
            reuse: self.reuse.unwrap_or(reuse),
            cache_stages: self.cache_stages.into_inner(),
            extra_tags: self.extra_tags.into_inner(),
            depends_on: self.depends_on.into_inner(),
            deploy: self.deploy.unwrap_or(true),
            platforms,
            line: 0,
            source_lines,
        })
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Source, D::Error> {
        struct SourceVisitor;
        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = Source;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, or a table with one of `env`, `ssm`, `file`")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Source, E> {
                Ok(Source::Literal {
                    value: value.to_owned(),
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Source, A::Error> {
                let mut found: Option<Source> = None;
                let mut optional = None;
                while let Some(key) = map.next_key::<String>()? {
                    let source = match key.as_str() {
                        "optional" => {
                            optional = Some(map.next_value::<bool>()?);
                            continue;
                        }
                        "env" => Source::Env {
                            name: map.next_value()?,
                            optional: false,
                        },
                        "ssm" => Source::Ssm {
                            name: map.next_value()?,
                        },
                        "file" => Source::File {
                            path: map.next_value()?,
                        },
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["env", "ssm", "file", "optional"],
                            ));
                        }
                    };
                    if found.replace(source).is_some() {
                        return Err(de::Error::custom("give only one of `env`, `ssm`, `file`"));
                    }
                }
                match (found, optional) {
                    (None, _) => Err(de::Error::custom("expected one of `env`, `ssm`, `file`")),
                    (Some(Source::Env { name, .. }), optional) => Ok(Source::Env {
                        name,
                        optional: optional.unwrap_or(false),
                    }),
                    (Some(_), Some(_)) => Err(de::Error::custom(
                        "`optional` applies to `env` sources only",
                    )),
                    (Some(source), None) => {
                        let name = match &source {
                            Source::Ssm { name } => name,
                            Source::File { path } => path,
                            _ => unreachable!("env and literal handled above"),
                        };
                        if name.trim().is_empty() {
                            return Err(de::Error::custom("the source name is empty"));
                        }
                        Ok(source)
                    }
                }
            }
        }
        deserializer.deserialize_any(SourceVisitor)
    }
}

/// `depends_on` names images of this config, never the image itself, and forms no cycle.
/// On error: the line of the image at fault and the message.
fn check_dependencies(images: &[Image]) -> Result<(), (usize, String)> {
    let known: HashSet<&str> = images.iter().map(|i| i.name.as_str()).collect();
    for image in images {
        for dep in &image.depends_on {
            if dep == &image.name {
                return Err((
                    image.line,
                    format!("image `{}` depends on itself", image.name),
                ));
            }
            if !known.contains(dep.as_str()) {
                let mut names: Vec<&str> = known.iter().copied().collect();
                names.sort_unstable();
                return Err((
                    image.line,
                    format!(
                        "image `{}` depends on `{dep}`, which is not an image of this config (images: {})",
                        image.name,
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(images) {
        let line = images
            .iter()
            .find(|i| i.name == cycle[0])
            .map_or(0, |i| i.line);
        return Err((
            line,
            format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
        ));
    }
    Ok(())
}

/// A dependency cycle, as the names along it with the first repeated at the end.
fn find_cycle(images: &[Image]) -> Option<Vec<String>> {
    fn visit<'a>(
        name: &'a str,
        images: &'a [Image],
        state: &mut std::collections::HashMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(name) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|n| n.to_string()).collect();
                cycle.push(name.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(name, 1);
        path.push(name);
        let deps = images
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.depends_on.as_slice())
            .unwrap_or_default();
        for dep in deps {
            if let Some(cycle) = visit(dep, images, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(name, 2);
        None
    }
    let mut state = std::collections::HashMap::new();
    images
        .iter()
        .find_map(|image| visit(&image.name, images, &mut state, &mut Vec::new()))
}

/// A duration written as a number and a unit: `90s`, `30m`, `12h`, `7d`, `2w`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "write a number and a unit: 90s, 30m, 12h, 7d or 2w".to_string())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err("the unit must be s, m, h, d or w (e.g. 7d)".into()),
    };
    number
        .checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| "too long".to_string())
}

fn validate_tag_config(tag: &TagConfig) -> Result<(), String> {
    for extra in &tag.extra {
        if let Some(reason) = tag_violation(extra) {
            return Err(format!(
                "[tag] extra `{extra}` is not a valid Docker tag: {reason}"
            ));
        }
    }
    if let Some(reason) = tag_violation(&tag.fallback) {
        return Err(format!(
            "[tag] fallback `{}` is not a valid Docker tag: {reason}",
            tag.fallback
        ));
    }
    if tag.length == Some(0) {
        return Err("[tag] length must be at least 1".into());
    }
    if !tag.file.is_empty() {
        clean_relative(&tag.file).map_err(|m| format!("[tag] file: {m}"))?;
    }
    Ok(())
}

/// Normalizes a relative path as Go's `filepath.Clean` would, and refuses paths that are absolute
/// or climb out of the project root.
pub fn clean_relative(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err(format!(
            "`{path}` must be a relative path with `/` separators"
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("`{path}` leaves the project root"));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// The key of the `key = value` line holding a byte offset, for messages about its value.
fn key_at(text: &str, offset: usize) -> Option<&str> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[')).then_some(key)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn one_line(message: &str) -> String {
    message
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Origin::File("ecrship.toml".into()))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn embedded_default_is_the_seed_layout() {
        let c = Config::parse(EMBEDDED, Origin::Embedded).unwrap();
        let got: Vec<(&str, &str, &str, &str)> = c
            .images
            .iter()
            .map(|i| {
                (
                    i.name.as_str(),
                    i.repository.as_str(),
                    i.context.as_str(),
                    i.dockerfile.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("app", "app", ".", "dockerfiles/app/Dockerfile"),
                (
                    "web",
                    "web",
                    "dockerfiles/web",
                    "dockerfiles/web/Dockerfile"
                ),
                (
                    "log",
                    "log",
                    "dockerfiles/log",
                    "dockerfiles/log/Dockerfile"
                ),
            ]
        );
        let args: Vec<&String> = c.images[0].build_args.keys().collect();
        assert_eq!(args, ["MIX_ENV", "SECRET_KEY_BASE"]);
        assert_eq!(c.tag, TagConfig::default());
        assert_eq!(c.imagedefinitions, "imagedefinitions.json");
    }

    #[test]
    fn full_example() {
        let c = parse(
            r#"
registry = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"
jobs = 3
builder = "classic"
[tag]
file = "REVISION"
env = ["A", "B"]
fallback = "dev"
extra = ["latest", "stable"]
length = 8
[artifacts]
imagedefinitions = "out/imagedefinitions.json"
image_detail = "app"
[[image]]
name = "app"
repository = "team/app"
context = "./src/../"
dockerfile = "docker/app.Dockerfile"
target = "release"
platform = "linux/amd64"
[image.build_args]
MIX_ENV = { env = "MIX_ENV" }
PLAIN = "prod"
KEY = { ssm = "/app/prod/KEY" }
[image.secrets]
SECRET_KEY_BASE = { file = "secrets/skb" }
[image.labels]
team = "web"
"#,
        )
        .unwrap();
        assert_eq!(c.jobs, Some(3));
        assert_eq!(c.builder, Builder::Classic);
        assert_eq!(c.tag.extra, ["latest", "stable"]);
        assert_eq!(c.image_detail.as_deref(), Some("app"));
        assert_eq!(c.imagedefinitions, "out/imagedefinitions.json");
        let app = &c.images[0];
        assert_eq!(
            (app.repository.as_str(), app.context.as_str()),
            ("team/app", ".")
        );
        assert_eq!(
            app.build_args["MIX_ENV"],
            Source::Env {
                name: "MIX_ENV".into(),
                optional: false
            }
        );
        assert_eq!(
            app.build_args["KEY"],
            Source::Ssm {
                name: "/app/prod/KEY".into()
            }
        );
        assert_eq!(
            app.build_args["PLAIN"],
            Source::Literal {
                value: "prod".into()
            }
        );
        assert_eq!(
            app.secrets["SECRET_KEY_BASE"],
            Source::File {
                path: "secrets/skb".into()
            }
        );
        assert_eq!(app.line, 14);
    }

    #[test]
    fn errors_name_file_line_and_value() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[[image]]\nname = \"app\"\nbogus = 1\n",
                &["ecrship.toml line 3", "bogus"],
            ),
            (
                "[[image]]\nname = \"app\"\n[image.build_args]\nX = { envv = \"X\" }\n",
                &["line 4", "envv"],
            ),
            (
                "[[image]]\nname = \"app\"\njobs = \"x\"\n",
                &["line 3", "jobs"],
            ),
            (
                "jobs = \"three\"\n[[image]]\nname = \"app\"\n",
                &["line 1", "invalid type"],
            ),
            ("[[image]]\nname = \"app\n", &["line 2"]),
            (
                "[[image]]\nname = \"app\"\n[[image]]\nname = \"app\"\n",
                &["line 3", "`app` is used twice"],
            ),
            (
                "[[image]]\nname = \"app\"\nrepository = \"App\"\n",
                &["line 3", "repository `App`"],
            ),
            (
                "[[image]]\nname = \"a\"\n",
                &["line 2", "`a`", "set `repository`"],
            ),
            ("[[image]]\nname = \"x y\"\n", &["line 2", "`x y`"]),
            (
                "[[image]]\nname = \"app\"\ncontext = \"../up\"\n",
                &["line 3", "leaves the project root"],
            ),
            (
                "[[image]]\nname = \"app\"\ndockerfile = \"/etc/Dockerfile\"\n",
                &["line 3", "relative"],
            ),
            (
                "[tag]\nextra = [\"ok\", \"not ok\"]\n[[image]]\nname = \"app\"\n",
                &["`not ok`"],
            ),
            (
                "jobs = 0\n[[image]]\nname = \"app\"\n",
                &["line 1", "at least 1"],
            ),
            (
                "registry = \"https://x\"\n[[image]]\nname = \"app\"\n",
                &["line 1", "`https://x`"],
            ),
            ("", &["no images"]),
            (
                "[artifacts]\nimage_detail = \"nope\"\n[[image]]\nname = \"app\"\n",
                &["line 2", "`nope`"],
            ),
            (
                "[[image]]\nname = \"app\"\n[image.build_args]\nX = { env = \"X\", ssm = \"Y\" }\n",
                &["line 4", "only one"],
            ),
            (
                "[[image]]\nname = \"app\"\n[image.build_args]\nX = { ssm = \"Y\", optional = true }\n",
                &["line 4", "optional"],
            ),
            (
                "[[image]]\nname = \"app\"\n[deploy]\ncluster = \"c\"\nservice = \"s\"\nregion = \"x\"\n",
                &["line 6", "region"],
            ),
            (
                "[[image]]\nname = \"app\"\n[deploy]\ncluster = \"c\"\n",
                &["line 3", "service"],
            ),
            (
                "[[image]]\nname = \"app\"\n[deploy]\ncluster = \"my cluster\"\nservice = \"s\"\n",
                &["line 4", "[deploy] cluster `my cluster`", "not an ECS name"],
            ),
            (
                "[[image]]\nname = \"app\"\n[deploy]\ncluster = \"c\"\nservice = \"arn:aws:ecs:us-east-1:1:service/c/s\"\n",
                &["line 5", "[deploy] service", "is an ARN"],
            ),
            (
                "[[image]]\nname = \"a1\"\ndepends_on = [\"b1\"]\n[[image]]\nname = \"b1\"\ndepends_on = [\"a1\"]\n",
                &["line 1", "cycle", "a1 -> b1 -> a1"],
            ),
            (
                "[[image]]\nname = \"app\"\ndepends_on = [\"base\"]\n",
                &["line 1", "`base`", "images: app"],
            ),
            (
                "[[image]]\nname = \"app\"\ndepends_on = [\"app\"]\n",
                &["line 1", "depends on itself"],
            ),
            (
                "[[image]]\nname = \"app\"\nplatforms = [\"linux/amd64\", \"arm64\"]\n",
                &["line 3", "`arm64`", "os/arch"],
            ),
            (
                "[[image]]\nname = \"app\"\nplatform = \"linux/amd64\"\nplatforms = [\"linux/arm64\"]\n",
                &["line 3", "not both"],
            ),
            (
                "[[image]]\nname = \"app\"\nplatforms = [\"linux/arm64\", \"linux/arm64\"]\n",
                &["line 3", "twice"],
            ),
            (
                "[[image]]\nname = \"app\"\ncache_stages = [\"deps stage\"]\n",
                &["line 3", "`deps stage`"],
            ),
            (
                "[[image]]\nname = \"app\"\nextra_tags = [\"ok\", \"-bad\"]\n",
                &["line 3", "`-bad`"],
            ),
            (
                "reuse_max_age = \"7 days\"\n[[image]]\nname = \"app\"\n",
                &["line 1", "`7 days`", "unit"],
            ),
        ];
        for (text, needles) in cases {
            let msg = error(text);
            assert!(!msg.contains('\n'), "one line: {msg:?}");
            for needle in *needles {
                assert!(msg.contains(needle), "{text:?}: {msg:?} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn deploy_section() {
        let c = parse(
            "[[image]]\nname = \"app\"\n\n[deploy]\ncluster = \"prod-1\"\nservice = \"shop_web\"\n",
        )
        .unwrap();
        assert_eq!(
            c.deploy,
            Some(DeployConfig {
                cluster: "prod-1".into(),
                service: "shop_web".into(),
                line: 4,
            })
        );
        assert_eq!(parse("[[image]]\nname = \"app\"\n").unwrap().deploy, None);
        assert_eq!(
            Config::parse(EMBEDDED, Origin::Embedded).unwrap().deploy,
            None
        );
    }

    #[test]
    fn source_table() {
        let c = parse(
            "[[image]]\nname = \"app\"\n[source]\nbucket = \"src-bucket\"\nkey = \"app/src.zip\"\n\
             include = [\"lib/\", \"./mix.exs\",\n  \"config\"]\nexclude = [\"lib/test\"]\n",
        )
        .unwrap();
        let s = &c.source;
        assert_eq!(
            s.bucket,
            Some(Located {
                value: "src-bucket".into(),
                line: 4
            })
        );
        assert_eq!(
            s.key.as_ref().map(|k| k.value.as_str()),
            Some("app/src.zip")
        );
        let include: Vec<(&str, usize)> = s
            .include
            .iter()
            .flatten()
            .map(|l| (l.value.as_str(), l.line))
            .collect();
        assert_eq!(include, [("lib", 6), ("mix.exs", 6), ("config", 7)]);
        assert_eq!(s.exclude[0].value, "lib/test");
        assert_eq!(
            parse("[[image]]\nname = \"app\"\n").unwrap().source,
            SourceConfig::default()
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("90s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("7d"),
            Ok(std::time::Duration::from_secs(604_800))
        );
        assert_eq!(
            parse_duration("2w"),
            Ok(std::time::Duration::from_secs(1_209_600))
        );
        for bad in ["", "7", "d", "7y", "-1d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        let c = parse("reuse = false\nreuse_max_age = \"12h\"\n[[image]]\nname = \"app\"\n[[image]]\nname = \"web\"\nreuse = true\n").unwrap();
        assert_eq!(c.reuse_max_age, std::time::Duration::from_secs(43_200));
        assert_eq!((c.images[0].reuse, c.images[1].reuse), (false, true));
        assert_eq!(
            parse("[[image]]\nname = \"app\"\n").unwrap().reuse_max_age,
            DEFAULT_REUSE_MAX_AGE
        );
    }

    #[test]
    fn source_errors_name_file_line_and_value() {
        let cases: &[(&str, &[&str])] = &[
            ("[source]\nbuckett = \"x\"\n", &["line 2", "buckett"]),
            (
                "[source]\nbucket = \"Not_A_Bucket\"\n",
                &["line 2", "`Not_A_Bucket`", "bucket name"],
            ),
            (
                "[source]\nkey = \"dir/\"\n",
                &["line 2", "`dir/`", "folder"],
            ),
            ("[source]\ninclude = []\n", &["line 2", "include is empty"]),
            (
                "[source]\ninclude = [\"a\",\n\"../up\"]\n",
                &["line 3", "include", "leaves the project root"],
            ),
            (
                "[source]\nexclude = [\"/abs\"]\n",
                &["line 2", "exclude", "relative"],
            ),
            ("[source]\ninclude = \"lib\"\n", &["line 2", "include"]),
        ];
        for (text, needles) in cases {
            let text = format!("[[image]]\nname = \"app\"\n{text}");
            let msg = error(&text);
            assert!(!msg.contains('\n'), "one line: {msg:?}");
            for needle in *needles {
                let needle = needle
                    .replace("line 2", "line 4")
                    .replace("line 3", "line 5");
                assert!(msg.contains(&needle), "{text:?}: {msg:?} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn clean_paths() {
        let cases = [
            ("./a/../b", "b"),
            ("foo/", "foo"),
            (".", "."),
            ("a//b/./c", "a/b/c"),
            ("a/..", "."),
        ];
        for (input, want) in cases {
            assert_eq!(clean_relative(input).as_deref(), Ok(want), "{input}");
        }
        assert!(clean_relative("a/../../b").is_err());
        assert!(clean_relative("/abs").is_err());
    }

    #[test]
    fn check_paths_names_the_missing_piece() {
        let dir = tempfile::tempdir().unwrap();
        let c = Config::parse(EMBEDDED, Origin::Embedded).unwrap();
        let msg = c.check_paths(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("image `app`") && msg.contains("dockerfiles/app/Dockerfile"),
            "{msg}"
        );
        for name in ["app", "web", "log"] {
            std::fs::create_dir_all(dir.path().join("dockerfiles").join(name)).unwrap();
        }
        std::fs::write(
            dir.path().join("dockerfiles/app/Dockerfile"),
            "FROM scratch\n",
        )
        .unwrap();
        let msg = c.check_paths(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("image `web`: Dockerfile `dockerfiles/web/Dockerfile` not found"),
            "{msg}"
        );
    }

    #[test]
    fn select_images() {
        let c = Config::parse(EMBEDDED, Origin::Embedded).unwrap();
        let names = |v: Vec<&Image>| v.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(c.select(&[]).unwrap()), ["app", "web", "log"]);
        assert_eq!(
            names(c.select(&["log".into(), "app".into()]).unwrap()),
            ["app", "log"]
        );
        assert!(c.select(&["nope".into()]).unwrap_err().contains("`nope`"));
    }
}
