//! The images a Dockerfile names, resolved to what they are, and pinned in what the builder gets.
//!
//! For each build, the Dockerfile is read as BuildKit reads it ([`crate::dockerfile`]) with the
//! build's args and platform, and every image the stages its target needs name (`FROM`,
//! `COPY --from`, `RUN --mount=...,from=`, and the `# syntax=` frontend) is resolved, once per
//! run ([`Resolver`]):
//!
//! 1. by the registry, with `HEAD` (Docker Hub counts a manifest `GET` as a pull against its rate
//!    limit, and a `HEAD` not), to the digest of its manifest (a list's, for a multi-platform
//!    image): with ECR's credentials on the push registry, with those Docker's `config.json`
//!    holds for another registry, else anonymously;
//! 2. else, when the registry does not hold it or cannot be reached, by the daemon: an image it
//!    holds (one made locally, or loaded) is what a build there would use, by its id;
//! 3. else not at all: the build goes on as a plain `docker build` would, and the image is not
//!    reused, with a warning naming the reference.
//!
//! A dependency's local name (an image of this config built first) is not resolved: its inputs
//! digest counts instead ([`crate::inputs`]).
//!
//! The digests go into the inputs digest, and the builder is given a copy of the Dockerfile in
//! which each image resolved by a registry is pinned to that digest (`FROM node:20` becomes
//! `FROM docker.io/library/node:20@sha256:...`): a base that moves upstream between the
//! resolution and the build cannot give an image whose label names the old one. The user's
//! file is not changed.
//!
//! With a mirror for its registry (`[mirror]`, [`crate::config::mirror`]), an image is resolved
//! and pinned through the mirror instead (`<push registry>/docker-hub/library/node:20@sha256:...`):
//! the builder never asks the upstream. The digest is the image's content digest either way, so
//! turning a mirror on rebuilds nothing. ECR's pull-through cache imports an image on its first
//! pull: a `HEAD` that finds nothing there is followed by one `GET`. An image the mirror cannot
//! serve fails its build, naming both references, unless the mirror falls back to the upstream
//! (with a warning); an image only the daemon holds is still taken from the daemon.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::config::Mirrors;
use crate::docker::{Credentials, Daemon};
use crate::dockerfile::{self, Dockerfile};
use crate::inputs::Base;
use crate::reference::Reference;
use crate::registry::{Registry, auth};

/// What a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A registry's manifest digest, and the mirror's reference when it came from a mirror.
    Registry {
        digest: String,
        via: Option<Reference>,
    },
    /// The id of an image only the daemon holds.
    Local(String),
    /// Neither: why.
    Unresolved(String),
    /// The mirror of its registry cannot serve it, and does not fall back: the mirror's
    /// reference, and why.
    MirrorFailed { via: Reference, why: String },
}

impl Resolution {
    /// The digest the inputs take: `sha256:...`, `local:sha256:...`, or `unresolved`.
    fn digest(&self) -> String {
        match self {
            Resolution::Registry { digest, .. } => digest.clone(),
            Resolution::Local(id) => format!("local:{id}"),
            Resolution::Unresolved(_) | Resolution::MirrorFailed { .. } => "unresolved".into(),
        }
    }
}

/// Resolves references for one run, each once.
pub struct Resolver<'a> {
    daemon: &'a Daemon,
    /// The push registry's credentials (for that host only).
    push: Option<&'a Credentials>,
    /// The push registry's host, which holds the pull-through caches.
    push_registry: String,
    mirrors: &'a Mirrors,
    registries: Mutex<HashMap<String, Arc<Registry>>>,
    resolved: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Resolution>>>>,
}

