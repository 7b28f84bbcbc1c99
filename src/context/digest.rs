//! A digest of a build context's entries exactly as they are sent to the daemon.
//!
//! Every entry adds its kind, path, mode, size, link target and device numbers, then its
//! content (a file's own SHA-256), to one SHA-256, in the order the walk sends them; and to a
//! SHA-256 of its top-level entry (`lib` for `lib/a/b.ex`), so that a changed context can name
//! what changed. The walks send each top-level entry and everything under it together.
//!
//! The walk only records the entries ([`Recorder`]); the files are read and hashed on worker
//! threads meanwhile, one per core (at most four), each read once, and folded in walk order at
//! the end ([`record`]). The [`Snapshot`] of what was read goes with the digest, for the send
//! to check against. Modification times are left out:
//! a fresh checkout of the same tree changes them, and BuildKit's cache keys leave them out too
//! (buildkit `cache/contenthash`). Owners are always sent as 0:0.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};

use sha2::{Digest as _, Sha256};

use super::ContextError;
use super::snapshot::{Snapshot, Stamp};

/// Most file-hashing threads a digest walk starts.
const MAX_WORKERS: usize = 4;
/// Read buffer of a hashing thread.
const BUFFER: usize = 256 * 1024;

/// The context's digest: in all, and per top-level entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextDigests {
    /// `sha256:...` of every entry sent.
    pub total: String,
    /// Each top-level entry's digest (over it and everything under it), by name.
    pub entries: BTreeMap<String, String>,
}

/// The kind of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A second path of a hard-linked file; its link is the first path.
    HardLink,
    Fifo,
    CharDevice,
    BlockDevice,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::File => b'f',
            Kind::Dir => b'd',
            Kind::Symlink => b'l',
            Kind::HardLink => b'h',
            Kind::Fifo => b'p',
            Kind::CharDevice => b'c',
            Kind::BlockDevice => b'b',
        }
    }
}

/// The running digest of a context; see the module docs.
#[derive(Clone)]
pub struct ContextDigest {
    sha: Sha256,
    entries: u64,
    /// The top-level entry being added, and its digest so far.
    top: Option<(Vec<u8>, Sha256)>,
    tops: BTreeMap<String, String>,
}

impl Default for ContextDigest {
    fn default() -> Self {
        ContextDigest {
            sha: Sha256::new(),
            entries: 0,
            top: None,
            tops: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for ContextDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextDigest")
            .field("entries", &self.entries)
            .finish()
    }
}

/// What the digest takes of one entry, before its content.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    pub kind: Kind,
    /// The name as sent, `/`-separated.
    pub path: &'a [u8],
    pub mode: u32,
    /// A file's bytes; 0 for other kinds.
    pub size: u64,
    /// A link's target.
    pub link: Option<&'a [u8]>,
    /// A device's major and minor numbers.
    pub device: Option<(u32, u32)>,
}

impl ContextDigest {
    /// One entry's header; for a file, its `size` bytes of content follow through [`Self::data`].
    pub fn entry(&mut self, entry: Header<'_>) {
        let Header {
            kind,
            path,
            mode,
            size,
            link,
            device,
        } = entry;
        self.entries += 1;
        let top = path.split(|&b| b == b'/').next().unwrap_or_default();
        if self.top.as_ref().is_none_or(|(name, _)| name != top) {
            self.close_top();
            self.top = Some((top.to_vec(), Sha256::new()));
        }
        let mut header = Vec::with_capacity(path.len() + 64);
        header.push(kind.tag());
        header.extend(mode.to_be_bytes());
        header.extend(size.to_be_bytes());
        framed(&mut header, path);
        framed(&mut header, link.unwrap_or_default());
        let (major, minor) = device.unwrap_or_default();
        header.extend(major.to_be_bytes());
        header.extend(minor.to_be_bytes());
        self.data(&header);
    }

    /// Content of the last file entry, in any number of pieces.
    pub fn data(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        if let Some((_, sha)) = &mut self.top {
            sha.update(bytes);
        }
    }

    /// Ends the top-level entry being added.
    fn close_top(&mut self) {
        if let Some((name, sha)) = self.top.take() {
            let digest = format!("sha256:{}", hex::encode(sha.finalize()));
            self.tops
                .insert(String::from_utf8_lossy(&name).into_owned(), digest);
        }
    }

    /// How many entries were added.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// `sha256:<hex>` of everything added, and of each top-level entry.
    pub fn finish(mut self) -> ContextDigests {
        self.close_top();
        ContextDigests {
            total: format!("sha256:{}", hex::encode(self.sha.finalize())),
            entries: self.tops,
        }
    }
}

