//! The inputs digest of an image: one SHA-256 over everything that decides what a build
//! produces, stored on the image as the label [`LABEL`], with its parts beside it as
//! [`PARTS_LABEL`]. An image in the registry with the same digest was built from the same
//! inputs and can be reused instead of built again; one with another digest says, part by part,
//! why it cannot ([`explain`]).
//!
//! The parts ([`Parts`]):
//!
//! - `dockerfile`: the Dockerfile's bytes with every image it names replaced by a placeholder
//!   (`bases` says what each is): how an image is named (`node:20`, a mirror's copy of it, its
//!   full reference) does not count, what it is does.
//! - `context`: the context's entries as they are sent ([`crate::context::digest`]), in all and
//!   per top-level entry, so that a miss can name the paths that differ.
//! - `args`: each build arg's value; a dependency's `<NAME>_IMAGE` arg by the dependency's own
//!   inputs digest (its local name holds the run's tag, its digest says what it is), unless the
//!   config gives that arg a value of its own.
//! - `secrets` (names only), `target`, `platform` (the configured one, else the daemon's),
//!   `builder`, `labels` (the user's), `bases` (each image the Dockerfile names, in order: what
//!   it resolved to, a registry's content digest or the id of an image only the daemon holds;
//!   the name is kept for messages, only the digest counts) and `dependencies` (each image of
//!   this config built on, and its inputs digest).
//!
//! Left out: what changes from run to run without changing the build (the per-run labels:
//! revision, creation time, build ARN) and the values of secret mounts (BuildKit's own cache does
//! not see them either; `--no-cache` rebuilds after rotating one).
//!
//! A build arg from SSM, or one whose name looks secret, enters only through PBKDF2-HMAC-SHA256
//! of its value ([`SECRET_ROUNDS`] rounds, salted with the repository and the arg's name), so the
//! published digest and parts reveal nothing about it and testing a guessed value costs that many
//! HMACs. Other args' values are in the image's history anyway; their parts are their SHA-256.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::context::Builder;
pub use crate::context::digest::ContextDigests;

/// The label that carries the inputs digest.
pub const LABEL: &str = "dev.ecrship.inputs";
/// The label that carries the digest's parts, as JSON ([`Parts`]).
pub const PARTS_LABEL: &str = "dev.ecrship.inputs.parts";
/// The version of what the digest covers; a change here makes every earlier digest differ.
const VERSION: u32 = 2;
/// PBKDF2 rounds for a secret value.
pub const SECRET_ROUNDS: u32 = 100_000;
/// Per-entry context digests are cut to this many hex digits in the parts: enough to tell
/// which entries differ; the total is kept whole.
const SHORT: usize = 16;

/// A build arg's value, and whether it must stay hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgValue<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub secret: bool,
}

/// Everything the digest covers.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Salts the secret values: the ECR repository.
    pub repository: &'a str,
    /// The Dockerfile with every image it names replaced by a placeholder.
    pub dockerfile: &'a [u8],
    pub context: &'a ContextDigests,
    pub build_args: Vec<ArgValue<'a>>,
    pub secret_names: Vec<&'a str>,
    pub target: Option<&'a str>,
    /// The effective platform: the configured one, else the daemon's.
    pub platform: &'a str,
    pub builder: Builder,
    pub labels: &'a BTreeMap<String, String>,
    /// Each image the Dockerfile names, in order: its name (normalised) and what it resolved
    /// to.
    pub bases: &'a [Base],
    /// Each image of this config built on, and its inputs digest.
    pub dependencies: &'a BTreeMap<String, String>,
}

/// One image a Dockerfile names: its name, and what it resolved to (`sha256:...` in a registry,
/// `local:sha256:...` the id of an image only the daemon holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub name: String,
    pub digest: String,
}

/// The parts of an inputs digest, as the label [`PARTS_LABEL`] stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parts {
    pub version: u32,
    pub dockerfile: String,
    pub context: String,
    /// Per top-level context entry, cut to 16 hex digits.
    #[serde(default)]
    pub context_entries: BTreeMap<String, String>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub platform: String,
    pub builder: String,
    pub labels: String,
    #[serde(default)]
    pub bases: Vec<Base>,
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
}

