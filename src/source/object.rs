//! Where the zip goes: the bucket and the key, from the flag, its environment twin or
//! `[source]`, checked against S3's naming rules. Pure: the environment comes in as a closure.

use super::SourceError;
use crate::config::{Origin, SourceConfig};
use crate::reference::{bucket_violation, key_violation};

/// Environment twin of `--bucket`.
pub const BUCKET_ENV: &str = "ECRSHIP_SOURCE_BUCKET";
/// Environment twin of `--key`.
pub const KEY_ENV: &str = "ECRSHIP_SOURCE_KEY";

/// The object the zip is put to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub bucket: String,
    pub key: String,
}

/// The bucket and the key, each from the flag (or its environment twin, which clap merged into
/// it), else the config; `None` for a part that nobody gave. A value that breaks S3's rules is
/// an error naming it and where it came from.
pub fn resolve(
    flag_bucket: Option<&str>,
    flag_key: Option<&str>,
    config: &SourceConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Option<String>, Option<String>), SourceError> {
    let pick = |flag: Option<&str>,
                flag_name: &str,
                var: &str,
                checker: fn(&str) -> Option<&'static str>| {
        let Some(value) = flag else {
            return Ok(None);
        };
        let value = value.trim().to_owned();
        match checker(&value) {
            None => Ok(Some(value)),
            Some(reason) => {
                // clap merges the flag and its twin: the twin is the origin when it holds this value.
                let origin = if env(var).is_some_and(|v| v.trim() == value) {
                    format!("environment variable `{var}`")
                } else {
                    format!("`{flag_name}`")
                };
                Err(SourceError::Object(format!(
                    "{} `{value}` from {origin} {reason}",
                    &flag_name[2..]
                )))
            }
        }
    };
    let bucket = pick(flag_bucket, "--bucket", BUCKET_ENV, bucket_violation)?
        .or_else(|| config.bucket.as_ref().map(|b| b.value.clone()));
    let key = pick(flag_key, "--key", KEY_ENV, key_violation)?
        .or_else(|| config.key.as_ref().map(|k| k.value.clone()));
    Ok((bucket, key))
}

/// Both parts, or an error that says how to give the missing one.
pub fn require(
    bucket: Option<String>,
    key: Option<String>,
    origin: &Origin,
) -> Result<Object, SourceError> {
    let missing = |what: &str, flag: &str, var: &str| {
        SourceError::Object(format!(
            "no {what}: give `{flag}`, set {var}, or set `[source] {what}` in {}",
            match origin {
                Origin::File(_) => origin.to_string(),
                Origin::Embedded => "ecrship.toml".to_owned(),
            }
        ))
    };
    let bucket = bucket.ok_or_else(|| missing("bucket", "--bucket", BUCKET_ENV))?;
    let key = key.ok_or_else(|| missing("key", "--key", KEY_ENV))?;
    Ok(Object { bucket, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Located;
    use crate::test_env::env;

    fn config(bucket: &str, key: &str) -> SourceConfig {
        SourceConfig {
            bucket: Some(Located {
                value: bucket.into(),
                line: 2,
            }),
            key: Some(Located {
                value: key.into(),
                line: 3,
            }),
            ..SourceConfig::default()
        }
    }

    #[test]
    fn flags_win_over_the_config_and_each_part_falls_back_alone() {
        let c = config("from-config", "config.zip");
        let got = resolve(Some("from-flag"), None, &c, env(&[])).unwrap();
        assert_eq!(got, (Some("from-flag".into()), Some("config.zip".into())));
        let got = resolve(None, None, &SourceConfig::default(), env(&[])).unwrap();
        assert_eq!(got, (None, None));
    }

    #[test]
    fn a_bad_value_names_its_origin() {
        let c = SourceConfig::default();
        let err = resolve(Some("Bad_Bucket"), None, &c, env(&[])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("bucket `Bad_Bucket` from `--bucket` is not a bucket name"),
            "{err}"
        );
        assert_eq!(crate::exit::Exit::exit(&err).code(), 2);
        let err = resolve(None, Some("dir/"), &c, env(&[(KEY_ENV, "dir/")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("key `dir/` from environment variable `ECRSHIP_SOURCE_KEY`"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_part_says_how_to_give_it() {
        let err = require(Some("b-1".into()), None, &Origin::Embedded).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no key") && msg.contains("--key") && msg.contains(KEY_ENV),
            "{msg}"
        );
        assert_eq!(crate::exit::Exit::exit(&err).code(), 2);
        let t = require(Some("b-1".into()), Some("k".into()), &Origin::Embedded).unwrap();
        assert_eq!(
            t,
            Object {
                bucket: "b-1".into(),
                key: "k".into()
            }
        );
    }
}
