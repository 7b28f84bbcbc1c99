//! The TOML of `ecrship.toml` as deserialized, each value with its span, and its validation into
//! the checked types of `config`.
//!
//! A [`Text`] is a config text with its origin: it reads the raw structs (toml's errors become a
//! [`ConfigError`] with the line and the key), turns spans into lines, and validates the
//! `[[image]]` entries; [`RawConfig::check`] validates the rest into a [`Config`].

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use toml::Spanned;

use super::mirror::{Mirrors, Via};
use super::value::clean_relative;
use super::{
    CacheMounts, Config, ConfigError, DEFAULT_REUSE_MAX_AGE, DeployConfig, Image, Located, Origin,
    SourceConfig, SourceLines, TagConfig, ValueSource, parse_duration,
};
use crate::context::Builder;
use crate::reference::{
    Platform, bucket_violation, container_name_violation, ecs_name_violation, key_violation,
    registry_violation, repository_violation, tag_violation,
};

/// A byte range of the config text.
type Span = std::ops::Range<usize>;

/// A config text and where it came from, for messages.
pub(super) struct Text<'a> {
    pub text: &'a str,
    pub origin: &'a Origin,
}

impl Text<'_> {
    /// An error at the line of `span`'s start, or about the whole text.
    pub fn error(&self, span: Option<Span>, message: String) -> ConfigError {
        ConfigError {
            origin: self.origin.clone(),
            line: span.map(|s| self.line(s.start)),
            message,
        }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    /// Deserializes the text; a syntax, type or unknown-key error names the line and the key.
    pub fn read(&self) -> Result<RawConfig, ConfigError> {
        let text = self.text;
        toml::from_str(text).map_err(|e| {
            let said = in_words(&one_line(e.message()));
            let message = match e.span().and_then(|s| key_at(text, s.start)) {
                Some(key) if !e.message().contains(key) => format!("`{key}`: {said}"),
                _ => said,
            };
            self.error(e.span(), message)
        })
    }

    /// Validates the `[[image]]` entries of this text: each image on its own, then that no
    /// name is used twice; an image's line and those of its sources are this text's.
    pub fn images(
        &self,
        entries: Vec<Spanned<RawImage>>,
        reuse: bool,
    ) -> Result<Vec<Image>, ConfigError> {
        let mut images = Vec::with_capacity(entries.len());
        let mut names = HashSet::new();
        for spanned in entries {
            let span = spanned.span();
            let raw_image = spanned.into_inner();
            let image = raw_image
                .validate(reuse)
                .map_err(|(s, m)| self.error(Some(s.unwrap_or(span.clone())), m))?;
            if !names.insert(image.name.clone()) {
                return Err(self.error(
                    Some(span),
                    format!("image name `{}` is used twice", image.name),
                ));
            }
            let lines = |offsets: &BTreeMap<String, usize>| -> BTreeMap<String, usize> {
                offsets
                    .iter()
                    .map(|(name, &offset)| (name.clone(), self.line(offset)))
                    .collect()
            };
            let source_lines = SourceLines {
                build_args: lines(&image.source_lines.build_args),
                secrets: lines(&image.source_lines.secrets),
            };
            images.push(Image {
                line: self.line(span.start),
                source_lines,
                ..image
            });
        }
        if images.is_empty() {
            return Err(self.error(
                None,
                "no images: add at least one [[image]] with a `name`".into(),
            ));
        }
        Ok(images)
    }
}

/// The whole file as deserialized.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    registry: Option<Spanned<String>>,
    jobs: Option<Spanned<usize>>,
    builder: Option<Builder>,
    pub reuse: Option<bool>,
    reuse_max_age: Option<Spanned<String>>,
    cache_mount_max_size: Option<Spanned<RawSize>>,
    #[serde(default)]
    tag: TagConfig,
    #[serde(default)]
    artifacts: RawArtifacts,
    /// `None` when the file has no `[[image]]`: then it takes the built-in layout's.
    pub image: Option<Vec<Spanned<RawImage>>>,
    deploy: Option<Spanned<RawDeploy>>,
    #[serde(default)]
    source: RawSource,
    #[serde(default)]
    mirror: std::collections::BTreeMap<String, Spanned<RawMirror>>,
}

/// A size: a number of bytes, or a string with a unit (`"2GiB"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

/// `cache_mounts`: `true`, `false`, or a list of ids or targets.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawCacheMounts {
    All(bool),
    Only(Vec<String>),
}