/// What a walk records of one entry.
struct Record {
    kind: Kind,
    path: Vec<u8>,
    mode: u32,
    size: u64,
    link: Option<Vec<u8>>,
    device: Option<(u32, u32)>,
    content: Content,
}

enum Content {
    None,
    /// Bytes held in memory (a `.dockerignore` read once).
    Inline(Vec<u8>),
    /// A file hashed by a worker: its index among the jobs.
    File(usize),
}

/// One file for a worker: read `path` (`size` bytes, as `stamp` says), named `shown` in errors.
struct Job {
    index: usize,
    path: PathBuf,
    shown: PathBuf,
    stamp: Stamp,
}

/// Takes a walk's entries in order; files go to the hashing threads as they come.
pub struct Recorder {
    records: Vec<Record>,
    jobs: Option<mpsc::SyncSender<Job>>,
    files: usize,
    snapshot: Snapshot,
}

impl Recorder {
    /// One entry's header, and its stamp when it is on disk; a file's content follows through
    /// [`Self::file`] or [`Self::inline`].
    pub fn entry(&mut self, entry: Header<'_>, stamp: Option<Stamp>) {
        if let Some(stamp) = stamp {
            self.snapshot.insert(entry.path, stamp);
        }
        self.records.push(Record {
            kind: entry.kind,
            path: entry.path.to_vec(),
            mode: entry.mode,
            size: entry.size,
            link: entry.link.map(<[u8]>::to_vec),
            device: entry.device,
            content: Content::None,
        });
    }

    /// The last entry's content, held in memory.
    pub fn inline(&mut self, bytes: &[u8]) {
        if let Some(last) = self.records.last_mut() {
            last.content = Content::Inline(bytes.to_vec());
        }
    }

    /// The last entry's content: the file at `path`, as `stamp` found it, hashed by a worker.
    pub fn file(
        &mut self,
        path: PathBuf,
        shown: PathBuf,
        stamp: Stamp,
    ) -> Result<(), ContextError> {
        let index = self.files;
        self.files += 1;
        if let Some(last) = self.records.last_mut() {
            last.content = Content::File(index);
        }
        let job = Job {
            index,
            path,
            shown,
            stamp,
        };
        match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|_| ContextError::Cancelled),
            None => Err(ContextError::Cancelled),
        }
    }
}

/// Runs `walk` with a [`Recorder`], hashing files on worker threads, and folds everything into
/// the context's digest, in walk order; with the snapshot of what was read.
pub fn record(
    walk: impl FnOnce(&mut Recorder) -> Result<(), ContextError>,
) -> Result<(ContextDigests, Snapshot), ContextError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_WORKERS);
    let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(workers * 16);
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let (done_tx, done_rx) = mpsc::channel::<(usize, Result<[u8; 32], ContextError>)>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (jobs, done) = (Arc::clone(&jobs_rx), done_tx.clone());
            scope.spawn(move || hash_files(&jobs, &done));
        }
        drop(done_tx);
        let mut recorder = Recorder {
            records: Vec::new(),
            jobs: Some(jobs_tx),
            files: 0,
            snapshot: Snapshot::default(),
        };
        let walked = walk(&mut recorder);
        // No more jobs: the workers finish what they have, then stop.
        recorder.jobs = None;
        let mut hashes: Vec<Option<[u8; 32]>> = vec![None; recorder.files];
        let mut failure = walked.err();
        for (index, hashed) in done_rx {
            match hashed {
                Ok(hash) => hashes[index] = Some(hash),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let mut digest = ContextDigest::default();
        for record in &recorder.records {
            digest.entry(Header {
                kind: record.kind,
                path: &record.path,
                mode: record.mode,
                size: record.size,
                link: record.link.as_deref(),
                device: record.device,
            });
            match &record.content {
                Content::None => {}
                Content::Inline(bytes) => digest.data(bytes),
                Content::File(index) => {
                    let hash = hashes[*index].ok_or(ContextError::Cancelled)?;
                    digest.data(&hash);
                }
            }
        }
        Ok((digest.finish(), recorder.snapshot))
    })
}

/// A worker: hashes files until the jobs run out; a file must be read whole and unchanged.
fn hash_files(
    jobs: &Mutex<mpsc::Receiver<Job>>,
    done: &mpsc::Sender<(usize, Result<[u8; 32], ContextError>)>,
) {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return;
        };
        let hashed = hash_file(&job, &mut buf);
        if done.send((job.index, hashed)).is_err() {
            return;
        }
    }
}

