//! The live view on a terminal: one block on stderr, redrawn in place, with a line per image.
//!
//! Each line shows the image, its state, what it is doing (the build step and its counter, the
//! bytes pushed, or its last log line), cut to the terminal's width, and the time since it
//! started. The block is drawn by indicatif (a `MultiProgress` with one bar per image), which
//! owns the cursor: every other write to stderr while the block is up must go through it, so the
//! log events of `tracing` are printed above the block by [`Logs`]. The log lines of each image
//! are not shown but kept (the last [`TAIL_LINES`]); when the run ends, the lines of each image
//! that failed are printed below the finished block.
//!
//! Every line is scrubbed of secrets (`secret::scrub`) when it arrives, before it is shown or kept.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use console::Style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use super::step::{Step, StepTracker};
use super::{State, View};
use crate::text::human_bytes;

/// How many of an image's last log lines are kept, to be printed if it fails.
pub const TAIL_LINES: usize = 100;
/// How often the running images' times are redrawn.
const TICK: Duration = Duration::from_millis(500);
/// Upper bound on redraws per second (indicatif's default).
const REFRESH_HZ: u8 = 20;

/// The block being drawn, if any: where [`Logs`] sends log events.
static BLOCK: Mutex<Option<MultiProgress>> = Mutex::new(None);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The live view. Dropping it finishes the block (images still running show as `stopped`) and
/// prints the kept log lines of the images that failed below it.
pub struct Tty {
    multi: MultiProgress,
    rows: Mutex<Vec<Arc<Row>>>,
    /// Width of the name column.
    name_width: usize,
    color: bool,
}

/// One image's line.
struct Row {
    name: String,
    bar: ProgressBar,
    clock: Arc<Mutex<Clock>>,
    log: Mutex<Log>,
}

/// What an image has said so far.
struct Log {
    state: State,
    /// Set when the run ended while the image was still running.
    stopped: bool,
    steps: StepTracker,
    last: String,
    /// Bytes pushed and to push; `(0, 0)` until the push reports them.
    bytes: (u64, u64),
    tail: VecDeque<String>,
}

/// The time an image has been running: from its first state past `waiting`, frozen when it
/// reaches a final state.
#[derive(Debug, Default)]
struct Clock {
    started: Option<Instant>,
    frozen: Option<Duration>,
}

impl Clock {
    fn run(&mut self) {
        self.started.get_or_insert_with(Instant::now);
        self.frozen = None;
    }

    /// Freezes the time shown, unless it is frozen already.
    fn stop(&mut self) {
        if let (Some(started), None) = (self.started, self.frozen) {
            self.frozen = Some(started.elapsed());
        }
    }

    fn shown(&self) -> Option<Duration> {
        self.frozen.or_else(|| self.started.map(|s| s.elapsed()))
    }
}

