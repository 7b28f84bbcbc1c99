//! `ecrship plan`: what would be built and pushed, and the artifacts a run would write; from the
//! config, the tag, the registry and the Dockerfiles alone (no daemon, no AWS): what each
//! Dockerfile names is shown as it would be pulled, through `[mirror]` where one applies.

use crate::cli::Global;
use crate::error::Error;
use crate::output::Printer;
use crate::plan::PlanReport;

pub fn run(global: &Global, images: &[String], printer: &Printer) -> Result<(), Error> {
    let (_, plan) = super::load_plan(global, images)?;
    printer.result(&PlanReport::new(&plan).with_references(&global.directory))
}
