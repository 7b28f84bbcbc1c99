//! `ecrship tag`: the resolved tag on stdout; with `-v`, where it came from, on stderr. Only
//! `[tag]` of the config matters: no image and no Dockerfile needs to exist.

use crate::cli::Global;
use crate::config::Config;
use crate::error::Error;
use crate::output::Printer;
use crate::tag::Tag;

pub fn run(global: &Global, printer: &Printer) -> Result<TagReport, Error> {
    let root = global.directory.as_path();
    let config = Config::load(root, global.config.as_deref())?;
    let tag = crate::tag::resolve(root, &config.tag, super::env)?;
    if printer.verbose() {
        tracing::info!("tag `{}` from {}", tag.value, tag.source);
    }
    Ok(TagReport(tag))
}

/// `ecrship tag`'s result: the tag alone in text, the tag and its source in JSON.
pub struct TagReport(Tag);

impl std::fmt::Display for TagReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.0.value)
    }
}

impl serde::Serialize for TagReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
