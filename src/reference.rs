//! Names as values: the image reference, parsed once, and the other names ecrship checks.
//!
//! # Image references
//!
//! [`Reference`] is an image reference as Docker reads it. The grammar is the one of the
//! `distribution/reference` package (`reference.go`, `regexp.go`), which the Docker daemon and
//! CLI use:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path
//! domain           := host [ ":" port ]
//! host             := domain-name | "[" IPv6address "]"
//! domain-name      := domain-component ( "." domain-component )*
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! port             := [0-9]+
//! IPv6address      := [a-fA-F0-9:]+
//! path             := path-component ( "/" path-component )*      ; at most 255 characters
//! path-component   := alpha-numeric ( separator alpha-numeric )*
//! alpha-numeric    := [a-z0-9]+
//! separator        := [._] | "__" | "-"+
//! tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest           := algorithm ":" hex
//! algorithm        := component ( [-_+.] component )*
//! component        := [A-Za-z][A-Za-z0-9]*
//! hex              := [0-9a-fA-F]{32,}
//! ```
//!
//! A digest whose algorithm the OCI image specification registers must also have that
//! algorithm's length in lowercase hex, as `opencontainers/go-digest` checks: `sha256` 64
//! digits, `sha384` 96, `sha512` 128.
//!
//! [`Reference::parse`] normalises as `ParseNormalizedNamed` (`normalize.go`) does:
//!
//! - the first `/`-separated component is the registry when it is `localhost`, or holds a `.`
//!   or a `:` (a port, or an IPv6 address in brackets); otherwise the registry is Docker Hub,
//!   `docker.io`, and the whole name is the repository;
//! - `index.docker.io`, Docker Hub's legacy name, becomes `docker.io`;
//! - a Docker Hub repository of one component is an official image: `node` is
//!   `docker.io/library/node`;
//! - a name of 64 lowercase hexadecimal digits and nothing else is refused: it reads as an image
//!   ID;
//! - a repository with an uppercase letter is refused with its own message.
//!
//! No tag is added: `node` has no tag, and [`Reference::identifier`] says `latest` for it.
//!
//! Where `distribution/reference` differs: it takes a first component with an uppercase letter
//! (`Foo/bar`) as a registry, and here it stays part of the repository and is refused as not
//! lowercase; and its familiar form drops `docker.io/` even where the rest would then read as a
//! registry (`docker.io/my.org/app`), which [`Reference::familiar`] does not.
//!
//! # Other names
//!
//! The rules for the other names ecrship takes, each citing where it comes from: tags
//! ([`tag_violation`]), ECR repositories ([`repository_violation`]), registries
//! ([`registry_violation`], [`registry_host_violation`]), platforms ([`Platform`],
//! [`platform_violation`]), ECS names ([`container_name_violation`], [`ecs_name_violation`]) and
//! S3 objects ([`bucket_violation`], [`key_violation`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The registry of Docker Hub, as references name it.
pub const DOCKER_HUB: &str = "docker.io";

/// Docker Hub's legacy name (once "the Docker Index"), read as [`DOCKER_HUB`].
const LEGACY_DOCKER_HUB: &str = "index.docker.io";

/// The Docker Hub namespace of official images: `node` is `docker.io/library/node`.
const OFFICIAL_NAMESPACE: &str = "library/";

/// The tag a reference without a tag or digest stands for.
pub const DEFAULT_TAG: &str = "latest";

/// The longest repository path a reference may have (`RepositoryNameTotalLengthMax`); the
/// registry is not counted.
pub const REPOSITORY_PATH_MAX: usize = 255;

/// The platform an image without one is taken to be: ECS's default CPU architecture (`X86_64`),
/// which is also what CodeBuild's x86_64 hosts build.
pub const DEFAULT_PLATFORM: &str = "linux/amd64";

/// An image reference: a registry, a repository, and a tag, a digest, both or neither.
///
/// Always valid and normalised (see the module documentation): its [`Display`](fmt::Display)
/// form, `registry/repository[:tag][@digest]`, parses back to an equal reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// A string that is not an image reference, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not an image reference: {reason}")]
pub struct ReferenceError {
    value: String,
    reason: String,
}

impl ReferenceError {
    /// The refused text, as given (or, from [`Reference::new`], its parts joined).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why it was refused, without the value.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Reference {
    /// Parses `s` as Docker does (`ParseNormalizedNamed`): `node` is `docker.io/library/node`
    /// with no tag, `localhost:5000/app` has the registry `localhost:5000` and no tag,
    /// `name:tag@digest` keeps both.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let fail = |reason: String| ReferenceError {
            value: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(fail("it is empty".into()));
        }
        if is_image_id(s) {
            return Err(fail(
                "64 hexadecimal digits are an image ID, not a repository name".into(),
            ));
        }
        let (name, digest) = match s.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (s, None),
        };
        let (registry, rest) = match name.split_once('/') {
            Some((first, rest)) if looks_like_registry(first) => (first, rest),
            _ => (DOCKER_HUB, name),
        };
        // The path has no `:`, so the first one after the registry starts the tag.
        let (path, tag) = match rest.split_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (rest, None),
        };
        build(registry, path, tag, digest).map_err(fail)
    }

    /// A reference from its parts, checked and normalised as [`Reference::parse`] would:
    /// `index.docker.io` is `docker.io`, and a Docker Hub repository of one component is
    /// under `library/`. The registry must pass [`registry_host_violation`]: it reads as a
    /// registry, so that the result parses back to itself.
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Reference, ReferenceError> {
        build(registry, repository, tag, digest).map_err(|reason| ReferenceError {
            value: join(registry, repository, tag, digest),
            reason,
        })
    }

    /// The registry: `host[:port]`, `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The registry without its port: `localhost` for `localhost:5000`, `[::1]` for
    /// `[::1]:5000`.
    pub fn registry_host(&self) -> &str {
        let registry = self.registry.as_str();
        match registry.find(']') {
            Some(end) => &registry[..=end],
            None => registry.split_once(':').map_or(registry, |(host, _)| host),
        }
    }

    /// The repository path, without the registry: `library/node`, `team/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:...`), when the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`: the name, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with `tag`, and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        self.derive(Some(tag), None)
    }

    /// The same repository, tag and digest in another registry.
    pub fn with_registry(&self, registry: &str) -> Result<Reference, ReferenceError> {
        Reference::new(
            registry,
            &self.repository,
            self.tag.as_deref(),
            self.digest.as_deref(),
        )
    }

    /// The same repository by `digest` alone, the tag dropped: `repository@digest`, what
    /// `--pin-digest` writes.
    pub fn pinned(&self, digest: &str) -> Result<Reference, ReferenceError> {
        self.derive(None, Some(digest))
    }

    /// The same reference with `digest`, the tag kept: `name:tag@digest`, for logs and pinned
    /// `FROM` lines.
    pub fn with_digest(&self, digest: &str) -> Result<Reference, ReferenceError> {
        self.derive(self.tag.as_deref(), Some(digest))
    }

    /// What the registry API is asked for: the digest when there is one, else the tag, else
    /// `latest`.
    pub fn identifier(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// Whether the image is on Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// Docker's short form: `docker.io/library/node:20` is `node:20`, `docker.io/user/x` is
    /// `user/x`, other registries are kept. `docker.io/` stays where the rest would read as a
    /// registry (`docker.io/my.org/app`), and `library/` where the rest would read as an image
    /// ID, so that the short form parses back to this reference.
    pub fn familiar(&self) -> String {
        let mut out = if self.is_docker_hub() {
            let path = match self.repository.strip_prefix(OFFICIAL_NAMESPACE) {
                Some(rest) if !rest.contains('/') && !is_image_id(rest) => rest,
                _ => &self.repository,
            };
            let first = path.split('/').next().unwrap_or(path);
            if path.contains('/') && looks_like_registry(first) {
                self.name()
            } else {
                path.to_owned()
            }
        } else {
            self.name()
        };
        push_suffixes(&mut out, self.tag.as_deref(), self.digest.as_deref());
        out
    }

    fn derive(&self, tag: Option<&str>, digest: Option<&str>) -> Result<Reference, ReferenceError> {
        let fail = |reason: String| ReferenceError {
            value: join(&self.registry, &self.repository, tag, digest),
            reason,
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(fail)?;
        }
        if let Some(digest) = digest {
            check_digest(digest).map_err(fail)?;
        }
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A reference equals the text of its full form (`registry/repository[:tag][@digest]`).
impl PartialEq<str> for Reference {
    fn eq(&self, other: &str) -> bool {
        /// Takes the formatted pieces off the front of `rest` while they match.
        struct Prefix<'a> {
            rest: &'a str,
        }
        impl fmt::Write for Prefix<'_> {
            fn write_str(&mut self, piece: &str) -> fmt::Result {
                self.rest = self.rest.strip_prefix(piece).ok_or(fmt::Error)?;
                Ok(())
            }
        }
        let mut prefix = Prefix { rest: other };
        fmt::write(&mut prefix, format_args!("{self}")).is_ok() && prefix.rest.is_empty()
    }
}

