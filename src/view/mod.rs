//! What a run shows while it works: each image's log lines and the state it is in.
//!
//! The pipeline reports to a [`View`] and never prints itself. [`Plain`] writes one line per
//! event on stderr, prefixed with the image (`[web] #4 [2/2] COPY ...`): what CodeBuild's log
//! and any other reader without a terminal gets. [`Tty`] draws a live line per image on a
//! terminal instead (`tty`), reading the build's step from its lines (`step`); [`choose`] picks
//! one for `--progress`.

mod step;
mod tty;

use std::fmt;
use std::io::IsTerminal;

use crate::cli::{Color, Progress};
pub use tty::{Logs, Tty};

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

/// The view [`choose`] picked, used wherever a view is.
impl<V: View + ?Sized> View for Box<V> {
    fn line(&self, image: &str, line: &str) {
        (**self).line(image, line);
    }

    fn state(&self, image: &str, state: State) {
        (**self).state(image, state);
    }

    fn push_progress(&self, image: &str, done: u64, total: u64) {
        (**self).push_progress(image, done, total);
    }
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

/// The view for `--progress`: `auto` is the live view when stderr is a terminal that can draw
/// it (`TERM` is not `dumb`), `CI` is unset and `-q` is not given; plain lines otherwise.
pub fn choose<'a>(
    progress: Progress,
    color: Color,
    quiet: bool,
    images: impl IntoIterator<Item = &'a str>,
) -> Box<dyn View> {
    let terminal = std::io::stderr().is_terminal();
    let live = match progress {
        Progress::Plain => false,
        Progress::Tty => true,
        Progress::Auto => {
            terminal
                && !quiet
                && std::env::var_os("CI").is_none()
                && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        }
    };
    if live {
        Box::new(Tty::new(images, use_color(color, terminal)))
    } else {
        Box::new(Plain)
    }
}

/// Whether to colour stderr: `--color`, or on a terminal unless `NO_COLOR` is set.
pub fn use_color(choice: Color, terminal: bool) -> bool {
    match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}
