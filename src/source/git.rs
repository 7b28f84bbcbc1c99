//! The git edge: the commit at HEAD and the files of git's index, read by running `git`.
//!
//! Why the `git` binary rather than a crate: the job that zips the sources (GitLab CI, GitHub
//! Actions) has just checked the repository out with git, so git is there; a pure-Rust reader
//! such as gix adds megabytes to a binary that must stay under 15 MB, and git2 links libgit2 (C,
//! and more than glibc to ship). git itself also reads every form of the index (versions 2 to 4,
//! split and sparse indexes, SHA-256 repositories) and recurses into submodules, so ecrship does
//! not have to follow it. Two calls, each a few milliseconds on a tree of 20,000 files:
//! `git log -1 --format=%H %ct HEAD` and `git ls-files -z --stage --recurse-submodules`.

use std::path::Path;
use std::process::Command;

use super::SourceError;

/// The commit checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The full commit id (40 hex digits, 64 in a SHA-256 repository).
    pub id: String,
    /// The committer time, in seconds since the Unix epoch.
    pub time: i64,
}

/// The commit at HEAD, with its time.
pub fn head(root: &Path) -> Result<Head, SourceError> {
    let args = ["log", "-1", "--format=%H %ct", "HEAD"];
    let out = git(root, &args)?;
    let text = String::from_utf8_lossy(&out);
    let bad = || SourceError::Git {
        args: args.join(" "),
        dir: root.display().to_string(),
        message: format!("unexpected output `{}`", text.trim()),
        hint: None,
    };
    let (id, time) = text.trim().split_once(' ').ok_or_else(bad)?;
    Ok(Head {
        id: id.to_owned(),
        time: time.parse().map_err(|_| bad())?,
    })
}

/// The entries of git's index under `root` (and of its submodules'), as `git ls-files -z
/// --stage` prints them: `<mode> <object> <stage>\t<path>\0`, paths relative to `root`.
pub fn index(root: &Path) -> Result<Vec<u8>, SourceError> {
    git(root, &["ls-files", "-z", "--stage", "--recurse-submodules"])
}

/// Runs one git command in `root`; its stdout, or an error with git's own message.
fn git(root: &Path, args: &[&str]) -> Result<Vec<u8>, SourceError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        // Messages in English, so that the hints below match; never a prompt.
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|cause| SourceError::NoGit { cause })?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let message = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Err(SourceError::Git {
        args: args.join(" "),
        dir: root.display().to_string(),
        hint: hint(&message),
        message: if message.is_empty() {
            format!("exit status {}", out.status)
        } else {
            message
        },
    })
}

/// What to do about git's usual refusals.
fn hint(message: &str) -> Option<&'static str> {
    if message.contains("dubious ownership") {
        // git 2.35.2 and later refuse a repository owned by another user (CVE-2022-24765).
        Some(
            "the checkout belongs to another user: run `git config --global --add safe.directory \"$PWD\"` first",
        )
    } else if message.contains("not a git repository") {
        Some(
            "ecrship source zips what git tracks: run it in the repository's work tree, or give -C DIR",
        )
    } else if message.contains("does not have any commits yet")
        || message.contains("ambiguous argument 'HEAD'")
    {
        Some("the repository has no commit yet: commit first")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_for_the_usual_refusals() {
        assert!(
            hint("fatal: detected dubious ownership in repository at '/x'")
                .unwrap()
                .contains("safe.directory")
        );
        assert!(
            hint("fatal: not a git repository (or any of the parent directories): .git")
                .unwrap()
                .contains("-C DIR")
        );
        assert!(
            hint("fatal: your current branch 'main' does not have any commits yet")
                .unwrap()
                .contains("commit first")
        );
        assert_eq!(hint("fatal: something else"), None);
    }

    #[test]
    fn outside_a_repository_is_bad_input_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        // A folder under / that is no repository (the temp dir's parents are none either).
        let err = head(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert_eq!(crate::exit::Exit::exit(&err).code(), 2, "{msg}");
        assert!(msg.contains("not a git repository"), "{msg}");
    }
}
