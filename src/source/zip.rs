//! The zip itself: the same commit gives the same bytes, and memory stays flat.
//!
//! - Entries in byte order of their paths, one time for all of them (the commit's), unix
//!   permissions from git's index in the external attributes (0644, 0755, links 0777) with
//!   "version made by" Unix, no extra fields (as `zip -X`): nothing of the machine, the clock,
//!   the umask or the walk order gets in.
//! - Symbolic links are stored as links, their target as the entry's data (as `zip -y` and
//!   Info-ZIP's `unzip` read them).
//! - Files are deflated (level 6, zlib's default and `zip`'s), or stored when deflate does not
//!   make them smaller, as `zip` does; no folder entries (every reader makes the parents).
//!
//! Small files are read and compressed by worker threads, one per core, while this thread
//! writes finished entries in order; the workers run at most [`WINDOW`] entries ahead, and a
//! file larger than [`SMALL`] is streamed through the writer by this thread instead. So at most
//! `WINDOW × SMALL` bytes are in memory whatever the size of the tree, and the archive goes to
//! a file, never to memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::{Condvar, Mutex};

use zip::write::{PreparedZipFile, SimpleFileOptions};
use zip::{CompressionMethod, DateTime, System, ZipWriter};

use super::SourceError;
use super::files::{Entry, Kind};

/// Files up to this size are compressed by the workers, in memory.
pub const SMALL: u64 = 256 * 1024;
/// How many entries the workers may run ahead of the writer.
pub const WINDOW: usize = 64;

/// One entry of the zip, in the order they are written.
#[derive(Debug, Clone, Copy)]
pub enum Member<'a> {
    /// A file of the work tree that git tracks.
    Tracked(&'a Entry),
    /// A file made here (`.git-commit-hash`), mode 0644.
    Made { path: &'a str, contents: &'a [u8] },
}

impl Member<'_> {
    pub fn path(&self) -> &str {
        match self {
            Member::Tracked(e) => &e.path,
            Member::Made { path, .. } => path,
        }
    }
}

/// What the zip holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Entries written.
    pub files: usize,
    /// Tracked files absent from the work tree, left out.
    pub missing: Vec<String>,
}

/// An entry made ready by a worker.
enum Ready {
    Compressed(PreparedZipFile),
    Link(String),
    Large(u64),
    Missing,
}

/// Writes `members` (sorted by path) from the work tree at `root` as a zip to `out`.
pub fn write(
    root: &Path,
    members: &[Member<'_>],
    time: DateTime,
    out: File,
    out_name: &str,
) -> Result<(File, Written), SourceError> {
    let base = SimpleFileOptions::default()
        .system(System::Unix)
        .last_modified_time(time)
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6));
    let write_error = |cause: String| SourceError::Write {
        path: out_name.to_owned(),
        cause,
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let window = Window::new(members.len());
    let mut zip = ZipWriter::new(BufWriter::with_capacity(256 * 1024, out));
    let mut written = Written::default();

    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(i) = window.claim() {
                    let ready = prepare(root, &members[i], base);
                    window.put(i, ready);
                }
            });
        }
        let result = (|| -> Result<(), SourceError> {
            for (i, member) in members.iter().enumerate() {
                let ready = window.take(i)?;
                let name = member.path();
                let permissions = match member {
                    Member::Tracked(e) => e.kind.permissions(),
                    Member::Made { .. } => 0o644,
                };
                match ready {
                    Ready::Compressed(file) => zip
                        .add_prepared_file(file)
                        .map_err(|e| write_error(e.to_string()))?,
                    Ready::Link(target) => zip
                        .add_symlink(name, target, base.unix_permissions(permissions))
                        .map_err(|e| write_error(e.to_string()))?,
                    Ready::Large(size) => {
                        let path = root.join(name);
                        let read_error = |cause| SourceError::Read {
                            path: name.to_owned(),
                            cause,
                        };
                        let mut file = File::open(&path).map_err(read_error)?;
                        let options = base
                            .unix_permissions(permissions)
                            .large_file(size >= u64::from(u32::MAX));
                        zip.start_file(name, options)
                            .map_err(|e| write_error(e.to_string()))?;
                        copy(&mut file, &mut zip, name, out_name)?;
                    }
                    Ready::Missing => {
                        written.missing.push(name.to_owned());
                        window.done(i);
                        continue;
                    }
                }
                written.files += 1;
                window.done(i);
            }
            Ok(())
        })();
        if result.is_err() {
            window.stop();
        }
        result
    })?;
    let file = zip
        .finish()
        .map_err(|e| write_error(e.to_string()))?
        .into_inner()
        .map_err(|e| write_error(e.error().to_string()))?;
    Ok((file, written))
}

