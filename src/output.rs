//! Where things are printed: results on stdout (text or JSON), logs and errors on stderr.

use std::fmt::Display;
use std::io::{IsTerminal, Write};

use serde::Serialize;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::{Color, Global, Output};
use crate::error::Error;

/// Prints results in the chosen format and sets up logging.
#[derive(Debug, Clone)]
pub struct Printer {
    output: Output,
    color: bool,
    level: Level,
}

impl Printer {
    pub fn new(global: &Global) -> Printer {
        let verbose = match global.verbose {
            0 => std::env::var("ECRSHIP_VERBOSE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            n => n,
        };
        let level = match (global.quiet, verbose) {
            (true, _) => Level::ERROR,
            (false, 0) => Level::INFO,
            (false, 1) => Level::DEBUG,
            (false, _) => Level::TRACE,
        };
        Printer {
            output: global.output,
            color: crate::view::use_color(global.color, std::io::stderr().is_terminal()),
            level,
        }
    }

    /// Whether `-v` (or more) was given: the details of each step go to stderr.
    pub fn verbose(&self) -> bool {
        self.level >= Level::DEBUG
    }

    /// Whether the user asked for JSON results.
    pub fn json(&self) -> bool {
        self.output == Output::Json
    }

    /// Logs go to stderr: progress at the default level, details with `-v`, everything with `-vv`;
    /// `RUST_LOG` overrides the level given by `-v`/`-q`.
    pub fn init_logging(&self) {
        let mut filter = EnvFilter::try_from_env("RUST_LOG")
            .unwrap_or_else(|_| EnvFilter::new(format!("warn,ecrship={}", self.level)));
        // Below info, these crates log request URLs and bodies, which carry build args and
        // tokens: they never go further, whatever RUST_LOG says.
        for quiet in [
            "bollard",
            "hyper",
            "hyper_util",
            "h2",
            "tonic",
            "aws_smithy_runtime",
            "aws_smithy_http",
            "aws_smithy_http_client",
            "aws_sigv4",
            "aws_config",
            "aws_runtime",
        ] {
            if let Ok(directive) = format!("{quiet}=info").parse() {
                filter = filter.add_directive(directive);
            }
        }
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(crate::view::Logs)
            .event_format(LineFormat { color: self.color })
            .try_init();
    }

    /// Prints one result on stdout as text or as one JSON document.
    pub fn result<T: Display + Serialize>(&self, value: &T) -> Result<(), Error> {
        let text = match self.output {
            Output::Text => value.to_string(),
            Output::Json => {
                let mut json = serde_json::to_string_pretty(value)
                    .map_err(|e| Error::Failed(format!("cannot render the result as JSON: {e}")))?;
                json.push('\n');
                json
            }
        };
        let text = crate::secret::scrub(&text);
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            // A closed pipe (`ecrship plan | head`) is the reader's choice, not a failure.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(Error::Failed(format!("cannot write to stdout: {e}")))
            }
            _ => Ok(()),
        }
    }
}

/// Prints the error of a run on stderr, once.
pub fn print_error(error: &Error) {
    let color = crate::view::use_color(
        match std::env::var("ECRSHIP_COLOR").as_deref() {
            Ok("always") => Color::Always,
            Ok("never") => Color::Never,
            _ => Color::Auto,
        },
        std::io::stderr().is_terminal(),
    );
    let prefix = if color {
        "\x1b[1;31merror\x1b[0m"
    } else {
        "error"
    };
    let message = error.to_string();
    let _ = writeln!(
        std::io::stderr().lock(),
        "{prefix}: {}",
        crate::secret::scrub(&message)
    );
}

/// One plain line per event: the message alone at info, with a level word otherwise.
struct LineFormat {
    color: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let (word, code) = match *event.metadata().level() {
            Level::ERROR => ("error: ", "1;31"),
            Level::WARN => ("warning: ", "1;33"),
            Level::INFO => ("", ""),
            Level::DEBUG => ("debug: ", "2"),
            Level::TRACE => ("trace: ", "2"),
        };
        if !word.is_empty() {
            if self.color {
                write!(writer, "\x1b[{code}m{word}\x1b[0m")?;
            } else {
                writer.write_str(word)?;
            }
        }
        // Fields are rendered into a buffer first so that secrets are scrubbed from every line.
        let mut line = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut line), event)?;
        writeln!(writer, "{}", crate::secret::scrub(&line))
    }
}