impl Inputs<'_> {
    /// The parts, each a digest of its own (or, for names, the names themselves).
    pub fn parts(&self) -> Parts {
        let mut args = BTreeMap::new();
        for arg in &self.build_args {
            let value = if arg.secret {
                secret_hash(self.repository, arg.name, arg.value)
            } else {
                sha256(&[arg.name.as_bytes(), arg.value.as_bytes()])
            };
            args.insert(arg.name.to_owned(), hex::encode(value));
        }
        let mut secrets: Vec<String> = self.secret_names.iter().map(|s| (*s).to_owned()).collect();
        secrets.sort_unstable();
        secrets.dedup();
        let labels: Vec<&[u8]> = self
            .labels
            .iter()
            .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()])
            .collect();
        Parts {
            version: VERSION,
            dockerfile: hex::encode(sha256(&[self.dockerfile])),
            context: self.context.total.clone(),
            context_entries: self
                .context
                .entries
                .iter()
                .map(|(name, digest)| (name.clone(), short(digest)))
                .collect(),
            args,
            secrets,
            target: self.target.map(str::to_owned),
            platform: self.platform.to_owned(),
            builder: match self.builder {
                Builder::BuildKit => "buildkit",
                Builder::Classic => "classic",
            }
            .to_owned(),
            labels: hex::encode(sha256(&labels)),
            bases: self.bases.to_vec(),
            dependencies: self.dependencies.clone(),
        }
    }
}

impl Parts {
    /// `sha256:<hex>` over every part, each length-framed and in a fixed order.
    pub fn digest(&self) -> String {
        let mut sha = Sha256::new();
        let mut field = |tag: &str, bytes: &[u8]| {
            frame(&mut sha, tag.as_bytes());
            frame(&mut sha, bytes);
        };
        field("version", &self.version.to_be_bytes());
        field("dockerfile", self.dockerfile.as_bytes());
        field("context", self.context.as_bytes());
        for (name, value) in &self.args {
            field("arg", name.as_bytes());
            field("value", value.as_bytes());
        }
        for name in &self.secrets {
            field("secret", name.as_bytes());
        }
        field(
            "target",
            self.target.as_deref().unwrap_or_default().as_bytes(),
        );
        field("platform", self.platform.as_bytes());
        field("builder", self.builder.as_bytes());
        field("labels", self.labels.as_bytes());
        // What each base is, in order; not what it is called.
        for base in &self.bases {
            field("base", base.digest.as_bytes());
        }
        for (name, digest) in &self.dependencies {
            field("dependency", name.as_bytes());
            field("dependency-inputs", digest.as_bytes());
        }
        format!("sha256:{}", hex::encode(sha.finalize()))
    }

    /// The parts as the label's value: compact JSON.
    pub fn to_label(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The parts a label holds; `None` for a label of another version or shape.
    pub fn from_label(text: &str) -> Option<Parts> {
        serde_json::from_str::<Parts>(text)
            .ok()
            .filter(|p| p.version == VERSION)
    }
}

/// How many differing context paths a reason names before it says how many more there are.
const PATHS_SHOWN: usize = 3;

/// Why an image built from `theirs` is not what `ours` would build, part by part, in words a
/// user can act on (`the context (lib, mix.lock)`; `the base docker.io/library/node:20 moved
/// (sha256:aaa… → sha256:bbb…)`); empty when no part differs.
pub fn explain(ours: &Parts, theirs: &Parts) -> Vec<String> {
    let mut reasons = Vec::new();
    if ours.version != theirs.version {
        reasons.push("it was built by another version of ecrship's inputs digest".into());
        return reasons;
    }
    if ours.platform != theirs.platform {
        reasons.push(format!(
            "the platform ({} there, {} here)",
            theirs.platform, ours.platform
        ));
    }
    let mut moved = false;
    for (i, base) in ours.bases.iter().enumerate() {
        match theirs.bases.get(i) {
            Some(old) if old.digest != base.digest && old.name == base.name => {
                moved = true;
                reasons.push(format!(
                    "the base {} moved ({} → {})",
                    base.name,
                    short_digest(&old.digest),
                    short_digest(&base.digest)
                ));
            }
            Some(old) if old.digest != base.digest => {
                moved = true;
                reasons.push(format!(
                    "the base {} ({}) is not {} ({})",
                    base.name,
                    short_digest(&base.digest),
                    old.name,
                    short_digest(&old.digest)
                ));
            }
            _ => {}
        }
    }
    for (name, inputs) in &ours.dependencies {
        match theirs.dependencies.get(name) {
            Some(old) if old != inputs => {
                reasons.push(format!("`{name}`, which it builds on, has other inputs"))
            }
            _ => {}
        }
    }
    if ours.dockerfile != theirs.dockerfile || (ours.bases.len() != theirs.bases.len() && !moved) {
        reasons.push("the Dockerfile".into());
    }
    if ours.context != theirs.context {
        let mut differ: Vec<String> = ours
            .context_entries
            .iter()
            .filter(|(name, digest)| theirs.context_entries.get(*name) != Some(digest))
            .map(|(name, _)| name.clone())
            .chain(
                theirs
                    .context_entries
                    .keys()
                    .filter(|name| !ours.context_entries.contains_key(*name))
                    .cloned(),
            )
            .collect();
        differ.sort();
        differ.dedup();
        reasons.push(match differ.len() {
            0 => "the context".to_owned(),
            n if n <= PATHS_SHOWN => format!("the context ({})", differ.join(", ")),
            n => format!(
                "the context ({} and {} more)",
                differ[..PATHS_SHOWN].join(", "),
                n - PATHS_SHOWN
            ),
        });
    }
    let dependency_args: Vec<String> = ours
        .dependencies
        .keys()
        .map(|name| crate::reference::dependency_arg(name))
        .collect();
    let mut args: Vec<&str> = ours
        .args
        .iter()
        .filter(|(name, value)| theirs.args.get(*name) != Some(value))
        .map(|(name, _)| name.as_str())
        .chain(
            theirs
                .args
                .keys()
                .filter(|name| !ours.args.contains_key(*name))
                .map(String::as_str),
        )
        .filter(|name| !dependency_args.iter().any(|d| d == name))
        .collect();
    args.sort_unstable();
    args.dedup();
    if !args.is_empty() {
        reasons.push(format!("build args ({})", args.join(", ")));
    }
    if ours.secrets != theirs.secrets {
        reasons.push("the names of the secrets".into());
    }
    if ours.target != theirs.target {
        reasons.push("the target stage".into());
    }
    if ours.builder != theirs.builder {
        reasons.push(format!(
            "the builder ({} there, {} here)",
            theirs.builder, ours.builder
        ));
    }
    if ours.labels != theirs.labels {
        reasons.push("the labels".into());
    }
    reasons
}

/// `sha256:` and the first 12 hex digits, for a line.
fn short_digest(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None => digest.to_owned(),
    }
}

