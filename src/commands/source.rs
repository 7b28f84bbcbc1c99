//! `ecrship source`: zip what git tracks with `.git-commit-hash` and upload it to the versioned
//! S3 bucket that starts the pipeline (see [`crate::source`]).

use std::path::Path;

use crate::cli::{Global, SourceObject};
use crate::config::Config;
use crate::error::Error;
use crate::source::{self, Report};

pub fn run(
    global: &Global,
    object: &SourceObject,
    out: Option<&Path>,
    dry_run: bool,
) -> Result<Report, Error> {
    let root = global.directory.as_path();
    let config = Config::load(root, global.config.as_deref())?;
    let request = source::Request {
        bucket: object.bucket.as_deref(),
        key: object.key.as_deref(),
        out,
        dry_run,
    };
    Ok(source::run(root, &config, &request, &super::env)?)
}
