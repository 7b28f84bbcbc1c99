//! The build context: the files `docker build` would send for a folder, a Dockerfile and a
//! `.dockerignore`, streamed as a tar with flat memory.
//!
//! [`prepare`] checks the inputs, reads `.dockerignore` and decides the Dockerfile's name in
//! the tar (no walk). [`Prepared::stream`] then walks the folder on a blocking thread and
//! feeds the tar to a bounded channel in 256 KiB chunks; [`Prepared::write_to`] writes the
//! same tar synchronously.
//!
//! # What is sent, by builder
//!
//! [`Builder::Classic`] sends what the Docker CLI sends (`docker build` with
//! `DOCKER_BUILDKIT=0`, docker/cli `runBuild`): the walk of `TarWithOptions` with the
//! `.dockerignore` patterns plus the CLI's `!.dockerignore` / `!<Dockerfile>` additions
//! (`TrimBuildFilesFromExcludes`). A Dockerfile outside the folder is added as
//! `.dockerfile.<20 hex>` (mode 0600) and that name is appended to the `.dockerignore` in the
//! tar, which is created (starting with a `.dockerignore` line) when there was none
//! (`AddDockerfileToBuildContext`). The classic daemon then removes `.dockerignore` and the
//! Dockerfile when the `.dockerignore` in the tar excludes them (moby
//! `builder/remotecontext/detect.go`, `removeDockerfile`).
//!
//! [`Builder::BuildKit`] normally gets no tar at all: the daemon syncs the context through the
//! build's session, walked as buildx walks it ([`sync`], [`prepare_sync`]). Only where ecrship
//! cannot serve a session (a daemon over TLS or ssh) does BuildKit get a tar: the same walk as
//! the classic one, but BuildKit applies no ignore rules to an uploaded tar and removes nothing,
//! so what the classic daemon would have removed is left out here: `.dockerignore` when its own patterns exclude it, and the Dockerfile when the
//! patterns exclude it. BuildKit still has to read the Dockerfile, so in that case, and when
//! it lies outside the folder, it is sent as `.dockerfile.<20 hex>`, the hex made from its
//! bytes (the CLI's are random; the same Dockerfile keeps the same name, so the context stays the
//! same). **Known limit of the tar path:** that one file is visible to `COPY .` under BuildKit
//! (the classic daemon deletes it); an uploaded context is the only place the Engine API takes
//! the Dockerfile from. Folders the classic daemon would have left behind empty after
//! removing an excluded Dockerfile are sent as folder entries (mode 0755), as the daemon
//! creates them when it unpacks the tar.

mod archive;
pub mod digest;
pub mod ignore;
pub mod snapshot;
pub mod sync;

use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures_util::Stream;
use tokio::task::JoinHandle;

pub use ignore::{PatternError, Patterns};
pub use snapshot::Snapshot;

/// Chunks in flight between the walker and the HTTP body (each [`archive::CHUNK_SIZE`]).
const CHANNEL_CAPACITY: usize = 4;

/// Which builder the daemon runs the build with; decides what the context must leave out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// BuildKit (`version=2`): the daemon uses the tar as it is.
    #[default]
    BuildKit,
    /// The classic builder (`version=1`): the daemon drops `.dockerignore` and the
    /// Dockerfile itself when `.dockerignore` excludes them.
    Classic,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct ContextSpec {
    /// The context folder. Relative paths are taken from the current directory, as are
    /// `docker build`'s; the caller joins them to the project root.
    pub context: PathBuf,
    /// The Dockerfile, anywhere (like `docker build -f`, not relative to `context`).
    pub dockerfile: PathBuf,
    pub builder: Builder,
    /// Paths never sent, whatever `.dockerignore` says: ecrship's own outputs (the artifacts,
    /// its state folder), so that a run's outputs never become the next run's inputs.
    pub leave_out: Vec<PathBuf>,
}

/// A context ready to be streamed.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The `dockerfile` query parameter for `POST /build`: the Dockerfile's path in the tar,
    /// with `/` separators.
    pub dockerfile_name: String,
    plan: archive::Plan,
}

