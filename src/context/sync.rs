//! The build context as BuildKit's file sync sends it: the walk of buildx and of the docker CLI
//! in BuildKit mode (tonistiigi/fsutil `FilterFS.Walk` and `mkstat`, at the version of buildx
//! 0.13 and Docker Engine 26.1 and 28.5).
//!
//! The daemon names what it wants: `exclude-patterns` (the `.dockerignore` lines),
//! `include-patterns`, and `followpaths` (paths whose symlinks are followed, then included).
//! The walk then goes depth first, each folder's entries sorted by name bytes, and:
//!
//! * an entry that an include pattern does not match, or an exclude pattern matches, is not
//!   sent, but a folder is still walked unless nothing inside it can be re-included: for
//!   excludes, when no exception (`!`) pattern has a wildcard (once a trailing `/**` or `/*` is
//!   cut) and none, as text plus `/`, starts with the folder's path plus `/`; for includes, the
//!   same test on the include patterns. This is where it differs from the classic CLI, which
//!   skips an excluded folder unless an exception literally starts with its path: with the
//!   lines `foo` and `!*/keep.txt`, `foo/keep.txt` is sent here and lost there;
//! * a folder that was walked but not sent is sent just before the first entry inside it that
//!   is, so every entry's parent folders come before it;
//! * matching reuses each folder's per-pattern results for its children
//!   (moby/patternmatcher `MatchesUsingParentResults`).
//!
//! Each entry carries the stat fsutil sends: the mode as Go's `os.FileMode` bits, owner 0:0
//! (the CLI's and buildx's `resetUIDAndGID`), size, modification time in nanoseconds, the
//! target of a symlink, the first sent path of a hard-linked file (sent with size 0), device
//! numbers. A socket goes as an empty regular file, as fsutil clears `ModeSocket`. Extended
//! attributes are not sent.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::ignore::{MatchInfo, PatternError, Patterns};
use super::snapshot::Stamp;
use super::{ContextError, shown_in};

/// The largest header list (HPACK's measure: each header's name and value, plus 32 bytes) a
/// session accepts from the daemon, as buildx's: its session is a grpc-go server with the
/// default `defaultServerMaxHeaderListSize` of 16 MiB (grpc-go `internal/transport/defaults.go`).
/// The daemon's grpc client refuses to send a request over the limit the server announces.
pub const MAX_HEADER_LIST: u32 = 16 << 20;

/// What one `exclude-patterns` header costs of [`MAX_HEADER_LIST`] besides the pattern itself:
/// the name, and HPACK's 32 bytes of overhead per header (RFC 7541, section 4.1).
const PATTERN_HEADER_OVERHEAD: usize = "exclude-patterns".len() + 32;

/// The size of the header list that carries `patterns` (the lines of an ignore file, as the
/// Dockerfile frontend sends them back to ask for the context), by [`MAX_HEADER_LIST`]'s measure.
pub fn pattern_headers_size<'a>(patterns: impl IntoIterator<Item = &'a str>) -> usize {
    patterns
        .into_iter()
        .map(|p| p.len() + PATTERN_HEADER_OVERHEAD)
        .sum()
}

/// Go's `os.FileMode` type and special bits (`io/fs`).
pub mod go_mode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
    /// Every type bit (`os.ModeType`): a mode without any is a regular file.
    pub const TYPE: u32 = DIR | SYMLINK | NAMED_PIPE | (1 << 24) | DEVICE | CHAR_DEVICE | (1 << 19);
}

/// One entry as the file sync sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the synced folder, `/`-separated; any bytes but `/` and NUL.
    pub path: Vec<u8>,
    /// Go `os.FileMode` bits.
    pub mode: u32,
    pub size: i64,
    pub mod_time_ns: i64,
    /// A symlink's target, or the first sent path of a hard-linked file.
    pub linkname: Vec<u8>,
    pub devmajor: i64,
    pub devminor: i64,
    /// The file to read when the daemon asks for this entry's content (regular files only).
    pub source: Option<PathBuf>,
    /// What identifies this version of it ([`super::snapshot`]).
    pub stamp: Option<Stamp>,
}