/// One `[mirror]` entry as deserialized.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    pull_through: Option<String>,
    prefix: Option<String>,
    fallback: Option<String>,
}

impl RawConfig {
    /// Validates everything but the `[[image]]` entries: `images` are those, checked, and
    /// `images_origin` says where they came from (the built-in layout when the file has none).
    pub fn check(
        self,
        file: &Text,
        images: Vec<Image>,
        images_origin: Origin,
    ) -> Result<Config, ConfigError> {
        let at = |span: Option<Span>, message: String| file.error(span, message);
        let reuse_max_age = match &self.reuse_max_age {
            Some(age) => parse_duration(age.get_ref()).map_err(|m| {
                at(
                    Some(age.span()),
                    format!("reuse_max_age `{}`: {m}", age.get_ref()),
                )
            })?,
            None => DEFAULT_REUSE_MAX_AGE,
        };
        let cache_mount_max_size = match &self.cache_mount_max_size {
            None => super::DEFAULT_CACHE_MOUNT_MAX_SIZE,
            Some(size) => match size.get_ref() {
                RawSize::Bytes(bytes) => *bytes,
                RawSize::Text(text) => super::parse_size(text).map_err(|m| {
                    at(
                        Some(size.span()),
                        format!("cache_mount_max_size `{text}`: {m}"),
                    )
                })?,
            },
        };

        let tag = self.tag;
        validate_tag_config(&tag).map_err(|m| at(None, m))?;
        let registry = match self.registry {
            Some(r) => {
                let value = r.get_ref().trim().to_owned();
                if let Some(reason) = registry_violation(&value) {
                    return Err(at(Some(r.span()), format!("registry `{value}` {reason}")));
                }
                Some(value)
            }
            None => None,
        };
        let jobs = match self.jobs {
            Some(j) if *j.get_ref() == 0 => {
                return Err(at(Some(j.span()), "jobs must be at least 1".into()));
            }
            j => j.map(Spanned::into_inner),
        };
        let artifacts = self.artifacts;
        let imagedefinitions =
            clean_relative(artifacts.imagedefinitions.get_ref()).map_err(|m| {
                at(
                    Some(artifacts.imagedefinitions.span()),
                    format!("imagedefinitions: {m}"),
                )
            })?;
        let image_detail = match artifacts.image_detail {
            Some(name) if !images.iter().any(|i| &i.name == name.get_ref()) => {
                let builtin = if images_origin == *file.origin {
                    String::new()
                } else {
                    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
                    format!(
                        " ({} has no [[image]], so its images are the built-in seed layout's: {})",
                        file.origin,
                        names.join(", ")
                    )
                };
                return Err(at(
                    Some(name.span()),
                    format!(
                        "image_detail names `{}`, which is not an image of this config{builtin}",
                        name.get_ref()
                    ),
                ));
            }
            name => name.map(Spanned::into_inner),
        };

        let deploy = match self.deploy {
            Some(table) => {
                let line = file.line(table.span().start);
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
        let source = self
            .source
            .validate(&|span: Span| file.line(span.start))
            .map_err(|(span, m)| at(Some(span), m))?;
        let mut mirrors = Vec::new();
        for (upstream, entry) in self.mirror {
            let span = entry.span();
            let raw = entry.into_inner();
            let bad = |m: String| at(Some(span.clone()), format!("[mirror] `{upstream}`: {m}"));
            let via = match (raw.pull_through, raw.prefix) {
                (Some(prefix), None) => Via::PullThrough(prefix),
                (None, Some(prefix)) => match prefix.split_once('/') {
                    Some((registry, path)) => Via::Prefix {
                        registry: registry.to_owned(),
                        path: path.to_owned(),
                    },
                    None => {
                        return Err(bad(format!(
                            "prefix `{prefix}` names no path of repositories (write it as `registry/path`)"
                        )));
                    }
                },
                _ => {
                    return Err(bad(
                        "give either `pull_through` (an ECR pull-through cache prefix of the push registry) or `prefix` (`registry/path`)".into(),
                    ));
                }
            };
            let fallback = match raw.fallback.as_deref() {
                None => false,
                Some("upstream") => true,
                Some(other) => {
                    return Err(bad(format!(
                        "fallback `{other}` is not `upstream` (the only fallback there is)"
                    )));
                }
            };
            mirrors.push(
                super::mirror::checked(&upstream, via, fallback, file.line(span.start))
                    .map_err(bad)?,
            );
        }

        Ok(Config {
            origin: file.origin.clone(),
            registry,
            jobs,
            builder: self.builder.unwrap_or_default(),
            tag,
            imagedefinitions,
            image_detail,
            reuse_max_age,
            cache_mount_max_size,
            images,
            images_origin,
            deploy,
            source,
            mirrors: Mirrors(mirrors),
        })
    }
}

/// The `[deploy]` table as deserialized.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    cluster: Spanned<String>,
    service: Spanned<String>,
}

/// The `[source]` table as deserialized.
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

/// The `[artifacts]` table as deserialized.
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

/// One `[[image]]` entry as deserialized.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImage {
    name: Spanned<String>,
    repository: Option<Spanned<String>>,
    context: Option<Spanned<String>>,
    dockerfile: Option<Spanned<String>>,
    target: Option<String>,
    platform: Option<Spanned<String>>,
    #[serde(default)]
    build_args: BTreeMap<String, Spanned<ValueSource>>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<ValueSource>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    reuse: Option<bool>,
    #[serde(default = "empty_list")]
    cache_stages: Spanned<Vec<String>>,
    cache_mounts: Option<Spanned<RawCacheMounts>>,
    #[serde(default = "empty_list")]
    extra_tags: Spanned<Vec<String>>,
    #[serde(default = "empty_list")]
    depends_on: Spanned<Vec<String>>,
    deploy: Option<bool>,
    #[serde(default = "empty_list")]
    platforms: Spanned<Vec<String>>,
}

