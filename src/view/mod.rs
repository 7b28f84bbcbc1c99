//! What a run shows while it works: each image's log lines and the state it is in.
//!
//! The pipeline reports to a [`View`] and never prints itself. [`Plain`] writes one line per
//! event on stderr, prefixed with the image (`[web] #4 [2/2] COPY ...`): what CodeBuild's log
//! and any other reader without a terminal gets.

use std::fmt;

/// Where an image is in its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not started: waiting for a free job or for the images it depends on.
    Waiting,
    /// Asking the registry whether an image with the same inputs is there already.
    Checking,
    /// Its build runs on the daemon.
    Building,
    /// Its tags are being pushed.
    Pushing,
    /// Not built: the registry's image with the same inputs was tagged instead.
    Reused,
    /// Built (and pushed, when the run pushes).
    Done,
    /// Its build or push failed.
    Failed,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Waiting => "waiting",
            State::Checking => "checking",
            State::Building => "building",
            State::Pushing => "pushing",
            State::Reused => "reused",
            State::Done => "done",
            State::Failed => "failed",
        })
    }
}

/// Receives what the pipeline has to say about each image, from any task.
pub trait View: Send + Sync {
    /// One line of an image's log: its build output, or a step of ecrship's own.
    fn line(&self, image: &str, line: &str);
    /// The image moved to `state`.
    fn state(&self, image: &str, state: State);
    /// Bytes of the image's layers pushed so far, out of `total` (both 0 when unknown).
    fn push_progress(&self, image: &str, done: u64, total: u64);
}

/// Plain lines on stderr (through `tracing`), one per log line; states and byte counts are not
/// shown, since each step already has its own line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Plain;

impl View for Plain {
    fn line(&self, image: &str, line: &str) {
        tracing::info!("[{image}] {line}");
    }

    fn state(&self, _image: &str, _state: State) {}

    fn push_progress(&self, _image: &str, _done: u64, _total: u64) {}
}