impl PartialEq<&str> for Reference {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Reference, D::Error> {
        let text = String::deserialize(deserializer)?;
        Reference::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Whether the first component of a name is a registry: `localhost`, or with a `.` (a domain
/// or an IPv4 address) or a `:` (a port, or an IPv6 address).
fn looks_like_registry(component: &str) -> bool {
    component == "localhost" || component.contains(['.', ':'])
}

/// `distribution/reference`'s identifier: 64 lowercase hexadecimal digits.
fn is_image_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks and normalises the parts of a reference; the error is the reason alone.
fn build(
    registry: &str,
    path: &str,
    tag: Option<&str>,
    digest: Option<&str>,
) -> Result<Reference, String> {
    let registry = if registry == LEGACY_DOCKER_HUB {
        DOCKER_HUB
    } else {
        registry
    };
    if let Some(reason) = registry_host_violation(registry) {
        return Err(format!("registry `{registry}` {reason}"));
    }
    if path.is_empty() {
        return Err("it names no repository".into());
    }
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}{path}")
    } else {
        path.to_owned()
    };
    if let Some(reason) = path_violation(&repository) {
        return Err(reason.into());
    }
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    if let Some(digest) = digest {
        check_digest(digest)?;
    }
    Ok(Reference {
        registry: registry.to_owned(),
        repository,
        tag: tag.map(str::to_owned),
        digest: digest.map(str::to_owned),
    })
}

fn check_tag(tag: &str) -> Result<(), String> {
    match tag_violation(tag) {
        None => Ok(()),
        Some(_) if tag.is_empty() => Err("the tag after `:` is empty".into()),
        Some(reason) => Err(format!("tag `{tag}`: {reason}")),
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    match digest_violation(digest) {
        None => Ok(()),
        Some(_) if digest.is_empty() => Err("the digest after `@` is empty".into()),
        Some(reason) => Err(format!("digest `{digest}` {reason}")),
    }
}

/// `registry/repository[:tag][@digest]`, for messages about parts that did not make a reference.
fn join(registry: &str, repository: &str, tag: Option<&str>, digest: Option<&str>) -> String {
    let mut out = format!("{registry}/{repository}");
    push_suffixes(&mut out, tag, digest);
    out
}

fn push_suffixes(out: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
}

/// Why `path` is not the repository path of a reference (Docker's `path` production, at most
/// [`REPOSITORY_PATH_MAX`] characters), or `None`.
fn path_violation(path: &str) -> Option<&'static str> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some("repository names must be lowercase");
    }
    let allowed = |b: u8| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'/')
    };
    if !path.bytes().all(allowed) {
        return Some(
            "the repository has a character other than lowercase letters, digits, `.`, `_`, `-` and `/`",
        );
    }
    for component in path.split('/') {
        let bytes = component.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return Some("the repository has an empty component (`//`, or `/` at an end)");
        };
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return Some(
                "each `/`-separated component of the repository must begin and end with a lowercase letter or a digit",
            );
        }
        let separator_ok =
            |sep: &str| matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        let bad_separator = component
            .split(|c: char| c.is_ascii_alphanumeric())
            .filter(|sep| !sep.is_empty())
            .any(|sep| !separator_ok(sep));
        if bad_separator {
            return Some(
                "the repository joins letters and digits with something other than one `.`, one or two `_`, or `-`s",
            );
        }
    }
    if path.len() > REPOSITORY_PATH_MAX {
        return Some("the repository is longer than 255 characters");
    }
    None
}

/// Why `digest` is not a digest (`algorithm:hex`, Docker's reference grammar, with the lengths
/// of the algorithms the OCI image specification registers, as `opencontainers/go-digest`
/// checks them), or `None`.
fn digest_violation(digest: &str) -> Option<&'static str> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Some("is not `algorithm:hex` (e.g. `sha256:` and 64 hexadecimal digits)");
    };
    let component_ok = |c: &str| {
        c.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    if !algorithm.split(['-', '_', '+', '.']).all(component_ok) {
        return Some("does not begin with an algorithm name such as `sha256`");
    }
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some("has a character other than a hexadecimal digit after `:`");
    }
    let lowercase = !hex.bytes().any(|b| b.is_ascii_uppercase());
    match algorithm {
        "sha256" if hex.len() != 64 || !lowercase => {
            Some("is not a sha256 digest: it takes 64 lowercase hexadecimal digits")
        }
        "sha384" if hex.len() != 96 || !lowercase => {
            Some("is not a sha384 digest: it takes 96 lowercase hexadecimal digits")
        }
        "sha512" if hex.len() != 128 || !lowercase => {
            Some("is not a sha512 digest: it takes 128 lowercase hexadecimal digits")
        }
        _ if hex.len() < 32 => Some("has fewer than 32 hexadecimal digits"),
        _ => None,
    }
}

