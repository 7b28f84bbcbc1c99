//! The deploy artifacts CodePipeline reads: `imagedefinitions.json` for the ECS action and
//! `imageDetail.json` for ECS blue/green through CodeDeploy. Rendering is pure; writing is atomic.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Serialize)]
struct ImageDefinition<'a> {
    name: &'a str,
    #[serde(rename = "imageUri")]
    image_uri: &'a str,
}

/// `imagedefinitions.json`: an array of `{"name", "imageUri"}` in the given order, pretty, with a final newline.
pub fn image_definitions<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let list: Vec<ImageDefinition> = entries
        .into_iter()
        .map(|(name, image_uri)| ImageDefinition { name, image_uri })
        .collect();
    pretty(&list)
}

/// `imageDetail.json`: `{"ImageURI": ...}`, pretty, with a final newline.
pub fn image_detail(uri: &str) -> String {
    #[derive(Serialize)]
    struct ImageDetail<'a> {
        #[serde(rename = "ImageURI")]
        image_uri: &'a str,
    }
    pretty(&ImageDetail { image_uri: uri })
}

fn pretty(value: &impl Serialize) -> String {
    // Serializing plain strings into JSON cannot fail.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write `{}`: {cause}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub cause: io::Error,
}

/// Writes `content` to `path` through a temporary file in the same folder and a rename, so that a
/// reader (or a failed run) sees either the old file whole or the new one whole.
pub fn write_atomic(path: &Path, content: &str) -> Result<(), WriteError> {
    stage(&[(path.to_path_buf(), content.to_owned())])?.commit()
}

/// Files written whole and synced beside their destinations, not yet in place: [`Staged::commit`]
/// renames them over the destinations; dropping them removes them and leaves the destinations as
/// they were. A release stages its artifacts before it moves any tag that deploys from them, and
/// commits them once every tag has moved.
#[derive(Debug)]
pub struct Staged {
    files: Vec<(tempfile::NamedTempFile, PathBuf)>,
}

/// Writes each `(path, content)` to a temporary file in `path`'s folder and syncs it; the first
/// failure removes what was written so far.
pub fn stage(files: &[(PathBuf, String)]) -> Result<Staged, WriteError> {
    let mut staged = Staged {
        files: Vec::with_capacity(files.len()),
    };
    for (path, content) in files {
        let fail = |cause| WriteError {
            path: path.clone(),
            cause,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".ecrship-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(fail)?;
        tmp.write_all(content.as_bytes()).map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        // The new file gets ordinary permissions, not the 0600 of a temporary file.
        set_readable(tmp.as_file()).map_err(fail)?;
        staged.files.push((tmp, path.clone()));
    }
    Ok(staged)
}

impl Staged {
    /// Renames every staged file over its destination, in order.
    pub fn commit(self) -> Result<(), WriteError> {
        for (tmp, path) in self.files {
            tmp.persist(&path).map_err(|e| WriteError {
                path,
                cause: e.error,
            })?;
        }
        Ok(())
    }
}

/// Checks, before any work, that [`write_atomic`] can write `path`: its folder exists and takes a
/// new file, and `path` is not a folder. Leaves nothing behind.
pub fn check_writable(path: &Path) -> Result<(), WriteError> {
    let fail = |cause| WriteError {
        path: path.to_path_buf(),
        cause,
    };
    if path.is_dir() {
        return Err(fail(io::Error::new(
            io::ErrorKind::IsADirectory,
            "it is a folder",
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Err(e) = tempfile::Builder::new()
        .prefix(".ecrship-")
        .suffix(".tmp")
        .tempfile_in(dir)
    {
        // Said plainly, without the random name of the probe file.
        let cause = match e.kind() {
            io::ErrorKind::NotFound => format!("the folder `{}` does not exist", dir.display()),
            io::ErrorKind::NotADirectory => format!("`{}` is not a folder", dir.display()),
            io::ErrorKind::PermissionDenied => {
                format!("the folder `{}` is not writable", dir.display())
            }
            _ => return Err(fail(e)),
        };
        return Err(fail(io::Error::new(e.kind(), cause)));
    }
    Ok(())
}

#[cfg(unix)]
fn set_readable(file: &std::fs::File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn set_readable(_: &std::fs::File) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_definitions_bytes() {
        let text = image_definitions([
            (
                "app",
                "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/app:abc12345",
            ),
            ("web", "r/web:t"),
        ]);
        let want = "[\n  {\n    \"name\": \"app\",\n    \"imageUri\": \"123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/app:abc12345\"\n  },\n  {\n    \"name\": \"web\",\n    \"imageUri\": \"r/web:t\"\n  }\n]\n";
        assert_eq!(text, want);
    }

    #[test]
    fn image_detail_bytes() {
        assert_eq!(
            image_detail("r/app@sha256:00"),
            "{\n  \"ImageURI\": \"r/app@sha256:00\"\n}\n"
        );
    }

    #[test]
    fn atomic_write_replaces_whole_and_failure_keeps_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imagedefinitions.json");
        write_atomic(&path, "old\n").unwrap();
        write_atomic(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");

        let missing = dir.path().join("no-such-folder/imagedefinitions.json");
        let err = write_atomic(&missing, "x").unwrap_err();
        assert!(err.to_string().contains("no-such-folder"), "{err}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            ["imagedefinitions.json"],
            "no temporary file left behind"
        );
    }

    #[test]
    fn staged_files_move_in_on_commit_and_vanish_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("imagedefinitions.json");
        let b = dir.path().join("imageDetail.json");
        write_atomic(&a, "old\n").unwrap();
        let files = [
            (a.clone(), "new a\n".to_owned()),
            (b.clone(), "new b\n".to_owned()),
        ];
        let names = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };

        let staged = stage(&files).unwrap();
        assert_eq!(
            std::fs::read_to_string(&a).unwrap(),
            "old\n",
            "not in place yet"
        );
        assert!(!b.exists());
        assert_eq!(
            names(dir.path()).len(),
            3,
            "two temporary files beside the old one"
        );
        drop(staged);
        assert_eq!(names(dir.path()), ["imagedefinitions.json"]);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old\n");

        stage(&files).unwrap().commit().unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new a\n");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new b\n");
        assert_eq!(
            names(dir.path()),
            ["imageDetail.json", "imagedefinitions.json"]
        );

        let missing = (dir.path().join("gone/x.json"), "x".to_owned());
        let err = stage(&[files[0].clone(), missing]).unwrap_err();
        assert!(err.to_string().contains("gone/x.json"), "{err}");
        assert_eq!(
            names(dir.path()),
            ["imageDetail.json", "imagedefinitions.json"],
            "a failed stage leaves nothing behind"
        );
    }

    #[test]
    fn writability_is_checked_without_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        check_writable(&dir.path().join("imagedefinitions.json")).unwrap();
        let err = check_writable(&dir.path().join("out/imagedefinitions.json")).unwrap_err();
        assert!(
            err.to_string().contains("out/imagedefinitions.json"),
            "{err}"
        );
        assert!(err.to_string().ends_with("out` does not exist"), "{err}");
        std::fs::create_dir(dir.path().join("folder.json")).unwrap();
        let err = check_writable(&dir.path().join("folder.json")).unwrap_err();
        assert!(err.to_string().contains("it is a folder"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["folder.json"], "no temporary file left behind");
    }
}
