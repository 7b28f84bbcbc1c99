//! What `ecrship build` decided, for the `ecrship push` of a two-phase buildspec.
//!
//! CodeBuild runs `build` and `post_build` in one container, one after the other. `build` may
//! reuse an image from the registry instead of building it; `push` then has no local image for
//! it and must retag the registry's. `build` writes its decisions to
//! `.ecrship/build.json` at the project root (written atomically, for one tag and registry);
//! `push` reads the decisions for the same tag and registry and ignores anything else.
//! The folder is never part of a build context.

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
    /// Built here: the local image `<repository>:<tag>`.
    Built { image_id: String, inputs: String },
    /// The registry's image under `from` has the same inputs: `digest` is to be tagged.
    Reused {
        from: String,
        digest: String,
        inputs: String,
    },
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
}