impl Entry {
    /// Whether the receiver may ask for this entry's content (fsutil `fileCanRequestData`).
    pub fn is_regular(&self) -> bool {
        self.mode & go_mode::TYPE == 0
    }

    /// A hard link to an entry sent before.
    pub fn is_hard_link(&self) -> bool {
        self.is_regular() && !self.linkname.is_empty()
    }
}

/// What the daemon asked for: fsutil's `FilterOpt`.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Option<Patterns>,
    exclude: Option<Patterns>,
    only_prefix_includes: bool,
    only_prefix_exclude_exceptions: bool,
}

impl Filter {
    /// The filter for these lists; `follow` paths are resolved under `root` (their symlinks
    /// followed) and added to the include patterns, as fsutil's `FollowLinks` does.
    pub fn new(
        root: &Path,
        include: &[String],
        exclude: &[String],
        follow: &[String],
    ) -> Result<Filter, ContextError> {
        let bad = |list: &str, cause: PatternError| ContextError::SyncPattern {
            list: list.to_owned(),
            cause,
        };
        let mut include = include.to_vec();
        if !follow.is_empty()
            && let Some(targets) = follow_links(root, follow)?
        {
            include.extend(targets);
            include = dedupe_paths(include);
        }
        let include = (!include.is_empty())
            .then(|| Patterns::from_list(&include))
            .transpose()
            .map_err(|e| bad("include-patterns", e))?;
        let exclude = (!exclude.is_empty())
            .then(|| Patterns::from_list(exclude))
            .transpose()
            .map_err(|e| bad("exclude-patterns", e))?;
        Ok(Filter {
            only_prefix_includes: include.as_ref().is_none_or(|p| p.literal_only(false)),
            only_prefix_exclude_exceptions: exclude.as_ref().is_none_or(|p| p.literal_only(true)),
            include,
            exclude,
        })
    }
}

impl Filter {
    /// The filter of a whole-context sync: these exclude patterns, nothing else.
    pub fn excluding(exclude: Patterns) -> Filter {
        let exclude = (!exclude.is_empty()).then_some(exclude);
        Filter {
            only_prefix_includes: true,
            only_prefix_exclude_exceptions: exclude.as_ref().is_none_or(|p| p.literal_only(true)),
            include: None,
            exclude,
        }
    }
}

/// Walks `root` as the file sync does and hands each entry to `emit`, in order. Paths in
/// `leave_out` (relative, `/`-separated) are never sent.
pub fn walk(
    root: &Path,
    filter: &Filter,
    leave_out: &[Vec<u8>],
    shown_root: &Path,
    emit: &mut dyn FnMut(Entry) -> Result<(), ContextError>,
) -> Result<(), ContextError> {
    let mut walker = Walker {
        filter,
        leave_out,
        shown_root,
        emit,
        pending: Vec::new(),
        links: HashMap::new(),
    };
    walker.walk(root, b"", None, None)
}

/// A folder on the way down, with its match results and whether it was sent.
struct Pending {
    path: PathBuf,
    rel: Vec<u8>,
    sent: bool,
}

