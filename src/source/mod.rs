//! `ecrship source`: the GitLab (or GitHub) side of the pipeline. It zips the sources with the
//! commit file that the build side reads its tag from, and puts the zip in the versioned S3
//! bucket whose changes start CodePipeline.
//!
//! The pieces, in the order [`run`] uses them: [`object`] settles the bucket and the key (flag,
//! environment, `[source]`) before any work; [`git`] asks git for HEAD and the index;
//! [`commit`] picks the commit (`CI_COMMIT_SHA`, `GITHUB_SHA` or HEAD), cuts it to `[tag]
//! length` and gives the zip its one timestamp; [`files`] narrows the index to `[source]
//! include`/`exclude`, and any bad input has failed by then; [`crate::aws::s3`] checks the
//! bucket's versioning, so that a bucket that cannot take the zip fails before it is made;
//! [`zip`](mod@zip) writes the deterministic archive to a file; [`crate::aws::s3`] uploads it.
//! `report` is what is printed. A dry-run calls no AWS API and keeps the zip (`--out`, default
//! `src.zip`).

pub mod commit;
mod error;
pub mod files;
pub mod git;
pub mod object;
mod report;
pub mod zip;

use std::path::{Path, PathBuf};

pub use error::SourceError;
pub use report::{Report, Upload};

use crate::aws::s3::{self, Versioning};
use crate::config::{Config, Origin};

/// The seed's name for the zip (`zip -r src.zip ...`): where a dry-run writes it by default.
pub const DEFAULT_OUT: &str = "src.zip";

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    pub out: Option<&'a Path>,
    pub dry_run: bool,
}

