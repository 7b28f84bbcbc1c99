//! The error of a whole run, and the exit code each kind maps to.

use crate::artifacts::WriteError;
use crate::aws::AwsError;
use crate::config::ConfigError;
use crate::context::ContextError;
use crate::deploy::DeployError;
use crate::docker::DockerError;
use crate::registry::RegistryError;
use crate::source::SourceError;
use crate::tag::TagError;

/// Exit code for bad usage, config or input.
pub const EXIT_INPUT: u8 = 2;
/// Exit code for a build, push or AWS failure.
pub const EXIT_FAILED: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tag(#[from] TagError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Artifact(#[from] WriteError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Registry(#[from] Box<RegistryError>),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("image `{image}`: {source}")]
    Image { image: String, source: Box<Error> },
    #[error("{0}")]
    Failed(String),
    #[error("interrupted by {name}; builds were cancelled and no artifact was written")]
    Interrupted { name: &'static str, code: u8 },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) | Error::Tag(_) => EXIT_INPUT,
            Error::Context(e) => e.exit_code() as u8,
            Error::Deploy(e) => e.exit_code(),
            Error::Image { source, .. } => source.exit_code(),
            Error::Artifact(_)
            | Error::Docker(_)
            | Error::Aws(_)
            | Error::Registry(_)
            | Error::Failed(_) => EXIT_FAILED,
            Error::Source(e) => e.exit_code(),
            Error::Interrupted { code, .. } => *code,
        }
    }
}

/// An error and its sources on one line, joined with `: `, skipping a source whose text is
/// already there (many errors repeat their source in their own message).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Error {
        Error::Registry(Box::new(e))
    }
}
