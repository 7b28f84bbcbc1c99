//! The commit the zip is for: which one, cut to what length, and the time every entry gets.
//! Pure: the environment and HEAD come in as values.

use serde::Serialize;

use super::SourceError;
use super::git::Head;

/// The variables that name the commit in CI, in the order they are tried: GitLab CI's
/// predefined `CI_COMMIT_SHA`, then GitHub Actions' `GITHUB_SHA`.
pub const COMMIT_VARS: [&str; 2] = ["CI_COMMIT_SHA", "GITHUB_SHA"];

/// The seed's `git rev-parse HEAD | cut -c 1-8`, when `[tag] length` is not set.
pub const DEFAULT_LENGTH: usize = 8;

/// The commit of the zip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Commit {
    /// The full id.
    pub id: String,
    /// What goes into `.git-commit-hash`: the id cut to `[tag] length`.
    pub tag: String,
    /// `CI_COMMIT_SHA`, `GITHUB_SHA` or `HEAD`.
    pub from: &'static str,
    /// HEAD's committer time (seconds since the Unix epoch): every entry's time in the zip.
    pub time: i64,
}

/// The commit from the first of [`COMMIT_VARS`] that is set and not blank, else HEAD; cut to
/// `length` (else [`DEFAULT_LENGTH`]), the same `[tag] length` that the build side cuts with, so
/// both halves agree on the tag. A variable that names another commit than HEAD wins (it is
/// what the CI says it built) with a warning, since the files are HEAD's.
pub fn resolve(
    head: &Head,
    length: Option<usize>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Commit, SourceError> {
    let from_env = COMMIT_VARS.iter().find_map(|var| {
        let value = env(var)?.trim().to_owned();
        (!value.is_empty()).then_some((*var, value))
    });
    let (from, id) = match from_env {
        Some((var, value)) => {
            let hex = value.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex || !(4..=64).contains(&value.len()) {
                return Err(SourceError::Commit { var, value });
            }
            let value = value.to_ascii_lowercase();
            if !head.id.starts_with(&value) && !value.starts_with(&head.id) {
                tracing::warn!(
                    "{var} is {value} but HEAD is {}: the zip holds the work tree at HEAD, tagged {var}'s commit",
                    head.id
                );
            }
            (var, value)
        }
        None => ("HEAD", head.id.clone()),
    };
    let length = length.unwrap_or(DEFAULT_LENGTH);
    let tag = id.chars().take(length).collect();
    Ok(Commit {
        id,
        tag,
        from,
        time: head.time,
    })
}

/// The zip's time for every entry: the commit time as an MS-DOS date and time (UTC: a zip
/// entry has no time zone, and UTC gives every machine the same bytes). MS-DOS times run from
/// 1980 to 2107 in 2-second steps (PKWARE APPNOTE.TXT 4.4.6), so times outside are clamped.
pub fn zip_time(unix: i64) -> zip::DateTime {
    let clamped = unix.clamp(315_532_800, 4_354_819_198); // 1980-01-01 .. 2107-12-31 23:59:58
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(clamped) else {
        return zip::DateTime::default();
    };
    zip::DateTime::from_date_and_time(
        t.year() as u16,
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_env::env;

    const ID: &str = "0123456789abcdef0123456789abcdef01234567";

    fn head() -> Head {
        Head {
            id: ID.into(),
            time: 1_700_000_000,
        }
    }

    #[test]
    fn order_and_cut() {
        let other = "fedcba9876543210fedcba9876543210fedcba98";
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<usize>, (&'a str, &'a str));
        let cases: &[Case] = &[
            (&[], None, ("HEAD", "01234567")),
            (&[], Some(12), ("HEAD", "0123456789ab")),
            (&[], Some(100), ("HEAD", ID)),
            (&[("GITHUB_SHA", other)], None, ("GITHUB_SHA", "fedcba98")),
            (
                &[("CI_COMMIT_SHA", ID), ("GITHUB_SHA", other)],
                Some(4),
                ("CI_COMMIT_SHA", "0123"),
            ),
            (
                &[("CI_COMMIT_SHA", " "), ("GITHUB_SHA", ID)],
                None,
                ("GITHUB_SHA", "01234567"),
            ),
            (
                &[("CI_COMMIT_SHA", "0123ABCD")],
                None,
                ("CI_COMMIT_SHA", "0123abcd"),
            ),
        ];
        for (vars, length, (from, tag)) in cases {
            let c = resolve(&head(), *length, env(vars)).unwrap();
            assert_eq!(
                (c.from, c.tag.as_str()),
                (*from, *tag),
                "{vars:?} {length:?}"
            );
            assert_eq!(c.time, 1_700_000_000);
        }
    }

    #[test]
    fn a_variable_that_is_no_commit_id_is_bad_input() {
        for bad in [
            "main",
            "abc",
            "0123456789abcdef0123456789abcdef01234567x",
            "v1.0",
        ] {
            let err = resolve(&head(), None, env(&[("CI_COMMIT_SHA", bad)])).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("`{bad}`")) && msg.contains("CI_COMMIT_SHA"),
                "{msg}"
            );
            assert_eq!(crate::exit::Exit::exit(&err).code(), 2);
        }
    }

    #[test]
    fn zip_times_are_utc_and_clamped() {
        let t = zip_time(1_700_000_000); // 2023-11-14 22:13:20 UTC
        assert_eq!(
            (
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            (2023, 11, 14, 22, 13, 20)
        );
        let t = zip_time(1_700_000_001); // odd seconds round down: 2-second steps
        assert_eq!(t.second(), 20);
        let t = zip_time(0);
        assert_eq!((t.year(), t.month(), t.day(), t.hour()), (1980, 1, 1, 0));
        let t = zip_time(i64::MAX);
        assert_eq!((t.year(), t.month(), t.day()), (2107, 12, 31));
    }
}
