//! The image tag: where it comes from, and the Docker grammar it must obey.

use std::fmt;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::config::TagConfig;

/// Where a resolved tag came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum TagSource {
    /// A file at the project root (`.git-commit-hash` by default).
    File(String),
    /// An environment variable.
    Env(String),
    /// Nothing else yielded a value.
    Fallback,
}

impl fmt::Display for TagSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagSource::File(name) => write!(f, "file `{name}`"),
            TagSource::Env(name) => write!(f, "environment variable `{name}`"),
            TagSource::Fallback => f.write_str("the fallback"),
        }
    }
}

/// A tag that passed the grammar check, with its origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub value: String,
    pub source: TagSource,
}

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error(
        "tag `{value}` from {origin} is not a valid Docker tag: {reason} (allowed: letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, at most 128 characters)"
    )]
    Invalid {
        value: String,
        origin: TagSource,
        reason: &'static str,
    },
    #[error("cannot read tag file `{path}`: {cause}")]
    Unreadable { path: String, cause: io::Error },
}

/// Resolves the tag: the tag file at `root`, then each environment variable, then the fallback.
/// The first source that yields a non-empty value wins; an invalid value is an error, never rewritten.
pub fn resolve(
    root: &Path,
    config: &TagConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Tag, TagError> {
    let found = from_file(root, &config.file)?
        .map(|value| (value, TagSource::File(config.file.clone())))
        .or_else(|| {
            config.env.iter().find_map(|name| {
                let value = env(name)?.trim().to_owned();
                (!value.is_empty()).then(|| (value, TagSource::Env(name.clone())))
            })
        });
    let (value, source) = match found {
        Some((value, source)) => (cut(value, config.length), source),
        None => (config.fallback.clone(), TagSource::Fallback),
    };
    match crate::reference::tag_violation(&value) {
        None => Ok(Tag { value, source }),
        Some(reason) => Err(TagError::Invalid {
            value,
            origin: source,
            reason,
        }),
    }
}

/// The first line of the tag file, trimmed; `None` when the file is absent or blank.
fn from_file(root: &Path, name: &str) -> Result<Option<String>, TagError> {
    if name.is_empty() {
        return Ok(None);
    }
    let path = root.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let line = text.lines().next().unwrap_or("").trim();
            Ok((!line.is_empty()).then(|| line.to_owned()))
        }
        // A link to nothing is a broken checkout, not an absent file: never fall back past it.
        Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::read_link(&path) {
            Ok(target) => Err(TagError::Unreadable {
                path: name.to_owned(),
                cause: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "it is a symbolic link to `{}`, which does not exist",
                        target.display()
                    ),
                ),
            }),
            Err(_) => Ok(None),
        },
        Err(cause) => Err(TagError::Unreadable {
            path: name.to_owned(),
            cause,
        }),
    }
}

/// Keeps the first `length` characters, as the seed's `cut -c 1-8` did.
fn cut(value: String, length: Option<usize>) -> String {
    match length {
        Some(n) if value.chars().count() > n => value.chars().take(n).collect(),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve_with(
        files: &[(&str, &str)],
        env: &[(&str, &str)],
        config: TagConfig,
    ) -> Result<Tag, TagError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(dir.path(), &config, |k| env.get(k).cloned())
    }

    const CBV: &str = "CODEBUILD_RESOLVED_SOURCE_VERSION";

    #[test]
    fn chain_order() {
        let d = TagConfig::default;
        let t = resolve_with(&[(".git-commit-hash", "abc12345\n")], &[(CBV, "def")], d()).unwrap();
        assert_eq!(
            (t.value.as_str(), t.source),
            ("abc12345", TagSource::File(".git-commit-hash".into()))
        );

        let t = resolve_with(&[], &[(CBV, "def")], d()).unwrap();
        assert_eq!(
            (t.value.as_str(), t.source),
            ("def", TagSource::Env(CBV.into()))
        );

        let t = resolve_with(&[(".git-commit-hash", " \n\n")], &[(CBV, "def")], d()).unwrap();
        assert_eq!(
            t.source,
            TagSource::Env(CBV.into()),
            "a blank file falls through"
        );

        let t = resolve_with(&[], &[(CBV, "  ")], d()).unwrap();
        assert_eq!(
            (t.value.as_str(), t.source),
            ("latest", TagSource::Fallback)
        );
    }

    #[test]
    fn first_line_trimmed_and_cut() {
        let t = resolve_with(
            &[(".git-commit-hash", "  0123456789abcdef  \nsecond\n")],
            &[],
            TagConfig::default(),
        )
        .unwrap();
        assert_eq!(t.value, "0123456789abcdef");
        let config = TagConfig {
            length: Some(8),
            ..TagConfig::default()
        };
        let t = resolve_with(&[], &[(CBV, "0123456789abcdef")], config).unwrap();
        assert_eq!(t.value, "01234567");
    }

    #[test]
    fn a_dangling_tag_file_link_is_an_error_not_a_fallback() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join(".git-commit-hash")).unwrap();
        let env = |_: &str| Some("fromenv".to_owned());
        let err = resolve(dir.path(), &TagConfig::default(), env).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`.git-commit-hash`") && msg.contains("`nowhere`"),
            "{msg}"
        );
    }

    #[test]
    fn invalid_values_name_their_source() {
        let err = resolve_with(
            &[(".git-commit-hash", "bad tag!")],
            &[],
            TagConfig::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`bad tag!`") && msg.contains("file `.git-commit-hash`"),
            "{msg}"
        );

        let err = resolve_with(&[], &[(CBV, "3sGd/x+Yz")], TagConfig::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(CBV) && msg.contains("`/` or `+`"), "{msg}");

        let config = TagConfig {
            fallback: "no good".into(),
            ..TagConfig::default()
        };
        let err = resolve_with(&[], &[], config).unwrap_err();
        assert!(err.to_string().contains("the fallback"), "{err}");
    }
}