impl Tty {
    /// A block with a line per image, in this order, drawn on stderr at once. `color` says
    /// whether states may be coloured (`--color`, `NO_COLOR`).
    pub fn new<'a>(images: impl IntoIterator<Item = &'a str>, color: bool) -> Tty {
        let target = ProgressDrawTarget::term_like_with_hz(
            Box::new(console::Term::buffered_stderr()),
            REFRESH_HZ,
        );
        let images: Vec<&str> = images.into_iter().collect();
        let tty = Tty {
            multi: MultiProgress::with_draw_target(target),
            rows: Mutex::new(Vec::new()),
            name_width: images.iter().map(|n| n.chars().count()).max().unwrap_or(0),
            color,
        };
        for name in images {
            tty.row(name);
        }
        *lock(&BLOCK) = Some(tty.multi.clone());
        tty
    }

    /// The row of `image`, added at the end when it is not there yet.
    fn row(&self, image: &str) -> Arc<Row> {
        let mut rows = lock(&self.rows);
        if let Some(row) = rows.iter().find(|r| r.name == image) {
            return row.clone();
        }
        let clock = Arc::new(Mutex::new(Clock::default()));
        let shown = clock.clone();
        let time = move |_: &ProgressState, out: &mut dyn std::fmt::Write| {
            if let Some(elapsed) = lock(&shown).shown() {
                let _ = out.write_str(&format_elapsed(elapsed));
            }
        };
        let style = ProgressStyle::with_template("{prefix} {wide_msg} {time}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("time", time);
        let bar = self.multi.add(ProgressBar::no_length().with_style(style));
        let row = Arc::new(Row {
            name: image.to_owned(),
            bar,
            clock,
            log: Mutex::new(Log {
                state: State::Waiting,
                stopped: false,
                steps: StepTracker::default(),
                last: String::new(),
                bytes: (0, 0),
                tail: VecDeque::new(),
            }),
        });
        rows.push(row.clone());
        drop(rows);
        self.draw(&row, &lock(&row.log));
        row
    }

    /// Redraws one row from its log (held by the caller, so that draws of a row keep order).
    fn draw(&self, row: &Row, log: &Log) {
        let (word, style) = label(log.state, log.stopped);
        let style = style.force_styling(self.color);
        row.bar.set_prefix(format!(
            "{:<name$}  {}",
            row.name,
            style.apply_to(format!("{word:<8}")),
            name = self.name_width
        ));
        row.bar.set_message(describe(
            log.state,
            log.steps.current(),
            &log.last,
            log.bytes,
        ));
    }

    /// Ends the block: rows still running are marked stopped, every row is left as drawn, and
    /// log events go straight to stderr again.
    fn finish(&self) -> Vec<Arc<Row>> {
        lock(&BLOCK).take();
        let rows = lock(&self.rows).clone();
        for row in &rows {
            let mut log = lock(&row.log);
            if !is_final(log.state) {
                log.stopped = true;
            }
            lock(&row.clock).stop();
            row.bar.disable_steady_tick();
            self.draw(row, &log);
            row.bar.finish();
        }
        rows
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        let rows = self.finish();
        let mut stderr = io::stderr().lock();
        for row in rows {
            let log = lock(&row.log);
            if log.state != State::Failed || log.tail.is_empty() {
                continue;
            }
            let header = format!(
                "{}: the last {} lines of its log:",
                row.name,
                log.tail.len()
            );
            let _ = writeln!(
                stderr,
                "{}",
                Style::new()
                    .red()
                    .bold()
                    .force_styling(self.color)
                    .apply_to(header)
            );
            for line in &log.tail {
                let _ = writeln!(stderr, "[{}] {line}", row.name);
            }
        }
        let _ = stderr.flush();
    }
}

impl View for Tty {
    fn line(&self, image: &str, line: &str) {
        let row = self.row(image);
        let line = crate::secret::scrub(line).into_owned();
        let mut log = lock(&row.log);
        log.steps.read(&line);
        if log.tail.len() == TAIL_LINES {
            log.tail.pop_front();
        }
        log.tail.push_back(line.clone());
        log.last = line;
        self.draw(&row, &log);
    }

    fn state(&self, image: &str, state: State) {
        let row = self.row(image);
        let mut log = lock(&row.log);
        log.state = state;
        if is_final(state) {
            lock(&row.clock).stop();
            row.bar.disable_steady_tick();
        } else if state != State::Waiting {
            lock(&row.clock).run();
            row.bar.enable_steady_tick(TICK);
        }
        if state == State::Pushing {
            log.bytes = (0, 0);
        }
        self.draw(&row, &log);
    }

    fn push_progress(&self, image: &str, done: u64, total: u64) {
        let row = self.row(image);
        let mut log = lock(&row.log);
        if total == 0 || log.bytes == (done, total) {
            return;
        }
        log.bytes = (done, total);
        self.draw(&row, &log);
    }
}

fn is_final(state: State) -> bool {
    matches!(state, State::Reused | State::Done | State::Failed)
}

/// The state's word and colour.
fn label(state: State, stopped: bool) -> (&'static str, Style) {
    let style = Style::new().for_stderr();
    if stopped {
        return ("stopped", style.yellow());
    }
    match state {
        State::Waiting => ("waiting", style.dim()),
        State::Checking => ("checking", style.cyan()),
        State::Building => ("building", style.cyan()),
        State::Pushing => ("pushing", style.blue()),
        State::Reused => ("reused", style.green()),
        State::Done => ("done", style.green()),
        State::Failed => ("failed", style.red().bold()),
    }
}

/// What a row says after its state: the step and its counter while building, the bytes while
/// pushing, else the image's last log line.
fn describe(state: State, step: Option<&Step>, last: &str, bytes: (u64, u64)) -> String {
    let mut text = String::new();
    match (state, step) {
        (State::Waiting, _) => {}
        (State::Building, Some(step)) => {
            if let Some((n, m)) = step.counter {
                let _ = write!(text, "step {n}/{m} ");
            }
            if let Some(stage) = &step.stage {
                let _ = write!(text, "[{stage}] ");
            }
            text.push_str(&step.text);
        }
        (State::Pushing, _) if bytes.1 > 0 => {
            let _ = write!(
                text,
                "{} / {}  {last}",
                human_bytes(bytes.0),
                human_bytes(bytes.1)
            );
        }
        _ => text.push_str(last),
    }
    text
}

