//! Who ecrship is to a registry, and how it is reached.
//!
//! ECR takes HTTP Basic auth with the user `AWS` and the password from `GetAuthorizationToken`
//! on every request; other registries answer `401` with a `WWW-Authenticate: Bearer` challenge
//! whose realm hands out a token for the same credentials (distribution's `docs/spec/auth/token.md`).
//! oci-client follows either kind of challenge.
//!
//! The scheme is HTTPS, except for registries on a loopback address, which dockerd itself
//! treats as insecure registries by default (moby `registry/config.go`: `127.0.0.0/8` and `::1`
//! are always insecure) and reaches over plain HTTP, as a local test registry is served.

use std::fmt;

use oci_client::secrets::RegistryAuth;

/// Registry credentials. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AWS` for ECR.
    pub username: String,
    /// The secret.
    pub password: String,
    /// The registry host (`host[:port]`) these credentials are for, and for no other.
    pub server: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .field("server", &self.server)
            .finish()
    }
}

impl Credentials {
    /// Whether these credentials are for `host`: the same host and port, compared exactly
    /// (a scheme or trailing slash on either side is ignored), so that they never reach
    /// another registry.
    pub fn is_for(&self, host: &str) -> bool {
        let bare = |h: &str| {
            let h = h.trim();
            let h = h
                .strip_prefix("https://")
                .or_else(|| h.strip_prefix("http://"))
                .unwrap_or(h);
            h.trim_end_matches('/').to_ascii_lowercase()
        };
        !self.server.is_empty() && bare(&self.server) == bare(host)
    }

    pub(super) fn registry_auth(&self) -> RegistryAuth {
        RegistryAuth::Basic(self.username.clone(), self.password.clone())
    }
}

/// Whether `host` (`name[:port]`) is a loopback address, reached over plain HTTP.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(ip, _)| ip)
    } else if host.matches(':').count() > 1 {
        host // a bare IPv6 address has no port
    } else {
        host.split_once(':').map_or(host, |(name, _)| name)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_plain_http() {
        for host in [
            "127.0.0.1:5000",
            "127.3.4.5",
            "localhost:5000",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "10.0.0.1:5000",
            "registry.example:443",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn credentials_are_for_one_exact_host() {
        let creds = Credentials {
            username: "AWS".into(),
            password: "hunter2".into(),
            server: "https://123.dkr.ecr.us-east-1.amazonaws.com/".into(),
        };
        assert!(creds.is_for("123.dkr.ecr.us-east-1.amazonaws.com"));
        assert!(creds.is_for("123.DKR.ecr.us-east-1.amazonaws.com"));
        assert!(!creds.is_for("123.dkr.ecr.us-east-1.amazonaws.com:444"));
        assert!(!creds.is_for("evil.example"));
        assert!(!creds.is_for("123.dkr.ecr.us-east-1.amazonaws.com.evil.example"));
        let local = Credentials {
            server: "127.0.0.1:5000".into(),
            ..creds.clone()
        };
        assert!(local.is_for("127.0.0.1:5000"));
        assert!(!local.is_for("127.0.0.1:5001"));
        assert!(!local.is_for("localhost:5000"));
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("***"),
            "{shown}"
        );
    }
}
