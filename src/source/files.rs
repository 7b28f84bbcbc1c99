//! Which files go in the zip: git's index entries, narrowed to `[source] include` and less
//! `[source] exclude`. Pure: the index comes in as bytes and nothing is read here.
//!
//! A listed path is a file or a folder relative to the project root, as the seed's `SOURCES`
//! list was for `zip -r`: `lib` takes `lib` itself and everything under `lib/`, and no
//! `lib2`. Unlike `zip -r`, only files git tracks go in: build output, caches and secrets that
//! `.gitignore` keeps out stay out of the zip too.

use std::path::Path;

use super::SourceError;
use crate::config::Located;

/// What kind of file an index entry is, from its git mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `100644`: a file, written with mode 0644.
    File,
    /// `100755`: an executable file, written with mode 0755.
    Executable,
    /// `120000`: a symbolic link, stored as a link (as `zip -y` does).
    Link,
}

impl Kind {
    /// The unix permission bits the entry gets in the zip: the index's, not the work tree's, so
    /// that the umask of the machine that checked out does not change the bytes (as
    /// `git archive` does).
    pub fn permissions(self) -> u32 {
        match self {
            Kind::File => 0o644,
            Kind::Executable => 0o755,
            Kind::Link => 0o777,
        }
    }
}

/// One file of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `/`-separated, relative to the project root.
    pub path: String,
    pub kind: Kind,
}

/// Parses `git ls-files -z --stage` output. Submodules that are not checked out (gitlinks,
/// mode `160000`) have no files to zip and are left out with a warning.
pub fn parse_index(output: &[u8]) -> Result<Vec<Entry>, SourceError> {
    let mut entries = Vec::new();
    for record in output.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let (meta, path) = match record.iter().position(|&b| b == b'\t') {
            Some(tab) => (&record[..tab], &record[tab + 1..]),
            None => continue,
        };
        let path = std::str::from_utf8(path).map_err(|_| SourceError::NotUtf8 {
            path: String::from_utf8_lossy(path).into_owned(),
        })?;
        let meta = String::from_utf8_lossy(meta);
        let mut fields = meta.split(' ');
        let (mode, stage) = (fields.next(), fields.nth(1));
        if stage.is_some_and(|s| s != "0") {
            return Err(SourceError::Unmerged {
                path: path.to_owned(),
            });
        }
        let kind = match mode {
            Some("100755") => Kind::Executable,
            Some("120000") => Kind::Link,
            Some("160000") => {
                tracing::warn!(
                    "submodule `{path}` is not checked out: its files are not in the zip (run `git submodule update --init`)"
                );
                continue;
            }
            _ => Kind::File,
        };
        entries.push(Entry {
            path: path.to_owned(),
            kind,
        });
    }
    Ok(entries)
}

/// Whether `path` is `listed` or lies under it (`.` lists everything).
fn under(path: &str, listed: &str) -> bool {
    listed == "."
        || path == listed
        || (path.len() > listed.len()
            && path.starts_with(listed)
            && path.as_bytes()[listed.len()] == b'/')
}