/// What was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ContextSummary {
    /// Regular files in the tar (hard links included).
    pub files: u64,
    /// Size of the tar stream in bytes.
    pub bytes: u64,
}

/// Why the context could not be prepared or sent.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("context `{}` does not exist", .path.display())]
    ContextMissing { path: PathBuf },
    #[error("context `{}` is not a folder", .path.display())]
    ContextNotFolder { path: PathBuf },
    #[error("Dockerfile `{}` not found", .path.display())]
    DockerfileMissing { path: PathBuf },
    #[error("Dockerfile `{}` is not a file", .path.display())]
    DockerfileNotFile { path: PathBuf },
    #[error(
        "{} line {}: invalid pattern `{}`: {}",
        .file.display(), .cause.line, .cause.pattern, .cause.reason
    )]
    Pattern { file: PathBuf, cause: PatternError },
    #[error(
        "Dockerfile `{}`: docker adds `!{}` to the .dockerignore patterns, which is invalid: {}",
        .path.display(), .cause.pattern, .cause.reason
    )]
    DockerfilePattern { path: PathBuf, cause: PatternError },
    #[error(
        "`{}` is too large for BuildKit's file sync: its {patterns} patterns take {} as request headers, more than the {} a build session takes; shorten it, or build with --builder classic",
        .file.display(), crate::text::human_bytes(*.bytes as u64), crate::text::human_bytes(u64::from(sync::MAX_HEADER_LIST))
    )]
    IgnoreTooLarge {
        file: PathBuf,
        patterns: usize,
        bytes: usize,
    },
    #[error("the daemon asked for files with an invalid pattern in its {list}: `{}`: {}", .cause.pattern, .cause.reason)]
    SyncPattern { list: String, cause: PatternError },
    #[error("cannot read `{}`: {}", .path.display(), describe(.cause))]
    Read { path: PathBuf, cause: io::Error },
    #[error("`{}` changed size while it was being sent; retry when nothing writes to the context", .path.display())]
    Changed { path: PathBuf },
    #[error("`{}` changed after the inputs digest read it, so the image's label would not describe it; nothing was built from it: retry when nothing writes to the context", .path.display())]
    ChangedSinceDigest { path: PathBuf },
    #[error("cannot write the build context: {}", describe(.cause))]
    Write { cause: io::Error },
    #[error("the build context upload stopped before the whole context was sent")]
    Cancelled,
}

/// Bad input (context, Dockerfile, `.dockerignore` pattern), or a failure while reading or
/// sending.
impl crate::exit::Exit for ContextError {
    fn exit(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            ContextError::ContextMissing { .. }
            | ContextError::ContextNotFolder { .. }
            | ContextError::DockerfileMissing { .. }
            | ContextError::DockerfileNotFile { .. }
            | ContextError::Pattern { .. }
            | ContextError::DockerfilePattern { .. }
            | ContextError::IgnoreTooLarge { .. } => ExitCode::BadInput,
            ContextError::SyncPattern { .. }
            | ContextError::Read { .. }
            | ContextError::Changed { .. }
            | ContextError::ChangedSinceDigest { .. }
            | ContextError::Write { .. }
            | ContextError::Cancelled => ExitCode::Failed,
        }
    }
}

/// An I/O error in words, without the `(os error N)` tail.
fn describe(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "no such file or folder".into(),
        _ => {
            let text = err.to_string();
            match text.find(" (os error") {
                Some(at) => text[..at].to_string(),
                None => text,
            }
        }
    }
}

