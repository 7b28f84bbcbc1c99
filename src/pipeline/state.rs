//! What `ecrship build` decided, for the `ecrship push` of a two-phase buildspec.
//!
//! CodeBuild runs `build` and `post_build` in one container, one after the other. `build` may
//! reuse an image from the registry instead of building it; `push` then has no local image for
//! it and must retag the registry's. `build` writes its decisions to
//! `.ecrship/build.json` at the project root (written atomically, for one tag and registry);
//! `push` reads the decisions for the same tag and registry ([`load`]).
//! The folder is never part of a build context.
//!
//! `push` pushes what `build` recorded and nothing else: the image id recorded for a build must
//! be what the local `<repository>:<tag>` names when `push` starts. A file that cannot be read
//! or parsed, or that holds a malformed id, is an error rather than a guess; a missing file, or
//! one for another tag or registry, leaves `push` to the local images that carry ecrship's
//! inputs label, with a warning.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::artifacts;
use crate::error::Error;

/// The state folder, at the project root.
pub const FOLDER: &str = ".ecrship";
const FILE: &str = "build.json";

/// The decisions of one `ecrship build`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub tag: String,
    pub registry: String,
    /// By build: the image's name, or `name/arch` for one platform of several.
    pub builds: BTreeMap<String, Decision>,
}

/// What `build` did with one build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    /// Built here: the local image `<repository>:<tag>`, and its cache stages' images.
    Built {
        image_id: String,
        inputs: String,
        /// By stage: the id of `<repository>:cache-<stage>` as built.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        cache: BTreeMap<String, String>,
        /// The Dockerfile as the builder got it (its images pinned), when the image keeps cache
        /// mounts: `push` saves them from it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        builder_text: Option<String>,
    },
    /// The registry's image under `from` has the same inputs: `digest` is to be tagged.
    Reused {
        from: String,
        digest: String,
        inputs: String,
    },
}

/// What `.ecrship/build.json` holds for one tag and registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `build`'s decisions for this tag and registry.
    Found(State),
    /// `build` left nothing, or its record is for another tag or registry: why, in words.
    Absent(String),
}

/// `.ecrship/build.json`, shown as the user would write it.
pub fn path_shown() -> String {
    format!("{FOLDER}/{FILE}")
}

