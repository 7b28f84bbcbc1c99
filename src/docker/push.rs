//! `POST /images/{name}/push`, with retries for transient failures.

use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::PushImageOptions;
use futures_util::StreamExt;

use super::connect::describe;
use super::{Credentials, Daemon, DockerError};
use crate::reference::Reference;

impl Daemon {
    /// Pushes `target` and returns the digest the registry stored (`sha256:...`).
    ///
    /// Failures inside the push stream are classified by [`is_transient`]: network errors and
    /// registry 5xx are retried (4 attempts, 0.5 s, 1 s, 2 s apart), auth and naming errors are
    /// not. `on_line` receives the progress worth reading (not every layer's byte count);
    /// `on_bytes` how many bytes of the image's layers have been pushed, out of how many (see
    /// `PushedBytes`), as the daemon reports them.
    pub async fn push(
        &self,
        target: &Reference,
        creds: &Credentials,
        on_line: &mut (dyn FnMut(&str) + Send),
        on_bytes: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<String, DockerError> {
        let (repo, tag) = (target.name(), target.identifier());
        let (repo, tag) = (repo.as_str(), tag);
        let image = target.to_string();
        let what = format!("push of {image}");
        // The attempts share the callbacks, one at a time.
        let callbacks = tokio::sync::Mutex::new((on_line, on_bytes));
        let pushed = crate::retry::run(
            crate::retry::Policy {
                attempt_timeout: None,
            },
            &what,
            || async {
                let mut callbacks = callbacks.lock().await;
                let (on_line, on_bytes) = &mut *callbacks;
                self.push_once(repo, tag, creds, *on_line, *on_bytes)
                    .await
                    .map_err(|(message, retried)| Failed { message, retried })
            },
            // dockerd retries each layer upload itself (five times, up to 20 s apart): once it
            // has, another round of ours would only multiply the wait.
            |failed| is_transient(&failed.message) && !failed.retried,
            &mut |retrying| {
                // In the image's log, which the view prints; once.
                if let Ok(mut callbacks) = callbacks.try_lock() {
                    (callbacks.0)(&format!(
                        "push failed: {}; retrying in {:.1}s (attempt {} of {})",
                        retrying.cause,
                        retrying.delay.as_secs_f32(),
                        retrying.attempt,
                        crate::retry::ATTEMPTS
                    ));
                }
            },
        )
        .await;
        pushed.map_err(|gave_up| DockerError::Push {
            image,
            registry: target.registry().to_owned(),
            message: gave_up.last.to_string(),
            transient: gave_up.transient,
            attempts: gave_up.attempts,
        })
    }

    /// One push attempt; the error is the daemon's or the transport's message, and whether the
    /// daemon had already retried an upload (`Retrying in N seconds`) before giving up.
    async fn push_once(
        &self,
        repo: &str,
        tag: &str,
        creds: &Credentials,
        on_line: &mut (dyn FnMut(&str) + Send),
        on_bytes: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<String, (String, bool)> {
        let options = PushImageOptions {
            tag: Some(tag.to_string()),
            platform: None,
        };
        let auth = DockerCredentials {
            username: Some(creds.username.clone()),
            password: Some(creds.password.clone()),
            serveraddress: Some(creds.server.clone()),
            ..Default::default()
        };
        let mut stream = self.streaming.push_image(repo, Some(options), Some(auth));
        let mut digest = None;
        let (mut pushed, mut present) = (0, 0);
        let mut retried = false;
        let mut bytes = PushedBytes::default();
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(BollardError::DockerStreamError { error }) => return Err((error, retried)),
                Err(e) => return Err((describe(&e), retried)),
            };
            if let Some(detail) = &info.error_detail {
                let message = format!("the daemon reported error code {:?}", detail.code);
                return Err((message, retried));
            }
            if let Some(progress) = &info.progress_detail
                && bytes.update(progress.current, progress.total)
            {
                on_bytes(bytes.done(), bytes.total());
            }
            let Some(status) = info.status.as_deref() else {
                continue;
            };
            match status {
                "Preparing" | "Waiting" | "Pushing" => {}
                "Pushed" => pushed += 1,
                "Layer already exists" => present += 1,
                s if s.starts_with("Mounted from") => present += 1,
                s if s.starts_with("Retrying in") => {
                    retried = true;
                    on_line(s);
                }
                s => {
                    if let Some(d) = parse_digest(s) {
                        on_line(&format!(
                            "layers: {pushed} pushed, {present} already in the registry"
                        ));
                        digest = Some(d);
                    }
                    on_line(s);
                }
            }
        }
        digest.ok_or_else(|| {
            let message = "the push ended without the registry reporting a digest".to_string();
            (message, retried)
        })
    }
}