/// Why `host` cannot be the registry of an image reference, or `None` (Docker's reference
/// grammar, `domain`): a host name of letters, digits and `-` in `.`-separated labels that begin
/// and end with a letter or digit, an IPv4 address, or an IPv6 address in brackets, each with an
/// optional `:port`; and, as Docker splits a name (`splitDockerDomain`), `localhost` or with a `.`
/// or a `:`, else `host/app` is the Docker Hub repository `host/app`. Stricter than
/// [`registry_violation`].
pub fn registry_host_violation(host: &str) -> Option<&'static str> {
    if let Some(reason) = domain_violation(host) {
        return Some(reason);
    }
    (!looks_like_registry(host)).then_some(
        "would read as part of a Docker Hub repository (a registry is `localhost`, or has a `.` or a `:port`)",
    )
}

/// Why `host` does not match Docker's `domain` production, or `None`.
fn domain_violation(host: &str) -> Option<&'static str> {
    let port = if let Some(rest) = host.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return Some("has a `[` without its `]`");
        };
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Some("is not an IPv6 address in brackets (hexadecimal digits and `:` only)");
        }
        match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Some("has something other than `:port` after `]`"),
            },
        }
    } else {
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        let label_ok = |label: &str| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    first.is_ascii_alphanumeric()
                        && last.is_ascii_alphanumeric()
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                }
                _ => false,
            }
        };
        if !name.split('.').all(label_ok) {
            return Some(
                "is not a host name (letters, digits and `-` in `.`-separated labels that begin and end with a letter or a digit)",
            );
        }
        port
    };
    match port {
        Some(port) if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) => {
            Some("has a port that is not a number")
        }
        _ => None,
    }
}

/// Why `value` is not a Docker tag, or `None` when it is one (Docker's reference grammar,
/// `tag`: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn tag_violation(value: &str) -> Option<&'static str> {
    let Some(first) = value.bytes().next() else {
        return Some("it is empty");
    };
    if value.len() > 128 {
        return Some("it is longer than 128 characters");
    }
    if first == b'.' || first == b'-' {
        return Some("it starts with `.` or `-`");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if value.bytes().all(allowed) {
        None
    } else if value.contains('/') || value.contains('+') {
        Some("it contains `/` or `+` (an S3 object version or a branch name is not a tag)")
    } else {
        Some("it contains a character outside the tag grammar")
    }
}

/// Why `name` is not an ECR repository name, or `None` when it is one (Amazon ECR API
/// reference, `CreateRepository` `repositoryName`): 2-256 characters, `/`-separated components
/// of `[a-z0-9]+` joined by single `.`, `_` or `-`.
pub fn repository_violation(name: &str) -> Option<&'static str> {
    if !(2..=256).contains(&name.len()) {
        return Some("must be 2 to 256 characters long");
    }
    let component_ok = |c: &str| {
        let mut prev_sep = true;
        for b in c.bytes() {
            let sep = matches!(b, b'.' | b'_' | b'-');
            if !(sep || b.is_ascii_lowercase() || b.is_ascii_digit()) || (sep && prev_sep) {
                return false;
            }
            prev_sep = sep;
        }
        !prev_sep
    };
    if name.split('/').all(component_ok) {
        None
    } else {
        Some(
            "is not a valid ECR repository name (lowercase letters and digits, separated by single `.`, `_`, `-` or `/`)",
        )
    }
}

/// Why `host` is not a registry as the config, `--registry` and `ECRSHIP_REGISTRY` give it
/// (`host[:port]`, without a scheme or path), or `None`: a scheme or a path is named as such,
/// anything else must pass [`registry_host_violation`], so that every URI made with it is a
/// reference to that registry.
pub fn registry_violation(host: &str) -> Option<&'static str> {
    if host.is_empty() || host.contains("://") || host.contains('/') {
        return Some(
            "is not a registry host (write it as `host[:port]`, without a scheme or path)",
        );
    }
    registry_host_violation(host)
}

/// The build arg through which an image of the config that another `depends_on` reaches it:
/// `base` → `BASE_IMAGE`, `app-base` → `APP_BASE_IMAGE` (the name upper-cased, `-` as `_`).
pub fn dependency_arg(name: &str) -> String {
    format!("{}_IMAGE", name.to_ascii_uppercase().replace('-', "_"))
}

/// A platform as Docker writes it: `os/arch[/variant]` (`linux/amd64`, `linux/arm/v7`), the
/// `os`, `architecture` and `variant` of an OCI image index's `platform`. Kept as written: no
/// aliases (`x86_64`, `aarch64`) are resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// A string that is not a platform, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("platform `{value}` {reason}")]
pub struct PlatformError {
    value: String,
    reason: &'static str,
}

impl PlatformError {
    /// The refused text.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why it was refused, as [`platform_violation`] says it.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl Platform {
    /// Parses `os/arch` or `os/arch/variant`, each part of lowercase letters, digits and `_`.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let mut parts = s.split('/').map(str::to_owned);
        match (platform_violation(s), parts.next(), parts.next()) {
            (None, Some(os), Some(architecture)) => Ok(Platform {
                os,
                architecture,
                variant: parts.next(),
            }),
            (reason, _, _) => Err(PlatformError {
                value: s.to_owned(),
                reason: reason.unwrap_or(NOT_A_PLATFORM),
            }),
        }
    }

    /// The operating system: `linux`.
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The CPU architecture: `amd64`, `arm64`, `arm`.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The variant of the architecture, when there is one: `v7`.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// The suffix of this platform's tag: `amd64`, `arm64`, `arm-v7` (the architecture, and the
    /// variant where there is one).
    pub fn suffix(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}-{variant}", self.architecture),
            None => self.architecture.clone(),
        }
    }
}

impl Default for Platform {
    /// [`DEFAULT_PLATFORM`]: `linux/amd64`.
    fn default() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        Platform::parse(s)
    }
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Platform, D::Error> {
        let text = String::deserialize(deserializer)?;
        Platform::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Why `platform` is not `os/arch[/variant]` as Docker writes platforms (`docker build
/// --platform`; the `os`, `architecture` and `variant` of the OCI image index), or `None`.
pub fn platform_violation(platform: &str) -> Option<&'static str> {
    let parts: Vec<&str> = platform.split('/').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    (!ok).then_some(NOT_A_PLATFORM)
}

const NOT_A_PLATFORM: &str =
    "is not a platform (write it as `os/arch` or `os/arch/variant`, e.g. `linux/arm64`)";

