//! The zip itself: the same commit gives the same bytes, and memory stays flat.
//!
//! - Entries in byte order of their paths, one time for all of them (the commit's), unix
//!   permissions from git's index in the external attributes (0644, 0755, links 0777) with
//!   "version made by" Unix, no extra fields (as `zip -X`): nothing of the machine, the clock,
//!   the umask or the walk order gets in.
//! - Symbolic links are stored as links, their target as the entry's data (as `zip -y` and
//!   Info-ZIP's `unzip` read them).
//! - Files are deflated at level 6 (zlib's default and `zip`'s; deflate falls back to stored
//!   blocks inside the stream for data it cannot shrink). Empty files, and files whose name says
//!   they are compressed already ([`STORED_SUFFIXES`]), are stored: deflating them costs time and
//!   saves nothing. No folder entries (every reader makes the parents).
//!
//! Worker threads, one per core, read and compress runs of [`CHUNK`] consecutive entries into
//! small zips in memory (one deflate state per run, reset between files, instead of a new one per
//! file); this thread appends each run's entries to the archive as they are (`merge_archive`
//! copies them without recompressing), in order. The workers run at most [`WINDOW`] runs ahead,
//! and a file larger than [`SMALL`] is streamed through the archive by this thread instead. So at
//! most `WINDOW × CHUNK × SMALL` bytes are in memory whatever the size of the tree, and the
//! archive goes to a file, never to memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Cursor, Read, Write};
use std::path::Path;
use std::sync::{Condvar, Mutex};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipArchive, ZipWriter};

use super::SourceError;
use super::files::{Entry, Kind};

/// Files up to this size are compressed by the workers, in memory.
pub const SMALL: u64 = 256 * 1024;
/// Entries per run that a worker compresses into one small zip.
pub const CHUNK: usize = 32;
/// How many runs the workers may be ahead of the writer.
pub const WINDOW: usize = 4;

/// Files with these suffixes (compared without case) are stored, not deflated: formats that are
/// compressed already. Info-ZIP's `zip -n suffixes` does the same ("so that zip doesn't waste its
/// time trying to compress them"; by default `.Z:.zip:.zoo:.arc:.lzh:.arj`, zip(1)); this list
/// adds the formats a web application's sources carry today: images, fonts, archives, media.
pub const STORED_SUFFIXES: &[&str] = &[
    ".7z", ".apk", ".arj", ".avif", ".br", ".bz2", ".gif", ".gz", ".heic", ".jar", ".jpeg", ".jpg",
    ".lzh", ".m4a", ".mov", ".mp3", ".mp4", ".ogg", ".png", ".rar", ".tgz", ".war", ".webm",
    ".webp", ".woff", ".woff2", ".xz", ".z", ".zip", ".zoo", ".zst",
];

/// Whether a file of this name (or this size) is stored rather than deflated.
fn stored(path: &str, size: u64) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    size == 0
        || STORED_SUFFIXES.iter().any(|suffix| {
            name.len() > suffix.len()
                && name.is_char_boundary(name.len() - suffix.len())
                && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        })
}