/// Copies a large file into the current entry, naming the side that failed.
fn copy(
    from: &mut File,
    to: &mut impl Write,
    name: &str,
    out_name: &str,
) -> Result<(), SourceError> {
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(cause) => {
                return Err(SourceError::Read {
                    path: name.to_owned(),
                    cause,
                });
            }
        };
        to.write_all(&buf[..n]).map_err(|e| SourceError::Write {
            path: out_name.to_owned(),
            cause: e.to_string(),
        })?;
    }
}

/// Reads one member and, when it is small, compresses it.
fn prepare(
    root: &Path,
    member: &Member<'_>,
    base: SimpleFileOptions,
) -> Result<Ready, SourceError> {
    let (entry, path) = match member {
        Member::Made { path, contents } => {
            return compress(path, contents, base.unix_permissions(0o644)).map(Ready::Compressed);
        }
        Member::Tracked(entry) => (entry, root.join(&entry.path)),
    };
    let read_error = |cause| SourceError::Read {
        path: entry.path.clone(),
        cause,
    };
    let missing = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
        )
    };
    if entry.kind == Kind::Link {
        return match std::fs::read_link(&path) {
            Ok(target) => target
                .into_os_string()
                .into_string()
                .map(Ready::Link)
                .map_err(|_| SourceError::NotUtf8 {
                    path: format!("{} (the target of the link)", entry.path),
                }),
            Err(e) if missing(&e) => Ok(Ready::Missing),
            // Not a link in the work tree: with `core.symlinks=false` git checks a link out as a
            // file that holds its target.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                let target = std::fs::read_to_string(&path).map_err(read_error)?;
                Ok(Ready::Link(target))
            }
            Err(e) => Err(read_error(e)),
        };
    }
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if missing(&e) => return Ok(Ready::Missing),
        Err(e) => return Err(read_error(e)),
    };
    let meta = file.metadata().map_err(read_error)?;
    if meta.is_dir() {
        return Err(read_error(io::Error::other(
            "git tracks a file here, but the work tree has a folder",
        )));
    }
    if meta.len() > SMALL {
        return Ok(Ready::Large(meta.len()));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut data).map_err(read_error)?;
    compress(
        &entry.path,
        &data,
        base.unix_permissions(entry.kind.permissions()),
    )
    .map(Ready::Compressed)
}

/// Deflates `data`, or stores it when deflate does not make it smaller (as `zip` does).
fn compress(
    name: &str,
    data: &[u8],
    options: SimpleFileOptions,
) -> Result<PreparedZipFile, SourceError> {
    let failed = |e: zip::result::ZipError| SourceError::Write {
        path: name.to_owned(),
        cause: format!("cannot compress: {e}"),
    };
    if !data.is_empty() {
        let deflated = PreparedZipFile::from_data(name, options, data).map_err(failed)?;
        if deflated.compressed_size() < data.len() as u64 {
            return Ok(deflated);
        }
    }
    let stored = options
        .compression_method(CompressionMethod::Stored)
        .compression_level(None);
    PreparedZipFile::from_data(name, stored, data).map_err(failed)
}

/// The hand-over between the workers and the writer: workers claim the next index while it is
/// less than [`WINDOW`] ahead of the writer, and put what they made; the writer takes each index
/// in turn.
struct Window {
    state: Mutex<State>,
    changed: Condvar,
    len: usize,
}

struct State {
    next: usize,
    written: usize,
    ready: BTreeMap<usize, Result<Ready, SourceError>>,
    stopped: bool,
}

