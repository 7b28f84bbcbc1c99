//! ecrship: build the images of an ECS task, push them to Amazon ECR and write the deploy artifacts.
//!
//! Data flows one way: config → tag → plan → build → push → artifacts. The modules, by layer,
//! each importing only from the layers below it (ARCHITECTURE.md draws the map):

// The command line and the commands.
pub mod cli;
pub mod commands;

// A run: its steps, and what it shows.
pub mod output;
pub mod pipeline;
pub mod view;

// The edges: the Docker Engine API, the registry's API, AWS, git and S3 for the source zip.
pub mod aws;
pub mod docker;
pub mod registry;
pub mod source;

// What a run is made of, without I/O (but for reading the project's files).
pub mod artifacts;
pub mod cache_mount;
pub mod config;
pub mod context;
pub mod deploy;
pub mod dockerfile;
pub mod inputs;
pub mod plan;
pub mod policy;
pub mod tag;

// The bottom: names, secrets, retries, the runtime, exit codes and text.
pub mod exit;
pub mod order;
pub mod path;
pub mod reference;
pub mod retry;
pub mod runtime;
pub mod secret;
pub mod text;

// The error of a run, over every layer's own.
pub mod error;

use cli::Cli;
pub use error::Error;
use output::Printer;

/// The version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("ECRSHIP_COMMIT"), ")");

/// Runs one command line: logging as the flags say, then the command.
pub fn run(cli: Cli) -> Result<(), Error> {
    let printer = Printer::new(&cli.global);
    printer.init_logging();
    commands::execute(cli, &printer)
}

/// Prints the error once, on stderr, and returns the exit code.
pub fn report(error: &Error) -> u8 {
    use exit::Exit as _;
    output::print_error(error);
    error.exit().code()
}

/// An environment for unit tests: the given variables and nothing else.
#[cfg(test)]
pub(crate) mod test_env {
    pub fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }
}
