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

use crate::exit::{Exit, ExitCode};

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
    #[error(transparent)]
    Halt(#[from] crate::runtime::Halt),
}

impl Exit for Error {
    fn exit(&self) -> ExitCode {
        match self {
            Error::Usage(_) | Error::Config(_) | Error::Tag(_) => ExitCode::BadInput,
            Error::Context(e) => e.exit(),
            Error::Deploy(e) => e.exit(),
            Error::Source(e) => e.exit(),
            Error::Image { source, .. } => source.exit(),
            Error::Artifact(_)
            | Error::Docker(_)
            | Error::Aws(_)
            | Error::Registry(_)
            | Error::Failed(_) => ExitCode::Failed,
            Error::Halt(e) => e.exit(),
        }
    }
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Error {
        Error::Registry(Box::new(e))
    }
}
