//! `ecrship verify`: the deploy check of [`crate::deploy`] alone, against the artifacts already
//! written at the `[artifacts]` path. The facts come from ECS ([`crate::aws::ecs`]), the images'
//! platforms from the config; an entry the config does not describe is checked by name.

use std::path::Path;

use serde::Deserialize;

use crate::cli::Global;
use crate::config::Config;
use crate::deploy::{self, Candidate, DeployError, VerifyReport};
use crate::error::Error;

/// `ecrship verify`: the written `imagedefinitions.json` (and `imageDetail.json` when configured)
/// against the ECS service of `[deploy]`.
pub fn run(global: &Global) -> Result<VerifyReport, Error> {
    let root = global.directory.as_path();
    let config = &Config::load(root, global.config.as_deref())?;
    let target = config
        .deploy
        .as_ref()
        .ok_or_else(|| DeployError::NotConfigured {
            origin: config.origin.to_string(),
        })?;
    let file = &config.imagedefinitions;
    let (bytes, entries) = read_image_definitions(&root.join(file), file, config)?;
    let image_detail = match &config.image_detail {
        Some(name) => {
            let detail = Path::new(file).with_file_name("imageDetail.json");
            read_image_detail(&root.join(&detail), &detail.to_string_lossy())?;
            Some(name.as_str())
        }
        None => None,
    };
    let images: Vec<Candidate> = entries
        .iter()
        .map(|entry| Candidate {
            name: entry.name.clone(),
            platforms: config
                .images
                .iter()
                .find(|i| i.name == entry.name)
                .map(|i| deploy::platforms_of(i.platform.as_ref(), &i.platforms)),
        })
        .collect();

    let deployed = crate::runtime::block_on(async {
        let aws = crate::aws::load().await?;
        Ok::<_, Error>(crate::aws::ecs::deployed(&aws, target).await?)
    })?;
    let mut findings = deploy::check_file(file, bytes, entries.len());
    let outcome = deploy::check(&deployed, &images, image_detail);
    findings.extend(outcome.findings);
    if !findings.is_empty() {
        return Err(DeployError::Mismatch(findings).into());
    }
    Ok(VerifyReport::new(&deployed, &images, file, outcome.notes))
}

/// One entry of `imagedefinitions.json`, as CodePipeline's Amazon ECS action reads it.
#[derive(Debug, Deserialize)]
struct ImageDefinition {
    name: String,
    #[serde(rename = "imageUri")]
    #[allow(dead_code)] // read so that an entry without it is refused
    image_uri: String,
}

/// `imageDetail.json`, as the Amazon ECS (Blue/Green) action reads it.
#[derive(Debug, Deserialize)]
struct ImageDetail {
    #[serde(rename = "ImageURI")]
    #[allow(dead_code)] // read so that a file without it is refused
    image_uri: String,
}

fn read_image_definitions(
    path: &Path,
    file: &str,
    config: &Config,
) -> Result<(u64, Vec<ImageDefinition>), DeployError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        DeployError::Artifact(format!(
            "cannot read `{file}` ([artifacts] imagedefinitions of {}): {}; `ecrship push` writes it",
            config.origin,
            crate::text::error_chain(&e)
        ))
    })?;
    let entries = serde_json::from_str(&text).map_err(|e| {
        DeployError::Artifact(format!(
            "`{file}` is not an image definitions file (a JSON array of {{\"name\", \"imageUri\"}} objects): {e}"
        ))
    })?;
    Ok((text.len() as u64, entries))
}

fn read_image_detail(path: &Path, file: &str) -> Result<(), DeployError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        DeployError::Artifact(format!(
            "cannot read `{file}` (written for [artifacts] image_detail): {}",
            crate::text::error_chain(&e)
        ))
    })?;
    serde_json::from_str::<ImageDetail>(&text).map_err(|e| {
        DeployError::Artifact(format!(
            "`{file}` is not an image detail file (a JSON object with \"ImageURI\"): {e}"
        ))
    })?;
    Ok(())
}
