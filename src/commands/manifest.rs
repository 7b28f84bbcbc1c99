//! `ecrship manifest`: the last job of a CodeBuild batch build. Joins each multi-platform
//! image's platforms into a manifest list, checks that the single-platform images are there,
//! and writes the artifacts; from the registry alone, with no daemon.

use crate::cli::{self, Global};
use crate::error::Error;
use crate::pipeline::{self, Steps, Summary};
use crate::{artifacts, aws};

use super::release::{Request, connect_registry, options, refuse_after_failed_build};
use super::{load_plan, preflight};

pub fn run(global: &Global, names: &[String], flags: &cli::PushFlags) -> Result<Summary, Error> {
    let (config, plan) = load_plan(global, names)?;
    if plan.only_platform.is_some() {
        return Err(Error::Usage(
            "`ecrship manifest` joins every platform: run it without --platform".into(),
        ));
    }
    refuse_after_failed_build()?;
    let root = global.directory.as_path();
    artifacts::check_writable(&root.join(&plan.imagedefinitions))?;
    crate::runtime::block_on(async {
        let aws = aws::load().await?;
        preflight::before_push(&aws, &config, &plan).await?;
        let request = Request {
            steps: Steps::Push,
            build: None,
            push: Some(flags),
            dry_run: false,
        };
        let (plan, target) = connect_registry(&aws, plan, &request).await?;
        let options = options(&config, &plan, &request);
        pipeline::list::manifest(root, &plan, &options, &target).await
    })
}