struct Walker<'a> {
    filter: &'a Filter,
    leave_out: &'a [Vec<u8>],
    shown_root: &'a Path,
    emit: &'a mut dyn FnMut(Entry) -> Result<(), ContextError>,
    pending: Vec<Pending>,
    /// (device, inode) of hard-linked files sent → their path.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl Walker<'_> {
    fn read_error(&self, rel: &[u8], cause: std::io::Error) -> ContextError {
        let rel = if rel.is_empty() { b"." as &[u8] } else { rel };
        ContextError::Read {
            path: shown_in(self.shown_root, Path::new(std::ffi::OsStr::from_bytes(rel))),
            cause,
        }
    }

    fn walk(
        &mut self,
        dir: &Path,
        rel: &[u8],
        include_info: Option<&MatchInfo>,
        exclude_info: Option<&MatchInfo>,
    ) -> Result<(), ContextError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| self.read_error(rel, e))? {
            let entry = entry.map_err(|e| self.read_error(rel, e))?;
            names.push(entry.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

        for name in names {
            let mut child = Vec::with_capacity(rel.len() + 1 + name.len());
            if !rel.is_empty() {
                child.extend_from_slice(rel);
                child.push(b'/');
            }
            child.extend_from_slice(name.as_bytes());
            if self.leave_out.contains(&child) {
                continue;
            }
            let path = dir.join(&name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                // Gone since the folder was read: fsutil skips it too.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.read_error(&child, e)),
            };
            let is_dir = meta.is_dir();
            let mut skip = false;

            let mut child_include = None;
            if let Some(include) = &self.filter.include {
                let (matched, info) = include.match_with_parent(&child, include_info);
                if !matched {
                    if is_dir
                        && self.filter.only_prefix_includes
                        && !include.literal_under(&child, false)
                    {
                        continue;
                    }
                    skip = true;
                }
                child_include = Some(info);
            }
            let mut child_exclude = None;
            if let Some(exclude) = &self.filter.exclude {
                let (matched, info) = exclude.match_with_parent(&child, exclude_info);
                if matched {
                    if is_dir
                        && self.filter.only_prefix_exclude_exceptions
                        && (!exclude.has_exceptions() || !exclude.literal_under(&child, true))
                    {
                        continue;
                    }
                    skip = true;
                }
                child_exclude = Some(info);
            }

            if !skip {
                self.send_pending()?;
                let entry = self.entry(&path, &child, &meta)?;
                (self.emit)(entry)?;
            }
            if is_dir {
                self.pending.push(Pending {
                    path: path.clone(),
                    rel: child.clone(),
                    sent: !skip,
                });
                let result = self.walk(
                    &path,
                    &child,
                    child_include.as_ref(),
                    child_exclude.as_ref(),
                );
                self.pending.pop();
                result?;
            }
        }
        Ok(())
    }

    /// Sends the folders on the way down that were walked but not sent yet.
    fn send_pending(&mut self) -> Result<(), ContextError> {
        for i in 0..self.pending.len() {
            if self.pending[i].sent {
                continue;
            }
            let (path, rel) = (self.pending[i].path.clone(), self.pending[i].rel.clone());
            let meta = fs::symlink_metadata(&path).map_err(|e| self.read_error(&rel, e))?;
            let entry = self.entry(&path, &rel, &meta)?;
            (self.emit)(entry)?;
            self.pending[i].sent = true;
        }
        Ok(())
    }

    /// fsutil's `mkstat` for one entry, with the owner reset to 0:0.
    fn entry(&mut self, path: &Path, rel: &[u8], meta: &Metadata) -> Result<Entry, ContextError> {
        let file_type = meta.file_type();
        let mut entry = Entry {
            path: rel.to_vec(),
            mode: go_file_mode(meta),
            size: if file_type.is_dir() {
                0
            } else {
                meta.size() as i64
            },
            mod_time_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            linkname: Vec::new(),
            devmajor: 0,
            devminor: 0,
            source: None,
            stamp: Some(Stamp::of(meta)),
        };
        if file_type.is_symlink() {
            let target = fs::read_link(path).map_err(|e| self.read_error(rel, e))?;
            entry.linkname = target.into_os_string().into_vec();
        } else if file_type.is_char_device() || file_type.is_block_device() {
            let (major, minor) = super::archive::device_numbers(meta.rdev());
            entry.devmajor = i64::from(major);
            entry.devminor = i64::from(minor);
        } else if file_type.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                match self.links.get(&key) {
                    Some(first) => {
                        entry.linkname = first.clone();
                        entry.size = 0;
                    }
                    None => {
                        self.links.insert(key, entry.path.clone());
                    }
                }
            }
            entry.source = Some(path.to_path_buf());
        } else if file_type.is_socket() {
            entry.size = 0;
        }
        Ok(entry)
    }
}