/// The entries to zip, sorted by path bytes (submodules' files come from git after the
/// superproject's, so the order git gives is not enough). Every `include` path must match a
/// tracked file: one that does not is an error saying whether it is absent or untracked
/// (`exists` looks at the work tree). An `exclude` path that matches nothing is a warning.
pub fn select(
    mut entries: Vec<Entry>,
    include: Option<&[Located]>,
    exclude: &[Located],
    origin: &dyn Fn(&Located) -> String,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Vec<Entry>, SourceError> {
    if let Some(include) = include {
        for listed in include {
            if !entries.iter().any(|e| under(&e.path, &listed.value)) {
                let reason = if exists(Path::new(&listed.value)) {
                    "is not tracked by git (untracked or ignored): `git add` it, or take it off the list"
                } else {
                    "does not exist"
                };
                return Err(SourceError::Listed {
                    origin: origin(listed),
                    list: "include",
                    path: listed.value.clone(),
                    reason,
                });
            }
        }
        entries.retain(|e| include.iter().any(|l| under(&e.path, &l.value)));
    }
    for listed in exclude {
        if !entries.iter().any(|e| under(&e.path, &listed.value)) {
            tracing::warn!(
                "{}: [source] exclude `{}` matches no file that would go in the zip",
                origin(listed),
                listed.value
            );
        }
    }
    entries.retain(|e| !exclude.iter().any(|l| under(&e.path, &l.value)));
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    entries.dedup_by(|a, b| a.path == b.path);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(paths: &[&str]) -> Vec<Located> {
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| Located {
                value: p.to_string(),
                line: i + 10,
            })
            .collect()
    }

    fn entries(paths: &[&str]) -> Vec<Entry> {
        paths
            .iter()
            .map(|p| Entry {
                path: p.to_string(),
                kind: Kind::File,
            })
            .collect()
    }

    fn origin(l: &Located) -> String {
        format!("ecrship.toml line {}", l.line)
    }

    fn paths(selected: &[Entry]) -> Vec<&str> {
        selected.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn index_records() {
        let oid = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
        let out = format!(
            "100644 {oid} 0\tREADME.md\x00100755 {oid} 0\tbin/run\x00120000 {oid} 0\tcurrent\x00\
             160000 {oid} 0\tvendor/lib\x00100644 {oid} 0\tsp ace\ttab.txt\x00"
        );
        let got = parse_index(out.as_bytes()).unwrap();
        let want = [
            ("README.md", Kind::File),
            ("bin/run", Kind::Executable),
            ("current", Kind::Link),
            ("sp ace\ttab.txt", Kind::File),
        ];
        let got: Vec<(&str, Kind)> = got.iter().map(|e| (e.path.as_str(), e.kind)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unmerged_and_non_utf8_entries_are_bad_input() {
        let oid = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
        let out = format!("100644 {oid} 1\tlib/a.ex\x00100644 {oid} 2\tlib/a.ex\x00");
        let err = parse_index(out.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("`lib/a.ex`"), "{err}");
        assert_eq!(crate::exit::Exit::exit(&err).code(), 2);
        let mut out = format!("100644 {oid} 0\t").into_bytes();
        out.extend_from_slice(b"caf\xe9.txt\x00");
        let err = parse_index(&out).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn include_takes_paths_and_folders_exclude_removes() {
        let all = entries(&[
            "lib2/x",
            "lib/a",
            "lib/sub/b",
            "lib",
            "mix.exs",
            "test/t",
            "lib-x",
            "README.md",
        ]);
        let none = |_: &Path| false;
        type Case<'a> = (Option<&'a [&'a str]>, &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            (
                None,
                &[],
                &[
                    "README.md",
                    "lib",
                    "lib-x",
                    "lib/a",
                    "lib/sub/b",
                    "lib2/x",
                    "mix.exs",
                    "test/t",
                ],
            ),
            (
                Some(&["lib", "mix.exs"]),
                &[],
                &["lib", "lib/a", "lib/sub/b", "mix.exs"],
            ),
            (Some(&["lib/sub"]), &[], &["lib/sub/b"]),
            (Some(&["lib"]), &["lib/sub"], &["lib", "lib/a"]),
            (
                None,
                &["test", "lib"],
                &["README.md", "lib-x", "lib2/x", "mix.exs"],
            ),
            (
                Some(&["."]),
                &["lib2"],
                &[
                    "README.md",
                    "lib",
                    "lib-x",
                    "lib/a",
                    "lib/sub/b",
                    "mix.exs",
                    "test/t",
                ],
            ),
            (Some(&["mix.exs", "mix.exs"]), &[], &["mix.exs"]),
        ];
        for (include, exclude, want) in cases {
            let include = include.map(located);
            let got = select(
                all.clone(),
                include.as_deref(),
                &located(exclude),
                &origin,
                &none,
            )
            .unwrap();
            assert_eq!(
                paths(&got),
                *want,
                "include {include:?}, exclude {exclude:?}"
            );
        }
    }

    #[test]
    fn a_listed_path_git_does_not_have_is_an_error_naming_it() {
        let all = entries(&["lib/a", "mix.exs"]);
        let on_disk = |p: &Path| p == Path::new("priv");
        let cases = [
            (
                "nope",
                "ecrship.toml line 11: [source] include `nope` does not exist",
            ),
            (
                "priv",
                "ecrship.toml line 11: [source] include `priv` is not tracked by git",
            ),
            (
                "li",
                "ecrship.toml line 11: [source] include `li` does not exist",
            ),
        ];
        for (missing, want) in cases {
            let include = located(&["lib", missing]);
            let err = select(all.clone(), Some(&include), &[], &origin, &on_disk).unwrap_err();
            assert!(err.to_string().starts_with(want), "{err}");
            assert_eq!(crate::exit::Exit::exit(&err).code(), 2);
        }
    }

    #[test]
    fn sorted_by_bytes_whatever_git_gave() {
        // A submodule's files come right after its gitlink's place, which sorts `sub` before
        // `sub-a.txt` but `sub/x` after it.
        let all = entries(&["sub-a.txt", "sub/x", "Z", "a", "sub.txt"]);
        let got = select(all, None, &[], &origin, &|_| false).unwrap();
        assert_eq!(paths(&got), ["Z", "a", "sub-a.txt", "sub.txt", "sub/x"]);
    }
}
