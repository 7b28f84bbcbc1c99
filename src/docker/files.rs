//! Files out of an image, images removed, and what the build cache holds: what keeping cache
//! mounts needs of the daemon beyond builds and pushes.

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    DownloadFromContainerOptions, RemoveContainerOptions, RemoveImageOptions,
};
use bytes::Bytes;
use futures_util::StreamExt;
use http::Request;
use http::header::HOST;
use http_body_util::{BodyExt, Empty, Limited};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::connect::{api_error, describe};
use super::endpoint::{drive, error_answer};
use super::{CALL_TIMEOUT, Daemon, DockerError};
use crate::text::error_chain;

impl Daemon {
    /// Writes to `to` the tar of `path` in `image` (`GET /containers/{id}/archive` of a
    /// container created for it, never started, and removed after); returns its bytes.
    pub async fn copy_from_image(
        &self,
        image: &str,
        path: &str,
        to: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<u64, DockerError> {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec!["true".to_owned()]),
            network_disabled: Some(true),
            ..ContainerCreateBody::default()
        };
        let created = self
            .docker
            .create_container(None, body)
            .await
            .map_err(|e| api_error(format!("create a container of {image}"), &e))?;
        let copied = self.copy_out(&created.id, path, to).await;
        let removed = self
            .docker
            .remove_container(
                &created.id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..RemoveContainerOptions::default()
                }),
            )
            .await;
        if let Err(e) = removed {
            tracing::debug!("removing the container {}: {}", created.id, describe(&e));
        }
        copied
    }

    async fn copy_out(
        &self,
        container: &str,
        path: &str,
        to: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<u64, DockerError> {
        let options = DownloadFromContainerOptions {
            path: path.to_owned(),
        };
        let mut stream = self
            .streaming
            .download_from_container(container, Some(options));
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| api_error(format!("copy {path} out of {container}"), &e))?;
            bytes += chunk.len() as u64;
            to.write_all(&chunk).await.map_err(|e| DockerError::Api {
                action: format!("copy {path} out of {container}"),
                message: e.to_string(),
            })?;
        }
        to.shutdown().await.map_err(|e| DockerError::Api {
            action: format!("copy {path} out of {container}"),
            message: e.to_string(),
        })?;
        Ok(bytes)
    }

    /// Removes the image `name` (an id or reference), as `docker rmi -f` does; one that is gone
    /// already is no error.
    pub async fn remove_image(&self, name: &str) -> Result<(), DockerError> {
        let options = RemoveImageOptions {
            force: true,
            ..RemoveImageOptions::default()
        };
        match self.docker.remove_image(name, Some(options), None).await {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(api_error(format!("remove the image {name}"), &e)),
        }
    }

    /// The descriptions of the cache mounts in the daemon's build cache (`GET /system/df`, its
    /// `BuildCache` records of type `exec.cachemount`, as API 1.41 reports them). Empty when
    /// the daemon is reached over TLS or ssh, where ecrship makes no raw requests.
    pub async fn cache_mount_records(&self) -> Result<Vec<String>, DockerError> {
        let Some(endpoint) = &self.endpoint else {
            return Ok(Vec::new());
        };
        let failed = |message: String| DockerError::Api {
            action: "system df".into(),
            message,
        };
        let request = Request::get("/v1.41/system/df")
            .header(HOST, endpoint.host())
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed(e.to_string()))?;
        let (mut sender, conn) = endpoint.open().await.map_err(&failed)?;
        let answer = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| error_chain(&e))?;
            if !response.status().is_success() {
                return Err(error_answer(response).await);
            }
            let body = Limited::new(response.into_body(), 64 << 20)
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            serde_json::from_slice::<serde_json::Value>(&body.to_bytes()).map_err(|e| e.to_string())
        };
        let json = tokio::time::timeout(CALL_TIMEOUT, drive(conn, answer))
            .await
            .map_err(|_| failed("the Docker daemon did not answer in time".into()))?
            .map_err(failed)?;
        Ok(json["BuildCache"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|record| record["Type"] == "exec.cachemount")
            .filter_map(|record| record["Description"].as_str().map(str::to_owned))
            .collect())
    }
}