fn empty_list() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}

impl RawImage {
    /// The checked image, its line left at 0 and its sources' lines as byte offsets, which
    /// [`Text::images`] turns into lines. On error: where (the entry's span when `None`) and what.
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
            if let ValueSource::File { path } = source.get_ref() {
                clean_relative(path)
                    .map_err(|m| fail(source.span(), format!("{key}: file: {m}")))?;
            }
        }
        let unspan = |m: BTreeMap<String, Spanned<ValueSource>>| -> BTreeMap<String, ValueSource> {
            m.into_iter().map(|(k, v)| (k, v.into_inner())).collect()
        };
        // Byte offsets for now: `Text::images` turns them into lines.
        let offsets = |m: &BTreeMap<String, Spanned<ValueSource>>| -> BTreeMap<String, usize> {
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
        let cache_mounts = match self.cache_mounts.as_ref().map(|m| (m.span(), m.get_ref())) {
            None | Some((_, RawCacheMounts::All(false))) => CacheMounts::Off,
            Some((_, RawCacheMounts::All(true))) => CacheMounts::All,
            Some((span, RawCacheMounts::Only(list))) => {
                if let Some(empty) = list.iter().find(|m| m.trim().is_empty()) {
                    return Err(fail(
                        span,
                        format!(
                            "cache_mounts: `{empty}` names no mount (give its id or its target)"
                        ),
                    ));
                }
                CacheMounts::Only(list.clone())
            }
        };
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
            cache_mounts,
            extra_tags: self.extra_tags.into_inner(),
            depends_on: self.depends_on.into_inner(),
            deploy: self.deploy.unwrap_or(true),
            platforms,
            line: 0,
            source_lines,
        })
    }
}

/// `[tag]`: the extra and fallback tags are Docker tags, `length` is at least 1, `file` stays
/// under the root.
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

/// serde's message with the integer type it expected (`invalid type: string "x", expected
/// usize`, as serde's `Error::invalid_type` and `invalid_value` write it) said in words: a user
/// writes numbers, not Rust types. Only the last `, expected` is serde's: a value quoted before it
/// is left as written.
fn in_words(message: &str) -> String {
    let Some((head, expected)) = message.rsplit_once(", expected ") else {
        return message.to_owned();
    };
    let words = match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        _ => return message.to_owned(),
    };
    format!("{head}, expected {words}")
}

