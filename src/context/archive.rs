//! Writing the build context as a tar, entry for entry as the Docker CLI's walker does
//! (moby/go-archive `TarWithOptions` / `addTarFile`, Go's `archive/tar.FileInfoHeader`).
//!
//! * Order: each folder's entries sorted by name bytes, depth first (`filepath.WalkDir`).
//!   The context folder itself gets no entry (`relFilePath == "."` is skipped).
//! * Folders end with `/`; regular files, symlinks (target stored as read, never followed,
//!   even when it points outside the context or loops), and a second path of a hard-linked
//!   inode as a hard link to the first one sent.
//! * Mode: permission bits with setuid, setgid and sticky (`FileInfoHeader`); owner 0:0
//!   (`ChownOpts`), no user or group names; mtime in whole seconds.
//! * Fifos and character/block devices are sent as such (Go's `FileInfoHeader` maps them to
//!   `TypeFifo`/`TypeChar`/`TypeBlock` and moby writes the header with device numbers);
//!   sockets are left out (`FileInfoHeader` refuses them and moby logs and moves on).
//! * Not reproduced: the `security.capability` xattr moby copies into a PAX record.
//!
//! Headers are GNU-style with `././@LongLink` entries for names and link targets over 100
//! bytes (Go writes PAX records instead; Go's `archive/tar`, which both the classic daemon and
//! BuildKit read with, accepts both).

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tar::{EntryType, Header};

use super::digest::{self, Kind, Recorder};
use super::ignore::{Decision, MatchInfo, Patterns};
use super::snapshot::{Snapshot, Stamp};
use super::{ContextError, ContextSummary, shown_in};

/// Size of the chunks handed to the channel (and of the file read buffer).
pub(super) const CHUNK_SIZE: usize = 256 * 1024;

const BLOCK: u64 = 512;
/// Go's `archive.ImpliedDirectoryMode`: folders the daemon creates for entries whose parents
/// are not in the tar.
const IMPLIED_DIR_MODE: u32 = 0o755;
/// Mode of the generated Dockerfile and of a created `.dockerignore`
/// (`AddDockerfileToBuildContext`).
const GENERATED_MODE: u32 = 0o600;

/// Everything the walk needs, decided by [`super::prepare`].
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Context folder, symlinks resolved.
    pub(super) root: PathBuf,
    /// Context folder as given, for messages.
    pub(super) shown_root: PathBuf,
    /// `.dockerignore` patterns plus the CLI's additions.
    pub(super) rules: Patterns,
    /// The Dockerfile's path in the context when it is inside; always reached.
    pub(super) dockerfile_rel: Option<Vec<u8>>,
    /// Paths in the context never sent (ecrship's own outputs).
    pub(super) leave_out: Vec<Vec<u8>>,
    /// Leave the Dockerfile's own entry out (BuildKit, excluded by `.dockerignore`).
    pub(super) omit_dockerfile: bool,
    /// Content to send for a top-level `.dockerignore` (read once, in `prepare`).
    pub(super) dockerignore: Option<Vec<u8>>,
    /// `dockerignore` differs from the file (the generated name appended): always sent as a
    /// regular file; the digest takes the file's own bytes.
    pub(super) dockerignore_rewritten: bool,
    /// The file's own `.dockerignore` bytes, when `dockerignore` was rewritten.
    pub(super) dockerignore_original: Option<Vec<u8>>,
    /// Leave `.dockerignore` out (BuildKit, excluded by its own patterns).
    pub(super) omit_dockerignore: bool,
    /// A `.dockerignore` to add at the end (classic, Dockerfile outside, none in the folder).
    pub(super) create_dockerignore: Option<Vec<u8>>,
    /// The Dockerfile to add at the end: name in the tar and file to read.
    pub(super) generated: Option<(String, PathBuf)>,
    /// What the inputs digest saw: every entry sent must still be that.
    pub(super) snapshot: Option<std::sync::Arc<Snapshot>>,
}

/// Walks the context and writes the tar, handing out chunks of [`CHUNK_SIZE`] bytes. With a
/// `recorder`, the walk only records the entries for the digest (files are hashed by its
/// workers, not read here). Without one, and with a snapshot in the plan, every entry sent is
/// checked against what the digest saw.
pub(super) fn write<F>(
    plan: &Plan,
    emit: F,
    digest: Option<&mut Recorder>,
) -> Result<ContextSummary, ContextError>
where
    F: FnMut(Bytes) -> Result<(), ContextError>,
{
    let mut walker = Walker {
        plan,
        digest,
        out: TarOut {
            buf: BytesMut::with_capacity(CHUNK_SIZE),
            emit,
            bytes: 0,
        },
        links: HashMap::new(),
        ancestors: Vec::new(),
        files: 0,
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    walker.walk(&plan.root, b"", None)?;
    walker.append_generated()?;
    let files = walker.files;
    let bytes = walker.out.finish()?;
    Ok(ContextSummary { files, bytes })
}

struct Walker<'a, F> {
    plan: &'a Plan,
    digest: Option<&'a mut Recorder>,
    out: TarOut<F>,
    /// (device, inode) of hard-linked files already sent → their name in the tar.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Folders on the way down and whether each got an entry.
    ancestors: Vec<(Vec<u8>, bool)>,
    files: u64,
    now: u64,
}

