//! Reaching the daemon without bollard, for the BuildKit requests: the socket or TCP address of
//! `DOCKER_HOST`, one HTTP/1.1 connection per request.

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::CONNECT_TIMEOUT;
use crate::text::error_chain;

/// Where the daemon listens, for the requests made without bollard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    Unix(PathBuf),
    /// `host:port`
    Tcp(String),
}

/// A connection to the daemon, whatever its transport.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An HTTP/1.1 connection to the daemon whose requests have bodies of type `B`.
pub(super) type Connection<B> = hyper::client::conn::http1::Connection<TokioIo<Box<dyn Io>>, B>;

impl Endpoint {
    /// `DOCKER_HOST` as `unix://PATH`, `tcp://HOST:PORT` or `http://HOST:PORT` (port 2375 when
    /// none is given); `None` for what only bollard reaches: TLS (`https://`, or `tcp://` with
    /// `DOCKER_TLS_VERIFY`), ssh, named pipes.
    pub(super) fn parse(address: &str, tls_verify: bool) -> Option<Endpoint> {
        if let Some(path) = address.strip_prefix("unix://") {
            return (!path.is_empty()).then(|| Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = address
            .strip_prefix("tcp://")
            .or_else(|| address.strip_prefix("http://"))
            .filter(|_| !tls_verify)?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return None;
        }
        let has_port = match authority.rsplit_once(':') {
            Some((host, port)) => {
                !port.is_empty() && (!host.starts_with('[') || host.ends_with(']'))
            }
            None => false,
        };
        Some(Endpoint::Tcp(if has_port {
            authority.to_string()
        } else {
            format!("{authority}:2375")
        }))
    }

    /// The `Host` header: any name will do on a socket; the address over TCP.
    pub(super) fn host(&self) -> &str {
        match self {
            Endpoint::Unix(_) => "docker",
            Endpoint::Tcp(authority) => authority,
        }
    }

    /// One HTTP/1.1 connection to the daemon: the sender of its request, and the connection,
    /// which must be driven while the request runs ([`drive`]).
    pub(super) async fn open<B>(&self) -> Result<(SendRequest<B>, Connection<B>), String>
    where
        B: hyper::body::Body + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let io = self.connect().await?;
        hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| error_chain(&e))
    }

    async fn connect(&self) -> Result<TokioIo<Box<dyn Io>>, String> {
        let connect = async {
            let io: Box<dyn Io> = match self {
                Endpoint::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
                Endpoint::Tcp(authority) => {
                    let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
                    stream.set_nodelay(true)?;
                    Box::new(stream)
                }
            };
            Ok::<_, std::io::Error>(io)
        };
        let shown = || match self {
            Endpoint::Unix(path) => path.display().to_string(),
            Endpoint::Tcp(authority) => authority.clone(),
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(io)) => Ok(TokioIo::new(io)),
            Ok(Err(e)) => Err(format!(
                "cannot connect to the Docker daemon at {}: {e}",
                shown()
            )),
            Err(_) => Err(format!(
                "cannot connect to the Docker daemon at {}: no answer within {}s",
                shown(),
                CONNECT_TIMEOUT.as_secs()
            )),
        }
    }
}

/// The message of an error answer (`{"message":"..."}`, or its text), read up to 64 kB.
pub(super) async fn error_answer(response: http::Response<Incoming>) -> String {
    let status = response.status();
    let body = Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await;
    let text = match body {
        Ok(body) => {
            let bytes = body.to_bytes();
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(json) if json["message"].is_string() => {
                    json["message"].as_str().unwrap_or_default().to_string()
                }
                _ => String::from_utf8_lossy(&bytes).trim().to_string(),
            }
        }
        Err(e) => format!("(unreadable answer: {e})"),
    };
    if text.is_empty() {
        format!("the daemon answered {status}")
    } else {
        format!("{text} (HTTP {})", status.as_u16())
    }
}

/// Runs `work` while driving `conn`, the HTTP connection `work` talks over. When the connection
/// ends first (closed, or handed over by an upgrade), `work` still runs to its end, with what
/// was received or the connection's error.
pub(super) async fn drive<C, W, T>(conn: C, work: W) -> T
where
    C: Future<Output = Result<(), hyper::Error>>,
    W: Future<Output = T>,
{
    let mut work = pin!(work);
    tokio::select! {
        done = &mut work => done,
        ended = conn => {
            if let Err(e) = ended {
                tracing::debug!("connection to the Docker daemon ended: {}", error_chain(&e));
            }
            work.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_docker_host() {
        let unix = |p: &str| Some(Endpoint::Unix(p.into()));
        let tcp = |a: &str| Some(Endpoint::Tcp(a.into()));
        let cases = [
            (
                "unix:///var/run/docker.sock",
                false,
                unix("/var/run/docker.sock"),
            ),
            (
                "unix:///run/user/1000/docker.sock",
                true,
                unix("/run/user/1000/docker.sock"),
            ),
            ("tcp://127.0.0.1:2375", false, tcp("127.0.0.1:2375")),
            ("tcp://docker:2375/", false, tcp("docker:2375")),
            ("http://docker", false, tcp("docker:2375")),
            ("tcp://[::1]:2376", false, tcp("[::1]:2376")),
            ("tcp://[::1]", false, tcp("[::1]:2375")),
            ("tcp://127.0.0.1:2376", true, None),
            ("https://docker:2376", false, None),
            ("ssh://me@host", false, None),
            ("npipe:////./pipe/docker_engine", false, None),
            ("unix://", false, None),
            ("tcp://", false, None),
        ];
        for (address, tls, want) in cases {
            assert_eq!(Endpoint::parse(address, tls), want, "{address} tls={tls}");
        }
        assert_eq!(Endpoint::Tcp("h:1".into()).host(), "h:1");
        assert_eq!(Endpoint::Unix("/s".into()).host(), "docker");
    }
}