/// What `build` recorded for `tag` and `registry` (any registry when `None`). A file that is
/// there but cannot be read, is not the JSON `build` writes, or holds an id that is not
/// `sha256:<64 hex>`, is an error: `push` must not guess which image to push.
pub fn load(root: &Path, tag: &str, registry: Option<&str>) -> Result<Record, Error> {
    let path = root.join(FOLDER).join(FILE);
    let unusable = |why: String| {
        Error::Failed(format!(
            "{} cannot be used ({why}): it records what `ecrship build` built, and `ecrship push` pushes nothing else; run `ecrship build` again",
            path_shown()
        ))
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Record::Absent(format!(
                "`ecrship build` has not run here ({} does not exist)",
                path_shown()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory || path.is_dir() => {
            return Err(unusable("it is a folder".into()));
        }
        Err(e) => return Err(unusable(crate::text::error_chain(&e))),
    };
    let text = String::from_utf8(bytes).map_err(|_| unusable("it is not UTF-8".into()))?;
    let state: State = serde_json::from_str(&text).map_err(|e| unusable(e.to_string()))?;
    for (build, decision) in &state.builds {
        let ids: Vec<&String> = match decision {
            Decision::Built {
                image_id,
                inputs,
                cache,
                ..
            } => [image_id, inputs]
                .into_iter()
                .chain(cache.values())
                .collect(),
            Decision::Reused { digest, inputs, .. } => vec![digest, inputs],
        };
        if let Some(bad) = ids.into_iter().find(|id| !is_digest(id)) {
            return Err(unusable(format!(
                "`{build}` has `{bad}`, which is not a sha256 digest"
            )));
        }
    }
    if state.tag != tag || registry.is_some_and(|r| r != state.registry) {
        return Ok(Record::Absent(format!(
            "{} records a build of tag `{}` for {}, not of `{tag}`{}",
            path_shown(),
            state.tag,
            state.registry,
            registry.map(|r| format!(" for {r}")).unwrap_or_default()
        )));
    }
    Ok(Record::Found(state))
}

/// `sha256:` and 64 lowercase hex digits.
fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

impl State {
    /// The state `build` left for `tag` and `registry` (any registry when `None`); empty when
    /// there is none, or it is for another tag or registry.
    pub fn read_for(root: &Path, tag: &str, registry: Option<&str>) -> State {
        let path = root.join(FOLDER).join(FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return State::default();
        };
        match serde_json::from_str::<State>(&text) {
            Ok(state) if state.tag == tag && registry.is_none_or(|r| r == state.registry) => state,
            Ok(_) => {
                tracing::debug!("{} is for another tag or registry; ignored", path.display());
                State::default()
            }
            Err(e) => {
                tracing::warn!("{} cannot be read ({e}); ignored", path.display());
                State::default()
            }
        }
    }

    /// The state `build` left for `tag` and `registry`.
    pub fn read(root: &Path, tag: &str, registry: &str) -> State {
        State::read_for(root, tag, Some(registry))
    }

    /// Adds this run's decisions to what is there for the same tag and registry, and writes it.
    pub fn merge_and_write(self, root: &Path) -> Result<(), Error> {
        let mut state = State::read(root, &self.tag, &self.registry);
        state.tag = self.tag;
        state.registry = self.registry;
        state.builds.extend(self.builds);
        let folder = root.join(FOLDER);
        std::fs::create_dir_all(&folder)
            .map_err(|e| Error::Failed(format!("cannot create {}: {e}", folder.display())))?;
        let text = serde_json::to_string_pretty(&state)
            .map_err(|e| Error::Failed(format!("cannot render the build state: {e}")))?;
        artifacts::write_atomic(&folder.join(FILE), &format!("{text}\n"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_state_is_read_back_for_its_own_tag_and_registry_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State {
            tag: "abc".into(),
            registry: "r:5000".into(),
            ..State::default()
        };
        state.builds.insert(
            "web".into(),
            Decision::Reused {
                from: "latest".into(),
                digest: "sha256:11".into(),
                inputs: "sha256:22".into(),
            },
        );
        state.clone().merge_and_write(dir.path()).unwrap();
        let mut more = State {
            tag: "abc".into(),
            registry: "r:5000".into(),
            ..State::default()
        };
        more.builds.insert(
            "app".into(),
            Decision::Built {
                image_id: "sha256:33".into(),
                inputs: "sha256:44".into(),
                cache: BTreeMap::new(),
                builder_text: None,
            },
        );
        more.merge_and_write(dir.path()).unwrap();
        let read = State::read(dir.path(), "abc", "r:5000");
        assert_eq!(read.builds.len(), 2);
        assert_eq!(read.builds["web"], state.builds["web"]);
        assert!(State::read(dir.path(), "def", "r:5000").builds.is_empty());
        assert!(State::read(dir.path(), "abc", "other").builds.is_empty());
        std::fs::write(dir.path().join(".ecrship/build.json"), "{").unwrap();
        assert!(State::read(dir.path(), "abc", "r:5000").builds.is_empty());
    }

    #[test]
    fn push_loads_a_record_or_says_why_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let absent = |record: Record| match record {
            Record::Absent(why) => why,
            Record::Found(state) => panic!("found {state:?}"),
        };
        let why = absent(load(root, "abc", Some("r:5000")).unwrap());
        assert!(why.contains("has not run here"), "{why}");

        let id = format!("sha256:{}", "ab".repeat(32));
        let mut state = State {
            tag: "abc".into(),
            registry: "r:5000".into(),
            ..State::default()
        };
        state.builds.insert(
            "app".into(),
            Decision::Built {
                image_id: id.clone(),
                inputs: id.clone(),
                cache: BTreeMap::from([("deps".to_owned(), id.clone())]),
                builder_text: Some("FROM x\n".into()),
            },
        );
        state.clone().merge_and_write(root).unwrap();
        assert_eq!(
            load(root, "abc", Some("r:5000")).unwrap(),
            Record::Found(state.clone())
        );
        assert_eq!(load(root, "abc", None).unwrap(), Record::Found(state));
        let why = absent(load(root, "def", Some("r:5000")).unwrap());
        assert!(why.contains("records a build of tag `abc`"), "{why}");
        assert!(matches!(
            load(root, "abc", Some("other:1")).unwrap(),
            Record::Absent(_)
        ));

        let file = root.join(".ecrship/build.json");
        let cases: [(&[u8], &str); 3] = [
            (b"{", "EOF while parsing"),
            (b"\xff\xfe{}", "it is not UTF-8"),
            (
                br#"{"tag":"abc","registry":"r:5000","builds":{"app":{"action":"built","image_id":"sha256:zz","inputs":"sha256:00"}}}"#,
                "`app` has `sha256:zz`, which is not a sha256 digest",
            ),
        ];
        for (bytes, want) in cases {
            std::fs::write(&file, bytes).unwrap();
            let err = load(root, "abc", Some("r:5000")).unwrap_err().to_string();
            assert!(
                err.starts_with(".ecrship/build.json cannot be used ("),
                "{err}"
            );
            assert!(err.contains(want), "{err}");
        }
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        let err = load(root, "abc", Some("r:5000")).unwrap_err().to_string();
        assert!(err.contains("(it is a folder)"), "{err}");
    }
}