/// The context folder and the Dockerfile, checked: both exist, symlinks resolved (the CLI's
/// `filepath.EvalSymlinks`, so a symlinked Dockerfile is named by its target).
fn checked_paths(spec: &ContextSpec) -> Result<(PathBuf, PathBuf), ContextError> {
    let root = fs::canonicalize(&spec.context).map_err(|cause| match cause.kind() {
        io::ErrorKind::NotFound => ContextError::ContextMissing {
            path: spec.context.clone(),
        },
        io::ErrorKind::NotADirectory => ContextError::ContextNotFolder {
            path: spec.context.clone(),
        },
        _ => ContextError::Read {
            path: spec.context.clone(),
            cause,
        },
    })?;
    if !root.is_dir() {
        return Err(ContextError::ContextNotFolder {
            path: spec.context.clone(),
        });
    }
    let dockerfile = fs::canonicalize(&spec.dockerfile).map_err(|cause| match cause.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ContextError::DockerfileMissing {
            path: spec.dockerfile.clone(),
        },
        _ => ContextError::Read {
            path: spec.dockerfile.clone(),
            cause,
        },
    })?;
    if !dockerfile.is_file() {
        return Err(ContextError::DockerfileNotFile {
            path: spec.dockerfile.clone(),
        });
    }
    Ok((root, dockerfile))
}

/// An ignore file's bytes and patterns; `None` when there is none.
fn read_ignore_file(
    path: &Path,
    shown: &Path,
) -> Result<Option<(Vec<u8>, Patterns)>, ContextError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(cause) => {
            return Err(ContextError::Read {
                path: shown.to_path_buf(),
                cause,
            });
        }
    };
    let patterns = Patterns::parse(&String::from_utf8_lossy(&bytes)).map_err(|cause| {
        ContextError::Pattern {
            file: shown.to_path_buf(),
            cause,
        }
    })?;
    Ok(Some((bytes, patterns)))
}

/// Checks that the daemon can send an ignore file's patterns back through the session: each
/// line it keeps travels as one request header ([`sync::pattern_headers_size`]).
fn fits_the_session(bytes: &[u8], shown: &Path) -> Result<(), ContextError> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let size = sync::pattern_headers_size(lines.iter().copied());
    if size > sync::MAX_HEADER_LIST as usize {
        return Err(ContextError::IgnoreTooLarge {
            file: shown.to_path_buf(),
            patterns: lines.len(),
            bytes: size,
        });
    }
    Ok(())
}

/// `leave_out` as paths relative to `root`, for those that exist inside it.
fn leave_out_in(root: &Path, leave_out: &[PathBuf]) -> Vec<Vec<u8>> {
    leave_out
        .iter()
        .filter_map(|path| fs::canonicalize(path).ok())
        .map(|path| relative_path(root, &path))
        .filter(|rel| !rel.starts_with(".."))
        .map(|rel| rel.as_os_str().as_bytes().to_vec())
        .collect()
}

