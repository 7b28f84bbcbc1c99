//! `[mirror]`: where the images of an upstream registry are pulled from instead, so that builds
//! never meet Docker Hub's rate limits, with no change to a Dockerfile.
//!
//! ```toml
//! [mirror]
//! "docker.io" = { pull_through = "docker-hub" }              # an ECR pull-through cache prefix
//! "ghcr.io" = { prefix = "public.ecr.aws/my-copies", fallback = "upstream" }
//! ```
//!
//! A `pull_through` prefix is a repository prefix of the push registry, where an ECR
//! pull-through cache rule keeps copies of the upstream's images: `node:20`
//! (`docker.io/library/node:20`) is pulled as `<push registry>/docker-hub/library/node:20`, as
//! ECR names them. A `prefix` is any registry and path where copies live under the upstream's
//! repository names (ECR Public keeps Docker's official images as
//! `public.ecr.aws/docker/library/<name>`). With `fallback = "upstream"`, an image the mirror
//! cannot serve is pulled from the upstream, with a warning; without it, that image fails.
//!
//! `--mirror UPSTREAM=TO` (`ECRSHIP_MIRROR`, comma-separated) gives the same for one run, over
//! the config's: `docker.io=docker-hub` is a pull-through prefix, `docker.io=public.ecr.aws/docker`
//! (a registry first) a prefix.

use crate::reference::{Reference, registry_host_violation};

/// One upstream registry's mirror.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mirror {
    /// The upstream registry as references name it (`docker.io`).
    pub upstream: String,
    pub via: Via,
    /// Pull from the upstream when the mirror cannot serve an image.
    pub fallback: bool,
    /// The line of the config that set it (0: the command line).
    #[serde(skip)]
    pub line: usize,
}

/// Where a mirror's copies are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A repository prefix of the push registry, filled by an ECR pull-through cache rule.
    PullThrough(String),
    /// Another registry, and the path under which the upstream's repositories are kept.
    Prefix { registry: String, path: String },
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::PullThrough(prefix) => write!(f, "the pull-through cache `{prefix}`"),
            Via::Prefix { registry, path } => write!(f, "{registry}/{path}"),
        }
    }
}

/// Every mirror of a config, by upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Mirrors(pub Vec<Mirror>);

impl Mirrors {
    /// The mirror of `reference`'s registry, and the reference it is pulled as there
    /// (`push_registry` holds the pull-through caches). `None` without a mirror for it.
    pub fn route(
        &self,
        reference: &Reference,
        push_registry: &str,
    ) -> Option<(Reference, &Mirror)> {
        let mirror = self.0.iter().find(|m| m.upstream == reference.registry())?;
        let (registry, path) = match &mirror.via {
            Via::PullThrough(prefix) => (push_registry, prefix.as_str()),
            Via::Prefix { registry, path } => (registry.as_str(), path.as_str()),
        };
        let repository = format!("{path}/{}", reference.repository());
        let routed =
            Reference::new(registry, &repository, reference.tag(), reference.digest()).ok()?;
        Some((routed, mirror))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These mirrors, with `over`'s taking the place of any for the same upstream.
    pub fn overridden_by(mut self, over: Mirrors) -> Mirrors {
        for mirror in over.0 {
            self.0.retain(|m| m.upstream != mirror.upstream);
            self.0.push(mirror);
        }
        self
    }

    /// The mirrors of `--mirror` / `ECRSHIP_MIRROR`: `UPSTREAM=TO`, comma-separated.
    pub fn from_flag(text: &str) -> Result<Mirrors, String> {
        let mut mirrors = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((upstream, to)) = item.split_once('=') else {
                return Err(format!(
                    "`{item}` is not UPSTREAM=TO (e.g. docker.io=docker-hub for an ECR pull-through cache prefix, docker.io=public.ecr.aws/docker for another registry)"
                ));
            };
            let first = to.split('/').next().unwrap_or_default();
            let via = if registry_host_violation(first).is_none() && to.contains('/') {
                let (registry, path) = to.split_once('/').unwrap_or((to, ""));
                Via::Prefix {
                    registry: registry.to_owned(),
                    path: path.to_owned(),
                }
            } else {
                Via::PullThrough(to.to_owned())
            };
            mirrors.push(checked(upstream, via, false, 0).map_err(|e| format!("`{item}`: {e}"))?);
        }
        Ok(Mirrors(mirrors))
    }
}