/// toml's message, which may span lines, as one line.
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
    use crate::config::EMBEDDED;
    use crate::config::tests::{error, parse};

    #[test]
    fn errors_name_file_line_and_value() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[[image]]\nname = \"app\"\nbogus = 1\n",
                &["ecrship.toml line 3", "bogus"],
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
                "cache_mount_max_size = \"2 parsecs\"\n[[image]]\nname = \"app\"\n",
                &["line 1", "`2 parsecs`", "GiB"],
            ),
            (
                "[[image]]\nname = \"app\"\ncache_mounts = [\"npm\", \" \"]\n",
                &["line 3", "cache_mounts", "names no mount"],
            ),
            (
                "[[image]]\nname = \"app\"\ncache_mounts = \"yes\"\n",
                &["line 3", "cache_mounts"],
            ),
            (
                "registry = \"https://x\"\n[[image]]\nname = \"app\"\n",
                &["line 1", "`https://x`"],
            ),
            ("image = []\n", &["no images"]),
            (
                "[artifacts]\nimage_detail = \"nope\"\n[[image]]\nname = \"app\"\n",
                &["line 2", "`nope`"],
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
    fn type_errors_name_the_number_in_words() {
        let cases = [
            (
                "jobs = \"x\"\n",
                "ecrship.toml line 1: `jobs`: invalid type: string \"x\", expected a whole number",
            ),
            (
                "jobs = -1\n",
                "ecrship.toml line 1: `jobs`: invalid value: integer `-1`, expected a whole number",
            ),
            (
                "jobs = 1.5\n",
                "ecrship.toml line 1: `jobs`: invalid type: floating point `1.5`, expected a whole number",
            ),
            (
                "jobs = true\n",
                "ecrship.toml line 1: `jobs`: invalid type: boolean `true`, expected a whole number",
            ),
            (
                "[tag]\nlength = \"8\"\n",
                "ecrship.toml line 2: `length`: invalid type: string \"8\", expected a whole number",
            ),
            (
                "[tag]\nlength = -3\n",
                "ecrship.toml line 2: `length`: invalid value: integer `-3`, expected a whole number",
            ),
            // Other types keep serde's words.
            (
                "reuse = 1\n",
                "ecrship.toml line 1: `reuse`: invalid type: integer `1`, expected a boolean",
            ),
            (
                "[tag]\nextra = 3\n",
                "ecrship.toml line 2: `extra`: invalid type: integer `3`, expected a sequence",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(error(text), want, "{text:?}");
        }
    }

    #[test]
    fn integer_types_in_words() {
        let cases = [
            (
                "invalid type: map, expected u32",
                "invalid type: map, expected a whole number",
            ),
            (
                "invalid value: integer `-1`, expected u8",
                "invalid value: integer `-1`, expected a whole number",
            ),
            (
                "invalid type: string \"x\", expected i64",
                "invalid type: string \"x\", expected an integer",
            ),
            // A value that quotes serde's words, and types that are not integers, stay as written.
            (
                "invalid type: string \"a, expected usize\", expected a boolean",
                "invalid type: string \"a, expected usize\", expected a boolean",
            ),
            (
                "invalid type: integer `1`, expected a string",
                "invalid type: integer `1`, expected a string",
            ),
            (
                "unknown field `x`, expected one of `usize`",
                "unknown field `x`, expected one of `usize`",
            ),
            ("expected usize", "expected usize"),
        ];
        for (message, want) in cases {
            assert_eq!(in_words(message), want, "{message:?}");
        }
    }

    #[test]
    fn image_detail_names_the_seed_layouts_images() {
        assert_eq!(
            error("[artifacts]\nimage_detail = \"api\"\n"),
            "ecrship.toml line 2: image_detail names `api`, which is not an image of this config \
             (ecrship.toml has no [[image]], so its images are the built-in seed layout's: app, web, log)"
        );
        assert_eq!(
            error("[artifacts]\nimage_detail = \"api\"\n[[image]]\nname = \"app\"\n"),
            "ecrship.toml line 2: image_detail names `api`, which is not an image of this config"
        );
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
    fn reuse_settings() {
        let c = parse("cache_mount_max_size = \"500MiB\"\n[[image]]\nname = \"app\"\ncache_mounts = [\"npm\"]\n[[image]]\nname = \"web\"\ncache_mounts = true\n").unwrap();
        assert_eq!(c.cache_mount_max_size, 500 << 20);
        assert_eq!(
            c.images[0].cache_mounts,
            CacheMounts::Only(vec!["npm".into()])
        );
        assert!(c.images[0].cache_mounts.keeps("npm", "/root/.npm"));
        assert!(!c.images[0].cache_mounts.keeps("apt", "/var/cache/apt"));
        assert_eq!(c.images[1].cache_mounts, CacheMounts::All);
        let c = parse("cache_mount_max_size = 1000\n[[image]]\nname = \"app\"\n").unwrap();
        assert_eq!(c.cache_mount_max_size, 1000);
        assert!(c.images[0].cache_mounts.is_off());
        assert_eq!(
            parse("[[image]]\nname = \"app\"\n")
                .unwrap()
                .cache_mount_max_size,
            2 << 30
        );
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
}