/// The first [`SHORT`] hex digits of a `sha256:<hex>` digest.
fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex[..hex.len().min(SHORT)].to_owned()
}

fn sha256(pieces: &[&[u8]]) -> [u8; 32] {
    let mut sha = Sha256::new();
    for piece in pieces {
        frame(&mut sha, piece);
    }
    sha.finalize().into()
}

/// PBKDF2-HMAC-SHA256 of a secret value, salted with the repository and the arg's name.
#[inline(never)]
fn secret_hash(repository: &str, name: &str, value: &str) -> [u8; 32] {
    let salt = format!("ecrship-inputs-v{VERSION}\0{repository}\0{name}");
    pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(value.as_bytes(), salt.as_bytes(), SECRET_ROUNDS)
}

fn frame(sha: &mut Sha256, bytes: &[u8]) {
    sha.update((bytes.len() as u64).to_be_bytes());
    sha.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Owned {
        context: ContextDigests,
        labels: BTreeMap<String, String>,
        bases: Vec<Base>,
        dependencies: BTreeMap<String, String>,
    }

    fn owned() -> Owned {
        Owned {
            context: ContextDigests {
                total: "sha256:00".into(),
                entries: BTreeMap::from([
                    ("lib".into(), "sha256:aa".into()),
                    ("mix.lock".into(), "sha256:bb".into()),
                ]),
            },
            labels: BTreeMap::new(),
            bases: vec![Base {
                name: "docker.io/library/node:20".into(),
                digest: format!("sha256:{}", "1".repeat(64)),
            }],
            dependencies: BTreeMap::new(),
        }
    }

    fn base(o: &Owned) -> Inputs<'_> {
        Inputs {
            repository: "app",
            dockerfile: b"FROM @image\n",
            context: &o.context,
            build_args: vec![
                ArgValue {
                    name: "MIX_ENV",
                    value: "prod",
                    secret: false,
                },
                ArgValue {
                    name: "SECRET_KEY_BASE",
                    value: "hunter2",
                    secret: true,
                },
            ],
            secret_names: vec!["npm"],
            target: None,
            platform: "linux/amd64",
            builder: Builder::BuildKit,
            labels: &o.labels,
            bases: &o.bases,
            dependencies: &o.dependencies,
        }
    }

    #[test]
    fn every_input_counts() {
        let o = owned();
        let same = base(&o).parts().digest();
        assert_eq!(same, base(&o).parts().digest());
        let mut args_swapped = base(&o);
        args_swapped.build_args.reverse();
        assert_eq!(
            args_swapped.parts().digest(),
            same,
            "arg order does not matter"
        );

        let mut other = owned();
        other.labels.insert("team".into(), "web".into());
        let mut moved = owned();
        moved.bases[0].digest = format!("sha256:{}", "2".repeat(64));
        // The same image under another name (a mirror's copy) is the same input.
        let mut renamed = owned();
        renamed.bases[0].name = "127.0.0.1:5000/docker-hub/library/node:20".into();
        assert_eq!(base(&renamed).parts().digest(), same);
        let mut context = owned();
        context.context.total = "sha256:01".into();
        let mut dependency = owned();
        dependency
            .dependencies
            .insert("base".into(), "sha256:dd".into());
        let variants: Vec<Inputs<'_>> = vec![
            Inputs {
                dockerfile: b"FROM @image\n\n",
                ..base(&o)
            },
            base(&context),
            Inputs {
                secret_names: vec!["npm2"],
                ..base(&o)
            },
            Inputs {
                target: Some("release"),
                ..base(&o)
            },
            Inputs {
                platform: "linux/arm64",
                ..base(&o)
            },
            Inputs {
                builder: Builder::Classic,
                ..base(&o)
            },
            base(&other),
            base(&moved),
            base(&dependency),
            {
                let mut i = base(&o);
                i.build_args[0].value = "dev";
                i
            },
            {
                let mut i = base(&o);
                i.build_args[1].value = "hunter3";
                i
            },
        ];
        for (n, variant) in variants.iter().enumerate() {
            assert_ne!(variant.parts().digest(), same, "variant {n}");
        }
    }

    #[test]
    fn secret_values_are_not_plainly_hashed_or_shown() {
        let o = owned();
        let parts = base(&o).parts();
        let plain = hex::encode(Sha256::digest(b"hunter2"));
        let hashed = secret_hash("app", "SECRET_KEY_BASE", "hunter2");
        assert_ne!(hex::encode(hashed), plain);
        assert_eq!(parts.args["SECRET_KEY_BASE"], hex::encode(hashed));
        // Salted: the same value under another repository or name hashes differently.
        assert_ne!(hashed, secret_hash("web", "SECRET_KEY_BASE", "hunter2"));
        assert_ne!(hashed, secret_hash("app", "OTHER", "hunter2"));
        let label = parts.to_label();
        assert!(
            !label.contains("hunter2") && !label.contains(&plain),
            "{label}"
        );
        assert!(!parts.digest().contains("hunter2"));
    }

    #[test]
    fn parts_travel_as_a_label() {
        let o = owned();
        let parts = base(&o).parts();
        let label = parts.to_label();
        assert_eq!(Parts::from_label(&label), Some(parts.clone()));
        assert_eq!(parts.context_entries["lib"], "aa");
        assert_eq!(Parts::from_label("{\"version\":1}"), None);
        assert_eq!(Parts::from_label("sha256:00"), None);
    }

    #[test]
    fn a_miss_is_explained_part_by_part() {
        let o = owned();
        let ours = base(&o).parts();
        assert!(explain(&ours, &ours).is_empty());

        let mut theirs = ours.clone();
        theirs.context = "sha256:99".into();
        theirs.context_entries.insert("lib".into(), "cc".into());
        theirs.context_entries.insert("old.txt".into(), "dd".into());
        theirs.args.insert("MIX_ENV".into(), "x".into());
        theirs.platform = "linux/arm64".into();
        theirs.bases[0].digest = format!("sha256:{}", "3".repeat(64));
        theirs.dockerfile = "other".into();
        assert_eq!(
            explain(&ours, &theirs),
            [
                "the platform (linux/arm64 there, linux/amd64 here)",
                "the base docker.io/library/node:20 moved (sha256:333333333333 → sha256:111111111111)",
                "the Dockerfile",
                "the context (lib, old.txt)",
                "build args (MIX_ENV)",
            ]
        );

        // A dependency rebuilt: said once, not again as its arg.
        let mut ours = ours.clone();
        ours.dependencies.insert("base".into(), "sha256:01".into());
        ours.args.insert("BASE_IMAGE".into(), "01".into());
        let mut theirs = ours.clone();
        theirs
            .dependencies
            .insert("base".into(), "sha256:02".into());
        theirs.args.insert("BASE_IMAGE".into(), "02".into());
        assert_eq!(
            explain(&ours, &theirs),
            ["`base`, which it builds on, has other inputs"]
        );

        let mut many = ours.clone();
        many.context = "sha256:98".into();
        for name in ["a", "b", "c", "d", "e"] {
            many.context_entries.insert(name.into(), "ee".into());
        }
        assert_eq!(explain(&ours, &many), ["the context (a, b, c and 2 more)"]);
    }
}
