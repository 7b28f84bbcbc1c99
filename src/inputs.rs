//! The inputs digest of an image: one SHA-256 over everything that decides what a build
//! produces, stored on the image as the label [`LABEL`]. An image in the registry with the same
//! digest was built from the same inputs and can be reused instead of built again.
//!
//! It covers the Dockerfile's bytes, the context's entries as they are sent
//! ([`crate::context::digest`]), the build args' values, the names of the secret mounts, the
//! target, the platform, the builder and the user's labels. It leaves out what changes from run
//! to run without changing the build: the per-run labels (revision, creation time, build ARN)
//! and the values of secret mounts (BuildKit's own cache does not see them either).
//!
//! A build arg from SSM, or one whose name looks secret, enters only through PBKDF2-HMAC-SHA256
//! of its value ([`SECRET_ROUNDS`] rounds, salted with the repository and the arg's name), so the
//! published digest reveals nothing about it and testing a guessed value costs that many HMACs.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::context::Builder;

/// The label that carries the inputs digest.
pub const LABEL: &str = "dev.ecrship.inputs";
/// The version of what the digest covers; a change here makes every earlier digest differ.
const VERSION: &[u8] = b"ecrship-inputs-v1";
/// PBKDF2 rounds for a secret value.
pub const SECRET_ROUNDS: u32 = 100_000;

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
    pub dockerfile: &'a [u8],
    /// The context's digest, `sha256:...`.
    pub context: &'a str,
    pub build_args: Vec<ArgValue<'a>>,
    pub secret_names: Vec<&'a str>,
    pub target: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub builder: Builder,
    pub labels: &'a BTreeMap<String, String>,
}

impl Inputs<'_> {
    /// `sha256:<hex>` over all the inputs, each length-framed and in a fixed order.
    pub fn digest(&self) -> String {
        let mut sha = Sha256::new();
        let mut field = |tag: &str, bytes: &[u8]| {
            frame(&mut sha, tag.as_bytes());
            frame(&mut sha, bytes);
        };
        field("version", VERSION);
        field("dockerfile", self.dockerfile);
        field("context", self.context.as_bytes());
        let mut args: Vec<&ArgValue<'_>> = self.build_args.iter().collect();
        args.sort_by_key(|a| a.name);
        for arg in args {
            field("arg", arg.name.as_bytes());
            if arg.secret {
                field(
                    "secret-value",
                    &secret_hash(self.repository, arg.name, arg.value),
                );
            } else {
                field("value", arg.value.as_bytes());
            }
        }
        let mut secrets = self.secret_names.clone();
        secrets.sort_unstable();
        for name in secrets {
            field("secret", name.as_bytes());
        }
        field("target", self.target.unwrap_or_default().as_bytes());
        field("platform", self.platform.unwrap_or_default().as_bytes());
        let builder = match self.builder {
            Builder::BuildKit => "buildkit",
            Builder::Classic => "classic",
        };
        field("builder", builder.as_bytes());
        for (key, value) in self.labels {
            field("label", key.as_bytes());
            field("label-value", value.as_bytes());
        }
        format!("sha256:{}", hex::encode(sha.finalize()))
    }
}

/// PBKDF2-HMAC-SHA256 of a secret value, salted with the repository and the arg's name.
#[inline(never)]
fn secret_hash(repository: &str, name: &str, value: &str) -> [u8; 32] {
    let salt = format!("{}\0{repository}\0{name}", String::from_utf8_lossy(VERSION));
    pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(value.as_bytes(), salt.as_bytes(), SECRET_ROUNDS)
}

fn frame(sha: &mut Sha256, bytes: &[u8]) {
    sha.update((bytes.len() as u64).to_be_bytes());
    sha.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base<'a>(labels: &'a BTreeMap<String, String>) -> Inputs<'a> {
        Inputs {
            repository: "app",
            dockerfile: b"FROM scratch\n",
            context: "sha256:00",
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
            platform: None,
            builder: Builder::BuildKit,
            labels,
        }
    }

    #[test]
    fn every_input_counts() {
        let labels = BTreeMap::new();
        let same = base(&labels).digest();
        assert_eq!(same, base(&labels).digest());
        let mut args_swapped = base(&labels);
        args_swapped.build_args.reverse();
        assert_eq!(args_swapped.digest(), same, "arg order does not matter");

        let other_labels = BTreeMap::from([("team".to_string(), "web".to_string())]);
        let variants: Vec<Inputs<'_>> = vec![
            Inputs {
                dockerfile: b"FROM scratch\n\n",
                ..base(&labels)
            },
            Inputs {
                context: "sha256:01",
                ..base(&labels)
            },
            Inputs {
                secret_names: vec!["npm2"],
                ..base(&labels)
            },
            Inputs {
                target: Some("release"),
                ..base(&labels)
            },
            Inputs {
                platform: Some("linux/arm64"),
                ..base(&labels)
            },
            Inputs {
                builder: Builder::Classic,
                ..base(&labels)
            },
            Inputs {
                labels: &other_labels,
                ..base(&labels)
            },
            {
                let mut i = base(&labels);
                i.build_args[0].value = "dev";
                i
            },
            {
                let mut i = base(&labels);
                i.build_args[1].value = "hunter3";
                i
            },
        ];
        for (n, variant) in variants.iter().enumerate() {
            assert_ne!(variant.digest(), same, "variant {n}");
        }
    }

    #[test]
    fn secret_values_are_not_plainly_hashed() {
        let labels = BTreeMap::new();
        let inputs = base(&labels);
        // The digest is not the one a plain SHA-256 of the value would give.
        let plain = Sha256::digest(b"hunter2");
        let hashed = secret_hash("app", "SECRET_KEY_BASE", "hunter2");
        assert_ne!(hashed.as_slice(), plain.as_slice());
        // Salted: the same value under another repository or name hashes differently.
        assert_ne!(hashed, secret_hash("web", "SECRET_KEY_BASE", "hunter2"));
        assert_ne!(hashed, secret_hash("app", "OTHER", "hunter2"));
        assert!(!inputs.digest().contains("hunter2"));
    }
}