fn hash_file(job: &Job, buf: &mut [u8]) -> Result<[u8; 32], ContextError> {
    let read_error = |cause| ContextError::Read {
        path: job.shown.clone(),
        cause,
    };
    let mut file = std::fs::File::open(&job.path).map_err(read_error)?;
    let mut sha = Sha256::new();
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        sha.update(&buf[..n]);
    }
    // Read whole and unchanged: the same file, untouched from the walk's stat to the end.
    let after = file.metadata().map_err(read_error)?;
    if Stamp::of(&after) != job.stamp {
        return Err(ContextError::Changed {
            path: job.shown.clone(),
        });
    }
    Ok(sha.finalize().into())
}

/// Length-prefixed bytes: no two different sequences of fields hash the same way.
fn framed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u64).to_be_bytes());
    out.extend(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(
        kind: Kind,
        path: &'a [u8],
        mode: u32,
        size: u64,
        link: Option<&'a [u8]>,
    ) -> Header<'a> {
        Header {
            kind,
            path,
            mode,
            size,
            link,
            device: None,
        }
    }

    fn digest(entries: &[(Kind, &str, u32, &str)]) -> String {
        let mut d = ContextDigest::default();
        for (kind, path, mode, content) in entries {
            let link = (*kind == Kind::Symlink).then_some(content.as_bytes());
            let size = if *kind == Kind::File {
                content.len()
            } else {
                0
            };
            d.entry(header(*kind, path.as_bytes(), *mode, size as u64, link));
            if *kind == Kind::File {
                d.data(content.as_bytes());
            }
        }
        d.finish().total
    }

    #[test]
    fn every_field_counts_and_nothing_else() {
        let base = [
            (Kind::Dir, "a/", 0o755, ""),
            (Kind::File, "a/x", 0o644, "hello"),
        ];
        let same = digest(&base);
        assert_eq!(same, digest(&base));
        assert!(same.starts_with("sha256:") && same.len() == 71);
        let variants: [&[(Kind, &str, u32, &str)]; 6] = [
            &[
                (Kind::Dir, "a/", 0o755, ""),
                (Kind::File, "a/x", 0o755, "hello"),
            ],
            &[
                (Kind::Dir, "a/", 0o755, ""),
                (Kind::File, "a/y", 0o644, "hello"),
            ],
            &[
                (Kind::Dir, "a/", 0o755, ""),
                (Kind::File, "a/x", 0o644, "hellO"),
            ],
            &[
                (Kind::Dir, "a/", 0o700, ""),
                (Kind::File, "a/x", 0o644, "hello"),
            ],
            &[
                (Kind::Dir, "a/", 0o755, ""),
                (Kind::Symlink, "a/x", 0o644, "hello"),
            ],
            &[
                (Kind::File, "a/x", 0o644, "hello"),
                (Kind::Dir, "a/", 0o755, ""),
            ],
        ];
        for variant in variants {
            assert_ne!(digest(variant), same, "{variant:?}");
        }
        // Content split differently is the same content.
        let mut d = ContextDigest::default();
        d.entry(header(Kind::Dir, b"a/", 0o755, 0, None));
        d.entry(header(Kind::File, b"a/x", 0o644, 5, None));
        d.data(b"he");
        d.data(b"llo");
        assert_eq!(d.entries(), 2);
        assert_eq!(d.finish().total, same);
        // Field boundaries are framed: moving a byte from the path to the link changes it.
        let mut a = ContextDigest::default();
        a.entry(header(Kind::Symlink, b"ab", 0o777, 0, Some(b"c")));
        let mut b = ContextDigest::default();
        b.entry(header(Kind::Symlink, b"a", 0o777, 0, Some(b"bc")));
        assert_ne!(a.finish().total, b.finish().total);
    }

    #[test]
    fn each_top_level_entry_has_a_digest_of_its_own() {
        let tree = |lib: &str, lock: &str| {
            let mut d = ContextDigest::default();
            for (kind, path, content) in [
                (Kind::Dir, "lib/", ""),
                (Kind::File, "lib/a.ex", lib),
                (Kind::File, "mix.lock", lock),
            ] {
                let size = content.len() as u64;
                d.entry(header(kind, path.as_bytes(), 0o644, size, None));
                d.data(content.as_bytes());
            }
            d.finish()
        };
        let a = tree("one", "deps");
        assert_eq!(a.entries.keys().collect::<Vec<_>>(), ["lib", "mix.lock"]);
        let b = tree("two", "deps");
        assert_ne!(a.total, b.total);
        assert_ne!(a.entries["lib"], b.entries["lib"]);
        assert_eq!(a.entries["mix.lock"], b.entries["mix.lock"]);
    }
}
