//! Secret values: a type that cannot be printed by accident.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// Every secret value this process has seen; [`scrub`] removes them from any text it prints.
static KNOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Values shorter than this are not scrubbed: replacing every `1` or `on` in the output would
/// garble it and hide nothing worth hiding.
const MIN_SCRUBBED_LEN: usize = 4;

/// Remembers `value` as secret, so that no output of this process shows it.
pub fn register(value: &str) {
    if value.len() < MIN_SCRUBBED_LEN {
        return;
    }
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    if !known.iter().any(|k| k == value) {
        known.push(value.to_owned());
        // Longest first, so a secret that contains another is replaced whole.
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
    }
}

/// `text` with every registered secret replaced by `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    let mut out = Cow::Borrowed(text);
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), "***"));
        }
    }
    out
}

/// Whether a build arg's name suggests a secret (`*SECRET*`, `*PASSWORD*`, `*TOKEN*`, `*KEY*`).
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["SECRET", "PASSWORD", "TOKEN", "KEY"]
        .iter()
        .any(|w| upper.contains(w))
}

/// A value that must never reach any output. `Debug` and `Display` print `***`; the value is
/// reached only through [`Secret::expose`], at the one place that hands it to the daemon.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps and registers `value` (see [`scrub`]).
    pub fn new(value: String) -> Secret {
        register(&value);
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn scrub_replaces_registered_values() {
        register("correct horse");
        register("correct horse battery");
        register("ab");
        assert_eq!(
            scrub("a correct horse battery staple, ab"),
            "a *** staple, ab"
        );
        assert_eq!(scrub("nothing here"), "nothing here");
        let _ = Secret::new("s3cr3t-value".into());
        assert_eq!(scrub("x=s3cr3t-value"), "x=***");
    }

    #[test]
    fn secret_looking_names() {
        for name in [
            "SECRET_KEY_BASE",
            "db_password",
            "GITHUB_TOKEN",
            "api_key",
            "KEYRING",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in ["MIX_ENV", "LOCALE", "VERSION"] {
            assert!(!looks_secret(name), "{name}");
        }
    }
}