/// Builds the zip of the project at `root` and, unless it is a dry-run, uploads it.
pub fn run(
    root: &Path,
    config: &Config,
    request: &Request<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Report, SourceError> {
    let (bucket, key) = object::resolve(request.bucket, request.key, &config.source, env)?;
    let object = if request.dry_run {
        None
    } else {
        Some(object::require(bucket, key, &config.origin)?)
    };
    let tag_file = &config.tag.file;
    if tag_file.is_empty() {
        return Err(SourceError::TagFile(format!(
            "{}: [tag] file is empty, so the zip would carry no commit and every image would be tagged `{}`; set [tag] file (default `.git-commit-hash`)",
            config.origin, config.tag.fallback
        )));
    }

    let head = git::head(root)?;
    let commit = commit::resolve(&head, config.tag.length, env)?;
    let mut entries = files::parse_index(&git::index(root)?)?;
    if let Some(i) = entries.iter().position(|e| &e.path == tag_file) {
        tracing::warn!(
            "git tracks `{tag_file}`: the zip gets the one written for commit {} instead",
            commit.tag
        );
        entries.remove(i);
    }
    let origin = |listed: &crate::config::Located| match &config.origin {
        Origin::File(_) => format!("{} line {}", config.origin, listed.line),
        Origin::Embedded => config.origin.to_string(),
    };
    let exists = |path: &Path| root.join(path).symlink_metadata().is_ok();
    let selected = files::select(
        entries,
        config.source.include.as_deref(),
        &config.source.exclude,
        &origin,
        &exists,
    )?;

    warn_without_config(root, config, &selected);

    let contents = format!("{}\n", commit.tag);
    let mut members: Vec<zip::Member> = selected.iter().map(zip::Member::Tracked).collect();
    let at = members.partition_point(|m| m.path().as_bytes() < tag_file.as_bytes());
    members.insert(
        at,
        zip::Member::Made {
            path: tag_file,
            contents: contents.as_bytes(),
        },
    );

    let out = request
        .out
        .map(Path::to_path_buf)
        .or_else(|| request.dry_run.then(|| PathBuf::from(DEFAULT_OUT)));
    let make = || make_zip(root, &members, &commit, out.as_deref());
    let (zip, upload) = match object {
        None => (make()?, None),
        // The bucket is checked before the zip is made: a bucket that cannot take it fails at once.
        Some(object) => crate::runtime::block_on(async {
            let client = s3::client(&crate::aws::load().await.map_err(SourceError::from)?);
            let checked = check_versioning(&client, &object.bucket).await?;
            let zip = tokio::task::block_in_place(make)?;
            let upload = upload(&client, &object, &zip, checked).await?;
            Ok::<_, SourceError>((zip, Some(upload)))
        })?,
    };
    Ok(Report {
        commit,
        tag_file: tag_file.clone(),
        files: zip.written.files,
        size: zip.size,
        out: out.map(|o| o.display().to_string()),
        upload,
    })
}

/// A finished zip.
struct Made {
    /// The `--out` file, or a temporary file removed on drop.
    kept: Kept,
    written: zip::Written,
    size: u64,
}

/// Writes the zip to a temporary file, then gives it the name asked for (`--out`): never a
/// half-written file under that name.
fn make_zip(
    root: &Path,
    members: &[zip::Member<'_>],
    commit: &commit::Commit,
    out: Option<&Path>,
) -> Result<Made, SourceError> {
    let (temp, written, size) = write_zip(root, members, commit, out)?;
    if !written.missing.is_empty() {
        let shown: Vec<&str> = written.missing.iter().take(5).map(String::as_str).collect();
        tracing::warn!(
            "{} file(s) that git tracks are missing from the work tree and were left out: {}{}",
            written.missing.len(),
            shown.join(", "),
            if written.missing.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    tracing::info!(
        "zipped {} files ({size} bytes) for commit {} (from {})",
        written.files,
        commit.tag,
        commit.from
    );
    let kept = match out {
        Some(out) => {
            temp.persist(out).map_err(|e| SourceError::Write {
                path: out.display().to_string(),
                cause: e.error.to_string(),
            })?;
            Kept::Out(out.to_path_buf())
        }
        None => Kept::Temp(temp.into_temp_path()),
    };
    Ok(Made {
        kept,
        written,
        size,
    })
}

/// The build side reads the config from the unpacked zip: without it there, it falls back to the
/// built-in seed layout and another `[tag]`, which is worth a warning.
fn warn_without_config(root: &Path, config: &Config, selected: &[files::Entry]) {
    let Origin::File(path) = &config.origin else {
        return;
    };
    let (Ok(path), Ok(root)) = (path.canonicalize(), root.canonicalize()) else {
        return;
    };
    let Some(relative) = path.strip_prefix(&root).ok().and_then(Path::to_str) else {
        return;
    };
    if !selected.iter().any(|e| e.path == relative) {
        tracing::warn!(
            "`{relative}` is not in the zip: CodeBuild will build with the built-in seed layout instead (add it to [source] include, and let git track it)"
        );
    }
}

/// Where the finished zip is: the `--out` file, or a temporary file removed on drop.
enum Kept {
    Out(PathBuf),
    Temp(tempfile::TempPath),
}

impl Kept {
    fn path(&self) -> &Path {
        match self {
            Kept::Out(path) => path,
            Kept::Temp(path) => path,
        }
    }
}

/// Writes the zip to a temporary file: beside `out` (so that it can be renamed into place), or
/// in the temp folder.
fn write_zip(
    root: &Path,
    members: &[zip::Member<'_>],
    commit: &commit::Commit,
    out: Option<&Path>,
) -> Result<(tempfile::NamedTempFile, zip::Written, u64), SourceError> {
    let shown = out.map_or_else(
        || "the temporary zip".to_owned(),
        |o| o.display().to_string(),
    );
    let failed = |e: std::io::Error| SourceError::Write {
        path: shown.clone(),
        cause: e.to_string(),
    };
    let temp = match out {
        Some(out) => {
            let dir = out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            tempfile::Builder::new()
                .prefix(".ecrship-src.")
                .suffix(".zip.tmp")
                .tempfile_in(dir)
        }
        None => tempfile::Builder::new()
            .prefix("ecrship-src.")
            .suffix(".zip")
            .tempfile(),
    }
    .map_err(failed)?;
    let file = temp.reopen().map_err(failed)?;
    let (file, written) = zip::write(root, members, commit::zip_time(commit.time), file, &shown)?;
    let size = file.metadata().map_err(failed)?.len();
    Ok((temp, written, size))
}

/// `GetBucketVersioning`: off or suspended is an error; `true` when versioning is on, `false`
/// when the caller may not ask (a warning, and the upload goes on).
async fn check_versioning(client: &s3::Client, bucket: &str) -> Result<bool, SourceError> {
    match s3::versioning(client, bucket).await? {
        Versioning::Enabled => Ok(true),
        Versioning::Suspended => Err(SourceError::VersioningOff {
            bucket: bucket.to_owned(),
            status: "suspended",
        }),
        Versioning::Off => Err(SourceError::VersioningOff {
            bucket: bucket.to_owned(),
            status: "off (never enabled)",
        }),
        Versioning::Unknown(why) => {
            tracing::warn!(
                "cannot check that bucket `{bucket}` is versioned ({why}: the caller lacks s3:GetBucketVersioning); uploading anyway"
            );
            Ok(false)
        }
    }
}

/// Uploads the zip; an object without a version id means the bucket is not versioned.
async fn upload(
    client: &s3::Client,
    object: &object::Object,
    zip: &Made,
    versioning_checked: bool,
) -> Result<Upload, SourceError> {
    let object::Object { bucket, key } = object;
    let uploaded = s3::upload(client, bucket, key, zip.kept.path(), zip.size).await?;
    let Some(version_id) = uploaded.version_id else {
        return Err(SourceError::NoVersion {
            bucket: bucket.clone(),
            key: key.clone(),
        });
    };
    Ok(Upload {
        bucket: bucket.clone(),
        key: key.clone(),
        version_id,
        etag: uploaded.etag,
        parts: uploaded.parts,
        versioning_checked,
    })
}
