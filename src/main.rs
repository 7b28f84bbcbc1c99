use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ecrship::cli::Cli::parse();
    match ecrship::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => ExitCode::from(ecrship::report(&error)),
    }
}
