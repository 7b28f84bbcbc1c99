//! Who ecrship is to a registry, and how it is reached.
//!
//! ECR takes HTTP Basic auth with the user `AWS` and the password from `GetAuthorizationToken`
//! on every request; other registries answer `401` with a `WWW-Authenticate: Bearer` challenge
//! whose realm hands out a token for the same credentials (distribution's `docs/spec/auth/token.md`).
//! oci-client follows either kind of challenge.
//!
//! Registries other than the push registry (a base image's) are asked with the credentials that
//! Docker's `config.json` holds for them in `auths` (what `docker login` writes; credential
//! helpers are not run), else anonymously: a public registry's bearer flow hands out a token
//! for anyone ([`from_docker_config`]).
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

/// The credentials Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`) holds for `host` under `auths`: the base64 `auth` of `user:password`,
/// or `username` and `password`. Docker Hub's entry is `https://index.docker.io/v1/`. `None`
/// when there is no file, no entry, or the entry cannot be read. The password is registered as
/// a secret, so that it never reaches a line ecrship prints.
pub fn from_docker_config(host: &str) -> Option<Credentials> {
    let path = match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => std::path::PathBuf::from(dir).join("config.json"),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json"),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let credentials = credentials_in(&text, host)?;
    crate::secret::register(&credentials.password);
    Some(credentials)
}

/// The `auths` entry of a Docker `config.json` text for `host`.
fn credentials_in(config: &str, host: &str) -> Option<Credentials> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        auths: std::collections::BTreeMap<String, Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        auth: Option<String>,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
    }
    use base64::Engine as _;
    let file: File = serde_json::from_str(config).ok()?;
    let wanted = registry_key(host);
    let entry = file
        .auths
        .iter()
        .find(|(key, _)| registry_key(key) == wanted)
        .map(|(_, entry)| entry)?;
    let (username, password) = match (&entry.auth, &entry.username, &entry.password) {
        (Some(auth), _, _) if !auth.is_empty() => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (user, password) = text.split_once(':')?;
            (user.to_owned(), password.to_owned())
        }
        (_, Some(user), Some(password)) => (user.clone(), password.clone()),
        _ => return None,
    };
    Some(Credentials {
        username,
        password,
        server: host.to_owned(),
    })
}

/// A registry as `config.json` keys name it, compared: no scheme, no path, lowercase; Docker
/// Hub's names as one.
fn registry_key(name: &str) -> String {
    let name = name.trim();
    let name = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"))
        .unwrap_or(name);
    let host = name.split('/').next().unwrap_or(name).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
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
    fn docker_config_credentials_by_host() {
        let config = r#"{
            "auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpodW50ZXIy"},
                "registry.example:5000": {"username": "bot", "password": "s3cret"},
                "broken.example": {"auth": "%%%"}
            },
            "credsStore": "desktop"
        }"#;
        let hub = credentials_in(config, "docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("user", "hunter2")
        );
        assert_eq!(hub.server, "docker.io");
        let other = credentials_in(config, "registry.example:5000").unwrap();
        assert_eq!(
            (other.username.as_str(), other.password.as_str()),
            ("bot", "s3cret")
        );
        assert!(
            credentials_in(config, "registry.example").is_none(),
            "the port counts"
        );
        assert!(credentials_in(config, "broken.example").is_none());
        assert!(credentials_in(config, "ghcr.io").is_none());
        assert!(credentials_in("not json", "docker.io").is_none());
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
