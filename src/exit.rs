//! The exit codes, part of the interface: 0 done, 1 the work failed, 2 bad usage, config or
//! input, 130 and 143 interrupted by SIGINT and SIGTERM (as a shell reports a process ended by
//! those signals). Each layer's error says which it is through [`Exit`]; the top maps the one
//! error of a run to the process's code.

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The work failed: a build, a push, an AWS call, the daemon, an artifact.
    Failed,
    /// Bad usage, config or input: nothing was tried.
    BadInput,
    /// Interrupted by a signal: 128 and its number.
    Interrupted(u8),
}

impl ExitCode {
    /// The process's exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Failed => 1,
            ExitCode::BadInput => 2,
            ExitCode::Interrupted(code) => code,
        }
    }
}

/// An error that knows which exit code it is.
pub trait Exit {
    fn exit(&self) -> ExitCode;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(ExitCode::Failed.code(), 1);
        assert_eq!(ExitCode::BadInput.code(), 2);
        assert_eq!(ExitCode::Interrupted(143).code(), 143);
    }
}