/// Checks the context and the Dockerfile, reads `.dockerignore` and decides the Dockerfile's
/// name in the tar. Does not walk the folder.
pub fn prepare(spec: &ContextSpec) -> Result<Prepared, ContextError> {
    let (root, dockerfile) = checked_paths(spec)?;
    let relative = relative_path(&root, &dockerfile);
    let inside = !relative.starts_with("..");
    let relative = relative.to_string_lossy().into_owned();

    let shown_root = spec.context.clone();
    let ignore_shown = shown_in(&shown_root, ".dockerignore");
    let (ignore_bytes, original) =
        match read_ignore_file(&root.join(".dockerignore"), &ignore_shown)? {
            Some((bytes, patterns)) => (Some(bytes), patterns),
            None => (None, Patterns::default()),
        };
    let rules =
        original
            .with_build_files(&relative)
            .map_err(|cause| ContextError::DockerfilePattern {
                path: spec.dockerfile.clone(),
                cause,
            })?;

    let dockerfile_excluded = inside && original.is_excluded(&relative);
    let ignore_excluded = original.is_excluded(".dockerignore");
    // The CLI picks 20 random hex digits; a name made from the Dockerfile's bytes keeps the
    // context the same from run to run, so the build cache and the inputs digest hold.
    let content = fs::read(&dockerfile).map_err(|cause| ContextError::Read {
        path: spec.dockerfile.clone(),
        cause,
    })?;
    let generated_name = format!(".dockerfile.{}", &sha256_hex(&content)[..20]);
    let appended_line = |content: &[u8]| {
        let mut out = content.to_vec();
        out.extend_from_slice(format!("\n{generated_name}\n").as_bytes());
        out
    };

    let leave_out = leave_out_in(&root, &spec.leave_out);
    let mut plan = archive::Plan {
        root,
        shown_root,
        rules,
        dockerfile_rel: inside.then(|| relative.clone().into_bytes()),
        leave_out,
        omit_dockerfile: false,
        dockerignore: ignore_bytes.clone(),
        dockerignore_rewritten: false,
        dockerignore_original: ignore_bytes.clone(),
        omit_dockerignore: false,
        create_dockerignore: None,
        generated: None,
        snapshot: None,
    };
    let dockerfile_name = match (spec.builder, inside) {
        (Builder::Classic, true) => relative,
        (Builder::BuildKit, true) if !dockerfile_excluded => {
            plan.omit_dockerignore = ignore_bytes.is_some() && ignore_excluded;
            relative
        }
        (Builder::BuildKit, true) => {
            plan.omit_dockerfile = true;
            plan.omit_dockerignore = ignore_bytes.is_some() && ignore_excluded;
            plan.generated = Some((generated_name.clone(), dockerfile));
            generated_name
        }
        (Builder::Classic, false) => {
            match &ignore_bytes {
                Some(bytes) => {
                    plan.dockerignore = Some(appended_line(bytes));
                    plan.dockerignore_rewritten = true;
                }
                None => plan.create_dockerignore = Some(appended_line(b".dockerignore")),
            }
            plan.generated = Some((generated_name.clone(), dockerfile));
            generated_name
        }
        (Builder::BuildKit, false) => {
            // What the classic image would hold: the rewritten `.dockerignore` unless its
            // own patterns drop it; a created one always drops itself.
            if let Some(bytes) = &ignore_bytes {
                if ignore_excluded {
                    plan.omit_dockerignore = true;
                } else {
                    plan.dockerignore = Some(appended_line(bytes));
                    plan.dockerignore_rewritten = true;
                }
            }
            plan.generated = Some((generated_name.clone(), dockerfile));
            generated_name
        }
    };
    tracing::debug!(
        context = %spec.context.display(),
        dockerfile = %dockerfile_name,
        builder = ?spec.builder,
        patterns = plan.rules.len(),
        "build context prepared"
    );
    Ok(Prepared {
        dockerfile_name,
        plan,
    })
}

impl Prepared {
    /// Whether the Dockerfile is sent under a generated `.dockerfile.<hex>` name (outside the
    /// context, or excluded by `.dockerignore` under BuildKit).
    pub fn dockerfile_generated(&self) -> bool {
        self.plan.generated.is_some()
    }

