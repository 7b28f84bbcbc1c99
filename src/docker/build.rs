//! `POST /build`: the request's query, the answer's JSON messages, and the build's log.

use std::collections::{HashMap, VecDeque};

use bollard::errors::Error as BollardError;
use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::connect::describe;
use super::progress::{BuildkitProgress, LineSplitter};
use super::{BuildContext, BuildRequest, Daemon, DockerError, session};
use crate::context::Builder;
use crate::reference::Reference;

/// How many lines of a build's log a [`DockerError::Build`] keeps.
const TAIL_LINES: usize = 20;

impl Daemon {
    /// Runs one build and returns the image id (`sha256:...`).
    ///
    /// `context` is a tar stream, sent as it is produced and never held whole, or folders the
    /// daemon syncs through the build's session. `on_line` receives each log line as it arrives, without any
    /// prefix: the classic builder's output, or BuildKit's progress rendered as plain lines. An
    /// error in the stream (the daemon answers 200 then reports `errorDetail`) is a
    /// [`DockerError::Build`] carrying the daemon's message and the last 20 log lines.
    ///
    /// `req.secrets` are served to BuildKit through a session of this build's own (see the
    /// module docs); the classic builder refuses them ([`DockerError::SecretsNeedBuildKit`]).
    /// A secret the Dockerfile mounts but `req` lacks fails the build when the mount is
    /// `required`, and is named in a warning line otherwise.
    ///
    /// Dropping the returned future cancels the build on the daemon (see the module docs).
    pub async fn build(
        &self,
        req: &BuildRequest,
        context: BuildContext,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, DockerError> {
        if req.builder == Builder::Classic && !req.secrets.is_empty() {
            let mut ids: Vec<String> = req.secrets.iter().map(|(id, _)| id.clone()).collect();
            ids.sort();
            ids.dedup();
            return Err(DockerError::SecretsNeedBuildKit { ids });
        }
        let mut log = BuildLog::new(on_line);
        let result = match (&self.endpoint, req.builder, context) {
            (Some(endpoint), Builder::BuildKit, context) => {
                self.run_buildkit(endpoint, req, context, &mut log).await
            }
            (None, Builder::BuildKit, _) if !req.secrets.is_empty() => Err(format!(
                "secret mounts need the daemon on a unix:// socket or plain tcp://, not {}",
                self.address
            )),
            (_, _, BuildContext::Tar(tar)) => self.run_build(req, tar, &mut log).await,
            (_, _, BuildContext::Synced(_)) => Err(format!(
                "a synced context needs BuildKit on a unix:// socket or plain tcp://, not {}",
                self.address
            )),
        };
        let id = match result {
            Ok(id) => id,
            Err(message) => {
                log.finish();
                return Err(DockerError::Build {
                    message,
                    tail: log.tail.into(),
                });
            }
        };
        log.finish();
        for reference in req.tags.iter().skip(1) {
            let target = Reference::parse(reference).map_err(|e| DockerError::Api {
                action: format!("tag {id}"),
                message: e.to_string(),
            })?;
            self.tag(&id, &target).await?;
        }
        Ok(id)
    }

    /// A build through bollard's `build_image`: the classic builder, or BuildKit where this
    /// module cannot reach the daemon itself.
    async fn run_build<S>(
        &self,
        req: &BuildRequest,
        context: S,
        log: &mut BuildLog<'_>,
    ) -> Result<String, String>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let session = (req.builder == Builder::BuildKit).then(session::new_id);
        let options = build_options(req, session, false);
        // `X-Registry-Config`: the push registry's credentials, for that registry alone, so
        // that the classic builder can pull a base pinned there (`FROM <registry>/...@sha256:`).
        let credentials = req.credentials.as_ref().map(|c| {
            HashMap::from([(
                c.server.clone(),
                bollard::auth::DockerCredentials {
                    username: Some(c.username.clone()),
                    password: Some(c.password.clone()),
                    serveraddress: Some(c.server.clone()),
                    ..Default::default()
                },
            )])
        });
        let mut stream = self.streaming.build_image(
            options,
            credentials,
            Some(bollard::body_try_stream(context)),
        );
        let mut outcome = Outcome::default();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => outcome.take(info, log)?,
                Err(BollardError::DockerStreamError { error }) => return Err(error),
                Err(e) => return Err(describe(&e)),
            }
        }
        outcome.image_id(self).await
    }
}