impl Window {
    fn new(len: usize) -> Window {
        Window {
            state: Mutex::new(State {
                next: 0,
                written: 0,
                ready: BTreeMap::new(),
                stopped: false,
            }),
            changed: Condvar::new(),
            len,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next index to prepare; `None` when all are claimed or the writer stopped.
    fn claim(&self) -> Option<usize> {
        let mut s = self.lock();
        loop {
            if s.stopped || s.next >= self.len {
                return None;
            }
            if s.next < s.written + WINDOW {
                s.next += 1;
                return Some(s.next - 1);
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn put(&self, i: usize, ready: Result<Ready, SourceError>) {
        self.lock().ready.insert(i, ready);
        self.changed.notify_all();
    }

    /// What the workers made of index `i`, once they have.
    fn take(&self, i: usize) -> Result<Ready, SourceError> {
        let mut s = self.lock();
        loop {
            if let Some(ready) = s.ready.remove(&i) {
                return ready;
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Index `i` is in the zip: the workers may run one further.
    fn done(&self, i: usize) {
        self.lock().written = i + 1;
        self.changed.notify_all();
    }

    /// The writer failed: the workers stop claiming.
    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek};

    fn tracked(path: &str, kind: Kind) -> Entry {
        Entry {
            path: path.into(),
            kind,
        }
    }

    /// Writes the zip of `entries` (plus a made file) from `root`; its bytes.
    fn zip_of(root: &Path, entries: &[Entry]) -> (Vec<u8>, Written) {
        let mut members: Vec<Member> = entries.iter().map(Member::Tracked).collect();
        members.insert(
            0,
            Member::Made {
                path: ".git-commit-hash",
                contents: b"01234567\n",
            },
        );
        let out = tempfile::tempfile().unwrap();
        let time = DateTime::from_date_and_time(2024, 2, 29, 12, 34, 56).unwrap();
        let (mut file, written) = write(root, &members, time, out, "test.zip").unwrap();
        file.rewind().unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        (bytes, written)
    }

    #[test]
    fn entries_modes_links_and_times_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("README.md"), "hello ".repeat(100)).unwrap();
        std::fs::write(root.join("bin/run"), "#!/bin/sh\necho hi\n").unwrap();
        std::os::unix::fs::symlink("README.md", root.join("link")).unwrap();
        std::fs::write(root.join("empty"), "").unwrap();
        let big: Vec<u8> = (0..SMALL as usize * 3)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(root.join("big.bin"), &big).unwrap();
        let entries = [
            tracked("README.md", Kind::File),
            tracked("big.bin", Kind::File),
            tracked("bin/run", Kind::Executable),
            tracked("empty", Kind::File),
            tracked("gone", Kind::File),
            tracked("link", Kind::Link),
        ];
        let (bytes, written) = zip_of(root, &entries);
        assert_eq!(written.files, 6);
        assert_eq!(written.missing, ["gone"]);

        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut got = Vec::new();
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            let t = f.last_modified().unwrap();
            assert_eq!(
                (t.year(), t.month(), t.day(), t.minute()),
                (2024, 2, 29, 34)
            );
            assert!(
                f.extra_data().is_none_or(|e| e.is_empty()),
                "no extra fields"
            );
            got.push((
                f.name().unwrap().to_string(),
                f.unix_mode().unwrap(),
                data.len(),
            ));
        }
        let want = [
            (".git-commit-hash", 0o100644, 9),
            ("README.md", 0o100644, 600),
            ("big.bin", 0o100644, big.len()),
            ("bin/run", 0o100755, 18),
            ("empty", 0o100644, 0),
            ("link", 0o120777, 9),
        ];
        let got: Vec<(&str, u32, usize)> =
            got.iter().map(|(n, m, l)| (n.as_str(), *m, *l)).collect();
        assert_eq!(got, want);
        let mut link = archive.by_name("link").unwrap();
        let mut target = String::new();
        link.read_to_string(&mut target).unwrap();
        assert_eq!(target, "README.md");
    }

    #[test]
    fn same_tree_same_bytes_whatever_the_threads_do() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for i in 0..(WINDOW * 3) {
            let path = format!("f{i:04}.txt");
            std::fs::write(dir.path().join(&path), format!("file {i}\n").repeat(i)).unwrap();
            entries.push(tracked(&path, Kind::File));
        }
        let (first, _) = zip_of(dir.path(), &entries);
        for _ in 0..3 {
            assert!(zip_of(dir.path(), &entries).0 == first, "the bytes changed");
        }
        // The work tree's mode and time do not matter; the index's kind does.
        let f = dir.path().join("f0001.txt");
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        assert!(
            zip_of(dir.path(), &entries).0 == first,
            "a chmod changed the bytes"
        );
        entries[1].kind = Kind::Executable;
        assert!(zip_of(dir.path(), &entries).0 != first);
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let entries = [tracked("sub", Kind::File)];
        let members: Vec<Member> = entries.iter().map(Member::Tracked).collect();
        let out = tempfile::tempfile().unwrap();
        let err = write(dir.path(), &members, DateTime::default(), out, "x.zip").unwrap_err();
        assert!(err.to_string().starts_with("cannot read `sub`"), "{err}");
        assert_eq!(err.exit_code(), 1);
    }
}