/// Why `name` is not an ECS container name, or `None` (Amazon ECS API reference,
/// `ContainerDefinition` `name`): 1-255 letters, digits, hyphens and underscores.
pub fn container_name_violation(name: &str) -> Option<&'static str> {
    let ok = (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (!ok).then_some("is not a valid ECS container name (1-255 letters, digits, `-` or `_`)")
}

/// Why `name` is not the name of an ECS cluster or service, or `None` when it is one. Both take
/// up to 255 letters, digits, hyphens and underscores (Amazon ECS API reference, `CreateCluster`
/// `clusterName` and `CreateService` `serviceName`); the API also takes ARNs, the config does
/// not, so that `ecrship policy` can name the service's ARN.
pub fn ecs_name_violation(name: &str) -> Option<&'static str> {
    if name.starts_with("arn:") {
        Some("is an ARN: give the name alone (the region and account come from the environment)")
    } else if container_name_violation(name).is_some() {
        Some("is not an ECS name (1-255 letters, digits, `-` or `_`)")
    } else {
        None
    }
}

/// Why `name` is not a general purpose S3 bucket name, or `None` when it is one (AWS, Amazon S3
/// User Guide, "General purpose bucket naming rules"): 3 to 63 characters of lowercase letters,
/// digits, `.` and `-`; a letter or digit at both ends; no `..`; not an IP address; none of the
/// reserved prefixes `xn--`, `sthree-`, `amzn-s3-demo-` and suffixes `-s3alias`, `--ol-s3`,
/// `.mrap`, `--x-s3`, `--table-s3`.
pub fn bucket_violation(name: &str) -> Option<&'static str> {
    if !(3..=63).contains(&name.len()) {
        return Some("is not a bucket name: it must be 3 to 63 characters long");
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-';
    if !name.bytes().all(allowed) {
        return Some(
            "is not a bucket name: only lowercase letters, digits, `.` and `-` are allowed",
        );
    }
    let end_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !end_ok(name.bytes().next()) || !end_ok(name.bytes().last()) {
        return Some("is not a bucket name: it must begin and end with a letter or a digit");
    }
    if name.contains("..") {
        return Some("is not a bucket name: it has two periods in a row");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("is not a bucket name: it has the form of an IP address");
    }
    let reserved_prefix = ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .any(|p| name.starts_with(p));
    let reserved_suffix = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
        .iter()
        .any(|s| name.ends_with(s));
    if reserved_prefix || reserved_suffix {
        return Some("is not a bucket name: it uses a prefix or suffix that S3 reserves");
    }
    None
}