/// The query of `POST /build` for `req`; `session` only for BuildKit, and `synced` when the
/// files come through it (`remote=client-session`). Secrets are not in it.
pub(super) fn build_options(
    req: &BuildRequest,
    session: Option<String>,
    synced: bool,
) -> BuildImageOptions {
    let pairs = |v: &[(String, String)]| -> Option<HashMap<String, String>> {
        (!v.is_empty()).then(|| v.iter().cloned().collect())
    };
    let buildkit = req.builder == Builder::BuildKit;
    BuildImageOptions {
        dockerfile: req.dockerfile.clone(),
        t: req.tags.first().cloned(),
        nocache: req.no_cache,
        pull: req.pull.then(|| "1".to_string()),
        buildargs: pairs(&req.build_args),
        labels: pairs(&req.labels),
        platform: req
            .platform
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        target: req.target.clone().unwrap_or_default(),
        rm: true,
        forcerm: true,
        version: if buildkit {
            BuilderVersion::BuilderBuildKit
        } else {
            BuilderVersion::BuilderV1
        },
        session: session.filter(|_| buildkit),
        remote: (buildkit && synced).then(|| "client-session".to_string()),
        cachefrom: (!req.cache_from.is_empty()).then(|| req.cache_from.clone()),
        ..Default::default()
    }
}

/// What a build's messages said so far: the image id, or the short id of an older daemon.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    image_id: Option<String>,
    short_id: Option<String>,
}

impl Outcome {
    /// Logs one message of the build's answer; an error in it is the build's error.
    pub(super) fn take(&mut self, info: BuildInfo, log: &mut BuildLog<'_>) -> Result<(), String> {
        if let Some(detail) = &info.error_detail {
            return Err(match &detail.message {
                Some(message) => message.clone(),
                None => format!("the daemon reported error code {:?}", detail.code),
            });
        }
        if let Some(text) = &info.stream {
            for line in log.classic.push(text) {
                if let Some(id) = line.strip_prefix("Successfully built ") {
                    self.short_id = Some(id.trim().to_string());
                }
                log.emit(&line);
            }
        }
        if let Some(status) = status_line(&info) {
            log.emit(&status);
        }
        match info.aux {
            Some(BuildInfoAux::BuildKit(status)) => {
                for line in log.buildkit.render(&status) {
                    log.emit(&line);
                }
            }
            Some(BuildInfoAux::Default(image)) => {
                if let Some(id) = image.id {
                    self.image_id = Some(id);
                }
            }
            None => {}
        }
        Ok(())
    }

    /// The full image id; older daemons print only `Successfully built <short id>`, which is
    /// resolved through `daemon`.
    pub(super) async fn image_id(self, daemon: &Daemon) -> Result<String, String> {
        if let Some(id) = self.image_id {
            return Ok(id);
        }
        let resolved = match self.short_id {
            Some(short) => daemon.inspect(&short).await.ok().flatten(),
            None => None,
        };
        resolved
            .map(|info| info.id)
            .ok_or_else(|| "the daemon ended the build without reporting an image id".to_string())
    }
}

/// One JSON message of a build's answer.
pub(super) fn parse_message(line: &[u8]) -> Result<BuildInfo, String> {
    serde_json::from_slice(line).map_err(|e| {
        let text = String::from_utf8_lossy(&line[..line.len().min(200)]);
        format!("cannot read the daemon's build output ({e}): {text}")
    })
}

/// Splits a byte stream into its non-blank lines (JSON messages, one per line).
#[derive(Debug, Default)]
pub(super) struct JsonLines {
    partial: Vec<u8>,
}

impl JsonLines {
    pub(super) fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        self.partial.extend_from_slice(data);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        complete
            .split(|&b| b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|line| !line.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    pub(super) fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.partial);
        let rest = rest.trim_ascii();
        (!rest.is_empty()).then(|| rest.to_vec())
    }
}