impl<F> Walker<'_, F>
where
    F: FnMut(Bytes) -> Result<(), ContextError>,
{
    fn shown(&self, rel: &[u8]) -> PathBuf {
        shown_in(
            &self.plan.shown_root,
            Path::new(std::ffi::OsStr::from_bytes(rel)),
        )
    }

    fn read_error(&self, rel: &[u8], cause: io::Error) -> ContextError {
        ContextError::Read {
            path: self.shown(rel),
            cause,
        }
    }

    fn walk(
        &mut self,
        dir: &Path,
        rel: &[u8],
        parent: Option<&MatchInfo>,
    ) -> Result<(), ContextError> {
        let shown_rel: &[u8] = if rel.is_empty() { b"." } else { rel };
        let mut entries = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| self.read_error(shown_rel, e))? {
            let entry = entry.map_err(|e| self.read_error(shown_rel, e))?;
            entries.push((entry.file_name(), entry));
        }
        entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

        for (name, entry) in entries {
            let mut child = Vec::with_capacity(rel.len() + 1 + name.len());
            if !rel.is_empty() {
                child.extend_from_slice(rel);
                child.push(b'/');
            }
            child.extend_from_slice(name.as_bytes());
            if self.plan.leave_out.contains(&child) {
                continue;
            }
            let file_type = entry.file_type().map_err(|e| self.read_error(&child, e))?;
            let is_dir = file_type.is_dir();
            let keep = self.plan.dockerfile_rel.as_deref();
            let (decision, info) = self.plan.rules.decide(&child, is_dir, parent, keep);
            match decision {
                Decision::Skip | Decision::Prune => {}
                Decision::Descend => {
                    self.ancestors.push((child.clone(), false));
                    self.walk(&entry.path(), &child, Some(&info))?;
                    self.ancestors.pop();
                }
                Decision::Send if is_dir => {
                    let meta = entry.metadata().map_err(|e| self.read_error(&child, e))?;
                    let mut name = child.clone();
                    name.push(b'/');
                    self.header(
                        EntryType::Directory,
                        &name,
                        None,
                        mode(&meta),
                        mtime(&meta),
                        0,
                        None,
                        Some(Stamp::of(&meta)),
                    )?;
                    self.ancestors.push((child.clone(), true));
                    self.walk(&entry.path(), &child, Some(&info))?;
                    self.ancestors.pop();
                }
                Decision::Send => self.send(&entry.path(), &child)?,
            }
        }
        Ok(())
    }

    /// One non-folder entry that the patterns let through.
    fn send(&mut self, path: &Path, rel: &[u8]) -> Result<(), ContextError> {
        let plan = self.plan;
        if plan.omit_dockerfile && plan.dockerfile_rel.as_deref() == Some(rel) {
            return self.imply_ancestors();
        }
        let meta = fs::symlink_metadata(path).map_err(|e| self.read_error(rel, e))?;
        if rel == b".dockerignore" {
            if plan.omit_dockerignore {
                return Ok(());
            }
            // A second name of a file sent earlier goes out as a hard link (below), as the CLI
            // sends it; sent here, it is recorded so that later names link to it.
            let inode =
                (meta.nlink() > 1 && meta.file_type().is_file()).then(|| (meta.dev(), meta.ino()));
            let linked = inode.is_some_and(|key| self.links.contains_key(&key));
            if let Some(content) = &plan.dockerignore
                && ((meta.file_type().is_file() && !linked) || plan.dockerignore_rewritten)
            {
                let mode = if meta.file_type().is_file() {
                    mode(&meta)
                } else {
                    GENERATED_MODE
                };
                // A rewritten `.dockerignore` counts in the digest as the file it was made from.
                let digest = match &plan.dockerignore_original {
                    Some(original) if plan.dockerignore_rewritten => {
                        let digest = self.digest.take();
                        digest.map(|d| (d, original))
                    }
                    _ => None,
                };
                self.header(
                    EntryType::Regular,
                    rel,
                    None,
                    mode,
                    mtime(&meta),
                    content.len() as u64,
                    None,
                    Some(Stamp::of(&meta)),
                )?;
                self.content(content)?;
                self.out.pad(content.len() as u64)?;
                if let Some((digest, original)) = digest {
                    let stamp = Some(Stamp::of(&meta));
                    let entry = digest::Header {
                        kind: Kind::File,
                        path: rel,
                        mode,
                        size: original.len() as u64,
                        link: None,
                        device: None,
                    };
                    digest.entry(entry, stamp);
                    digest.inline(original);
                    self.digest = Some(digest);
                }
                self.files += 1;
                if let Some(key) = inode {
                    self.links.entry(key).or_insert_with(|| rel.to_vec());
                }
                return Ok(());
            }
        }

        let file_type = meta.file_type();
        if file_type.is_socket() {
            tracing::debug!(path = %self.shown(rel).display(), "socket left out of the build context");
            return Ok(());
        }
        let (mode, mtime) = (mode(&meta), mtime(&meta));
        let inode = (meta.nlink() > 1).then(|| (meta.dev(), meta.ino()));
        if let Some(first) = inode.and_then(|key| self.links.get(&key)).cloned() {
            let stamp = Some(Stamp::of(&meta));
            self.header(
                EntryType::Link,
                rel,
                Some(&first),
                mode,
                mtime,
                0,
                None,
                stamp,
            )?;
            self.files += u64::from(file_type.is_file());
            return Ok(());
        }

        if file_type.is_symlink() {
            let target = fs::read_link(path).map_err(|e| self.read_error(rel, e))?;
            self.header(
                EntryType::Symlink,
                rel,
                Some(target.as_os_str().as_bytes()),
                mode,
                mtime,
                0,
                None,
                Some(Stamp::of(&meta)),
            )?;
        } else if file_type.is_file() {
            // Opened before the header is written, so a failure leaves no half entry.
            let mut file = File::open(path).map_err(|e| self.read_error(rel, e))?;
            let size = meta.len();
            let stamp = Stamp::of(&meta);
            self.header(
                EntryType::Regular,
                rel,
                None,
                mode,
                mtime,
                size,
                None,
                Some(stamp),
            )?;
            let shown = self.shown(rel);
            match self.digest.as_deref_mut() {
                // The digest's workers read it.
                Some(digest) => digest.file(path.to_path_buf(), shown, stamp)?,
                None => {
                    self.copy(&mut file, size, rel)?;
                    // Sent whole and unchanged since the digest read it.
                    if let Some(snapshot) = self.plan.snapshot.as_deref() {
                        let after = file.metadata().map_err(|e| self.read_error(rel, e))?;
                        snapshot.check(rel, Stamp::of(&after), self.shown(rel))?;
                    }
                }
            }
            self.files += 1;
        } else if file_type.is_fifo() {
            let stamp = Some(Stamp::of(&meta));
            self.header(EntryType::Fifo, rel, None, mode, mtime, 0, None, stamp)?;
        } else if file_type.is_char_device() || file_type.is_block_device() {
            let kind = if file_type.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            self.header(
                kind,
                rel,
                None,
                mode,
                mtime,
                0,
                Some(device_numbers(meta.rdev())),
                Some(Stamp::of(&meta)),
            )?;
        } else {
            return Ok(());
        }
        if let Some(key) = inode {
            self.links.insert(key, rel.to_vec());
        }
        Ok(())
    }

    /// The Dockerfile is left out (BuildKit): the classic daemon would have unpacked it,
    /// creating its missing parent folders, and then deleted only the file. Send those
    /// folders so the image gets the same (empty) folders.
    fn imply_ancestors(&mut self) -> Result<(), ContextError> {
        for i in 0..self.ancestors.len() {
            if self.ancestors[i].1 {
                continue;
            }
            let mut name = self.ancestors[i].0.clone();
            name.push(b'/');
            self.header(
                EntryType::Directory,
                &name,
                None,
                IMPLIED_DIR_MODE,
                self.now,
                0,
                None,
                None,
            )?;
            self.ancestors[i].1 = true;
        }
        Ok(())
    }

    /// The entries the CLI adds after the walk: the Dockerfile from outside (or, under
    /// BuildKit, the excluded one) and a created `.dockerignore`. They are build files, not
    /// context: the digest leaves them out.
    fn append_generated(&mut self) -> Result<(), ContextError> {
        let digest = self.digest.take();
        let written = self.append_build_files();
        self.digest = digest;
        written
    }

    fn append_build_files(&mut self) -> Result<(), ContextError> {
        if let Some((name, source)) = &self.plan.generated {
            let shown = source.as_os_str().as_bytes();
            let mut file = File::open(source).map_err(|e| self.read_error(shown, e))?;
            let size = file
                .metadata()
                .map_err(|e| self.read_error(shown, e))?
                .len();
            self.header(
                EntryType::Regular,
                name.as_bytes(),
                None,
                GENERATED_MODE,
                self.now,
                size,
                None,
                None,
            )?;
            self.copy(&mut file, size, shown)?;
            self.files += 1;
        }
        if let Some(content) = &self.plan.create_dockerignore {
            let len = content.len() as u64;
            self.header(
                EntryType::Regular,
                b".dockerignore",
                None,
                GENERATED_MODE,
                self.now,
                len,
                None,
                None,
            )?;
            self.content(content)?;
            self.out.pad(len)?;
            self.files += 1;
        }
        Ok(())
    }

    /// File content held in memory (a `.dockerignore` that was rewritten or created).
    fn content(&mut self, content: &[u8]) -> Result<(), ContextError> {
        if let Some(digest) = self.digest.as_deref_mut() {
            digest.inline(content);
        }
        self.out.write(content)
    }

    /// Exactly `size` bytes of `file`, read straight into the output buffer, then padding.
    fn copy(&mut self, file: &mut File, size: u64, rel: &[u8]) -> Result<(), ContextError> {
        let mut left = size;
        while left > 0 {
            let buf = &mut self.out.buf;
            let start = buf.len();
            let want = (CHUNK_SIZE - start).min(usize::try_from(left).unwrap_or(usize::MAX));
            buf.resize(start + want, 0);
            let read = loop {
                match file.read(&mut buf[start..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    buf.truncate(start);
                    return Err(self.read_error(rel, e));
                }
            };
            buf.truncate(start + n);
            if n == 0 {
                return Err(ContextError::Changed {
                    path: self.shown(rel),
                });
            }
            self.out.bytes += n as u64;
            left -= n as u64;
            if self.out.buf.len() >= CHUNK_SIZE {
                self.out.flush()?;
            }
        }
        self.out.pad(size)
    }

    /// One entry's header; `stamp` when it is on disk (not a build file the CLI adds).
    #[allow(clippy::too_many_arguments)]
    fn header(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: Option<&[u8]>,
        mode: u32,
        mtime: u64,
        size: u64,
        device: Option<(u32, u32)>,
        stamp: Option<Stamp>,
    ) -> Result<(), ContextError> {
        if let Some(digest) = self.digest.as_deref_mut() {
            let kind = match kind {
                EntryType::Directory => Kind::Dir,
                EntryType::Symlink => Kind::Symlink,
                EntryType::Link => Kind::HardLink,
                EntryType::Fifo => Kind::Fifo,
                EntryType::Char => Kind::CharDevice,
                EntryType::Block => Kind::BlockDevice,
                _ => Kind::File,
            };
            let entry = digest::Header {
                kind,
                path: name,
                mode,
                size,
                link,
                device,
            };
            digest.entry(entry, stamp);
        } else if let (Some(snapshot), Some(stamp)) = (self.plan.snapshot.as_deref(), stamp) {
            snapshot.check(
                name,
                stamp,
                self.shown(name.strip_suffix(b"/").unwrap_or(name)),
            )?;
        }
        if name.len() > 100 {
            self.long_entry(EntryType::GNULongName, name)?;
        }
        if let Some(link) = link.filter(|l| l.len() > 100) {
            self.long_entry(EntryType::GNULongLink, link)?;
        }
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_size(size);
        if let Some((major, minor)) = device {
            let set = header
                .set_device_major(major)
                .and_then(|()| header.set_device_minor(minor));
            set.map_err(|cause| ContextError::Write { cause })?;
        }
        // Raw bytes: the tar crate's path setters would normalise `a/./b` or `//` in targets.
        let old = header.as_old_mut();
        let n = name.len().min(old.name.len());
        old.name[..n].copy_from_slice(&name[..n]);
        if let Some(link) = link {
            let n = link.len().min(old.linkname.len());
            old.linkname[..n].copy_from_slice(&link[..n]);
        }
        header.set_cksum();
        self.out.write(header.as_bytes())
    }

    /// A GNU `././@LongLink` entry carrying a name or link target longer than 100 bytes.
    fn long_entry(&mut self, kind: EntryType, value: &[u8]) -> Result<(), ContextError> {
        let mut header = Header::new_gnu();
        let tag = b"././@LongLink";
        header.as_old_mut().name[..tag.len()].copy_from_slice(tag);
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let size = value.len() as u64 + 1;
        header.set_size(size);
        header.set_cksum();
        self.out.write(header.as_bytes())?;
        self.out.write(value)?;
        self.out.write(&[0])?;
        self.out.pad(size)
    }
}

