//! `ecrship.toml`, and the embedded default that reproduces the seed's `dockerfiles/{app,web,log}`.
//!
//! Loading is strict: unknown keys, wrong types and values outside their grammar are errors that
//! name the file, the line and the key or value. Paths are checked separately
//! ([`Config::check_paths`]) so that `ecrship tag` works in any folder.
//!
//! This module holds the checked config that every later step reads ([`Config`], [`Image`] and
//! their parts) and the steps that make it. [`Config::parse`] hands the text to `raw`, which
//! deserializes it into structs that keep each value's span, with toml's errors turned into a
//! line and a key, and validates them into the checked types, spans into lines; `source` is how
//! a build arg or secret names its [`ValueSource`]; `value` holds the grammars of relative paths and
//! durations; `dependencies` checks the `depends_on` graph once every image is known.
//!
//! The images come from the file's `[[image]]` entries, which replace the built-in seed layout's
//! (`default.toml`). A file without any keeps the seed layout's images and sets the rest, say
//! `[tag] length`: then [`Config::origin`] is the file and [`Config::images_origin`] the built-in
//! layout, and a message about an image says so rather than name a line of the file.

mod dependencies;
pub mod mirror;
mod raw;
mod value;
mod value_source;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::mirror::{Mirror, Mirrors, Via};
pub use self::value::{clean_relative, parse_duration, parse_size};
pub use self::value_source::ValueSource;
use crate::context::Builder;
use crate::reference::Platform;

/// The file looked for at the project root when `-c` is not given.
pub const DEFAULT_FILE: &str = "ecrship.toml";

const EMBEDDED: &str = include_str!("../default.toml");

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
    pub build_args: BTreeMap<String, ValueSource>,
    pub secrets: BTreeMap<String, ValueSource>,
    pub labels: BTreeMap<String, String>,
    /// Whether an image with the same inputs in the registry is reused instead of built.
    pub reuse: bool,
    /// Stages built and pushed as `<repository>:cache-<stage>`, whose inline cache the next
    /// run starts from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_stages: Vec<String>,
    /// The `RUN --mount=type=cache` mounts whose content is kept in the registry between runs.
    #[serde(skip_serializing_if = "CacheMounts::is_off")]
    pub cache_mounts: CacheMounts,
    /// Tags pushed after the image's own, besides `[tag] extra`. Not serialized: a plan's
    /// image says all of its extra tags (`PlannedImage::extra_tags`).
    #[serde(skip)]
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
    /// Line of the `[[image]]` entry in the text it was read from, for messages (0 for the
    /// built-in layout's images in a file without `[[image]]`).
    #[serde(skip)]
    pub line: usize,
    /// The line of each build arg's and each secret's source, by name (for messages; none for
    /// the built-in layout's images in a file without `[[image]]`).
    #[serde(skip)]
    pub source_lines: SourceLines,
}

/// `cache_mounts`: which of an image's `RUN --mount=type=cache` mounts are kept in the registry
/// (`true`: all of them; a list: those whose `id` or `target` it names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CacheMounts {
    #[default]
    Off,
    All,
    Only(Vec<String>),
}

impl CacheMounts {
    pub fn is_off(&self) -> bool {
        matches!(self, CacheMounts::Off)
            || matches!(self, CacheMounts::Only(list) if list.is_empty())
    }

    /// Whether the mount with this `id` and `target` is kept.
    pub fn keeps(&self, id: &str, target: &str) -> bool {
        match self {
            CacheMounts::Off => false,
            CacheMounts::All => true,
            CacheMounts::Only(list) => list.iter().any(|m| m == id || m == target),
        }
    }
}

/// As written: `false`, `true`, or the list.
impl Serialize for CacheMounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            CacheMounts::Off => serializer.serialize_bool(false),
            CacheMounts::All => serializer.serialize_bool(true),
            CacheMounts::Only(list) => list.serialize(serializer),
        }
    }
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
    /// Where the config came from: a file, or the built-in seed layout when there is none.
    pub origin: Origin,
    pub registry: Option<String>,
    pub jobs: Option<usize>,
    pub builder: Builder,
    pub tag: TagConfig,
    pub imagedefinitions: String,
    pub image_detail: Option<String>,
    /// How old an image in the registry may be and still be reused (base images move upstream).
    pub reuse_max_age: std::time::Duration,
    /// A cache mount larger than this (bytes) is not saved (`cache_mount_max_size`).
    pub cache_mount_max_size: u64,
    pub images: Vec<Image>,
    /// Where `images` came from: `origin`, or the built-in seed layout when the file has no
    /// `[[image]]`.
    pub images_origin: Origin,
    pub deploy: Option<DeployConfig>,
    pub source: SourceConfig,
    /// `[mirror]`: where each upstream registry's images are pulled from instead.
    pub mirrors: Mirrors,
}