impl<'a> Resolver<'a> {
    pub fn new(
        daemon: &'a Daemon,
        push: Option<&'a Credentials>,
        push_registry: &str,
        mirrors: &'a Mirrors,
    ) -> Resolver<'a> {
        Resolver {
            daemon,
            push,
            push_registry: push_registry.to_owned(),
            mirrors,
            registries: Mutex::new(HashMap::new()),
            resolved: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// What `reference` is, asked once per run.
    pub async fn resolve(&self, reference: &Reference) -> Resolution {
        let cell = {
            let mut resolved = self.resolved.lock().await;
            Arc::clone(resolved.entry(reference.to_string()).or_default())
        };
        cell.get_or_init(|| self.lookup(reference)).await.clone()
    }

    async fn lookup(&self, reference: &Reference) -> Resolution {
        let Some((via, mirror)) = self.mirrors.route(reference, &self.push_registry) else {
            return self.upstream(reference).await;
        };
        let why = match self.digest_of(&via, true).await {
            Ok(digest) => {
                return Resolution::Registry {
                    digest,
                    via: Some(via),
                };
            }
            Err(why) => why,
        };
        if let Some(local) = self.local(reference).await {
            return local;
        }
        if mirror.fallback {
            tracing::warn!(
                "{} cannot be pulled through the mirror as {via} ({why}); pulling it from {} instead",
                reference.familiar(),
                reference.registry()
            );
            return self.upstream(reference).await;
        }
        Resolution::MirrorFailed { via, why }
    }

    /// `reference` from its own registry, else the daemon.
    async fn upstream(&self, reference: &Reference) -> Resolution {
        match self.digest_of(reference, false).await {
            Ok(digest) => Resolution::Registry { digest, via: None },
            Err(why) => self
                .local(reference)
                .await
                .unwrap_or(Resolution::Unresolved(why)),
        }
    }

    /// The digest of `reference`'s manifest in its registry: its own digest when it has one,
    /// else a `HEAD`; for a pull-through cache (`import`), a `GET` when the `HEAD` found
    /// nothing, which makes ECR import the image. Err: why not, in words.
    async fn digest_of(&self, reference: &Reference, import: bool) -> Result<String, String> {
        if let Some(digest) = reference.digest() {
            return Ok(digest.to_owned());
        }
        let registry = self.registry(reference.registry());
        let (repository, tag) = (reference.repository(), reference.identifier());
        match registry.digest(repository, tag).await {
            Ok(Some(digest)) => Ok(digest),
            Ok(None) if import => match registry.manifest(repository, tag).await {
                Ok(Some(manifest)) => Ok(manifest.digest),
                Ok(None) => Err(format!("{reference} is not in the registry")),
                Err(e) => Err(e.to_string()),
            },
            Ok(None) => Err(format!("{reference} is not in the registry")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The daemon's own image of `reference`, when it holds one.
    async fn local(&self, reference: &Reference) -> Option<Resolution> {
        let local = self.daemon.inspect(&reference.familiar()).await.ok()??;
        tracing::debug!("{reference}: the daemon's image {}", local.id);
        Some(Resolution::Local(local.id))
    }

    /// The client for `host`, with the credentials it takes.
    fn registry(&self, host: &str) -> Arc<Registry> {
        let mut registries = self
            .registries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(registries.entry(host.to_owned()).or_insert_with(|| {
            let credentials = match self.push {
                Some(push) if push.is_for(host) => Some(push.clone()),
                _ => auth::from_docker_config(host),
            };
            Arc::new(Registry::new(host, credentials.as_ref()))
        }))
    }
}

/// What a build's Dockerfile names, for its inputs and its builder.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// The Dockerfile with each image it names replaced by a placeholder: how an image is named
    /// does not count, what it is does ([`Self::bases`]).
    pub canonical: Vec<u8>,
    /// The Dockerfile the builder is given, each image a registry resolved pinned to its digest;
    /// `None` when nothing was pinned (the file is sent as it is).
    pub for_builder: Option<String>,
    /// Each image named, in order, and what it resolved to.
    pub bases: Vec<Base>,
    /// Why the build cannot be reused: references that could not be resolved, a Dockerfile
    /// that could not be read. Each is said once, as a warning.
    pub doubts: Vec<String>,
    /// Images pulled through a mirror: as the Dockerfile names them, and as they are pulled.
    pub routed: Vec<(String, Reference)>,
    /// Why the build cannot start: an image its mirror cannot serve.
    pub fatal: Option<String>,
    /// The Dockerfile as read, when it could be.
    pub dockerfile: Option<Dockerfile>,
}

/// What one build passes to its Dockerfile.
pub struct Build<'a> {
    pub text: &'a [u8],
    pub build_args: &'a BTreeMap<String, String>,
    /// The effective platform (`os/arch[/variant]`), and the daemon's.
    pub platform: &'a str,
    pub build_platform: &'a str,
    pub target: Option<&'a str>,
    /// The local names of the images of this config it depends on, by name.
    pub dependencies: &'a [(String, String)],
}

/// Reads the Dockerfile of `build` and resolves what it names; without a resolver (a dry-run,
/// no registry to ask), every image counts as unresolved and nothing is pinned.
pub async fn analyse(build: &Build<'_>, resolver: Option<&Resolver<'_>>) -> Analysis {
    let unread = |why: String| Analysis {
        canonical: build.text.to_vec(),
        doubts: vec![why],
        ..Analysis::default()
    };
    let Ok(text) = std::str::from_utf8(build.text) else {
        return unread("the Dockerfile is not UTF-8, so the images it names are not known".into());
    };
    let args = dockerfile::Args {
        build_args: build.build_args,
        platform: build.platform,
        build_platform: build.build_platform,
        target: build.target,
    };
    let parsed = dockerfile::parse(text, &args).and_then(|parsed| {
        let needed = parsed.needed_stages(build.target)?;
        Ok((parsed, needed))
    });
    let (parsed, needed) = match parsed {
        Ok(read) => read,
        Err(e) => {
            return unread(format!(
                "the images the Dockerfile names are not known (line {}: {})",
                e.line, e.message
            ));
        }
    };
    let uses: Vec<&dockerfile::ImageUse> = parsed
        .images()
        .filter(|u| u.stage.is_none_or(|stage| needed.contains(&stage)))
        .collect();

    let mut analysis = Analysis::default();
    let mut canonical = Vec::new();
    let mut for_builder = Vec::new();
    for image in uses {
        let dependency = build.dependencies.iter().find(|(_, local)| {
            local == &image.value
                || Reference::parse(local)
                    .ok()
                    .zip(Reference::parse(&image.value).ok())
                    .is_some_and(|(a, b)| a == b)
        });
        if let Some((name, _)) = dependency {
            canonical.push((image.span.clone(), format!("@dependency:{name}")));
            continue;
        }
        let reference = match Reference::parse(&image.value) {
            Ok(reference) => reference,
            Err(e) => {
                analysis
                    .doubts
                    .push(format!("Dockerfile line {}: {e}", image.line));
                canonical.push((image.span.clone(), "@unreadable".into()));
                analysis.bases.push(Base {
                    name: image.value.clone(),
                    digest: "unreadable".into(),
                });
                continue;
            }
        };
        canonical.push((image.span.clone(), "@image".into()));
        let resolution = match resolver {
            Some(resolver) => resolver.resolve(&reference).await,
            None => Resolution::Unresolved("not resolved".into()),
        };
        match &resolution {
            Resolution::Registry { digest, via } => {
                let pulled = via.as_ref().unwrap_or(&reference);
                if pulled.digest() != Some(digest.as_str())
                    && let Ok(pinned) = pulled.with_digest(digest)
                {
                    for_builder.push((image.span.clone(), pinned.to_string()));
                }
                if let Some(via) = via
                    && !analysis
                        .routed
                        .iter()
                        .any(|(name, _)| *name == reference.familiar())
                {
                    analysis.routed.push((reference.familiar(), via.clone()));
                }
            }
            Resolution::Local(_) => {}
            Resolution::MirrorFailed { via, why } => {
                analysis.fatal.get_or_insert_with(|| {
                    format!(
                        "{} (Dockerfile line {}) cannot be pulled through the mirror as {via}: {why}; set `fallback = \"upstream\"` in [mirror] to pull it from {} instead",
                        reference.familiar(),
                        image.line,
                        reference.registry()
                    )
                });
            }
            Resolution::Unresolved(why) if resolver.is_some() => {
                let doubt = format!("{} cannot be resolved ({why})", reference.familiar());
                if !analysis.doubts.contains(&doubt) {
                    analysis.doubts.push(doubt);
                }
            }
            Resolution::Unresolved(_) => {}
        }
        analysis.bases.push(Base {
            name: reference.to_string(),
            digest: resolution.digest(),
        });
    }
    if let Some(frontend) = &parsed.syntax_arg {
        // BUILDKIT_SYNTAX: a frontend from a build arg counts, and stays as given.
        let digest = match (Reference::parse(frontend), resolver) {
            (Ok(reference), Some(resolver)) => resolver.resolve(&reference).await.digest(),
            _ => "unresolved".to_owned(),
        };
        analysis.bases.push(Base {
            name: frontend.clone(),
            digest,
        });
    }
    analysis.canonical = dockerfile::rewrite(text, &canonical).into_bytes();
    analysis.for_builder =
        (!for_builder.is_empty()).then(|| dockerfile::rewrite(text, &for_builder));
    analysis.dockerfile = Some(parsed);
    analysis
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyse_offline(text: &str, dependencies: &[(String, String)]) -> Analysis {
        let args = BTreeMap::from([("BASE_IMAGE".to_owned(), "base:t1".to_owned())]);
        let build = Build {
            text: text.as_bytes(),
            build_args: &args,
            platform: "linux/amd64",
            build_platform: "linux/amd64",
            target: None,
            dependencies,
        };
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(analyse(&build, None))
    }

    #[test]
    fn names_do_not_count_and_dependencies_stand_apart() {
        let deps = [("base".to_owned(), "base:t1".to_owned())];
        let a = analyse_offline(
            "# syntax=docker/dockerfile:1\nARG BASE_IMAGE\nFROM node:20 AS deps\nFROM ${BASE_IMAGE}\nCOPY --from=deps /a /a\nCOPY --from=busybox:1 /bin/sh /sh\n",
            &deps,
        );
        assert!(a.doubts.is_empty(), "{:?}", a.doubts);
        assert_eq!(
            String::from_utf8(a.canonical.clone()).unwrap(),
            "# syntax=@image\nARG BASE_IMAGE\nFROM @image AS deps\nFROM @dependency:base\nCOPY --from=deps /a /a\nCOPY --from=@image /bin/sh /sh\n"
        );
        let names: Vec<&str> = a.bases.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "docker.io/docker/dockerfile:1",
                "docker.io/library/node:20",
                "docker.io/library/busybox:1"
            ]
        );
        assert!(a.bases.iter().all(|b| b.digest == "unresolved"));
        assert!(
            a.for_builder.is_none(),
            "nothing is pinned without a resolver"
        );
        assert!(a.doubts.is_empty(), "no doubt is said without a resolver");

        // The same images by their full names: the same canonical text.
        let b = analyse_offline(
            "# syntax=docker.io/docker/dockerfile:1\nARG BASE_IMAGE\nFROM docker.io/library/node:20 AS deps\nFROM ${BASE_IMAGE}\nCOPY --from=deps /a /a\nCOPY --from=docker.io/library/busybox:1 /bin/sh /sh\n",
            &deps,
        );
        assert_eq!(a.canonical, b.canonical);
    }

    #[test]
    fn a_dockerfile_that_cannot_be_read_is_a_doubt() {
        let bad = analyse_offline("FROM\n", &[]);
        assert_eq!(bad.canonical, b"FROM\n");
        assert_eq!(bad.doubts.len(), 1);
        assert!(bad.doubts[0].contains("line 1"), "{:?}", bad.doubts);
        let unused = analyse_offline("FROM scratch AS a\nFROM Node:20 AS b\nFROM scratch\n", &[]);
        assert!(
            unused.doubts.is_empty(),
            "stage b is not needed: {:?}",
            unused.doubts
        );
        let used = analyse_offline("FROM Node:20\n", &[]);
        assert!(
            used.doubts[0].contains("must be lowercase"),
            "{:?}",
            used.doubts
        );
    }
}
