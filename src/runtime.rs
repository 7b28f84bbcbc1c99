//! The async runtime of a command: made for it, and ended early by SIGINT or SIGTERM.
//!
//! Dropping the work cancels the builds and pushes in flight (the daemon stops a build whose
//! connection closes, see [`crate::docker`]), so an interrupted run writes no artifact; it exits
//! with 130 or 143, as a shell reports a process ended by those signals.

use crate::exit::{Exit, ExitCode};

/// Why the work stopped before it ended.
#[derive(Debug, thiserror::Error)]
pub enum Halt {
    #[error("interrupted by {name}; builds were cancelled and no artifact was written")]
    Interrupted { name: &'static str, code: u8 },
    #[error("cannot start the async runtime: {0}")]
    NoRuntime(String),
}

impl Exit for Halt {
    fn exit(&self) -> ExitCode {
        match self {
            Halt::Interrupted { code, .. } => ExitCode::Interrupted(*code),
            Halt::NoRuntime(_) => ExitCode::Failed,
        }
    }
}

/// Runs `work` on a runtime made for it, and ends it early on SIGINT or SIGTERM.
pub fn block_on<T, E: From<Halt>>(
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Halt::NoRuntime(e.to_string()))?;
    let result = runtime.block_on(async {
        tokio::select! {
            result = work => result,
            interrupted = signals() => Err(interrupted.into()),
        }
    });
    // Work still in flight (a context walker blocked on a full channel, a BuildKit session)
    // must not hold up the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// The first SIGINT or SIGTERM, as the error that ends the run.
async fn signals() -> Halt {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => Halt::Interrupted { name: "SIGINT", code: 130 },
        _ = term.recv() => Halt::Interrupted { name: "SIGTERM", code: 143 },
    }
}