/// The registry an ECR pull-through cache rule names for an upstream (its
/// `upstreamRegistryUrl`): Docker Hub's is `registry-1.docker.io`.
pub fn upstream_url(upstream: &str) -> &str {
    match upstream {
        "docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// Whether ECR takes a pull-through cache rule for this upstream only with a Secrets Manager
/// secret of its credentials (ECR User Guide, "Creating a pull through cache rule": Docker Hub,
/// GitHub Container Registry, GitLab Container Registry, Azure Container Registry).
pub fn needs_credentials(upstream: &str) -> bool {
    matches!(upstream, "docker.io" | "ghcr.io" | "registry.gitlab.com")
        || upstream.ends_with(".azurecr.io")
}

/// Why the push registry's pull-through cache `rules` (`(prefix, upstream url)`) do not serve
/// `mirror`, with the AWS CLI lines that create the rule, once; `None` when they serve it.
pub fn missing_rule(mirror: &Mirror, rules: &[(String, String)], registry: &str) -> Option<String> {
    let Via::PullThrough(prefix) = &mirror.via else {
        return None;
    };
    let url = upstream_url(&mirror.upstream);
    let found = rules.iter().find(|(p, _)| p == prefix);
    let why = match found {
        Some((_, upstream)) if upstream.trim_end_matches('/').ends_with(url) => return None,
        Some((_, upstream)) => format!("its rule copies {upstream}, not {url}"),
        None => "there is no such rule".to_owned(),
    };
    let secret = if needs_credentials(&mirror.upstream) {
        format!(
            "aws secretsmanager create-secret --name ecr-pullthroughcache/{prefix} --secret-string '{{\"username\":\"<{} user>\",\"accessToken\":\"<its access token>\"}}', then ",
            mirror.upstream
        )
    } else {
        String::new()
    };
    let credential = if needs_credentials(&mirror.upstream) {
        " --credential-arn <that secret's ARN>"
    } else {
        ""
    };
    Some(format!(
        "[mirror] `{}` pulls through the ECR pull-through cache prefix `{prefix}` of {registry}, but {why}; create the rule once: {secret}aws ecr create-pull-through-cache-rule --ecr-repository-prefix {prefix} --upstream-registry-url {url}{credential}",
        mirror.upstream
    ))
}

/// Upstream registries as references name them: Docker Hub's hosts are `docker.io`.
fn upstream_name(host: &str) -> String {
    match host.trim().to_ascii_lowercase().as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        other => other.to_owned(),
    }
}

/// A mirror, checked: the upstream a registry, the prefix a path of repository names (for a
/// pull-through cache, ECR's rule for a prefix: 2-30 lowercase letters, digits, `-`, `_`, `.`
/// and `/`), the other registry one that references can name.
pub fn checked(upstream: &str, via: Via, fallback: bool, line: usize) -> Result<Mirror, String> {
    let upstream = upstream_name(upstream);
    if upstream != "docker.io"
        && let Some(reason) = registry_host_violation(&upstream)
    {
        return Err(format!("the upstream `{upstream}` {reason}"));
    }
    let path_ok = |path: &str| {
        !path.is_empty()
            && path.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            })
    };
    match &via {
        Via::PullThrough(prefix) => {
            if !(2..=30).contains(&prefix.len()) || !path_ok(prefix) {
                return Err(format!(
                    "pull_through `{prefix}` is not an ECR pull-through cache prefix (2-30 lowercase letters, digits, `-`, `_`, `.` and `/`)"
                ));
            }
        }
        Via::Prefix { registry, path } => {
            if let Some(reason) = registry_host_violation(registry) {
                return Err(format!(
                    "prefix `{registry}/{path}`: the registry `{registry}` {reason}"
                ));
            }
            if !path_ok(path) {
                return Err(format!(
                    "prefix `{registry}/{path}` names no path of repositories (write it as `registry/path`)"
                ));
            }
        }
    }
    Ok(Mirror {
        upstream,
        via,
        fallback,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirrors() -> Mirrors {
        Mirrors(vec![
            checked("docker.io", Via::PullThrough("docker-hub".into()), false, 3).unwrap(),
            checked(
                "ghcr.io",
                Via::Prefix {
                    registry: "public.ecr.aws".into(),
                    path: "my-copies".into(),
                },
                true,
                4,
            )
            .unwrap(),
        ])
    }

    #[test]
    fn references_are_routed_as_ecr_names_the_copies() {
        let push = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let route = |r: &str| {
            mirrors()
                .route(&Reference::parse(r).unwrap(), push)
                .map(|(routed, _)| routed.to_string())
        };
        assert_eq!(
            route("node:20").as_deref(),
            Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/node:20")
        );
        assert_eq!(
            route("docker/dockerfile:1").as_deref(),
            Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/docker/dockerfile:1")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            route(&format!("ghcr.io/org/tool@{digest}")).as_deref(),
            Some(format!("public.ecr.aws/my-copies/org/tool@{digest}").as_str())
        );
        assert_eq!(route("quay.io/x/y:1"), None);
    }

    #[test]
    fn a_missing_rule_says_how_to_create_it() {
        let hub = &mirrors().0[0];
        let ok = [("docker-hub".to_owned(), "registry-1.docker.io".to_owned())];
        assert_eq!(missing_rule(hub, &ok, "r.example"), None);
        let text = missing_rule(hub, &[], "r.example").unwrap();
        assert!(text.contains("there is no such rule"), "{text}");
        assert!(
            text.contains(
                "aws secretsmanager create-secret --name ecr-pullthroughcache/docker-hub"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "aws ecr create-pull-through-cache-rule --ecr-repository-prefix docker-hub --upstream-registry-url registry-1.docker.io --credential-arn <that secret's ARN>"
            ),
            "{text}"
        );
        let other = [("docker-hub".to_owned(), "quay.io".to_owned())];
        assert!(
            missing_rule(hub, &other, "r.example")
                .unwrap()
                .contains("its rule copies quay.io")
        );
        let quay = checked("quay.io", Via::PullThrough("quay".into()), false, 0).unwrap();
        let text = missing_rule(&quay, &[], "r.example").unwrap();
        assert!(
            !text.contains("secretsmanager") && !text.contains("--credential-arn"),
            "{text}"
        );
        assert_eq!(
            missing_rule(&mirrors().0[1], &[], "r.example"),
            None,
            "a prefix needs no rule"
        );
    }

    #[test]
    fn flags_name_a_prefix_or_another_registry() {
        let m = Mirrors::from_flag("docker.io=docker-hub, ghcr.io=public.ecr.aws/copies").unwrap();
        assert_eq!(m.0[0].via, Via::PullThrough("docker-hub".into()));
        assert_eq!(
            m.0[1].via,
            Via::Prefix {
                registry: "public.ecr.aws".into(),
                path: "copies".into()
            }
        );
        assert_eq!(
            Mirrors::from_flag("index.docker.io=hub").unwrap().0[0].upstream,
            "docker.io"
        );
        for bad in [
            "docker.io",
            "docker.io=D",
            "docker.io=x",
            "nohost=docker-hub",
            "docker.io=a.example/",
        ] {
            assert!(Mirrors::from_flag(bad).is_err(), "{bad}");
        }
        let over = mirrors().overridden_by(Mirrors::from_flag("docker.io=other-hub").unwrap());
        assert_eq!(over.0.len(), 2);
        assert!(
            over.0
                .iter()
                .any(|m| m.via == Via::PullThrough("other-hub".into()))
        );
    }
}