/// `cache_mount_max_size` when the config says nothing: 2 GiB.
pub const DEFAULT_CACHE_MOUNT_MAX_SIZE: u64 = 2 << 30;

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

    /// Parses and validates a configuration text. A text without `[[image]]` takes the images
    /// of the built-in seed layout, and its other settings from the text.
    pub fn parse(text: &str, origin: Origin) -> Result<Config, ConfigError> {
        let file = raw::Text {
            text,
            origin: &origin,
        };
        let mut raw = file.read()?;
        let reuse = raw.reuse.unwrap_or(true);
        let (images, images_origin) = match raw.image.take() {
            Some(entries) => (file.images(entries, reuse)?, origin.clone()),
            None => (builtin_images(reuse)?, Origin::Embedded),
        };
        dependencies::check(&images).map_err(|(line, m)| ConfigError {
            origin: origin.clone(),
            line: Some(line),
            message: m,
        })?;
        raw.check(&file, images, images_origin)
    }

    /// Checks that every image's context is a folder and its Dockerfile a file under `root`.
    pub fn check_paths(&self, root: &Path) -> Result<(), ConfigError> {
        let hint = match (&self.origin, &self.images_origin) {
            (Origin::Embedded, _) => {
                " (with no ecrship.toml, ecrship expects dockerfiles/{app,web,log}; write an ecrship.toml to describe other images)".to_owned()
            }
            (Origin::File(_), Origin::Embedded) => format!(
                " ({} has no [[image]], so ecrship builds the built-in seed layout and expects dockerfiles/{{app,web,log}}; add [[image]] entries to describe other images)",
                self.origin
            ),
            (Origin::File(_), Origin::File(_)) => String::new(),
        };
        for image in &self.images {
            let err = |message: String| ConfigError {
                origin: self.origin.clone(),
                line: (self.images_origin != Origin::Embedded).then_some(image.line),
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

/// The built-in seed layout's images, for a file without `[[image]]`, with the file's `reuse`.
/// Their lines would be those of `default.toml`, which a message would give as the file's: they
/// are left at 0, with no source lines.
fn builtin_images(reuse: bool) -> Result<Vec<Image>, ConfigError> {
    let layout = raw::Text {
        text: EMBEDDED,
        origin: &Origin::Embedded,
    };
    let entries = layout.read()?.image.unwrap_or_default();
    let images = layout.images(entries, reuse)?;
    Ok(images
        .into_iter()
        .map(|image| Image {
            line: 0,
            source_lines: SourceLines::default(),
            ..image
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as `ecrship.toml`.
    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Origin::File("ecrship.toml".into()))
    }

    /// The message of the error that parsing `text` as `ecrship.toml` gives.
    pub(super) fn error(text: &str) -> String {
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
        assert_eq!(c.images_origin, Origin::Embedded);
    }

    #[test]
    fn a_file_without_images_keeps_the_seed_layout() {
        let seed = Config::parse(EMBEDDED, Origin::Embedded).unwrap();
        let c =
            parse("[tag]\nlength = 8\nextra = []\n[artifacts]\nimage_detail = \"app\"\n").unwrap();
        assert_eq!(c.origin, Origin::File("ecrship.toml".into()));
        assert_eq!(c.images_origin, Origin::Embedded);
        assert_eq!((c.tag.length, c.tag.extra.len()), (Some(8), 0));
        assert_eq!(c.image_detail.as_deref(), Some("app"));
        // The seed layout's images, with no line: none of the file is theirs.
        let unlined: Vec<Image> = seed
            .images
            .iter()
            .map(|i| Image {
                line: 0,
                source_lines: SourceLines::default(),
                ..i.clone()
            })
            .collect();
        assert_eq!(c.images, unlined);
        assert!(!seed.images[0].source_lines.build_args.is_empty());

        // The file's settings apply to them; an empty file is the seed layout as well.
        let c = parse("reuse = false\n").unwrap();
        assert!(c.images.iter().all(|i| !i.reuse));
        assert_eq!(parse("").unwrap().images, unlined);

        // `[[image]]` entries replace them; an empty list is no images.
        let c = parse("[[image]]\nname = \"api\"\n").unwrap();
        assert_eq!((c.images.len(), &c.images_origin), (1, &c.origin));
        assert!(
            error("image = []\n").contains("no images"),
            "{}",
            error("image = []\n")
        );
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
            ValueSource::Env {
                name: "MIX_ENV".into(),
                optional: false
            }
        );
        assert_eq!(
            app.build_args["KEY"],
            ValueSource::Ssm {
                name: "/app/prod/KEY".into()
            }
        );
        assert_eq!(
            app.build_args["PLAIN"],
            ValueSource::Literal {
                value: "prod".into()
            }
        );
        assert_eq!(
            app.secrets["SECRET_KEY_BASE"],
            ValueSource::File {
                path: "secrets/skb".into()
            }
        );
        assert_eq!(app.line, 14);
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
    fn check_paths_says_where_the_images_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                parse("[[image]]\nname = \"app\"\n").unwrap(),
                "ecrship.toml line 1: image `app`: Dockerfile `Dockerfile` not found",
            ),
            (
                Config::parse(EMBEDDED, Origin::Embedded).unwrap(),
                "the built-in seed layout: image `app`: Dockerfile `dockerfiles/app/Dockerfile` not found \
                 (with no ecrship.toml, ecrship expects dockerfiles/{app,web,log}; write an ecrship.toml to describe other images)",
            ),
            (
                parse("[tag]\nlength = 8\n").unwrap(),
                "ecrship.toml: image `app`: Dockerfile `dockerfiles/app/Dockerfile` not found \
                 (ecrship.toml has no [[image]], so ecrship builds the built-in seed layout and expects dockerfiles/{app,web,log}; \
                 add [[image]] entries to describe other images)",
            ),
        ];
        for (config, want) in cases {
            assert_eq!(
                config.check_paths(dir.path()).unwrap_err().to_string(),
                want
            );
        }
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
