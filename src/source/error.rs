//! What can go wrong on the source side, and the exit code of each.

use crate::aws::AwsError;
use crate::exit::{Exit, ExitCode};

/// A failure of `ecrship source`: the value, where it came from, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `git` is not installed (or not on `PATH`).
    #[error(
        "cannot run `git`: {cause} (ecrship reads the file list and the commit through git: install git, or put it on PATH)"
    )]
    NoGit { cause: std::io::Error },
    /// A git command failed: not a work tree, no commit yet, a repository owned by someone else.
    #[error("`git {args}` in `{dir}` failed: {message}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Git {
        args: String,
        dir: String,
        message: String,
        hint: Option<&'static str>,
    },
    /// The commit from the environment is not a commit id.
    #[error(
        "commit `{value}` from environment variable `{var}` is not a git commit id (4 to 64 hex digits)"
    )]
    Commit { var: &'static str, value: String },
    /// The index has entries git could not merge.
    #[error(
        "`{path}` has unresolved merge conflicts in git's index: resolve them and commit before zipping"
    )]
    Unmerged { path: String },
    /// A path git lists is not UTF-8, which a zip entry name must be here.
    #[error(
        "`{path}`: the file name is not UTF-8; rename it, or leave it out with `[source] exclude`"
    )]
    NotUtf8 { path: String },
    /// A path of `[source] include` that git does not have.
    #[error("{origin}: [source] {list} `{path}` {reason}; nothing was uploaded")]
    Listed {
        origin: String,
        list: &'static str,
        path: String,
        reason: &'static str,
    },
    /// The bucket or the key is missing or breaks S3's rules.
    #[error("{0}")]
    Object(String),
    /// The tag file name cannot be used as the zip's commit file.
    #[error("{0}")]
    TagFile(String),
    /// A file of the work tree could not be read.
    #[error("cannot read `{path}`: {cause}")]
    Read { path: String, cause: std::io::Error },
    /// The zip could not be written.
    #[error("cannot write the zip `{path}`: {cause}")]
    Write { path: String, cause: String },
    /// CodePipeline's S3 source needs a versioned bucket.
    #[error(
        "bucket `{bucket}` has versioning {status}: CodePipeline's S3 source needs a versioned bucket and fails without one; \
         nothing was uploaded (turn it on: `aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled`)"
    )]
    VersioningOff {
        bucket: String,
        status: &'static str,
    },
    /// The upload worked but S3 gave the object no version: the bucket is not versioned.
    #[error(
        "s3://{bucket}/{key} was uploaded, but S3 gave it no version id: the bucket has versioning off, so CodePipeline's S3 source \
         will not start (turn versioning on, then run again)"
    )]
    NoVersion { bucket: String, key: String },
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Halt(#[from] crate::runtime::Halt),
}

/// Bad input (a path, a name, a value), or the work failed.
impl Exit for SourceError {
    fn exit(&self) -> ExitCode {
        match self {
            SourceError::Git { .. }
            | SourceError::Commit { .. }
            | SourceError::Unmerged { .. }
            | SourceError::NotUtf8 { .. }
            | SourceError::Listed { .. }
            | SourceError::Object(_)
            | SourceError::TagFile(_) => ExitCode::BadInput,
            SourceError::NoGit { .. }
            | SourceError::Read { .. }
            | SourceError::Write { .. }
            | SourceError::VersioningOff { .. }
            | SourceError::NoVersion { .. }
            | SourceError::Aws(_) => ExitCode::Failed,
            SourceError::Halt(e) => e.exit(),
        }
    }
}
