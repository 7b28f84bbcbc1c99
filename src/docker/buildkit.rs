//! A BuildKit build with a session of ecrship's own: `POST /session` upgraded to h2c on one
//! connection, `POST /build?version=2&session=<id>` on another.

use std::collections::HashMap;
use std::pin::{Pin, pin};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use http::{Request, StatusCode};
use http_body_util::Either;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper::upgrade::Upgraded;

use super::build::{BuildLog, JsonLines, Outcome, build_options, parse_message};
use super::endpoint::{Endpoint, drive, error_answer};
use super::session::{self, Files, Local, RegistryLogin, SecretStore};
use super::{BuildContext, BuildRequest, CALL_TIMEOUT, Daemon, STREAM_TIMEOUT, plural, quoted};
use crate::text::error_chain;

impl Daemon {
    /// A BuildKit build with a session of its own: `POST /session` on one connection, then
    /// `POST /build?session=<id>` on another, both held by this future. The session serves
    /// the synced folders (when the context is [`BuildContext::Synced`]), `req.secrets`, and
    /// `req.credentials` for their registry.
    pub(super) async fn run_buildkit(
        &self,
        endpoint: &Endpoint,
        req: &BuildRequest,
        context: BuildContext,
        log: &mut BuildLog<'_>,
    ) -> Result<String, String> {
        let id = session::new_id();
        let (body, locals, shared_key) = match context {
            BuildContext::Tar(tar) => (Some(tar), HashMap::new(), id.clone()),
            BuildContext::Synced(synced) => {
                let key = session::shared_key(&synced.root);
                (None, locals(synced), key)
            }
        };
        let synced = body.is_none();
        let services = session::Services {
            files: Arc::new(Files::new(locals)),
            secrets: Arc::new(SecretStore::new(&req.secrets)),
            login: RegistryLogin(req.credentials.clone()),
        };
        let (files, store) = (Arc::clone(&services.files), Arc::clone(&services.secrets));
        let name = req.tags.first().map_or("ecrship", String::as_str);
        let upgraded = self.open_session(endpoint, &id, name, &shared_key).await?;
        tracing::debug!(session = %id, synced, secrets = req.secrets.len(), "BuildKit session open");
        let result = {
            let mut build = pin!(self.post_build(endpoint, req, &id, body, log));
            let mut serve = pin!(session::serve(upgraded, services));
            tokio::select! {
                result = &mut build => result,
                ended = &mut serve => {
                    // The build may still need no session at all: let it finish, and say why
                    // a secret or a file could not be read if it fails.
                    let why = match ended {
                        Ok(()) => "the daemon closed the BuildKit session".to_string(),
                        Err(e) => format!("the BuildKit session failed: {}", error_chain(&e)),
                    };
                    tracing::debug!(session = %id, "{why}");
                    build.await.map_err(|message| format!("{message} ({why})"))
                }
            }
        };
        // A file that could not be sent is the real cause of the daemon's "error from sender".
        let result = match (result, files.failure()) {
            (Err(_), Some(cause)) => Err(format!("the build context could not be sent: {cause}")),
            (result, _) => result,
        };
        let missing = store.missing();
        if missing.is_empty() {
            return result;
        }
        let note = format!(
            "the Dockerfile mounts secret{} {} that ecrship was not given; add {} to [image.secrets]",
            plural(missing.len()),
            quoted(&missing),
            if missing.len() == 1 { "it" } else { "them" }
        );
        match result {
            Ok(id) => {
                log.emit(&format!(
                    "WARNING: {note}; the step ran without the file in /run/secrets"
                ));
                Ok(id)
            }
            Err(message) => Err(format!("{message}\n  hint: {note}")),
        }
    }

    /// Opens a BuildKit session on a connection of its own: `POST /session` with `Upgrade: h2c`,
    /// answered `101 Switching Protocols`.
    async fn open_session(
        &self,
        endpoint: &Endpoint,
        id: &str,
        name: &str,
        shared_key: &str,
    ) -> Result<Upgraded, String> {
        let failed = |cause: String| format!("cannot open a BuildKit session: {cause}");
        let mut request = Request::post(format!("/v{}/session", self.api))
            .header(HOST, endpoint.host())
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "h2c");
        for (header, value) in session::headers(id, name, shared_key) {
            request = request.header(header, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed(e.to_string()))?;
        let (mut sender, conn) = endpoint.open().await.map_err(&failed)?;
        let upgrade = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| error_chain(&e))?;
            if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                return Err(error_answer(response).await);
            }
            hyper::upgrade::on(response)
                .await
                .map_err(|e| error_chain(&e))
        };
        let upgraded = tokio::time::timeout(CALL_TIMEOUT, drive(conn.with_upgrades(), upgrade))
            .await
            .map_err(|_| "the Docker daemon did not answer in time".to_string())
            .and_then(|upgraded| upgraded);
        upgraded.map_err(failed)
    }

    /// `POST /build?version=2&session=<id>&...` with `tar` as the streamed body, or with none
    /// and `remote=client-session` when the files come through the session; renders the
    /// answer's messages into `log` and returns the image id.
    async fn post_build(
        &self,
        endpoint: &Endpoint,
        req: &BuildRequest,
        session: &str,
        tar: Option<TarStream>,
        log: &mut BuildLog<'_>,
    ) -> Result<String, String> {
        let options = build_options(req, Some(session.to_string()), tar.is_none());
        let query = serde_urlencoded::to_string(&options).map_err(|e| e.to_string())?;
        let body = match tar {
            Some(tar) => Either::Left(StreamBody::new(tar.map_ok(Frame::data))),
            None => Either::Right(Empty::<Bytes>::new()),
        };
        let request = Request::post(format!("/v{}/build?{query}", self.api))
            .header(HOST, endpoint.host())
            .header(CONTENT_TYPE, "application/x-tar")
            .body(body)
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = endpoint.open().await?;
        let work = async {
            let response = tokio::time::timeout(STREAM_TIMEOUT, sender.send_request(request))
                .await
                .map_err(|_| "the Docker daemon did not answer in time".to_string())?
                .map_err(|e| error_chain(&e))?;
            if !response.status().is_success() {
                return Err(error_answer(response).await);
            }
            let mut body = response.into_body();
            let mut lines = JsonLines::default();
            let mut outcome = Outcome::default();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| error_chain(&e))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                for line in lines.push(&data) {
                    outcome.take(parse_message(&line)?, log)?;
                }
            }
            if let Some(line) = lines.finish() {
                outcome.take(parse_message(&line)?, log)?;
            }
            Ok(outcome)
        };
        drive(conn, work).await?.image_id(self).await
    }
}

type TarStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// The folders a synced build serves: `context`, and `dockerfile` (the Dockerfile's folder),
/// the names the Dockerfile frontend asks for (buildkit `dockerui`: `DefaultLocalNameContext`,
/// `DefaultLocalNameDockerfile`).
fn locals(synced: crate::context::SyncedContext) -> HashMap<String, Local> {
    let dockerfile = Local {
        root: synced.dockerfile_dir.clone(),
        shown: synced.dockerfile_dir,
        leave_out: Vec::new(),
        snapshot: None,
    };
    let context = Local {
        root: synced.root,
        shown: synced.shown_root,
        leave_out: synced.leave_out,
        snapshot: synced.snapshot,
    };
    HashMap::from([
        ("context".to_owned(), context),
        ("dockerfile".to_owned(), dockerfile),
    ])
}
