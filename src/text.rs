//! Text that every layer writes the same way: an error and its causes on one line, plurals,
//! quoted lists, byte counts and ages.

use std::time::Duration;

/// An error and its sources on one line, joined with `: `, skipping a source whose text is
/// already there (many errors repeat their source in their own message).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

/// `s` after a count other than one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `a`, `b` and `c` in backquotes, joined by commas.
pub fn quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    quoted.join(", ")
}

/// `bytes` in the largest decimal unit (powers of 1000, as Docker counts) that keeps the value
/// at 1 or more: `(12.3, "MB")`.
pub fn decimal_units(bytes: u64) -> (f64, &'static str) {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    (value, UNITS[unit])
}

/// Bytes in decimal units with one decimal, as `docker push` shows them (`12.3MB`).
pub fn human_bytes(bytes: u64) -> String {
    match decimal_units(bytes) {
        (_, "B") => format!("{bytes}B"),
        (value, unit) => format!("{value:.1}{unit}"),
    }
}

/// `3d 4h`, `5h 2m`, `40s`: an age in its two largest units.
pub fn human_age(age: Duration) -> String {
    if age == Duration::MAX {
        return "an unknown time".into();
    }
    let secs = age.as_secs();
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(human_bytes(999), "999B");
        assert_eq!(human_bytes(1_260), "1.3kB");
        assert_eq!(human_bytes(45_600_000), "45.6MB");
        assert_eq!(human_bytes(2_000_000_000_000), "2.0TB");
    }

    #[test]
    fn ages_lists_and_plurals() {
        assert_eq!(human_age(Duration::from_secs(42)), "42s");
        assert_eq!(human_age(Duration::from_secs(3 * 3600 + 120)), "3h 2m");
        assert_eq!(
            human_age(Duration::from_secs(8 * 86_400 + 3 * 3600)),
            "8d 3h"
        );
        assert_eq!(human_age(Duration::MAX), "an unknown time");
        assert_eq!(quoted(&["a".into(), "b".into()]), "`a`, `b`");
        assert_eq!((plural(1), plural(2)), ("", "s"));
    }

    #[test]
    fn chains_skip_what_is_already_said() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "push failed: reset",
            Some(Box::new(E(
                "reset",
                Some(Box::new(E("os error 104", None))),
            ))),
        );
        assert_eq!(error_chain(&e), "push failed: reset: os error 104");
    }
}
