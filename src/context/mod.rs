//! The build context: which files the Docker CLI would send, streamed as a tar.
// TEMPORARY STAND-IN written by the lead so the rest of the crate compiles; the context
// engineer replaces this whole file.
use std::path::PathBuf;
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder { #[default] BuildKit, Classic }
#[derive(Debug, thiserror::Error)]
#[error("context")]
pub struct ContextError;
impl ContextError { pub fn exit_code(&self) -> i32 { 2 } }
pub struct ContextSpec { pub context: PathBuf, pub dockerfile: PathBuf, pub builder: Builder }
pub struct ContextSummary;
pub struct Prepared { pub dockerfile_name: String }
pub fn prepare(_: &ContextSpec) -> Result<Prepared, ContextError> { Err(ContextError) }
impl Prepared {
    pub fn stream(self) -> (futures_util::stream::Empty<Result<bytes::Bytes, std::io::Error>>, tokio::task::JoinHandle<Result<ContextSummary, ContextError>>) { todo!() }
}