    /// Starts streaming on a blocking thread (call inside a tokio runtime).
    ///
    /// Returns the body for `bollard::body_try_stream` and a handle to the walk's outcome:
    /// when the body ends with an error, the handle holds the real cause (e.g. the path that
    /// could not be read). If the body is dropped, the walk stops with
    /// [`ContextError::Cancelled`].
    pub fn stream(
        self,
    ) -> (
        impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
        JoinHandle<Result<ContextSummary, ContextError>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(CHANNEL_CAPACITY);
        let plan = self.plan;
        let handle = tokio::task::spawn_blocking(move || {
            let result = archive::write(
                &plan,
                |chunk| {
                    tx.blocking_send(Ok(chunk))
                        .map_err(|_| ContextError::Cancelled)
                },
                None,
            );
            if let Err(err) = &result
                && !matches!(err, ContextError::Cancelled)
            {
                let _ = tx.blocking_send(Err(io::Error::other(err.to_string())));
            }
            result
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        (body, handle)
    }

    /// The digest of the entries [`Self::stream`] would send (see [`digest`]), less the build
    /// files the CLI adds (a Dockerfile from outside the context, the line naming it in
    /// `.dockerignore`): the Dockerfile is an input of its own. One walk that reads every file
    /// sent, on this thread, writing nothing.
    pub fn digest(&self) -> Result<(digest::ContextDigests, Snapshot), ContextError> {
        digest::record(|recorder| archive::write(&self.plan, |_| Ok(()), Some(recorder)).map(drop))
    }

    /// The same context, sent only as `snapshot` (a digest of it) saw it: an entry that
    /// changed since fails the send ([`snapshot`]).
    pub fn checked_against(mut self, snapshot: std::sync::Arc<Snapshot>) -> Prepared {
        self.plan.snapshot = Some(snapshot);
        self
    }

    /// Writes the whole tar to `w` on this thread (tests, benchmarks, `--output` of a tar).
    pub fn write_to(self, mut w: impl Write) -> Result<ContextSummary, ContextError> {
        let summary = archive::write(
            &self.plan,
            |chunk| {
                w.write_all(&chunk)
                    .map_err(|cause| ContextError::Write { cause })
            },
            None,
        )?;
        w.flush().map_err(|cause| ContextError::Write { cause })?;
        Ok(summary)
    }
}

/// A context for BuildKit's file sync (see [`sync`]): the daemon asks for the files, and for the
/// Dockerfile from its own folder, so the Dockerfile is never part of the context.
#[derive(Debug, Clone)]
pub struct SyncedContext {
    /// The context folder, symlinks resolved.
    pub root: PathBuf,
    /// The context folder as given, for messages.
    pub shown_root: PathBuf,
    /// The Dockerfile's folder (the `dockerfile` local) and its name there (the `dockerfile`
    /// query parameter), as the docker CLI sends them in BuildKit mode.
    pub dockerfile_dir: PathBuf,
    pub dockerfile_name: String,
    /// Paths in the context never sent.
    pub leave_out: Vec<Vec<u8>>,
    /// The patterns the Dockerfile frontend will ask to exclude: `<Dockerfile>.dockerignore`
    /// when it exists, else the context's `.dockerignore` (buildkit `dockerui`).
    excludes: Patterns,
    /// What the inputs digest saw: every entry sent must still be that.
    pub snapshot: Option<std::sync::Arc<Snapshot>>,
}

/// Checks the context and the Dockerfile and reads the ignore file the Dockerfile frontend
/// will read, for a build whose files go through the session. Does not walk the folder.
pub fn prepare_sync(spec: &ContextSpec) -> Result<SyncedContext, ContextError> {
    let (root, _) = checked_paths(spec)?;
    let dockerfile_dir = match spec.dockerfile.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dockerfile_name = spec
        .dockerfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let own_ignore = spec
        .dockerfile
        .with_file_name(format!("{dockerfile_name}.dockerignore"));
    let (excludes, shown) = match read_ignore_file(&own_ignore, &own_ignore)? {
        Some((bytes, patterns)) => (Some((bytes, patterns)), own_ignore),
        None => {
            let shown = shown_in(&spec.context, ".dockerignore");
            (
                read_ignore_file(&root.join(".dockerignore"), &shown)?,
                shown,
            )
        }
    };
    let excludes = match excludes {
        Some((bytes, patterns)) => {
            fits_the_session(&bytes, &shown)?;
            patterns
        }
        None => Patterns::default(),
    };
    Ok(SyncedContext {
        leave_out: leave_out_in(&root, &spec.leave_out),
        shown_root: spec.context.clone(),
        root,
        dockerfile_dir,
        dockerfile_name,
        excludes,
        snapshot: None,
    })
}

impl SyncedContext {
    /// The digest of the context entries the file sync sends when the frontend asks for the
    /// whole context with the ignore file's patterns (see [`digest`]); one walk that reads every
    /// file sent.
    pub fn digest(&self) -> Result<(digest::ContextDigests, Snapshot), ContextError> {
        let filter = sync::Filter::excluding(self.excludes.clone());
        digest::record(|recorder| {
            sync::walk(
                &self.root,
                &filter,
                &self.leave_out,
                &self.shown_root,
                &mut |entry| {
                    use sync::go_mode;
                    let kind = match entry.mode & go_mode::TYPE {
                        _ if entry.is_hard_link() => digest::Kind::HardLink,
                        0 => digest::Kind::File,
                        m if m & go_mode::DIR != 0 => digest::Kind::Dir,
                        m if m & go_mode::SYMLINK != 0 => digest::Kind::Symlink,
                        m if m & go_mode::NAMED_PIPE != 0 => digest::Kind::Fifo,
                        m if m & go_mode::CHAR_DEVICE != 0 => digest::Kind::CharDevice,
                        _ => digest::Kind::BlockDevice,
                    };
                    let device = (entry.devmajor as u32, entry.devminor as u32);
                    let link = (!entry.linkname.is_empty()).then_some(entry.linkname.as_slice());
                    let header = digest::Header {
                        kind,
                        path: &entry.path,
                        mode: entry.mode,
                        size: entry.size as u64,
                        link,
                        device: Some(device),
                    };
                    recorder.entry(header, entry.stamp);
                    if kind == digest::Kind::File
                        && let (Some(source), Some(stamp)) = (&entry.source, entry.stamp)
                    {
                        let shown =
                            shown_in(&self.shown_root, std::ffi::OsStr::from_bytes(&entry.path));
                        recorder.file(source.clone(), shown, stamp)?;
                    }
                    Ok(())
                },
            )
        })
    }

    /// The same context, sent only as `snapshot` (a digest of it) saw it: an entry that
    /// changed since fails the send ([`snapshot`]).
    pub fn checked_against(mut self, snapshot: std::sync::Arc<Snapshot>) -> SyncedContext {
        self.snapshot = Some(snapshot);
        self
    }
}

/// `target` relative to `base` (both absolute, symlinks resolved), like Go's `filepath.Rel`.
fn relative_path(base: &Path, target: &Path) -> PathBuf {
    let base: Vec<Component<'_>> = base.components().collect();
    let target: Vec<Component<'_>> = target.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..base.len() {
        out.push("..");
    }
    for part in &target[common..] {
        out.push(part);
    }
    out
}

/// A path inside the context as the user would write it: `src/x` for context `.`,
/// `web/src/x` for context `web`.
fn shown_in(shown_root: &Path, rel: impl AsRef<Path>) -> PathBuf {
    if shown_root == Path::new(".") || shown_root.as_os_str().is_empty() {
        rel.as_ref().to_path_buf()
    } else {
        shown_root.join(rel)
    }
}

/// Lowercase hex of the SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_serde_names() {
        #[derive(serde::Deserialize)]
        struct Wrap {
            builder: Builder,
        }
        let parsed: Wrap = toml::from_str("builder = \"classic\"").unwrap();
        assert_eq!(parsed.builder, Builder::Classic);
        let parsed: Wrap = toml::from_str("builder = \"buildkit\"").unwrap();
        assert_eq!(parsed.builder, Builder::BuildKit);
        assert_eq!(Builder::default(), Builder::BuildKit);
        assert!(toml::from_str::<Wrap>("builder = \"BuildKit\"").is_err());
    }

    #[test]
    fn ignore_files_must_fit_the_session_headers() {
        let file = |lines: usize| {
            let mut text = String::from("# generated\n\n");
            for n in 0..lines {
                text.push_str(&format!("  node_modules/pkg-{n:07}/dist  \n"));
            }
            text.into_bytes()
        };
        let shown = Path::new("web/.dockerignore");
        fits_the_session(&file(5_000), shown).unwrap();
        let size = |lines: usize| lines * ("node_modules/pkg-0000000/dist".len() + 48);
        let most = sync::MAX_HEADER_LIST as usize / size(1);
        fits_the_session(&file(most), shown).unwrap();
        let err = fits_the_session(&file(most + 1), shown).unwrap_err();
        assert_eq!(crate::exit::Exit::exit(&err).code(), 2);
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "`web/.dockerignore` is too large for BuildKit's file sync: its {} patterns take",
                most + 1
            )),
            "{text}"
        );
        assert!(text.contains("--builder classic"), "{text}");
    }

    #[test]
    fn what_is_sent_is_what_the_digest_read() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        fs::create_dir_all(ctx.join("lib")).unwrap();
        fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
        fs::write(ctx.join("lib/a.ex"), "one").unwrap();
        fs::write(ctx.join("mix.lock"), "deps").unwrap();
        for (round, builder) in [Builder::Classic, Builder::BuildKit]
            .into_iter()
            .enumerate()
        {
            let spec = ContextSpec {
                context: ctx.clone(),
                dockerfile: ctx.join("Dockerfile"),
                builder,
                leave_out: Vec::new(),
            };
            let prepared = prepare(&spec).unwrap();
            let (digest, snapshot) = prepared.digest().unwrap();
            assert_eq!(
                digest,
                prepared.digest().unwrap().0,
                "the same context, the same digest"
            );
            assert_eq!(
                digest.entries.keys().collect::<Vec<_>>(),
                ["Dockerfile", "lib", "mix.lock"]
            );
            let checked = prepared
                .clone()
                .checked_against(std::sync::Arc::new(snapshot));
            checked.clone().write_to(io::sink()).unwrap();

            std::thread::sleep(std::time::Duration::from_millis(10));
            fs::write(ctx.join("lib/a.ex"), format!("changed {round}")).unwrap();
            let err = checked.clone().write_to(io::sink()).unwrap_err();
            assert!(
                matches!(&err, ContextError::ChangedSinceDigest { path } if path.ends_with("lib/a.ex")),
                "{err}"
            );
            assert_eq!(crate::exit::Exit::exit(&err).code(), 1);
            let (after, _) = prepare(&spec).unwrap().digest().unwrap();
            assert_ne!(after.entries["lib"], digest.entries["lib"]);
            assert_eq!(after.entries["mix.lock"], digest.entries["mix.lock"]);

            // A file the digest did not see is a change too.
            let (_, snapshot) = prepared.digest().unwrap();
            let checked = prepared
                .clone()
                .checked_against(std::sync::Arc::new(snapshot));
            fs::write(ctx.join("new.txt"), "new").unwrap();
            assert!(checked.write_to(io::sink()).is_err());
            fs::remove_file(ctx.join("new.txt")).unwrap();
        }
    }

    #[test]
    fn relative_paths() {
        let cases = [
            ("/a/ctx", "/a/ctx/Dockerfile", "Dockerfile"),
            ("/a/ctx", "/a/ctx/d/e/Dockerfile", "d/e/Dockerfile"),
            ("/a/ctx", "/a/other/Dockerfile", "../other/Dockerfile"),
            ("/a/ctx", "/a/ctx2/Dockerfile", "../ctx2/Dockerfile"),
            ("/", "/x/Dockerfile", "x/Dockerfile"),
        ];
        for (base, target, want) in cases {
            assert_eq!(
                relative_path(Path::new(base), Path::new(target)),
                PathBuf::from(want)
            );
        }
    }

    #[test]
    fn error_messages_and_exit_codes() {
        let cases: Vec<(ContextError, &str, u8)> = vec![
            (
                ContextError::ContextNotFolder {
                    path: "dockerfiles/web".into(),
                },
                "context `dockerfiles/web` is not a folder",
                2,
            ),
            (
                ContextError::Pattern {
                    file: "web/.dockerignore".into(),
                    cause: PatternError {
                        line: 3,
                        pattern: "[a".into(),
                        reason: "bad".into(),
                    },
                },
                "web/.dockerignore line 3: invalid pattern `[a`: bad",
                2,
            ),
            (
                ContextError::Read {
                    path: "src/x.ex".into(),
                    cause: io::Error::from_raw_os_error(13),
                },
                "cannot read `src/x.ex`: permission denied",
                1,
            ),
        ];
        for (err, text, code) in cases {
            assert_eq!(err.to_string(), text);
            assert_eq!(crate::exit::Exit::exit(&err).code(), code);
        }
    }
}