/// The options of an entry: deflated, or stored (see [`stored`]).
fn method(options: SimpleFileOptions, path: &str, size: u64) -> SimpleFileOptions {
    if stored(path, size) {
        options
            .compression_method(CompressionMethod::Stored)
            .compression_level(None)
    } else {
        options
    }
}

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

    fn permissions(&self) -> u32 {
        match self {
            Member::Tracked(e) => e.kind.permissions(),
            Member::Made { .. } => 0o644,
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

/// A piece of a run, as a worker made it.
enum Piece {
    /// A small zip of consecutive entries.
    Zip(Vec<u8>),
    /// The member at this index is larger than [`SMALL`]: the writer streams it.
    Large(usize, u64),
    /// The member at this index is not in the work tree.
    Missing(usize),
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
    let runs = members.len().div_ceil(CHUNK);
    let window = Window::new(runs);
    let mut zip = ZipWriter::new(BufWriter::with_capacity(256 * 1024, out));
    let mut written = Written::default();

    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut buf = Vec::new();
                while let Some(run) = window.claim() {
                    let start = run * CHUNK;
                    let end = (start + CHUNK).min(members.len());
                    let pieces = prepare(root, members, start..end, base, &mut buf);
                    window.put(run, pieces);
                }
            });
        }
        let result = (|| -> Result<(), SourceError> {
            for run in 0..runs {
                for piece in window.take(run)? {
                    match piece {
                        Piece::Zip(bytes) => {
                            let archive = ZipArchive::new(Cursor::new(bytes))
                                .map_err(|e| write_error(e.to_string()))?;
                            written.files += archive.len();
                            zip.merge_archive(archive)
                                .map_err(|e| write_error(e.to_string()))?;
                        }
                        Piece::Large(i, size) => {
                            let member = &members[i];
                            let name = member.path();
                            let mut file =
                                File::open(root.join(name)).map_err(|cause| SourceError::Read {
                                    path: name.to_owned(),
                                    cause,
                                })?;
                            let options =
                                method(base.unix_permissions(member.permissions()), name, size)
                                    .large_file(size >= u64::from(u32::MAX));
                            zip.start_file(name, options)
                                .map_err(|e| write_error(e.to_string()))?;
                            copy(&mut file, &mut zip, name, out_name)?;
                            written.files += 1;
                        }
                        Piece::Missing(i) => written.missing.push(members[i].path().to_owned()),
                    }
                }
                window.done(run);
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

/// What one member of the work tree is, read.
enum Loaded {
    /// Its bytes are in the buffer.
    Data,
    Link(String),
    Large(u64),
    Missing,
}

/// Reads and compresses the members `range` into pieces: small zips of consecutive entries,
/// broken where a large or missing file lies.
fn prepare(
    root: &Path,
    members: &[Member<'_>],
    range: std::ops::Range<usize>,
    base: SimpleFileOptions,
    buf: &mut Vec<u8>,
) -> Result<Vec<Piece>, SourceError> {
    let failed = |e: zip::result::ZipError| SourceError::Write {
        path: "a run of entries in memory".to_owned(),
        cause: e.to_string(),
    };
    let mut pieces = Vec::new();
    let mut current: Option<ZipWriter<Cursor<Vec<u8>>>> = None;
    let flush = |current: &mut Option<ZipWriter<Cursor<Vec<u8>>>>,
                 pieces: &mut Vec<Piece>|
     -> Result<(), SourceError> {
        if let Some(writer) = current.take() {
            pieces.push(Piece::Zip(writer.finish().map_err(failed)?.into_inner()));
        }
        Ok(())
    };
    for i in range {
        let member = &members[i];
        let read = match member {
            Member::Made { contents, .. } => {
                buf.clear();
                buf.extend_from_slice(contents);
                Loaded::Data
            }
            Member::Tracked(entry) => read(root, entry, buf)?,
        };
        let options = base.unix_permissions(member.permissions());
        match read {
            Loaded::Large(size) => {
                flush(&mut current, &mut pieces)?;
                pieces.push(Piece::Large(i, size));
            }
            Loaded::Missing => pieces.push(Piece::Missing(i)),
            Loaded::Link(target) => {
                let writer = current.get_or_insert_with(|| ZipWriter::new(Cursor::new(Vec::new())));
                writer
                    .add_symlink(member.path(), target, options)
                    .map_err(failed)?;
            }
            Loaded::Data => {
                let writer = current.get_or_insert_with(|| ZipWriter::new(Cursor::new(Vec::new())));
                let options = method(options, member.path(), buf.len() as u64);
                writer.start_file(member.path(), options).map_err(failed)?;
                writer.write_all(buf).map_err(|e| failed(e.into()))?;
            }
        }
    }
    flush(&mut current, &mut pieces)?;
    Ok(pieces)
}

/// Reads one tracked file into `buf`, unless it is a link, large or missing.
fn read(root: &Path, entry: &Entry, buf: &mut Vec<u8>) -> Result<Loaded, SourceError> {
    let path = root.join(&entry.path);
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
                .map(Loaded::Link)
                .map_err(|_| SourceError::NotUtf8 {
                    path: format!("{} (the target of the link)", entry.path),
                }),
            Err(e) if missing(&e) => Ok(Loaded::Missing),
            // Not a link in the work tree: with `core.symlinks=false` git checks a link out as a
            // file that holds its target.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                let target = std::fs::read_to_string(&path).map_err(read_error)?;
                Ok(Loaded::Link(target))
            }
            Err(e) => Err(read_error(e)),
        };
    }
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if missing(&e) => return Ok(Loaded::Missing),
        Err(e) => return Err(read_error(e)),
    };
    let meta = file.metadata().map_err(read_error)?;
    if meta.is_dir() {
        return Err(read_error(io::Error::other(
            "git tracks a file here, but the work tree has a folder",
        )));
    }
    if meta.len() > SMALL {
        return Ok(Loaded::Large(meta.len()));
    }
    buf.clear();
    file.read_to_end(buf).map_err(read_error)?;
    Ok(Loaded::Data)
}

/// The hand-over between the workers and the writer: workers claim the next run while it is
/// less than [`WINDOW`] ahead of the writer, and put what they made; the writer takes each run
/// in turn.
struct Window {
    state: Mutex<State>,
    changed: Condvar,
    len: usize,
}

struct State {
    next: usize,
    written: usize,
    ready: BTreeMap<usize, Result<Vec<Piece>, SourceError>>,
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

    fn put(&self, i: usize, ready: Result<Vec<Piece>, SourceError>) {
        self.lock().ready.insert(i, ready);
        self.changed.notify_all();
    }

    /// What the workers made of run `i`, once they have.
    fn take(&self, i: usize) -> Result<Vec<Piece>, SourceError> {
        let mut s = self.lock();
        loop {
            if let Some(ready) = s.ready.remove(&i) {
                return ready;
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Run `i` is in the zip: the workers may run one further.
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
        for i in 0..(CHUNK * WINDOW * 3) {
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
    fn compressed_formats_and_empty_files_are_stored() {
        let cases = [
            ("a/logo.png", 10, true),
            ("a/Photo.JPG", 10, true),
            ("fonts/x.woff2", 10, true),
            ("vendor/lib.tar.gz", 10, true),
            ("empty.txt", 0, true),
            ("lib/app.ex", 10, false),
            ("png", 10, false),
            (".png", 10, false),
            ("a.png/readme", 10, false),
            ("ü.zip", 10, true),
        ];
        for (path, size, want) in cases {
            assert_eq!(stored(path, size), want, "{path}");
        }
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
        assert_eq!(crate::exit::Exit::exit(&err).code(), 1);
    }
}
