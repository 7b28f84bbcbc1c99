//! `ecrship plan`: what would be built and pushed, and the artifacts a run would write; from the
//! config, the tag and the registry alone (no daemon, no AWS).

use crate::cli::Global;
use crate::error::Error;
use crate::output::Printer;
use crate::plan::PlanReport;

pub fn run(global: &Global, images: &[String], printer: &Printer) -> Result<(), Error> {
    let (_, plan) = super::load_plan(global, images)?;
    printer.result(&PlanReport::new(&plan))
}