/// A failed push attempt: the daemon's or the transport's message, and whether the daemon had
/// already retried an upload before giving up.
#[derive(Debug)]
struct Failed {
    message: String,
    retried: bool,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The bytes of an image's push, summed over its layers from the daemon's progress messages.
///
/// Each message of `POST /images/{name}/push` carries one layer's `progressDetail`
/// (`current` of `total` bytes; moby's `jsonmessage.JSONProgress`, sent by
/// `distribution/push_v2.go` while it uploads a blob). The layer id of those messages is not
/// decoded by bollard (`PushImageInfo` has no `id`), so layers are told apart by their size:
/// two layers of the very same size count once, which can only make the total smaller.
#[derive(Debug, Default)]
pub struct PushedBytes {
    /// Bytes sent so far, by layer size.
    layers: std::collections::BTreeMap<u64, u64>,
}

impl PushedBytes {
    /// Takes one message's `current` and `total`; returns whether the sums changed.
    pub fn update(&mut self, current: Option<i64>, total: Option<i64>) -> bool {
        let (Some(current), Some(total)) = (current, total) else {
            return false;
        };
        let (Ok(current), Ok(total)) = (u64::try_from(current), u64::try_from(total)) else {
            return false;
        };
        if total == 0 {
            return false;
        }
        let sent = self.layers.entry(total).or_default();
        let current = current.min(total);
        if current <= *sent && *sent != 0 {
            return false;
        }
        *sent = current;
        true
    }

    pub fn done(&self) -> u64 {
        self.layers.values().sum()
    }

