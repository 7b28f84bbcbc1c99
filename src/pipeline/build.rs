//! Building one image on the daemon, then its cache stages.

use std::time::Instant;

use crate::context::ContextError;
use crate::docker::{BuildContext, BuildRequest, Daemon};
use crate::error::Error;
use crate::plan::{CacheImage, PlannedImage};
use crate::view::View;

use super::image_error;
use super::prepare::Context;

/// What one build produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub image_id: String,
    pub size: u64,
    pub seconds: f64,
    /// The cache stages built after the image, with their image ids.
    pub cache: Vec<(CacheImage, String)>,
}

/// Builds `request` from `context`, then each of `cache` (the same request with the stage as
/// its target); every line goes to `view` under `label`.
pub async fn build(
    daemon: &Daemon,
    image: &PlannedImage,
    label: &str,
    context: &Context,
    request: &BuildRequest,
    cache: &[CacheImage],
    view: &dyn View,
) -> Result<Built, Error> {
    let started = Instant::now();
    let local = request.tags.first().map_or("", String::as_str);
    view.line(
        label,
        &format!("building {local} from {}", image.dockerfile),
    );
    let image_id = once(daemon, image, context, request, &mut |line| {
        view.line(label, line)
    })
    .await?;
    let size = match daemon.inspect(&image_id).await {
        Ok(Some(info)) => info.size,
        _ => 0,
    };
    let seconds = started.elapsed().as_secs_f64();
    view.line(
        label,
        &format!(
            "built {local} ({}) in {seconds:.1}s",
            super::summary::short_id(&image_id)
        ),
    );
    let mut built = Built {
        image_id,
        size,
        seconds,
        cache: Vec::with_capacity(cache.len()),
    };
    for stage in cache {
        view.line(
            label,
            &format!(
                "building cache stage `{}` as {}",
                stage.stage, stage.local_name
            ),
        );
        let stage_request = BuildRequest {
            tags: vec![stage.local_name.clone()],
            target: Some(stage.stage.clone()),
            ..request.clone()
        };
        let id = once(daemon, image, context, &stage_request, &mut |line| {
            view.line(label, line)
        })
        .await?;
        built.cache.push((stage.clone(), id));
    }
    Ok(built)
}

/// One build, each line of its log to `on_line`; a context that could not be read is the error,
/// rather than the daemon's view of the upload that stopped.
pub(super) async fn once(
    daemon: &Daemon,
    image: &PlannedImage,
    context: &Context,
    request: &BuildRequest,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, Error> {
    match context {
        Context::Synced(synced) => daemon
            .build(request, BuildContext::Synced(synced.clone()), on_line)
            .await
            .map_err(|e| image_error(image, Error::Docker(e))),
        Context::Tar(prepared) => {
            let (body, walk) = prepared.clone().stream();
            let result = daemon
                .build(request, BuildContext::Tar(Box::pin(body)), on_line)
                .await;
            match walk.await {
                Ok(Err(ContextError::Cancelled)) | Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(image_error(image, e.into())),
                Err(e) => {
                    return Err(image_error(
                        image,
                        Error::Failed(format!("the context walker stopped: {e}")),
                    ));
                }
            }
            result.map_err(|e| image_error(image, Error::Docker(e)))
        }
    }
}
