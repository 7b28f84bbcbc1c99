//! The deploy preflight of `push`, `release` and `manifest`: with `[deploy]`, the planned
//! images must fit the ECS service's task definition (the rules of [`crate::deploy`]) before
//! anything is built, pushed or written. `ecrship verify` runs the same check alone.

use aws_config::SdkConfig;

use crate::config::Config;
use crate::deploy::{self, Candidate, DeployError};
use crate::error::Error;
use crate::plan::Plan;

/// With `[deploy]`, checks that the planned images fit the ECS service; a mismatch is an error
/// (exit 1) before anything is built, pushed or written. Without `[deploy]`, does nothing.
pub async fn before_push(aws: &SdkConfig, config: &Config, plan: &Plan) -> Result<(), Error> {
    let Some(target) = &config.deploy else {
        return Ok(());
    };
    let deployed = crate::aws::ecs::deployed(aws, target).await?;
    let images: Vec<Candidate> = plan
        .deployed()
        .map(|image| Candidate {
            name: image.name.clone(),
            platforms: Some(deploy::platforms_of(
                image.platform.as_ref(),
                &image.platforms,
            )),
        })
        .collect();
    // imageDetail.json is written only when its image is among those pushed.
    let image_detail = plan
        .image_detail
        .as_deref()
        .filter(|name| plan.deployed().any(|i| i.name == *name));
    let outcome = deploy::check(&deployed, &images, image_detail);
    for note in &outcome.notes {
        tracing::warn!("{note}");
    }
    if !outcome.findings.is_empty() {
        return Err(DeployError::Mismatch(outcome.findings).into());
    }
    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    tracing::info!(
        "deploy preflight: {} fit task definition `{}` ({}) of service `{}` in cluster `{}`",
        names.join(", "),
        deployed.task_definition.label(),
        deployed.task_definition.architecture(),
        deployed.service,
        deployed.cluster
    );
    Ok(())
}