/// `7s`, `1m05s`, `1h02m`.
fn format_elapsed(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// The writer of the `tracing` subscriber: while a [`Tty`] block is drawn, each event is
/// printed above it (indicatif's `MultiProgress::println`), so that the block is never torn;
/// otherwise straight to stderr, byte for byte as `std::io::stderr` would.
#[derive(Debug, Default, Clone, Copy)]
pub struct Logs;

impl<'a> MakeWriter<'a> for Logs {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        match lock(&BLOCK).clone() {
            Some(multi) => LogWriter::Block {
                multi,
                text: Vec::new(),
            },
            None => LogWriter::Stderr(io::stderr()),
        }
    }
}

/// One event's output: to stderr, or gathered and printed above the block when dropped.
pub enum LogWriter {
    Stderr(io::Stderr),
    Block { multi: MultiProgress, text: Vec<u8> },
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LogWriter::Stderr(stderr) => stderr.write(buf),
            LogWriter::Block { text, .. } => {
                text.extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            LogWriter::Stderr(stderr) => stderr.flush(),
            LogWriter::Block { .. } => Ok(()),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if let LogWriter::Block { multi, text } = self {
            if text.is_empty() {
                return;
            }
            let text = String::from_utf8_lossy(text);
            let _ = multi.println(text.strip_suffix('\n').unwrap_or(&text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::step::step;
    use super::*;

    #[test]
    fn rows_say_what_each_state_is_doing() {
        let run = step(Some((2, 3)), None, "RUN make");
        let staged = step(Some((4, 5)), Some("builder"), "COPY . .");
        let internal = step(None, None, "[internal] load build context");
        let last = "#5 compiling";
        let cases = [
            (State::Waiting, None, (0, 0), ""),
            (State::Building, Some(&run), (0, 0), "step 2/3 RUN make"),
            (
                State::Building,
                Some(&staged),
                (0, 0),
                "step 4/5 [builder] COPY . .",
            ),
            (
                State::Building,
                Some(&internal),
                (0, 0),
                "[internal] load build context",
            ),
            (State::Building, None, (0, 0), "#5 compiling"),
            (
                State::Pushing,
                Some(&run),
                (1_260_000, 12_300_000),
                "1.3MB / 12.3MB  #5 compiling",
            ),
            (State::Pushing, None, (0, 0), "#5 compiling"),
            (State::Done, Some(&run), (5, 5), "#5 compiling"),
            (State::Failed, Some(&run), (0, 0), "#5 compiling"),
            (State::Reused, None, (0, 0), "#5 compiling"),
        ];
        for (state, step, bytes, expected) in cases {
            assert_eq!(describe(state, step, last, bytes), expected, "{state}");
        }
    }

    #[test]
    fn labels() {
        assert_eq!(label(State::Building, false).0, "building");
        assert_eq!(label(State::Building, true).0, "stopped");
        assert_eq!(label(State::Failed, false).0, "failed");
        // Without colour, the word is written as it is.
        let (word, style) = label(State::Failed, false);
        let plain = style
            .clone()
            .force_styling(false)
            .apply_to(word)
            .to_string();
        assert_eq!(plain, "failed");
        assert_ne!(
            style.force_styling(true).apply_to(word).to_string(),
            "failed"
        );
    }

    #[test]
    fn elapsed_times() {
        let at = |s| format_elapsed(Duration::from_secs(s));
        assert_eq!(at(0), "0s");
        assert_eq!(at(59), "59s");
        assert_eq!(at(65), "1m05s");
        assert_eq!(at(3599), "59m59s");
        assert_eq!(at(3720), "1h02m");
    }

    #[test]
    fn the_clock_runs_from_the_first_start_and_freezes_at_the_end() {
        let mut clock = Clock::default();
        assert_eq!(clock.shown(), None);
        clock.run();
        std::thread::sleep(Duration::from_millis(20));
        clock.stop();
        let frozen = clock.shown().unwrap();
        assert!(frozen >= Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(clock.shown(), Some(frozen));
        // The end of the run stops every clock again: a frozen one keeps its time.
        clock.stop();
        assert_eq!(clock.shown(), Some(frozen));
        clock.run();
        assert!(clock.shown().unwrap() >= Duration::from_millis(40));
    }
}
