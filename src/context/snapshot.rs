//! What the inputs digest saw of each context entry, so that what is sent can be checked
//! against it: the context sent is the context hashed.
//!
//! The digest walk reads every file once, before the build; the build sends them again (the
//! daemon asks for them, or the tar is streamed). A file that changes in between would give an
//! image whose inputs label lies. Each entry's [`Stamp`] (device, inode, size, modification and
//! change times in nanoseconds) is taken when the digest reads it; the send compares the stamp
//! of each entry it sends, and of each file after reading it. Any write to a file moves its
//! change time (`ctime`), which nothing but the kernel sets: as git's racy-clean check, a
//! rewrite with the same size and a restored `mtime` is still seen. An entry the digest did not
//! see is a change too. A file deleted after the digest and not sent is not seen here; the
//! folder that held it, sent as an entry, changed its times.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::ContextError;

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    /// The stamp of an entry, from its metadata (`lstat`, or `fstat` of the open file).
    pub fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }
}

/// The stamps the digest took, by path in the context (`/`-separated, no trailing `/`).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    stamps: HashMap<Vec<u8>, Stamp>,
}

impl Snapshot {
    pub(super) fn insert(&mut self, path: &[u8], stamp: Stamp) {
        self.stamps.insert(trimmed(path).to_vec(), stamp);
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.stamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty()
    }

    /// Checks that the entry at `path`, as `stamp` finds it now, is what the digest saw;
    /// `shown` names it in the error.
    ///
    /// The context's own `.dockerignore` is the one entry sent that the digest need not have
    /// seen: BuildKit's frontend reads it for its patterns, whatever they exclude (a `**`
    /// excludes it from what is hashed), and a change to it changes what the later sync of the
    /// context sends, which is checked.
    pub fn check(&self, path: &[u8], stamp: Stamp, shown: PathBuf) -> Result<(), ContextError> {
        match self.stamps.get(trimmed(path)) {
            Some(seen) if *seen == stamp => Ok(()),
            None if trimmed(path) == b".dockerignore" => Ok(()),
            _ => Err(ContextError::ChangedSinceDigest { path: shown }),
        }
    }
}

fn trimmed(path: &[u8]) -> &[u8] {
    path.strip_suffix(b"/").unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_is_seen_even_with_the_same_size_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "one").unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mut snapshot = Snapshot::default();
        snapshot.insert(b"a.txt", Stamp::of(&meta));
        snapshot.insert(b"dir/", Stamp::of(&meta));
        let now = || Stamp::of(&std::fs::symlink_metadata(&path).unwrap());
        snapshot.check(b"a.txt", now(), "a.txt".into()).unwrap();
        snapshot
            .check(b"dir", Stamp::of(&meta), "dir".into())
            .unwrap();

        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "two").unwrap();
        // Restore the modification time: the change time still moved.
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(meta.modified().unwrap()).unwrap();
        let err = snapshot
            .check(b"a.txt", now(), "ctx/a.txt".into())
            .unwrap_err();
        assert!(
            err.to_string().contains("`ctx/a.txt` changed after"),
            "{err}"
        );
        assert!(
            snapshot.check(b"new.txt", now(), "new.txt".into()).is_err(),
            "an entry the digest did not see"
        );
        assert!(
            snapshot
                .check(b".dockerignore", now(), ".dockerignore".into())
                .is_ok(),
            "the frontend reads the .dockerignore the patterns left out"
        );
    }
}