/// The unix mode as Go's `os.FileMode` (`fillFileStatFromSys`), with `ModeSocket` cleared as
/// fsutil's `mkstat` does.
fn go_file_mode(meta: &Metadata) -> u32 {
    use go_mode::*;
    let unix = meta.mode();
    let mut mode = unix & 0o777;
    let file_type = meta.file_type();
    if file_type.is_dir() {
        mode |= DIR;
    } else if file_type.is_symlink() {
        mode |= SYMLINK;
    } else if file_type.is_fifo() {
        mode |= NAMED_PIPE;
    } else if file_type.is_block_device() {
        mode |= DEVICE;
    } else if file_type.is_char_device() {
        mode |= DEVICE | CHAR_DEVICE;
    }
    if unix & 0o4000 != 0 {
        mode |= SETUID;
    }
    if unix & 0o2000 != 0 {
        mode |= SETGID;
    }
    if unix & 0o1000 != 0 {
        mode |= STICKY;
    }
    mode
}

/// fsutil's `FollowLinks`: each path, with every symlink on its way recorded and followed (a
/// relative target from the link's folder, an absolute one from `root`; never above `root`).
/// `None` means everything: one of the paths is the root itself.
fn follow_links(root: &Path, paths: &[String]) -> Result<Option<Vec<String>>, ContextError> {
    let mut resolved = BTreeSet::new();
    for path in paths {
        resolve(root, &clean_join(".", path), &mut resolved, 0)?;
    }
    let out = dedupe_paths(resolved.into_iter().collect());
    Ok((!out.iter().any(|p| p == ".")).then_some(out))
}

/// Follows `path`'s components under `root`, recording what fsutil's `symlinkResolver.append`
/// records. `depth` bounds symlink loops.
fn resolve(
    root: &Path,
    path: &str,
    resolved: &mut BTreeSet<String>,
    depth: usize,
) -> Result<(), ContextError> {
    if depth > 255 {
        return Ok(());
    }
    let mut current = String::from(".");
    let mut rest = path.to_owned();
    loop {
        let (head, tail) = match rest.split_once('/') {
            Some((head, tail)) => (head.to_owned(), tail.to_owned()),
            None => (rest.clone(), String::new()),
        };
        current = clean_join(&current, &head);
        let targets = read_symlinks(root, &current)?;
        rest = tail;
        if (rest.is_empty() || targets.is_some()) && resolved.contains(&current) {
            return Ok(());
        }
        if let Some(targets) = targets {
            resolved.insert(current.clone());
            for target in targets {
                resolve(root, &clean_join(&target, &rest), resolved, depth + 1)?;
            }
            return Ok(());
        }
        if rest.is_empty() {
            resolved.insert(current);
            return Ok(());
        }
    }
}

/// The targets of the symlink at `rel` (several when its last component has wildcards and
/// matches several symlinks), relative to `root`; `None` when it is not a symlink.
fn read_symlinks(root: &Path, rel: &str) -> Result<Option<Vec<String>>, ContextError> {
    let (dir, base) = rel.rsplit_once('/').unwrap_or((".", rel));
    if base.contains(['*', '?', '[', '\\']) {
        let Ok(entries) = fs::read_dir(root.join(dir)) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut names: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let Some(name) = name.to_str() else { continue };
            if glob_match(base, name)
                && let Some(targets) = read_symlinks(root, &clean_join(dir, name))?
            {
                out.extend(targets);
            }
        }
        return Ok((!out.is_empty()).then_some(out));
    }
    let path = root.join(rel);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = fs::read_link(&path).map_err(|cause| ContextError::Read {
                path: PathBuf::from(rel),
                cause,
            })?;
            let target = target.to_string_lossy();
            let target = if target.starts_with('/') {
                clean_join(".", &target)
            } else {
                clean_join(dir, &target)
            };
            Ok(Some(vec![target]))
        }
        _ => Ok(None),
    }
}

/// Go's `filepath.Match` for one path component (`*`, `?`, `[...]`, `\` escapes); a malformed
/// pattern matches nothing.
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n).unwrap_or(false)
}