fn mode(meta: &Metadata) -> u32 {
    meta.mode() & 0o7777
}

fn mtime(meta: &Metadata) -> u64 {
    u64::try_from(meta.mtime()).unwrap_or(0)
}

/// Major and minor device numbers, as `unix.Major` / `unix.Minor`.
pub(super) fn device_numbers(rdev: u64) -> (u32, u32) {
    if cfg!(target_os = "macos") {
        (((rdev >> 24) & 0xff) as u32, (rdev & 0xff_ffff) as u32)
    } else {
        let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
        let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
        (major as u32, minor as u32)
    }
}

/// The tar byte stream, cut into [`CHUNK_SIZE`] chunks.
struct TarOut<F> {
    buf: BytesMut,
    emit: F,
    bytes: u64,
}

impl<F> TarOut<F>
where
    F: FnMut(Bytes) -> Result<(), ContextError>,
{
    fn write(&mut self, mut data: &[u8]) -> Result<(), ContextError> {
        while !data.is_empty() {
            let n = (CHUNK_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            self.bytes += n as u64;
            data = &data[n..];
            if self.buf.len() >= CHUNK_SIZE {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Zeros up to the next 512-byte block after `size` bytes of data.
    fn pad(&mut self, size: u64) -> Result<(), ContextError> {
        let rest = size % BLOCK;
        if rest == 0 {
            return Ok(());
        }
        self.write(&[0u8; BLOCK as usize][..(BLOCK - rest) as usize])
    }

    fn flush(&mut self) -> Result<(), ContextError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, BytesMut::with_capacity(CHUNK_SIZE));
        (self.emit)(chunk.freeze())
    }

    /// The two zero blocks that end a tar; returns the stream's size.
    fn finish(mut self) -> Result<u64, ContextError> {
        self.write(&[0u8; 2 * BLOCK as usize])?;
        self.flush()?;
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Builder, ContextSpec, prepare};
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// One entry read back from the tar.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Seen {
        name: String,
        kind: char,
        mode: u32,
        link: Option<String>,
        content: Vec<u8>,
    }

    fn entries(tar_bytes: &[u8]) -> Vec<Seen> {
        let mut archive = tar::Archive::new(tar_bytes);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            assert_eq!(header.username_bytes().unwrap_or_default(), b"");
            assert_eq!(header.groupname_bytes().unwrap_or_default(), b"");
            let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap());
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            out.push(Seen {
                name,
                kind: header.entry_type().as_byte() as char,
                mode: header.mode().unwrap(),
                link,
                content,
            });
        }
        out
    }

    fn names(seen: &[Seen]) -> Vec<&str> {
        seen.iter().map(|s| s.name.as_str()).collect()
    }

    fn find<'a>(seen: &'a [Seen], name: &str) -> &'a Seen {
        seen.iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no `{name}` in {:?}", names(seen)))
    }

    fn write(dir: &Path, rel: &str, content: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The context `ctx` with its own `Dockerfile`.
    fn spec_at(ctx: &Path, builder: Builder) -> ContextSpec {
        ContextSpec {
            context: ctx.to_path_buf(),
            dockerfile: ctx.join("Dockerfile"),
            builder,
            leave_out: Vec::new(),
        }
    }

    fn build(
        context: &Path,
        dockerfile: &Path,
        builder: Builder,
    ) -> (String, Vec<Seen>, ContextSummary) {
        let spec = ContextSpec {
            context: context.to_path_buf(),
            dockerfile: dockerfile.to_path_buf(),
            builder,
            leave_out: Vec::new(),
        };
        let prepared = prepare(&spec).unwrap();
        let name = prepared.dockerfile_name.clone();
        let mut tar_bytes = Vec::new();
        let summary = prepared.write_to(&mut tar_bytes).unwrap();
        assert_eq!(summary.bytes, tar_bytes.len() as u64);
        assert_eq!(tar_bytes.len() % 512, 0);
        (name, entries(&tar_bytes), summary)
    }

    /// Whether this process can read a file whose mode is 000 (root, CAP_DAC_OVERRIDE).
    fn reads_through_permissions(dir: &Path) -> bool {
        let probe = dir.join("probe");
        fs::write(&probe, "x").unwrap();
        chmod(&probe, 0o000);
        let readable = File::open(&probe).is_ok();
        chmod(&probe, 0o644);
        fs::remove_file(probe).unwrap();
        readable
    }

    #[test]
    fn files_folders_modes_and_order() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        write(ctx, "Dockerfile", "FROM scratch\n");
        write(ctx, "b.txt", "bee");
        write(ctx, "a/z.txt", "zed");
        write(ctx, "a.txt", "ay");
        write(ctx, "bin/run", "#!/bin/sh\n");
        chmod(&ctx.join("bin/run"), 0o4755);
        fs::create_dir_all(ctx.join("empty")).unwrap();
        fs::create_dir_all(ctx.join("shared")).unwrap();
        chmod(&ctx.join("shared"), 0o1777);
        write(ctx, "B", "upper first");

        let (name, seen, summary) = build(ctx, &ctx.join("Dockerfile"), Builder::Classic);
        assert_eq!(name, "Dockerfile");
        assert_eq!(
            names(&seen),
            [
                "B",
                "Dockerfile",
                "a/",
                "a/z.txt",
                "a.txt",
                "b.txt",
                "bin/",
                "bin/run",
                "empty/",
                "shared/"
            ]
        );
        assert_eq!(find(&seen, "a/").kind, '5');
        assert_eq!(find(&seen, "bin/run").mode, 0o4755);
        assert_eq!(find(&seen, "shared/").mode, 0o1777);
        assert_eq!(find(&seen, "a/z.txt").content, b"zed");
        assert_eq!(find(&seen, "a/z.txt").kind, '0');
        assert_eq!(summary.files, 6);
    }

    #[test]
    fn symlinks_are_stored_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        write(&ctx, "Dockerfile", "FROM scratch\n");
        write(tmp.path(), "secret", "outside");
        fs::create_dir_all(ctx.join("real")).unwrap();
        write(&ctx, "real/file", "x");
        symlink("../secret", ctx.join("out")).unwrap();
        symlink("/etc/passwd", ctx.join("abs")).unwrap();
        symlink("real", ctx.join("dirlink")).unwrap();
        symlink("loop2", ctx.join("loop1")).unwrap();
        symlink("loop1", ctx.join("loop2")).unwrap();
        symlink("a/./b//c", ctx.join("odd")).unwrap();

        let (_, seen, _) = build(&ctx, &ctx.join("Dockerfile"), Builder::Classic);
        assert_eq!(
            names(&seen),
            [
                "Dockerfile",
                "abs",
                "dirlink",
                "loop1",
                "loop2",
                "odd",
                "out",
                "real/",
                "real/file"
            ]
        );
        for (name, target) in [
            ("out", "../secret"),
            ("abs", "/etc/passwd"),
            ("dirlink", "real"),
            ("loop1", "loop2"),
            ("odd", "a/./b//c"),
        ] {
            let entry = find(&seen, name);
            assert_eq!(
                (entry.kind, entry.link.as_deref()),
                ('2', Some(target)),
                "{name}"
            );
            assert!(entry.content.is_empty());
        }
    }

    #[test]
    fn long_and_non_ascii_names() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        write(ctx, "Dockerfile", "FROM scratch\n");
        let deep = format!("{}/{}", "d".repeat(90), "f".repeat(120));
        write(ctx, &deep, "deep");
        write(ctx, "héllo wörld ✓.txt", "utf8");
        let long_target = "t".repeat(150);
        symlink(&long_target, ctx.join("longlink")).unwrap();

        let (_, seen, _) = build(ctx, &ctx.join("Dockerfile"), Builder::Classic);
        assert_eq!(find(&seen, &deep).content, b"deep");
        assert_eq!(find(&seen, &format!("{}/", "d".repeat(90))).kind, '5');
        assert_eq!(find(&seen, "héllo wörld ✓.txt").content, b"utf8");
        assert_eq!(
            find(&seen, "longlink").link.as_deref(),
            Some(long_target.as_str())
        );
    }

    #[test]
    fn hard_links_fifos_and_sockets() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        write(ctx, "Dockerfile", "FROM scratch\n");
        write(ctx, "one", "same inode");
        fs::hard_link(ctx.join("one"), ctx.join("two")).unwrap();
        let made_fifo = std::process::Command::new("mkfifo")
            .arg(ctx.join("pipe"))
            .status()
            .is_ok_and(|s| s.success());
        let _socket = std::os::unix::net::UnixListener::bind(ctx.join("sock")).unwrap();

        let (_, seen, summary) = build(ctx, &ctx.join("Dockerfile"), Builder::Classic);
        assert_eq!(find(&seen, "one").content, b"same inode");
        let two = find(&seen, "two");
        assert_eq!((two.kind, two.link.as_deref()), ('1', Some("one")));
        assert!(!names(&seen).contains(&"sock"), "sockets are left out");
        if made_fifo {
            // As the CLI: Go's FileInfoHeader makes a TypeFifo entry for a named pipe.
            let pipe = find(&seen, "pipe");
            assert_eq!((pipe.kind, pipe.content.len()), ('6', 0));
        }
        assert_eq!(summary.files, 3);
    }

    #[test]
    fn dockerignore_with_hard_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let outside = root.join("docker/Dockerfile");
        write(root, "docker/Dockerfile", "FROM scratch\n");
        // `.dockerignore` first, then a second name: the CLI links the second to it, with the
        // rewritten content when the Dockerfile is outside.
        let ctx = root.join("first");
        write(&ctx, "Dockerfile", "FROM scratch\n");
        write(&ctx, ".dockerignore", "*.log\n");
        fs::hard_link(ctx.join(".dockerignore"), ctx.join("z-ignore")).unwrap();
        for (dockerfile, builder) in [
            (ctx.join("Dockerfile"), Builder::Classic),
            (ctx.join("Dockerfile"), Builder::BuildKit),
            (outside.clone(), Builder::Classic),
            (outside.clone(), Builder::BuildKit),
        ] {
            let (_, seen, _) = build(&ctx, &dockerfile, builder);
            assert_eq!(find(&seen, ".dockerignore").kind, '0', "{builder:?}");
            let link = find(&seen, "z-ignore");
            assert_eq!(
                (link.kind, link.link.as_deref()),
                ('1', Some(".dockerignore")),
                "{dockerfile:?} {builder:?}"
            );
        }

        // `.dockerignore` as the second name of a file sent before it: a hard link to that file.
        let ctx = root.join("second");
        write(&ctx, "Dockerfile", "FROM scratch\n");
        write(&ctx, ".a-patterns", "*.log\n");
        fs::hard_link(ctx.join(".a-patterns"), ctx.join(".dockerignore")).unwrap();
        for builder in [Builder::Classic, Builder::BuildKit] {
            let (_, seen, _) = build(&ctx, &ctx.join("Dockerfile"), builder);
            let ignore = find(&seen, ".dockerignore");
            assert_eq!(
                (ignore.kind, ignore.link.as_deref()),
                ('1', Some(".a-patterns")),
                "{builder:?}"
            );
        }
    }

    #[test]
    fn dockerignore_with_exceptions_and_pruning() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        write(ctx, "Dockerfile", "FROM scratch\n");
        write(
            ctx,
            ".dockerignore",
            "# build output\nnode_modules\n*.log\n!keep.log\ndocs\n!docs/*/keep.md\ncache\n!cache/keep\n",
        );
        write(ctx, "node_modules/x/index.js", "");
        write(ctx, "a.log", "");
        write(ctx, "keep.log", "");
        write(ctx, "docs/api/keep.md", "lost: the CLI prunes docs/api");
        write(ctx, "cache/keep", "kept");
        write(ctx, "cache/other", "");
        write(ctx, "src/main.ex", "");

        let (_, seen, _) = build(ctx, &ctx.join("Dockerfile"), Builder::Classic);
        assert_eq!(
            names(&seen),
            [
                ".dockerignore",
                "Dockerfile",
                "cache/keep",
                "keep.log",
                "src/",
                "src/main.ex"
            ]
        );
    }

    #[test]
    fn excluded_dockerfile_and_dockerignore_classic_vs_buildkit() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        write(ctx, ".dockerignore", ".dockerignore\ndockerfiles\n");
        write(ctx, "dockerfiles/app/Dockerfile", "FROM scratch\n");
        write(ctx, "dockerfiles/app/notes", "");
        write(ctx, "lib/x.ex", "");
        let dockerfile = ctx.join("dockerfiles/app/Dockerfile");

        // Classic: the CLI's `!` additions send both; the daemon removes them.
        let (name, seen, _) = build(ctx, &dockerfile, Builder::Classic);
        assert_eq!(name, "dockerfiles/app/Dockerfile");
        assert_eq!(
            names(&seen),
            [
                ".dockerignore",
                "dockerfiles/app/Dockerfile",
                "lib/",
                "lib/x.ex"
            ]
        );

        // BuildKit: what the classic daemon keeps, plus the Dockerfile under a generated name.
        let (name, seen, _) = build(ctx, &dockerfile, Builder::BuildKit);
        assert!(
            name.starts_with(".dockerfile.") && name.len() == 32,
            "{name}"
        );
        assert_eq!(
            names(&seen),
            [
                "dockerfiles/",
                "dockerfiles/app/",
                "lib/",
                "lib/x.ex",
                name.as_str()
            ]
        );
        assert_eq!(find(&seen, "dockerfiles/app/").mode, 0o755);
        let generated = find(&seen, &name);
        assert_eq!(
            (generated.mode, generated.content.as_slice()),
            (0o600, &b"FROM scratch\n"[..])
        );
    }

    #[test]
    fn buildkit_keeps_what_classic_keeps() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        write(ctx, ".dockerignore", "*.md\n");
        write(ctx, "Dockerfile", "FROM scratch\n");
        write(ctx, "README.md", "");
        let (name, seen, _) = build(ctx, &ctx.join("Dockerfile"), Builder::BuildKit);
        assert_eq!(name, "Dockerfile");
        assert_eq!(names(&seen), [".dockerignore", "Dockerfile"]);
        assert_eq!(find(&seen, ".dockerignore").content, b"*.md\n");
    }

    #[test]
    fn dockerfile_outside_the_context() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        write(&ctx, "app.ex", "");
        write(tmp.path(), "docker/Dockerfile", "FROM scratch\n");
        let dockerfile = tmp.path().join("docker/Dockerfile");

        // No .dockerignore: classic gets a created one that names itself and the Dockerfile.
        let (name, seen, _) = build(&ctx, &dockerfile, Builder::Classic);
        assert!(
            name.starts_with(".dockerfile.") && name.len() == 32,
            "{name}"
        );
        assert_eq!(names(&seen), ["app.ex", name.as_str(), ".dockerignore"]);
        let generated = find(&seen, &name);
        assert_eq!((generated.kind, generated.mode), ('0', 0o600));
        assert_eq!(generated.content, b"FROM scratch\n");
        let ignore = find(&seen, ".dockerignore");
        assert_eq!(
            ignore.content,
            format!(".dockerignore\n{name}\n").as_bytes()
        );
        assert_eq!(ignore.mode, 0o600);

        // BuildKit: no .dockerignore (the classic daemon would delete the created one).
        let (name, seen, _) = build(&ctx, &dockerfile, Builder::BuildKit);
        assert_eq!(names(&seen), ["app.ex", name.as_str()]);

        // An existing .dockerignore gets the generated name appended, in place.
        write(&ctx, ".dockerignore", "*.tmp");
        chmod(&ctx.join(".dockerignore"), 0o640);
        for builder in [Builder::Classic, Builder::BuildKit] {
            let (name, seen, _) = build(&ctx, &dockerfile, builder);
            assert_eq!(names(&seen), [".dockerignore", "app.ex", name.as_str()]);
            let ignore = find(&seen, ".dockerignore");
            assert_eq!(ignore.content, format!("*.tmp\n{name}\n").as_bytes());
            assert_eq!(ignore.mode, 0o640);
        }
    }

    #[test]
    fn large_files_stream_in_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        write(ctx, "Dockerfile", "FROM scratch\n");
        let big: Vec<u8> = (0..(3 * CHUNK_SIZE + 777))
            .map(|i| (i % 251) as u8)
            .collect();
        fs::write(ctx.join("big.bin"), &big).unwrap();
        let (_, seen, _) = build(ctx, &ctx.join("Dockerfile"), Builder::Classic);
        assert_eq!(find(&seen, "big.bin").content, big);
    }

    #[test]
    fn bad_input_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        write(ctx, "Dockerfile", "FROM scratch\n");
        write(ctx, "file", "");
        let spec = |context: PathBuf, dockerfile: PathBuf| ContextSpec {
            context,
            dockerfile,
            builder: Builder::Classic,
            leave_out: Vec::new(),
        };

        let err = prepare(&spec(ctx.join("missing"), ctx.join("Dockerfile"))).unwrap_err();
        assert!(matches!(err, ContextError::ContextMissing { .. }), "{err}");
        assert_eq!(crate::exit::Exit::exit(&err).code(), 2);
        let err = prepare(&spec(ctx.join("file"), ctx.join("Dockerfile"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("context `{}` is not a folder", ctx.join("file").display())
        );
        assert_eq!(crate::exit::Exit::exit(&err).code(), 2);
        let err = prepare(&spec(ctx.to_path_buf(), ctx.join("nope/Dockerfile"))).unwrap_err();
        assert!(
            matches!(err, ContextError::DockerfileMissing { .. }),
            "{err}"
        );

        write(ctx, ".dockerignore", "ok\n\n[a\n");
        let err = prepare(&spec(ctx.to_path_buf(), ctx.join("Dockerfile"))).unwrap_err();
        let text = err.to_string();
        let want = format!(
            "{} line 3: invalid pattern `[a`: ",
            ctx.join(".dockerignore").display()
        );
        assert!(text.starts_with(&want), "{text}");
        assert_eq!(crate::exit::Exit::exit(&err).code(), 2);
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        if reads_through_permissions(ctx) {
            eprintln!("skipped: running with permission to read mode-000 files (root)");
            return;
        }
        write(ctx, "Dockerfile", "FROM scratch\n");
        write(ctx, "src/x.ex", "secret");
        chmod(&ctx.join("src/x.ex"), 0o000);
        let spec = spec_at(ctx, Builder::Classic);
        let err = prepare(&spec).unwrap().write_to(Vec::new()).unwrap_err();
        let shown = ctx.join("src/x.ex");
        assert_eq!(
            err.to_string(),
            format!("cannot read `{}`: permission denied", shown.display())
        );
        assert_eq!(crate::exit::Exit::exit(&err).code(), 1);

        // Excluded: never opened.
        write(ctx, ".dockerignore", "src\n");
        let summary = prepare(&spec).unwrap().write_to(Vec::new()).unwrap();
        assert_eq!(summary.files, 2);
        chmod(&ctx.join("src/x.ex"), 0o644);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_matches_write_to() {
        use futures_util::StreamExt;
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        write(ctx, "Dockerfile", "FROM scratch\n");
        let big: Vec<u8> = (0..(5 * CHUNK_SIZE)).map(|i| (i % 241) as u8).collect();
        fs::write(ctx.join("big.bin"), &big).unwrap();
        let spec = spec_at(ctx, Builder::BuildKit);
        let mut expected = Vec::new();
        prepare(&spec).unwrap().write_to(&mut expected).unwrap();

        let (body, handle) = prepare(&spec).unwrap().stream();
        let mut body = std::pin::pin!(body);
        let mut got = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= CHUNK_SIZE);
            got.extend_from_slice(&chunk);
            chunks += 1;
        }
        let summary = handle.await.unwrap().unwrap();
        assert_eq!(got, expected);
        assert_eq!(summary.bytes, got.len() as u64);
        assert!(chunks > 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stream_reports_the_failing_path() {
        use futures_util::StreamExt;
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        if reads_through_permissions(ctx) {
            eprintln!("skipped: running with permission to read mode-000 files (root)");
            return;
        }
        write(ctx, "Dockerfile", "FROM scratch\n");
        write(ctx, "locked", "x");
        chmod(&ctx.join("locked"), 0o000);
        let spec = spec_at(ctx, Builder::Classic);
        let (body, handle) = prepare(&spec).unwrap().stream();
        let items: Vec<_> = body.collect().await;
        assert!(items.last().is_some_and(|item| item.is_err()));
        let err = handle.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("locked"), "{err}");
        chmod(&ctx.join("locked"), 0o644);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_body_cancels_the_walk() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path();
        write(ctx, "Dockerfile", "FROM scratch\n");
        fs::write(ctx.join("big.bin"), vec![7u8; 20 * CHUNK_SIZE]).unwrap();
        let spec = spec_at(ctx, Builder::Classic);
        let (body, handle) = prepare(&spec).unwrap().stream();
        drop(body);
        let err = handle.await.unwrap().unwrap_err();
        assert!(matches!(err, ContextError::Cancelled), "{err}");
    }
}