/// The status line of a classic build message worth showing (pulls of base images), skipping
/// byte-count progress.
fn status_line(info: &BuildInfo) -> Option<String> {
    let status = info.status.as_deref()?;
    let progress = info
        .progress_detail
        .as_ref()
        .is_some_and(|p| p.current.is_some() || p.total.is_some());
    if progress {
        return None;
    }
    Some(match info.id.as_deref() {
        Some(id) if !id.is_empty() => format!("{id}: {status}"),
        _ => status.to_string(),
    })
}

/// The lines of one build: passes each to the caller and keeps the last [`TAIL_LINES`].
pub(super) struct BuildLog<'a> {
    on_line: &'a mut (dyn FnMut(&str) + Send),
    tail: VecDeque<String>,
    classic: LineSplitter,
    buildkit: BuildkitProgress,
}

impl<'a> BuildLog<'a> {
    pub(super) fn new(on_line: &'a mut (dyn FnMut(&str) + Send)) -> Self {
        BuildLog {
            on_line,
            tail: VecDeque::with_capacity(TAIL_LINES),
            classic: LineSplitter::default(),
            buildkit: BuildkitProgress::default(),
        }
    }

    pub(super) fn emit(&mut self, line: &str) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
        (self.on_line)(line);
    }

    /// Emits what is still buffered: a last line without a newline, unfinished vertex output.
    pub(super) fn finish(&mut self) {
        let mut rest: Vec<String> = self.classic.finish().into_iter().collect();
        rest.extend(self.buildkit.finish());
        for line in rest {
            self.emit(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn build_options_follow_the_request() {
        let req = BuildRequest {
            tags: vec!["app:v1".into(), "app:latest".into()],
            dockerfile: "docker/Dockerfile".into(),
            build_args: vec![("A".into(), "1".into()), ("A".into(), "2".into())],
            target: Some("prod".into()),
            pull: true,
            ..Default::default()
        };
        let o = build_options(&req, Some("ecrship-1".into()), false);
        assert_eq!(o.t.as_deref(), Some("app:v1"));
        assert_eq!(o.buildargs.as_ref().unwrap()["A"], "2");
        assert_eq!(o.target, "prod");
        assert_eq!(o.pull.as_deref(), Some("1"));
        assert_eq!(o.version, BuilderVersion::BuilderBuildKit);
        assert_eq!(o.session.as_deref(), Some("ecrship-1"));
        let query = serde_urlencoded::to_string(&o).unwrap();
        for part in [
            "dockerfile=docker%2FDockerfile",
            "t=app%3Av1",
            "buildargs=%7B%22A%22%3A%222%22%7D",
            "version=2",
            "session=ecrship-1",
            "target=prod",
        ] {
            assert!(query.split('&').any(|p| p == part), "{part} in {query}");
        }
        let classic = build_options(
            &BuildRequest {
                builder: Builder::Classic,
                ..req
            },
            Some("ecrship-2".into()),
            false,
        );
        assert_eq!(classic.version, BuilderVersion::BuilderV1);
        assert_eq!(classic.session, None);
    }

    #[test]
    fn secrets_stay_out_of_the_build_query() {
        let req = BuildRequest {
            tags: vec!["app:v1".into()],
            secrets: vec![("skb".into(), Secret::new("query-secret-value".into()))],
            ..Default::default()
        };
        let query =
            serde_urlencoded::to_string(build_options(&req, Some("s".into()), true)).unwrap();
        assert!(
            !query.contains("query-secret-value") && !query.contains("skb"),
            "{query}"
        );
        assert!(!format!("{req:?}").contains("query-secret-value"));
    }

    #[test]
    fn json_messages_are_split_into_lines() {
        let mut lines = JsonLines::default();
        assert!(lines.push(b"{\"stream\":").is_empty());
        assert_eq!(
            lines.push(b"\"a\"}\r\n\r\n{\"aux\":1}\n{\"id\""),
            vec![b"{\"stream\":\"a\"}".to_vec(), b"{\"aux\":1}".to_vec()]
        );
        assert_eq!(lines.push(b":2}").len(), 0);
        assert_eq!(lines.finish(), Some(b"{\"id\":2}".to_vec()));
        assert_eq!(lines.finish(), None);
        let info = parse_message(br#"{"errorDetail":{"message":"boom"},"error":"boom"}"#).unwrap();
        assert_eq!(info.error_detail.unwrap().message.as_deref(), Some("boom"));
        assert!(parse_message(b"not json").unwrap_err().contains("not json"));
    }
}