/// Why `key` cannot be the source object's key, or `None` (AWS, Amazon S3 User Guide, "Naming
/// Amazon S3 objects": a key is at most 1,024 bytes of UTF-8). A key ending in `/` names a
/// folder in the console, not a zip that CodePipeline can take.
pub fn key_violation(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("is not an object key: it is empty")
    } else if key.len() > 1024 {
        Some("is not an object key: it is longer than 1,024 bytes")
    } else if key.ends_with('/') {
        Some("is not an object key for a zip: it ends with `/`, which names a folder")
    } else if key.chars().any(char::is_control) {
        Some("is not an object key for a zip: it holds a control character")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as ValueError, StrDeserializer};

    const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const BUSYBOX: &str = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
    const ID: &str = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
    const ECR: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

    type Parts<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);
    type Owned = (String, String, Option<String>, Option<String>);

    fn parts(r: &Reference) -> Parts<'_> {
        (r.registry(), r.repository(), r.tag(), r.digest())
    }

    /// Inputs that parse, and their (registry, repository, tag, digest).
    fn valid() -> Vec<(String, Owned)> {
        let s = |v: &str| v.to_owned();
        let o = |v: &str| Some(v.to_owned());
        let long = "a".repeat(255);
        let nested = format!("{}a", "a/".repeat(127));
        vec![
            // Docker Hub's normalisation.
            (s("node"), (s("docker.io"), s("library/node"), None, None)),
            (
                s("node:20"),
                (s("docker.io"), s("library/node"), o("20"), None),
            ),
            (s("user/app"), (s("docker.io"), s("user/app"), None, None)),
            (s("a/b/c"), (s("docker.io"), s("a/b/c"), None, None)),
            (
                s("library/ubuntu"),
                (s("docker.io"), s("library/ubuntu"), None, None),
            ),
            (
                s("docker.io/library/ubuntu"),
                (s("docker.io"), s("library/ubuntu"), None, None),
            ),
            (
                s("docker.io/ubuntu"),
                (s("docker.io"), s("library/ubuntu"), None, None),
            ),
            (
                s("index.docker.io/ubuntu"),
                (s("docker.io"), s("library/ubuntu"), None, None),
            ),
            (
                s("index.docker.io/user/app:1"),
                (s("docker.io"), s("user/app"), o("1"), None),
            ),
            (
                s("library/foo/bar"),
                (s("docker.io"), s("library/foo/bar"), None, None),
            ),
            (
                s(&format!("docker.io/{ID}")),
                (s("docker.io"), format!("library/{ID}"), None, None),
            ),
            (
                s(&format!("{ID}:tag")),
                (s("docker.io"), format!("library/{ID}"), o("tag"), None),
            ),
            (
                s("test_com"),
                (s("docker.io"), s("library/test_com"), None, None),
            ),
            (
                s("test.com:tag"),
                (s("docker.io"), s("library/test.com"), o("tag"), None),
            ),
            (
                s("test.com:5000"),
                (s("docker.io"), s("library/test.com"), o("5000"), None),
            ),
            (
                s("192.168.1.1:5000"),
                (s("docker.io"), s("library/192.168.1.1"), o("5000"), None),
            ),
            (
                s("foo/foo_bar.com:8080"),
                (s("docker.io"), s("foo/foo_bar.com"), o("8080"), None),
            ),
            (
                s("lowercase:Uppercase"),
                (s("docker.io"), s("library/lowercase"), o("Uppercase"), None),
            ),
            (
                s("docker---rules/docker"),
                (s("docker.io"), s("docker---rules/docker"), None, None),
            ),
            (
                s("dock__er/docker"),
                (s("docker.io"), s("dock__er/docker"), None, None),
            ),
            (s("d/docker"), (s("docker.io"), s("d/docker"), None, None)),
            (s(&nested), (s("docker.io"), nested.clone(), None, None)),
            // Digests, and tags with digests.
            (
                format!("ubuntu@{D}"),
                (s("docker.io"), s("library/ubuntu"), None, Some(D.into())),
            ),
            (
                format!("busybox:latest@{BUSYBOX}"),
                (
                    s("docker.io"),
                    s("library/busybox"),
                    o("latest"),
                    Some(BUSYBOX.into()),
                ),
            ),
            // Registries: localhost, domains, IPv4, IPv6, ports.
            (s("localhost/app"), (s("localhost"), s("app"), None, None)),
            (
                s("localhost:5000/app:1"),
                (s("localhost:5000"), s("app"), o("1"), None),
            ),
            (
                s("127.0.0.1:5000/app"),
                (s("127.0.0.1:5000"), s("app"), None, None),
            ),
            (
                format!("127.0.0.1:5000/a/b@{D}"),
                (s("127.0.0.1:5000"), s("a/b"), None, Some(D.into())),
            ),
            (
                format!("127.0.0.1:5000/a:tag@{D}"),
                (s("127.0.0.1:5000"), s("a"), o("tag"), Some(D.into())),
            ),
            (
                s("192.168.1.1/repo"),
                (s("192.168.1.1"), s("repo"), None, None),
            ),
            (
                s("192.168.1.1:5000/repo:5050"),
                (s("192.168.1.1:5000"), s("repo"), o("5050"), None),
            ),
            (s("test:5000/repo"), (s("test:5000"), s("repo"), None, None)),
            (s("[::1]:5000/app"), (s("[::1]:5000"), s("app"), None, None)),
            (
                s("[2001:db8::1]/repo"),
                (s("[2001:db8::1]"), s("repo"), None, None),
            ),
            (
                format!("[2001:db8::1]:5000/repo:tag@{D}"),
                (s("[2001:db8::1]:5000"), s("repo"), o("tag"), Some(D.into())),
            ),
            (
                s("sub-dom1.foo.com/bar/baz/quux:some-long-tag"),
                (
                    s("sub-dom1.foo.com"),
                    s("bar/baz/quux"),
                    o("some-long-tag"),
                    None,
                ),
            ),
            (
                s("b.gcr.io/test.example.com/my-app:test.example.com"),
                (
                    s("b.gcr.io"),
                    s("test.example.com/my-app"),
                    o("test.example.com"),
                    None,
                ),
            ),
            (
                s("xn--n3h.com/myimage:xn--n3h.com"),
                (s("xn--n3h.com"), s("myimage"), o("xn--n3h.com"), None),
            ),
            (
                s("Example.COM/app"),
                (s("Example.COM"), s("app"), None, None),
            ),
            (
                format!("example.com/{long}:tag"),
                (s("example.com"), long.clone(), o("tag"), None),
            ),
            (
                format!("{ECR}/team/app:abc12345"),
                (s(ECR), s("team/app"), o("abc12345"), None),
            ),
            // Other digest algorithms: the grammar, and the registered lengths.
            (
                format!("app@sha512:{}", "a".repeat(128)),
                (
                    s("docker.io"),
                    s("library/app"),
                    None,
                    Some(format!("sha512:{}", "a".repeat(128))),
                ),
            ),
            (
                format!("app@multihash+base58:{}", "A".repeat(32)),
                (
                    s("docker.io"),
                    s("library/app"),
                    None,
                    Some(format!("multihash+base58:{}", "A".repeat(32))),
                ),
            ),
        ]
    }

    #[test]
    fn a_reference_equals_the_text_of_its_full_form() {
        let r = Reference::parse("node:20").unwrap();
        assert!(r == "docker.io/library/node:20");
        assert!(r != "docker.io/library/node:2");
        assert!(r != "docker.io/library/node:200");
        assert!(r != "node:20", "the full form, not the familiar one");
        assert_eq!(vec![r], ["docker.io/library/node:20"]);
    }

    #[test]
    fn parses_and_normalises() {
        for (input, (registry, repository, tag, digest)) in valid() {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let want = (
                registry.as_str(),
                repository.as_str(),
                tag.as_deref(),
                digest.as_deref(),
            );
            assert_eq!(parts(&r), want, "{input}");
        }
    }

    #[test]
    fn refuses_with_a_reason() {
        let too_long = "a".repeat(256);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "it is empty"),
            (ID.into(), "image ID"),
            ("Node:20".into(), "must be lowercase"),
            ("Foo/bar".into(), "must be lowercase"),
            ("Uppercase:tag".into(), "must be lowercase"),
            ("LOCALDOMAIN/debian".into(), "must be lowercase"),
            ("docker/Docker".into(), "must be lowercase"),
            (
                "test:5000/Uppercase/lowercase:tag".into(),
                "must be lowercase",
            ),
            ("a..b".into(), "something other than"),
            ("docker/dock..er".into(), "something other than"),
            ("docker/dock_.er".into(), "something other than"),
            ("docker/dock-.er".into(), "something other than"),
            // A first component with a `.` is a registry.
            (
                "dock..er/docker".into(),
                "registry `dock..er` is not a host name",
            ),
            (
                "dock_.er/docker".into(),
                "registry `dock_.er` is not a host name",
            ),
            (
                "dock-.er/docker".into(),
                "registry `dock-.er` is not a host name",
            ),
            ("a___b".into(), "something other than"),
            ("-a".into(), "begin and end"),
            ("-docker/docker".into(), "begin and end"),
            ("docker-/docker".into(), "begin and end"),
            ("____/____".into(), "begin and end"),
            ("_docker/_docker".into(), "begin and end"),
            ("docker///docker".into(), "empty component"),
            ("docker/".into(), "empty component"),
            ("docker.io/docker///docker".into(), "empty component"),
            ("aa/asdf$$^/aa".into(), "character other than"),
            (
                "https://github.com/docker/docker".into(),
                "registry `https:`",
            ),
            (too_long.clone(), "longer than 255"),
            (format!("domain.com/{too_long}:tag"), "longer than 255"),
            ("a".repeat(248), "longer than 255"), // library/ puts it over
            (
                format!("this_is_{}/docker", "x".repeat(250)),
                "longer than 255",
            ),
            ("a:b:c".into(), "tag `b:c`"),
            ("node:".into(), "tag after `:` is empty"),
            ("node:-x".into(), "tag `-x`: it starts with `.` or `-`"),
            (format!("node:{}", "t".repeat(129)), "longer than 128"),
            ("reg.io/app:a/b".into(), "`/` or `+`"),
            (":justtag".into(), "names no repository"),
            (format!("@{D}"), "names no repository"),
            ("docker.io/".into(), "names no repository"),
            ("localhost:5000/".into(), "names no repository"),
            ("node@".into(), "digest after `@` is empty"),
            (
                "repo@sha256:ffffffffffffffffffffffffffffffffff".into(),
                "64 lowercase",
            ),
            (
                format!("repo@{}", D.to_uppercase().replace("SHA256", "sha256")),
                "64 lowercase",
            ),
            (format!("repo@sha512:{}", "f".repeat(64)), "128 lowercase"),
            ("repo@md5:abc".into(), "fewer than 32"),
            (format!("repo@{}", &D[7..]), "not `algorithm:hex`"),
            (format!("repo@1sha:{}", "f".repeat(64)), "algorithm name"),
            (
                format!("repo@sha__256:{}", "f".repeat(64)),
                "algorithm name",
            ),
            ("repo@sha256:xyz".into(), "hexadecimal digit"),
            (format!("repo@{D}@{D}"), "hexadecimal digit"),
            ("[2001:db8::1]".into(), "character other than"),
            ("[2001:db8::1]:5000".into(), "character other than"),
            ("[2001:db8::1]:tag".into(), "character other than"),
            ("[fe80::1%eth0]:5000/repo".into(), "IPv6"),
            ("[fe80::1]x/repo".into(), "after `]`"),
            ("[fe80::1/repo".into(), "without its `]`"),
            ("fc00::1:5000/debian".into(), "port that is not a number"),
            ("localhost:/app".into(), "port that is not a number"),
            ("-docker.io/docker/docker".into(), "not a host name"),
            ("a..b.com/app".into(), "not a host name"),
            ("my_reg.io/app".into(), "not a host name"),
            (
                "ACCOUNT_ID.dkr.ecr.REGION.amazonaws.com/app:latest".into(),
                "not a host name",
            ),
            (" node".into(), "character other than"),
        ];
        for (input, why) in cases {
            let err = Reference::parse(&input).expect_err(&input);
            assert_eq!(err.value(), input);
            assert!(err.reason().contains(why), "{input:?}: {err}");
        }
    }

    /// `distribution/reference`'s `TestValidateReferenceName` and `TestValidateRemoteName`, with
    /// an uppercase first component refused where it takes it as a registry.
    #[test]
    fn distribution_vectors() {
        let valid = [
            "docker/docker",
            "library/debian",
            "debian",
            "localhost/library/debian",
            "localhost/debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "192.168.0.2:25000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker-rules/docker",
            "docker---rules/docker",
            "doc/docker",
            "d/docker",
            "jess/t",
            "dock__er/docker",
        ];
        for name in valid {
            assert!(Reference::parse(name).is_ok(), "{name}");
        }
        let invalid = [
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fe80::1%eth0]:5000/debian",
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            ID,
            "docker-/docker",
            "-docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock..er/docker",
            "dock_.er/docker",
            "dock-.er/docker",
            "docker/",
            // Taken by distribution as registries `Docker`, `DOCKER` and `LOCALDOMAIN`.
            "Docker/docker",
            "DOCKER/docker",
            "LOCALDOMAIN/library/debian",
        ];
        for name in invalid {
            assert!(Reference::parse(name).is_err(), "{name}");
        }
    }

    #[test]
    fn error_messages_name_the_value() {
        let err = Reference::parse("Node:20").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`Node:20` is not an image reference: repository names must be lowercase"
        );
        let err = "a:b:c".parse::<Reference>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`a:b:c` is not an image reference: tag `b:c`: it contains a character outside the tag grammar"
        );
    }

    #[test]
    fn display_round_trips() {
        for (input, _) in valid() {
            let r = Reference::parse(&input).unwrap();
            let shown = r.to_string();
            assert_eq!(
                Reference::parse(&shown).as_ref(),
                Ok(&r),
                "{input} -> {shown}"
            );
            assert_eq!(shown.parse::<Reference>().unwrap().to_string(), shown);
            let familiar = r.familiar();
            assert_eq!(
                Reference::parse(&familiar).as_ref(),
                Ok(&r),
                "{input} -> {familiar}"
            );
        }
        // Canonical inputs show as given.
        for input in [
            "docker.io/library/ubuntu".to_owned(),
            "localhost:5000/app:1".into(),
            "127.0.0.1:5000/app".into(),
            "[::1]:5000/app".into(),
            format!("127.0.0.1:5000/a:tag@{D}"),
            format!("{ECR}/team/app:abc12345"),
        ] {
            assert_eq!(Reference::parse(&input).unwrap().to_string(), input);
        }
        assert_eq!(
            Reference::parse("node:20").unwrap().to_string(),
            "docker.io/library/node:20"
        );
        assert_eq!(
            Reference::parse("index.docker.io/user/app")
                .unwrap()
                .to_string(),
            "docker.io/user/app"
        );
    }

    /// Every string of a small alphabet that parses shows, and shortens, to a string that parses
    /// back to the same reference; every one that is refused is refused with its own text.
    #[test]
    fn generated_strings_round_trip() {
        const ALPHABET: &[u8] = b"a0.:/@_-[]Al";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut parsed = 0;
        for _ in 0..200_000 {
            let len = (next() % 14) as usize;
            let mut input: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
                .collect();
            if next() % 4 == 0 {
                input.push('@');
                input.push_str(D);
            }
            match Reference::parse(&input) {
                Ok(r) => {
                    parsed += 1;
                    assert_eq!(Reference::parse(&r.to_string()).as_ref(), Ok(&r), "{input}");
                    assert_eq!(Reference::parse(&r.familiar()).as_ref(), Ok(&r), "{input}");
                }
                Err(e) => assert_eq!(e.value(), input),
            }
        }
        assert!(parsed > 1000, "{parsed}");
    }

    #[test]
    fn familiar_forms() {
        let cases = [
            ("docker.io/library/node:20", "node:20"),
            ("node", "node"),
            ("docker.io/user/x", "user/x"),
            ("index.docker.io/user/x:1", "user/x:1"),
            ("library/foo/bar", "library/foo/bar"),
            ("docker.io/other/library", "other/library"),
            ("docker.io/my.org/app", "docker.io/my.org/app"),
            ("docker.io/localhost/app", "docker.io/localhost/app"),
            ("docker.io/library/my.org", "my.org"),
            (&format!("docker.io/library/{ID}"), &format!("library/{ID}")),
            (&format!("{ID}:1"), &format!("library/{ID}:1")),
            ("localhost/fooo", "localhost/fooo"),
            (
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
            ),
            (
                "example.com:8000/privatebasee",
                "example.com:8000/privatebasee",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Reference::parse(input).unwrap().familiar(), want, "{input}");
        }
        let r = Reference::parse(&format!("busybox:latest@{BUSYBOX}")).unwrap();
        assert_eq!(r.familiar(), format!("busybox:latest@{BUSYBOX}"));
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/busybox:latest@{BUSYBOX}")
        );
    }

    #[test]
    fn derived_references() {
        let r = Reference::parse(&format!("{ECR}/team/app:abc12345")).unwrap();
        assert_eq!(r.identifier(), "abc12345");
        assert_eq!(r.name(), format!("{ECR}/team/app"));

        let pinned = r.pinned(D).unwrap();
        assert_eq!(pinned.to_string(), format!("{ECR}/team/app@{D}"));
        assert_eq!((pinned.tag(), pinned.digest()), (None, Some(D)));
        assert_eq!(pinned.identifier(), D);

        let both = r.with_digest(D).unwrap();
        assert_eq!(both.to_string(), format!("{ECR}/team/app:abc12345@{D}"));
        assert_eq!(both.identifier(), D);

        let retagged = both.with_tag("abc12345-arm64").unwrap();
        assert_eq!(
            retagged.to_string(),
            format!("{ECR}/team/app:abc12345-arm64")
        );
        assert_eq!(retagged.digest(), None);

        let bare = Reference::parse("127.0.0.1:5000/app").unwrap();
        assert_eq!(bare.identifier(), "latest");
        assert_eq!(bare.tag(), None);
        assert_eq!(
            bare.with_tag("v1").unwrap().to_string(),
            "127.0.0.1:5000/app:v1"
        );

        let err = r.with_tag("feature/x").unwrap_err();
        assert_eq!(err.value(), format!("{ECR}/team/app:feature/x"));
        assert!(err.reason().contains("`/` or `+`"), "{err}");
        let err = r.pinned("sha256:abc").unwrap_err();
        assert!(err.reason().contains("64 lowercase"), "{err}");
        assert!(r.with_digest("").unwrap_err().reason().contains("empty"));
    }

    #[test]
    fn registry_hosts_and_docker_hub() {
        let cases = [
            ("localhost:5000/app", "localhost", false),
            ("[::1]:5000/app", "[::1]", false),
            ("[2001:db8::1]/app", "[2001:db8::1]", false),
            ("127.0.0.1/app", "127.0.0.1", false),
            ("node", "docker.io", true),
            ("index.docker.io/user/app", "docker.io", true),
            (
                "registry-1.docker.io/user/app",
                "registry-1.docker.io",
                false,
            ),
        ];
        for (input, host, hub) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(
                (r.registry_host(), r.is_docker_hub()),
                (host, hub),
                "{input}"
            );
        }
    }

    #[test]
    fn new_checks_and_normalises() {
        let ok: &[(Parts, Parts)] = &[
            (
                (ECR, "team/app", Some("t1"), None),
                (ECR, "team/app", Some("t1"), None),
            ),
            (
                ("docker.io", "node", Some("20"), None),
                ("docker.io", "library/node", Some("20"), None),
            ),
            (
                ("index.docker.io", "user/x", None, None),
                ("docker.io", "user/x", None, None),
            ),
            (
                ("localhost:5000", "app", None, Some(D)),
                ("localhost:5000", "app", None, Some(D)),
            ),
            (
                ("[::1]", "a/b", Some("x"), Some(D)),
                ("[::1]", "a/b", Some("x"), Some(D)),
            ),
        ];
        for &((registry, repository, tag, digest), want) in ok {
            let r = Reference::new(registry, repository, tag, digest).unwrap();
            assert_eq!(parts(&r), want, "{registry} {repository}");
            assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()));
        }
        let bad: &[(Parts, &str)] = &[
            (("myregistry", "app", None, None), "would read as part of"),
            (("", "app", None, None), "not a host name"),
            (
                ("ACCOUNT_ID.dkr.ecr.REGION.amazonaws.com", "app", None, None),
                "not a host name",
            ),
            (("reg.io/x", "app", None, None), "not a host name"),
            ((ECR, "App", None, None), "lowercase"),
            ((ECR, "", None, None), "names no repository"),
            ((ECR, "app:1", None, None), "character other than"),
            ((ECR, "app", Some(".x"), None), "starts with"),
            ((ECR, "app", None, Some("sha256:1")), "64 lowercase"),
        ];
        for &((registry, repository, tag, digest), why) in bad {
            let err = Reference::new(registry, repository, tag, digest).unwrap_err();
            assert!(err.reason().contains(why), "{registry} {repository}: {err}");
        }
        let err = Reference::new("myregistry", "app", Some("1"), None).unwrap_err();
        assert_eq!(err.value(), "myregistry/app:1");
    }

    #[test]
    fn serde_as_the_display_string() {
        struct Shown<'a, T>(&'a T);
        impl<T: Serialize> fmt::Display for Shown<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.serialize(f)
            }
        }
        let r = Reference::parse("node:20").unwrap();
        assert_eq!(Shown(&r).to_string(), "docker.io/library/node:20");
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(Shown(&p).to_string(), "linux/arm/v7");

        let de =
            |s: &'static str| -> StrDeserializer<'static, ValueError> { s.into_deserializer() };
        assert_eq!(
            Reference::deserialize(de("user/app:1")),
            Ok(Reference::parse("user/app:1").unwrap())
        );
        let err = Reference::deserialize(de("Node")).unwrap_err();
        assert!(err.to_string().contains("must be lowercase"), "{err}");
        assert_eq!(
            Platform::deserialize(de("linux/arm64")),
            Ok(Platform::parse("linux/arm64").unwrap())
        );
        assert!(Platform::deserialize(de("linux")).is_err());
    }

    #[test]
    fn ordered_and_hashed_by_parts() {
        let mut refs: Vec<Reference> = ["b", "a:2", "a:1", "a", "localhost/a"]
            .iter()
            .map(|s| Reference::parse(s).unwrap())
            .collect();
        refs.sort();
        let shown: Vec<String> = refs.iter().map(Reference::familiar).collect();
        assert_eq!(shown, ["a", "a:1", "a:2", "b", "localhost/a"]);
        let set: std::collections::HashSet<Reference> = [
            "node",
            "docker.io/library/node",
            "index.docker.io/library/node",
        ]
        .iter()
        .map(|s| Reference::parse(s).unwrap())
        .collect();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn tag_grammar() {
        let long_ok = "a".repeat(128);
        let long_bad = "a".repeat(129);
        let cases: &[(&str, Option<&str>)] = &[
            ("latest", None),
            ("abc12345", None),
            ("_x", None),
            ("v1.2.3-rc_1", None),
            ("A", None),
            (&long_ok, None),
            ("", Some("empty")),
            (&long_bad, Some("longer than 128")),
            (".x", Some("starts with")),
            ("-x", Some("starts with")),
            ("bad tag!", Some("outside the tag grammar")),
            ("feature/x", Some("`/` or `+`")),
            ("a+b", Some("`/` or `+`")),
            ("ä", Some("outside the tag grammar")),
            ("a:b", Some("outside the tag grammar")),
        ];
        for (value, want) in cases {
            match (tag_violation(value), want) {
                (None, None) => {}
                (Some(got), Some(want)) => assert!(got.contains(want), "{value:?}: {got}"),
                (got, _) => panic!("{value:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn ecr_repository_grammar() {
        let long_ok = "a".repeat(256);
        let long_bad = "a".repeat(257);
        for ok in ["app", "team/app", "a-b_c.d/e1", "ab", &long_ok] {
            assert_eq!(repository_violation(ok), None, "{ok}");
        }
        let cases = [
            ("a", "2 to 256"),
            ("", "2 to 256"),
            (long_bad.as_str(), "2 to 256"),
            ("App", "not a valid ECR repository name"),
            ("a//b", "not a valid ECR repository name"),
            ("-ab", "not a valid ECR repository name"),
            ("ab-", "not a valid ECR repository name"),
            ("a--b", "not a valid ECR repository name"),
            ("a__b", "not a valid ECR repository name"),
            ("a/", "not a valid ECR repository name"),
            ("/ab", "not a valid ECR repository name"),
            ("a b", "not a valid ECR repository name"),
        ];
        for (bad, why) in cases {
            let reason = repository_violation(bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert!(reason.contains(why), "{bad}: {reason}");
        }
    }

    #[test]
    fn config_registries() {
        for ok in [ECR, "localhost:5000", "[::1]:5000", "registry.example"] {
            assert_eq!(registry_violation(ok), None, "{ok}");
        }
        for bad in ["", "https://reg.io", "reg.io/path"] {
            let reason = registry_violation(bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert!(reason.contains("`host[:port]`"), "{bad}: {reason}");
        }
        // `myregistry/app` would be the Docker Hub repository `myregistry/app`.
        for bad in ["myregistry", "reg io", "reg_io.com"] {
            assert!(registry_violation(bad).is_some(), "{bad} passed");
        }
        let reason = registry_violation("myregistry").unwrap();
        assert!(reason.contains("Docker Hub"), "{reason}");
    }

    #[test]
    fn reference_registries() {
        for ok in [
            ECR,
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]",
            "[2001:db8::1]:5000",
            "a.b",
            "a-b.c0",
            "Example.COM:443",
        ] {
            assert_eq!(registry_host_violation(ok), None, "{ok}");
        }
        let cases = [
            ("", "not a host name"),
            ("a", "would read as part of"),
            ("myregistry", "would read as part of"),
            ("LOCALHOST", "would read as part of"),
            (":5000", "not a host name"),
            ("-a.com", "not a host name"),
            ("a-.com", "not a host name"),
            ("a..com", "not a host name"),
            (".a.com", "not a host name"),
            ("a_b.com", "not a host name"),
            ("a.com:", "port that is not a number"),
            ("a.com:50a", "port that is not a number"),
            ("a.com:1:2", "port that is not a number"),
            ("[]", "IPv6"),
            ("[fe80::1%eth0]", "IPv6"),
            ("[::1", "without its `]`"),
            ("[::1]5000", "after `]`"),
            ("[::1]:", "port that is not a number"),
        ];
        for (bad, why) in cases {
            let reason = registry_host_violation(bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert!(reason.contains(why), "{bad}: {reason}");
        }
    }

    #[test]
    fn platforms() {
        let cases: &[(&str, &str, &str, Option<&str>, &str)] = &[
            ("linux/amd64", "linux", "amd64", None, "amd64"),
            ("linux/arm64", "linux", "arm64", None, "arm64"),
            ("linux/arm/v7", "linux", "arm", Some("v7"), "arm-v7"),
            ("linux/arm64/v8", "linux", "arm64", Some("v8"), "arm64-v8"),
            ("windows/x86_64", "windows", "x86_64", None, "x86_64"),
        ];
        for &(input, os, arch, variant, suffix) in cases {
            let p: Platform = input.parse().unwrap();
            assert_eq!(
                (p.os(), p.architecture(), p.variant()),
                (os, arch, variant),
                "{input}"
            );
            assert_eq!(p.suffix(), suffix, "{input}");
            assert_eq!(p.to_string(), input);
        }
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux//v7",
            "linux/arm/v7/x",
            "Linux/amd64",
            "linux/amd-64",
            "linux/amd64 ",
        ] {
            let err = Platform::parse(bad).unwrap_err();
            assert_eq!(platform_violation(bad), Some(err.reason()), "{bad:?}");
            assert_eq!(
                err.to_string(),
                format!(
                    "platform `{bad}` is not a platform (write it as `os/arch` or `os/arch/variant`, e.g. `linux/arm64`)"
                )
            );
        }
        assert_eq!(Platform::default().to_string(), DEFAULT_PLATFORM);
        assert_eq!(Platform::parse(DEFAULT_PLATFORM), Ok(Platform::default()));
    }

    #[test]
    fn ecs_names() {
        let max = "n".repeat(255);
        let over = "n".repeat(256);
        for ok in ["app", "A_b-1", "_", max.as_str()] {
            assert_eq!(container_name_violation(ok), None, "{ok}");
            assert_eq!(ecs_name_violation(ok), None, "{ok}");
        }
        for bad in ["", over.as_str(), "a.b", "a b", "a/b", "ä"] {
            let reason = container_name_violation(bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert_eq!(
                reason,
                "is not a valid ECS container name (1-255 letters, digits, `-` or `_`)"
            );
            assert_eq!(
                ecs_name_violation(bad),
                Some("is not an ECS name (1-255 letters, digits, `-` or `_`)"),
                "{bad}"
            );
        }
        let arn = "arn:aws:ecs:eu-west-1:123456789012:service/c/s";
        assert!(ecs_name_violation(arn).is_some_and(|r| r.starts_with("is an ARN")));
        assert!(ecs_name_violation("arn:x").is_some_and(|r| r.starts_with("is an ARN")));
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-source-bucket", "a.b.c", "123", &"a".repeat(63)] {
            assert_eq!(bucket_violation(ok), None, "{ok}");
        }
        let cases = [
            ("ab", "3 to 63"),
            (&"a".repeat(64), "3 to 63"),
            ("My-Bucket", "lowercase"),
            ("my_bucket", "lowercase"),
            ("-abc", "begin and end"),
            ("abc.", "begin and end"),
            ("a..b", "two periods"),
            ("192.168.5.4", "IP address"),
            ("xn--abc", "reserve"),
            ("sthree-abc", "reserve"),
            ("amzn-s3-demo-abc", "reserve"),
            ("abc-s3alias", "reserve"),
            ("abc--ol-s3", "reserve"),
            ("abc.mrap", "reserve"),
            ("abc--x-s3", "reserve"),
            ("abc--table-s3", "reserve"),
        ];
        for (bad, why) in cases {
            let reason = bucket_violation(bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert!(reason.contains(why), "{bad}: {reason}");
        }
    }

    #[test]
    fn key_names() {
        for ok in [
            "src.zip",
            "path/to/src.zip",
            "ソース.zip",
            &"k".repeat(1024),
        ] {
            assert_eq!(key_violation(ok), None, "{ok}");
        }
        let cases = [
            ("", "empty"),
            ("folder/", "names a folder"),
            ("a\nb", "control character"),
            (&"k".repeat(1025), "1,024 bytes"),
        ];
        for (bad, why) in cases {
            let reason = key_violation(bad).unwrap_or_else(|| panic!("{bad:?} passed"));
            assert!(reason.contains(why), "{bad:?}: {reason}");
        }
    }
}
