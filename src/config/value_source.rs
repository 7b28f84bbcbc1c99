//! The source of a build argument or secret (`[image.build_args]`, `[image.secrets]`): a literal
//! string, or a table with one of `env` (and `optional`), `ssm`, `file`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Where a build argument or secret takes its value from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "lowercase")]
pub enum ValueSource {
    /// A value written in the config. Never printed: it may be anything.
    Literal {
        #[serde(skip)]
        value: String,
    },
    /// An environment variable; an optional one that is unset is left out, as `--build-arg NAME` does.
    Env { name: String, optional: bool },
    /// An SSM Parameter Store parameter (SecureString decrypted).
    Ssm { name: String },
    /// A file, relative to the project root.
    File { path: String },
}

/// What a source reads, as `plan` lists it after the argument's name (`MIX_ENV (env MIX_ENV,
/// optional)`): never a literal's value.
impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Literal { .. } => f.write_str("literal"),
            ValueSource::Env { name, optional } => {
                write!(f, "env {name}")?;
                if *optional {
                    f.write_str(", optional")?;
                }
                Ok(())
            }
            ValueSource::Ssm { name } => write!(f, "ssm {name}"),
            ValueSource::File { path } => write!(f, "file {path}"),
        }
    }
}

impl<'de> Deserialize<'de> for ValueSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ValueSource, D::Error> {
        struct SourceVisitor;
        impl<'de> Visitor<'de> for SourceVisitor {
            type Value = ValueSource;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, or a table with one of `env`, `ssm`, `file`")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ValueSource, E> {
                Ok(ValueSource::Literal {
                    value: value.to_owned(),
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ValueSource, A::Error> {
                let mut found: Option<ValueSource> = None;
                let mut optional = None;
                while let Some(key) = map.next_key::<String>()? {
                    let source = match key.as_str() {
                        "optional" => {
                            optional = Some(map.next_value::<bool>()?);
                            continue;
                        }
                        "env" => ValueSource::Env {
                            name: map.next_value()?,
                            optional: false,
                        },
                        "ssm" => ValueSource::Ssm {
                            name: map.next_value()?,
                        },
                        "file" => ValueSource::File {
                            path: map.next_value()?,
                        },
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &["env", "ssm", "file", "optional"],
                            ));
                        }
                    };
                    if found.replace(source).is_some() {
                        return Err(de::Error::custom("give only one of `env`, `ssm`, `file`"));
                    }
                }
                match (found, optional) {
                    (None, _) => Err(de::Error::custom("expected one of `env`, `ssm`, `file`")),
                    (Some(ValueSource::Env { name, .. }), optional) => Ok(ValueSource::Env {
                        name,
                        optional: optional.unwrap_or(false),
                    }),
                    (Some(_), Some(_)) => Err(de::Error::custom(
                        "`optional` applies to `env` sources only",
                    )),
                    (Some(source), None) => {
                        let name = match &source {
                            ValueSource::Ssm { name } => name,
                            ValueSource::File { path } => path,
                            _ => unreachable!("env and literal handled above"),
                        };
                        if name.trim().is_empty() {
                            return Err(de::Error::custom("the source name is empty"));
                        }
                        Ok(source)
                    }
                }
            }
        }
        deserializer.deserialize_any(SourceVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::ValueSource;
    use crate::config::tests::error;

    #[test]
    fn display_names_what_is_read_never_a_value() {
        let env = |optional| ValueSource::Env {
            name: "MIX_ENV".into(),
            optional,
        };
        let cases = [
            (
                ValueSource::Literal {
                    value: "hunter2".into(),
                },
                "literal",
            ),
            (env(false), "env MIX_ENV"),
            (env(true), "env MIX_ENV, optional"),
            (
                ValueSource::Ssm {
                    name: "/app/KEY".into(),
                },
                "ssm /app/KEY",
            ),
            (
                ValueSource::File {
                    path: "secrets/skb".into(),
                },
                "file secrets/skb",
            ),
        ];
        for (source, want) in cases {
            assert_eq!(source.to_string(), want);
        }
    }

    #[test]
    fn errors_name_file_line_and_value() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[[image]]\nname = \"app\"\n[image.build_args]\nX = { envv = \"X\" }\n",
                &["line 4", "envv"],
            ),
            (
                "[[image]]\nname = \"app\"\n[image.build_args]\nX = { env = \"X\", ssm = \"Y\" }\n",
                &["line 4", "only one"],
            ),
            (
                "[[image]]\nname = \"app\"\n[image.build_args]\nX = { ssm = \"Y\", optional = true }\n",
                &["line 4", "optional"],
            ),
        ];
        for (text, needles) in cases {
            let msg = error(text);
            assert!(!msg.contains('\n'), "one line: {msg:?}");
            for needle in *needles {
                assert!(msg.contains(needle), "{text:?}: {msg:?} lacks {needle:?}");
            }
        }
    }
}