    pub fn total(&self) -> u64 {
        self.layers.keys().sum()
    }
}

/// The digest in the push's final status line, `<tag>: digest: sha256:<64 hex> size: <n>`.
pub fn parse_digest(status: &str) -> Option<String> {
    let (_, rest) = status.split_once("digest: ")?;
    let digest = rest.split_whitespace().next()?;
    let hex = digest.strip_prefix("sha256:")?;
    let valid = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then(|| digest.to_string())
}

/// Whether a push failure is worth retrying: network trouble and registry 5xx are; auth,
/// naming, manifest and tag-immutability errors are not, and neither is anything unknown.
pub fn is_transient(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    const PERMANENT: &[&str] = &[
        "unauthorized",
        "authentication required",
        "denied",
        "no basic auth credentials",
        "name unknown",
        "name_unknown",
        "name invalid",
        "invalid reference",
        "repository does not exist",
        "does not exist locally",
        "no such image",
        "manifest invalid",
        "manifest_invalid",
        "tag invalid",
        "immutable",
        "forbidden",
        "no such host",
        "x509",
        "certificate",
        "server gave http response to https client",
    ];
    const TRANSIENT: &[&str] = &[
        "connection reset",
        "connection refused",
        "broken pipe",
        "eof",
        "i/o timeout",
        "tls handshake timeout",
        "timeout",
        "timed out",
        "temporary failure",
        "server misbehaving",
        "network is unreachable",
        "request canceled",
        "blob upload unknown",
        "toomanyrequests",
        "too many requests",
        "500 internal server error",
        "502 bad gateway",
        "503 service unavailable",
        "504 gateway timeout",
        "unexpected http status: 5",
        "status code 5",
    ];
    if PERMANENT.iter().any(|p| lower.contains(p)) {
        return false;
    }
    TRANSIENT.iter().any(|t| lower.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_errors_are_classified() {
        let cases = [
            // Registry down or flaky: retry.
            (
                r#"Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused"#,
                true,
            ),
            (
                "read tcp 10.0.0.1:4242->52.1.2.3:443: read: connection reset by peer",
                true,
            ),
            (
                "Put https://x.dkr.ecr.us-east-1.amazonaws.com/v2/app/blobs/uploads/1: EOF",
                true,
            ),
            ("net/http: TLS handshake timeout", true),
            (
                "dial tcp: lookup x on 10.0.0.2:53: read udp: i/o timeout",
                true,
            ),
            (
                "received unexpected HTTP status: 503 Service Unavailable",
                true,
            ),
            ("received unexpected HTTP status: 502 Bad Gateway", true),
            ("blob upload unknown", true),
            ("toomanyrequests: Rate exceeded", true),
            // Auth and naming: never retry.
            ("unauthorized: authentication required", false),
            (
                "denied: Your authorization token has expired. Reauthenticate and try again.",
                false,
            ),
            ("no basic auth credentials", false),
            (
                "name unknown: The repository with name 'app' does not exist in the registry with id '123'",
                false,
            ),
            ("manifest invalid: manifest invalid", false),
            (
                "tag invalid: The image tag 'v1' already exists in the 'app' repository and cannot be overwritten because the repository is immutable.",
                false,
            ),
            (
                "An image does not exist locally with the tag: 127.0.0.1:5000/x",
                false,
            ),
            // Both kinds of words: the permanent one wins.
            (
                "unauthorized: connection reset while reading the token",
                false,
            ),
            // Unknown: do not retry.
            ("something odd happened", false),
        ];
        for (message, transient) in cases {
            assert_eq!(is_transient(message), transient, "{message}");
        }
    }

    #[test]
    fn pushed_bytes_are_summed_over_layers() {
        let mut bytes = PushedBytes::default();
        assert!(!bytes.update(None, None));
        assert!(!bytes.update(Some(10), None));
        assert!(!bytes.update(Some(0), Some(0)));
        assert!(!bytes.update(Some(-1), Some(100)));
        assert_eq!((bytes.done(), bytes.total()), (0, 0));
        // Two layers uploading at once, their messages interleaved.
        assert!(bytes.update(Some(0), Some(1000)));
        assert!(bytes.update(Some(512), Some(1000)));
        assert!(bytes.update(Some(100), Some(300)));
        assert_eq!((bytes.done(), bytes.total()), (612, 1300));
        // Nothing new: no report.
        assert!(!bytes.update(Some(512), Some(1000)));
        assert!(!bytes.update(Some(400), Some(1000)));
        assert!(bytes.update(Some(300), Some(300)));
        // More than the total (the daemon counts the compressed stream) is capped.
        assert!(bytes.update(Some(1200), Some(1000)));
        assert_eq!((bytes.done(), bytes.total()), (1300, 1300));
    }

    #[test]
    fn digest_is_parsed_from_the_final_status_line() {
        let hex = "2fb8703f82bfcec3dde65d0c7e54deb554179bb403477bb791e716c2192f1d5e";
        assert_eq!(
            parse_digest(&format!("v1.2.0: digest: sha256:{hex} size: 20673")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            parse_digest(&format!("latest: digest: sha256:{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(parse_digest("Pushed"), None);
        assert_eq!(parse_digest("x: digest: sha256:abc size: 1"), None);
        assert_eq!(
            parse_digest(&format!("x: digest: sha256:{} size: 1", hex.to_uppercase())),
            None
        );
        assert_eq!(
            parse_digest(&format!("x: digest: sha512:{hex} size: 1")),
            None
        );
    }
}