fn glob_at(p: &[char], n: &[char]) -> Option<bool> {
    match p.first() {
        None => Some(n.is_empty()),
        Some('*') => {
            for i in 0..=n.len() {
                if glob_at(&p[1..], &n[i..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        Some('?') => Some(!n.is_empty() && glob_at(&p[1..], &n[1..])?),
        Some('[') => {
            let close = p.iter().skip(1).position(|&c| c == ']')? + 1;
            let class = &p[1..close];
            let (negate, class) = match class.first() {
                Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let c = *n.first()?;
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            Some(hit != negate && glob_at(&p[close + 1..], &n[1..])?)
        }
        Some('\\') => {
            let c = *p.get(1)?;
            Some(n.first() == Some(&c) && glob_at(&p[2..], &n[1..])?)
        }
        Some(&c) => Some(n.first() == Some(&c) && glob_at(&p[1..], &n[1..])?),
    }
}

/// Go's `filepath.Join(base, rel)` for `/`-separated relative paths: cleaned, never above the
/// root (`..` at the top is dropped), `.` for nothing.
fn clean_join(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in base.split('/').chain(rel.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

/// fsutil's `dedupePaths`: sorted, without duplicates and without paths inside another one;
/// `.` alone stands for everything.
fn dedupe_paths(mut paths: Vec<String>) -> Vec<String> {
    paths.sort();
    paths.dedup();
    if paths.iter().any(|p| p == ".") {
        return vec![".".to_owned()];
    }
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    for path in paths {
        let inside = out.iter().any(|kept| {
            path.len() > kept.len()
                && path.starts_with(kept.as_str())
                && path.as_bytes()[kept.len()] == b'/'
        });
        if !inside {
            out.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let full = dir.path().join(path);
            if let Some(target) = content.strip_prefix("->") {
                fs::create_dir_all(full.parent().unwrap()).unwrap();
                symlink(target, &full).unwrap();
            } else if path.ends_with('/') {
                fs::create_dir_all(&full).unwrap();
            } else {
                fs::create_dir_all(full.parent().unwrap()).unwrap();
                fs::write(&full, content).unwrap();
            }
        }
        dir
    }

    fn sent(root: &Path, include: &[&str], exclude: &[&str], follow: &[&str]) -> Vec<String> {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let filter = Filter::new(root, &list(include), &list(exclude), &list(follow)).unwrap();
        let mut out = Vec::new();
        walk(root, &filter, &[], Path::new("."), &mut |e| {
            let kind = if e.mode & go_mode::DIR != 0 { "/" } else { "" };
            out.push(format!("{}{kind}", String::from_utf8_lossy(&e.path)));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn exceptions_with_wildcards_reach_into_excluded_folders() {
        let dir = tree(&[
            ("foo/keep.txt", "k"),
            ("foo/other.txt", "o"),
            ("bar/keep.txt", "k"),
            ("top.txt", "t"),
        ]);
        // The case buildx and the classic CLI disagree on: buildx sends foo/keep.txt.
        assert_eq!(
            sent(dir.path(), &[], &["foo", "!*/keep.txt"], &[]),
            ["bar/", "bar/keep.txt", "foo/", "foo/keep.txt", "top.txt"]
        );
        // A literal exception reaches only its own folder.
        assert_eq!(
            sent(dir.path(), &[], &["foo", "bar", "!foo/keep.txt"], &[]),
            ["foo/", "foo/keep.txt", "top.txt"]
        );
        // No exceptions: excluded folders are skipped whole.
        assert_eq!(sent(dir.path(), &[], &["foo", "bar"], &[]), ["top.txt"]);
        // Excluded folder with nothing re-included inside: not sent, though walked.
        assert_eq!(
            sent(dir.path(), &[], &["*", "!top.txt", "!*/nothing*"], &[]),
            ["top.txt"]
        );
    }

    #[test]
    fn includes_and_followed_paths_narrow_the_walk() {
        let dir = tree(&[
            ("Dockerfile", "FROM scratch"),
            ("Dockerfile.dockerignore", "x"),
            ("src/a/b.ex", "b"),
            ("src/c.ex", "c"),
            ("lib", "->src/a"),
            ("other/x", "x"),
        ]);
        assert_eq!(
            sent(
                dir.path(),
                &[],
                &[],
                &["Dockerfile", "Dockerfile.dockerignore", "dockerfile"]
            ),
            ["Dockerfile", "Dockerfile.dockerignore"]
        );
        // A followed symlink brings its target; its parents come first.
        assert_eq!(
            sent(dir.path(), &[], &[], &["lib"]),
            ["lib", "src/", "src/a/", "src/a/b.ex"]
        );
        assert_eq!(
            sent(dir.path(), &["src/*.ex"], &[], &[]),
            ["src/", "src/c.ex"]
        );
        // `.` among the followed paths means everything.
        assert_eq!(sent(dir.path(), &[], &[], &["."]).len(), 9);
    }

    #[test]
    fn stats_are_fsutil_stats() {
        let dir = tree(&[
            ("bin/run", "#!/bin/sh\n"),
            ("link", "->bin/run"),
            ("hard1", "h"),
        ]);
        fs::set_permissions(
            dir.path().join("bin/run"),
            fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        fs::hard_link(dir.path().join("hard1"), dir.path().join("hard2")).unwrap();
        let filter = Filter::new(dir.path(), &[], &[], &[]).unwrap();
        let mut entries = Vec::new();
        walk(
            dir.path(),
            &filter,
            &[b"hard2".to_vec()],
            Path::new("."),
            &mut |e| {
                entries.push(e);
                Ok(())
            },
        )
        .unwrap();
        let paths: Vec<&[u8]> = entries.iter().map(|e| e.path.as_slice()).collect();
        assert_eq!(paths, [&b"bin"[..], b"bin/run", b"hard1", b"link"]);
        assert_eq!(entries[0].mode, go_mode::DIR | 0o755 & entries[0].mode);
        assert!(entries[0].mode & go_mode::DIR != 0 && entries[0].size == 0);
        assert_eq!(entries[1].mode, go_mode::SETUID | 0o755);
        assert_eq!(entries[1].size, 10);
        assert!(entries[1].is_regular() && entries[1].source.is_some());
        assert_eq!(entries[3].mode & go_mode::SYMLINK, go_mode::SYMLINK);
        assert_eq!(entries[3].linkname, b"bin/run");
        assert!(!entries[3].is_regular());

        // Without leave_out, the second name of a hard link points at the first.
        let mut entries = Vec::new();
        walk(dir.path(), &filter, &[], Path::new("."), &mut |e| {
            entries.push(e);
            Ok(())
        })
        .unwrap();
        let hard2 = entries.iter().find(|e| e.path == b"hard2").unwrap();
        assert!(hard2.is_hard_link());
        assert_eq!((hard2.linkname.as_slice(), hard2.size), (&b"hard1"[..], 0));
    }

    #[test]
    fn paths_join_dedupe_and_glob_like_go() {
        assert_eq!(clean_join(".", "a/../b/./c"), "b/c");
        assert_eq!(clean_join("a", "../../x"), "x");
        assert_eq!(clean_join(".", ""), ".");
        assert_eq!(
            dedupe_paths(vec![
                "b".into(),
                "a/x".into(),
                "a".into(),
                "ab".into(),
                "a".into()
            ]),
            ["a", "ab", "b"]
        );
        assert_eq!(dedupe_paths(vec!["a".into(), ".".into()]), ["."]);
        for (pattern, name, want) in [
            ("*.ex", "c.ex", true),
            ("*.ex", "c.exs", false),
            ("?.ex", "c.ex", true),
            ("[a-c].ex", "b.ex", true),
            ("[^a-c].ex", "b.ex", false),
            ("\\*", "*", true),
            ("[", "[", false),
        ] {
            assert_eq!(glob_match(pattern, name), want, "{pattern} {name}");
        }
    }
}
