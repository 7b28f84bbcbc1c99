//! `.dockerignore`: reading the file and deciding which paths `docker build` leaves out.
//!
//! These are moby's rules, not gitignore's. Each step mirrors one piece of the
//! Docker CLI's code (read there for the facts; nothing here is copied):
//!
//! * Reading (`ReadAll`, moby/buildkit `frontend/dockerfile/dockerignore`): a UTF-8 BOM is
//!   stripped from the first line; a line is a comment only when `#` is in column 0; lines are
//!   trimmed; empty lines are skipped; after a leading `!` the rest is trimmed again; the
//!   pattern is cleaned like Go's `filepath.Clean`, and only then one leading `/` is removed.
//! * Compiling (`New` and `Pattern.compile`, moby/patternmatcher): the entry is trimmed and
//!   cleaned again, a bare `!` is an error, the syntax is checked with Go's `filepath.Match`,
//!   and the pattern becomes an exact, prefix (`dir/**`), suffix (`**/name`) or regular
//!   expression match. moby compiles the regular expression lazily and fails the whole build
//!   on the first path it meets; here every pattern is compiled at read time, so a bad one is
//!   reported with its line.
//! * Matching (`MatchesOrParentMatches`): the last matching pattern wins, and a pattern matches
//!   a path or any of its parent folders. `*` and `?` never cross `/`; `**` crosses any number
//!   of folders; `[...]` classes and `\` escapes follow Go's regexp syntax, which the pattern is
//!   turned into (`[!a]` is "`!` or `a`", `^` negates).
//! * Walking (`TarWithOptions`, moby/go-archive): the walker uses `MatchesUsingParentResults`,
//!   which reuses the parent folder's per-pattern results, and skips an excluded folder whole
//!   unless some exception pattern, as text, starts with that folder's path. That text test
//!   loses files an exception would match, e.g. `!**/keep` or `!dir/*/keep` under an
//!   excluded `dir`; [`Patterns::decide`] reproduces it.
//! * The CLI's additions (`TrimBuildFilesFromExcludes`, docker/cli): `!.dockerignore` and
//!   `!<Dockerfile>` are appended when the old single-parent `Matches` says they are excluded;
//!   see [`Patterns::with_build_files`].

mod pattern;

use crate::path::clean;
use pattern::{Matcher, Subject};

/// A `.dockerignore` pattern that docker would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: invalid pattern `{pattern}`: {reason}")]
pub struct PatternError {
    /// 1-based line in `.dockerignore`; 0 for a pattern added by the program
    /// ([`Patterns::push_exception`]).
    pub line: usize,
    /// The pattern as written (trimmed).
    pub pattern: String,
    /// Why it is invalid.
    pub reason: String,
}

/// A parsed `.dockerignore`, in file order.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    patterns: Vec<Pattern>,
    exceptions: bool,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned pattern without its `!`.
    text: String,
    exception: bool,
    /// Number of `/`-separated parts, used by the CLI's old single-parent `Matches`.
    parts: usize,
    matcher: Matcher,
}

/// Per-pattern results for a folder, handed to its children while walking
/// (moby's `MatchInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo(Vec<bool>);

/// What the CLI's walker does with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Put it in the tar (and walk into it, for a folder).
    Send,
    /// Excluded file: leave it out.
    Skip,
    /// Excluded folder that an exception might reach: leave the folder entry out but walk into it.
    Descend,
    /// Excluded folder: leave it out with everything inside.
    Prune,
}

impl Patterns {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Patterns, PatternError> {
        let mut out = Patterns::default();
        for (index, line) in scan_lines(text).enumerate() {
            let line = if index == 0 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            if line.starts_with('#') {
                continue;
            }
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            out.push(&read_entry(trimmed), index + 1, trimmed)?;
        }
        Ok(out)
    }

    /// Appends the exception `!<pattern>` the way the CLI appends `"!" + name` to the list it
    /// compiles (so it is trimmed, cleaned and treated as a pattern, globs included).
    pub fn push_exception(&mut self, pattern: &str) -> Result<(), PatternError> {
        self.push(&format!("!{pattern}"), 0, pattern)
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exception (`!...`).
    pub fn has_exceptions(&self) -> bool {
        self.exceptions
    }

    /// moby's `MatchesOrParentMatches`: whether `rel_path` (with `/` separators, relative to
    /// the context) is excluded, by itself or through a parent folder. This is the test the
    /// classic daemon uses to drop `.dockerignore` and the Dockerfile.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        self.last_match(rel_path, |p, parents| {
            parents.iter().any(|d| p.matches(&Subject::new(d)))
        })
    }

    /// moby's deprecated `Matches`, which the CLI's `TrimBuildFilesFromExcludes` still calls:
    /// besides the path itself it tries only the one parent prefix with as many parts as the
    /// pattern has.
    pub fn cli_matches(&self, rel_path: &str) -> bool {
        self.last_match(rel_path, |p, parents| {
            p.parts <= parents.len() && p.matches(&Subject::new(parents[p.parts - 1]))
        })
    }

    /// The verdict of the last pattern that matches `rel_path` itself or, as `parent_hit`
    /// decides, one of its parent prefixes (the two moby functions differ only there).
    fn last_match(&self, rel_path: &str, parent_hit: impl Fn(&Pattern, &[&[u8]]) -> bool) -> bool {
        let file = clean(rel_path);
        if file == "." {
            return false;
        }
        let file = file.as_bytes();
        let subject = Subject::new(file);
        let parents = parent_prefixes(file);
        let mut matched = false;
        for p in &self.patterns {
            if p.exception != matched {
                continue;
            }
            if p.matches(&subject) || (!parents.is_empty() && parent_hit(p, &parents)) {
                matched = !p.exception;
            }
        }
        matched
    }

    /// The pattern list the CLI's walker uses: these patterns plus what
    /// `TrimBuildFilesFromExcludes` appends (`!.dockerignore`, then `!<dockerfile>`, each only
    /// when [`cli_matches`](Self::cli_matches) says it is excluded). `dockerfile` is the
    /// Dockerfile's path relative to the context with `/` separators, `../` when outside.
    pub fn with_build_files(&self, dockerfile: &str) -> Result<Patterns, PatternError> {
        let mut out = self.clone();
        if out.cli_matches(".dockerignore") {
            out.push_exception(".dockerignore")?;
        }
        if out.cli_matches(dockerfile) {
            out.push_exception(dockerfile)?;
        }
        Ok(out)
    }

    /// moby's `MatchesUsingParentResults`: whether `rel` is excluded, given the results of
    /// its parent folder (`None` at the top, where the parent folders are matched directly).
    ///
    /// A pattern the parent matched counts as matched for the child; a pattern that was
    /// skipped for the parent (it could not change the result there) is tried on the child's
    /// own path only. This differs from [`is_excluded`](Self::is_excluded) in rare cases, and
    /// the walker uses this one.
    pub fn match_with_parent(&self, rel: &[u8], parent: Option<&MatchInfo>) -> (bool, MatchInfo) {
        let parent = parent.filter(|info| info.0.len() == self.patterns.len());
        let subject = Subject::new(rel);
        let mut parents: Option<Vec<&[u8]>> = None;
        let mut info = vec![false; self.patterns.len()];
        let mut matched = false;
        for (i, p) in self.patterns.iter().enumerate() {
            let mut hit = parent.is_some_and(|info| info.0[i]);
            if !hit {
                if p.exception != matched {
                    continue;
                }
                hit = p.matches(&subject);
                if !hit && parent.is_none() {
                    let dirs = parents.get_or_insert_with(|| parent_prefixes(rel));
                    hit = dirs.iter().any(|d| p.matches(&Subject::new(d)));
                }
            }
            info[i] = hit;
            if hit {
                matched = !p.exception;
            }
        }
        (matched, MatchInfo(info))
    }

    /// The CLI walker's decision for one entry, and the results to hand to its children.
    ///
    /// `keep` is the Dockerfile's path inside the context: it and its parent folders are
    /// always reached. With the CLI's `!<Dockerfile>` addition this changes nothing; it only
    /// matters where the CLI itself would lose the Dockerfile (its addition is decided with
    /// the single-parent `Matches`, or the pruning text test misses it) and the build would
    /// fail with "Cannot locate specified Dockerfile".
    pub fn decide(
        &self,
        rel: &[u8],
        is_dir: bool,
        parent: Option<&MatchInfo>,
        keep: Option<&[u8]>,
    ) -> (Decision, MatchInfo) {
        let (excluded, info) = self.match_with_parent(rel, parent);
        if !excluded {
            return (Decision::Send, info);
        }
        if let Some(keep) = keep {
            if keep == rel {
                return (Decision::Send, info);
            }
            if is_dir && keep.len() > rel.len() && keep.starts_with(rel) && keep[rel.len()] == b'/'
            {
                return (Decision::Descend, info);
            }
        }
        if !is_dir {
            (Decision::Skip, info)
        } else if self.may_hold_exception(rel) {
            (Decision::Descend, info)
        } else {
            (Decision::Prune, info)
        }
    }

    /// The walker's test before skipping an excluded folder: some exception pattern, as
    /// text plus `/`, starts with the folder's path plus `/`.
    fn may_hold_exception(&self, dir: &[u8]) -> bool {
        if !self.exceptions {
            return false;
        }
        self.patterns.iter().filter(|p| p.exception).any(|p| {
            let text = p.text.as_bytes();
            // (text + "/").starts_with(dir + "/")
            if text.len() + 1 < dir.len() + 1 {
                return false;
            }
            text.starts_with(dir) && text.get(dir.len()).is_none_or(|&b| b == b'/')
        })
    }

    /// A matcher for patterns given as a list, as BuildKit sends them with a file sync
    /// (`exclude-patterns`, already read from `.dockerignore`; `include-patterns`, and the
    /// paths to follow): each is compiled like a `.dockerignore` line (moby/patternmatcher `New`).
    pub fn from_list(list: &[String]) -> Result<Patterns, PatternError> {
        let mut out = Patterns::default();
        for (index, pattern) in list.iter().enumerate() {
            out.push(pattern, index + 1, pattern)?;
        }
        Ok(out)
    }

    /// fsutil's `onlyPrefixExcludeExceptions` (for `exceptions`) or `onlyPrefixIncludes`: no
    /// pattern of that kind has a wildcard (`*[]?^\`) once a trailing `/**` or `/*` is cut
    /// (tonistiigi/fsutil `filter.go`, `NewFilterFS`). Only then may a folder be skipped whole.
    pub fn literal_only(&self, exceptions: bool) -> bool {
        self.patterns
            .iter()
            .filter(|p| p.exception == exceptions)
            .all(|p| !without_trailing_glob(&p.text).contains(['*', '[', ']', '?', '^', '\\']))
    }

    /// fsutil's test before it skips a folder: some pattern of the kind (exceptions when
    /// `exceptions`), with a trailing `/**` or `/*` cut, plus `/`, starts with `dir/`.
    pub fn literal_under(&self, dir: &[u8], exceptions: bool) -> bool {
        self.patterns
            .iter()
            .filter(|p| p.exception == exceptions)
            .any(|p| {
                let text = without_trailing_glob(&p.text).as_bytes();
                text.len() > dir.len() && text.starts_with(dir) && text[dir.len()] == b'/'
                    || text == dir
            })
    }

    /// moby's `New` for one entry of the list.
    fn push(&mut self, entry: &str, line: usize, shown: &str) -> Result<(), PatternError> {
        let error = |reason: String| PatternError {
            line,
            pattern: shown.to_string(),
            reason,
        };
        let entry = entry.trim();
        if entry.is_empty() {
            return Ok(());
        }
        let cleaned = clean(entry);
        let (exception, text) = match cleaned.strip_prefix('!') {
            Some("") => {
                return Err(error(
                    "`!` must be followed by the pattern to re-include".into(),
                ));
            }
            Some(rest) => (true, rest.to_string()),
            None => (false, cleaned),
        };
        let matcher = Matcher::new(&text).map_err(error)?;
        self.exceptions |= exception;
        self.patterns.push(Pattern {
            parts: text.split('/').count(),
            text,
            exception,
            matcher,
        });
        Ok(())
    }
}

impl Pattern {
    /// moby's `Pattern.match`.
    fn matches(&self, path: &Subject<'_>) -> bool {
        self.matcher.matches(path)
    }
}

/// fsutil's `patternWithoutTrailingGlob`: the pattern without one trailing `/**`, then
/// without one trailing `/*`.
fn without_trailing_glob(text: &str) -> &str {
    let text = text.strip_suffix("/**").unwrap_or(text);
    text.strip_suffix("/*").unwrap_or(text)
}

/// `a/b/c` → `a`, `a/b` (Go: `filepath.Dir` split on `/`, each prefix rejoined).
fn parent_prefixes(path: &[u8]) -> Vec<&[u8]> {
    path.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| &path[..i])
        .collect()
}

/// Lines as Go's `bufio.ScanLines` yields them: split at `\n`, one trailing `\r` dropped,
/// no empty last line after a final `\n`.
fn scan_lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let empty = text.is_empty();
    body.split('\n')
        .filter(move |_| !empty)
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
}

/// What `ReadAll` makes of one trimmed, non-comment line.
fn read_entry(trimmed: &str) -> String {
    let (invert, body) = match trimmed.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, trimmed),
    };
    let mut pattern = String::new();
    if !body.is_empty() {
        pattern = clean(body);
        if pattern.len() > 1 && pattern.starts_with('/') {
            pattern.remove(0);
        }
    }
    if invert {
        format!("!{pattern}")
    } else {
        pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(lines: &[&str]) -> Patterns {
        Patterns::parse(&lines.join("\n")).unwrap_or_else(|e| panic!("{lines:?}: {e}"))
    }

    /// Texts of the compiled patterns, `!` kept, like the list moby would compile.
    fn texts(p: &Patterns) -> Vec<String> {
        p.patterns
            .iter()
            .map(|p| format!("{}{}", if p.exception { "!" } else { "" }, p.text))
            .collect()
    }

    #[test]
    fn reading() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("\u{feff}a\n", &["a"]),
            ("a\n\u{feff}b", &["a", "\u{feff}b"]),
            ("# comment\n #not a comment\n", &["#not a comment"]),
            ("  a  \r\n\n\t\nb\r", &["a", "b"]),
            ("! a/b/ ", &["!a/b"]),
            ("foo/", &["foo"]),
            ("./a/../b", &["b"]),
            ("a//b", &["a/b"]),
            ("/a", &["a"]),
            ("//a", &["a"]),
            ("/../a", &["a"]),
            ("../a", &["../a"]),
            ("!/x/y", &["!x/y"]),
            ("/", &["/"]),
            (".", &["."]),
            ("!!a", &["!!a"]),
            ("a/**/", &["a/**"]),
        ];
        for (text, want) in cases {
            let got = Patterns::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(texts(&got), *want, "{text:?}");
        }
    }

    #[test]
    fn read_errors_carry_line_numbers() {
        let cases: &[(&str, usize, &str)] = &[
            ("a\n!", 2, "!"),
            ("a\n\n  !  ", 3, "!"),
            ("# c\n!/", 2, "!/"),
            ("[a", 1, "[a"),
            ("x\ny\n[]a]", 3, "[]a]"),
            ("[-]", 1, "[-]"),
            ("[x-]", 1, "[x-]"),
            ("[^", 1, "[^"),
            ("a[", 1, "a["),
            ("[a-b-c]", 1, "[a-b-c]"),
            ("foo\\", 1, "foo\\"),
            ("*\\", 1, "*\\"),
            ("[z-a]", 1, "[z-a]"),
            ("*{2}", 1, "*{2}"),
            ("a{1001}*", 1, "a{1001}*"),
            ("\\e*", 1, "\\e*"),
            ("\\p{Greek}", 1, "\\p{Greek}"),
            ("[[:nope:]]", 1, "[[:nope:]]"),
        ];
        for (text, line, pattern) in cases {
            let err = Patterns::parse(text).expect_err(text);
            assert_eq!(
                (err.line, err.pattern.as_str()),
                (*line, *pattern),
                "{text:?}: {err}"
            );
        }
        let err = Patterns::parse("ok\n[a").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 2: invalid pattern `[a`: "),
            "{err}"
        );
    }

    /// One pattern against one path with `MatchesOrParentMatches` (expectations from moby's
    /// patternmatcher tests and Go's regexp semantics).
    #[test]
    fn single_pattern_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**/", "file", true),
            ("**", "dir/file", true),
            ("**/**", "dir/file", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/dir2/file", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir", "a/b/dir/c", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**file", "file", true),
            ("**file", "dir/myfile", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            ("a[!b]e", "a!e", true),
            ("a[!b]e", "abe", true),
            ("a[!b]e", "ace", false),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abc/def", false),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", "bar.foo", false),
            ("*", "dir/file", true),
            ("*/b", "a/x", false),
            ("a*/b", "a/c/b", false),
            ("a?b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("[\\]a]", "]", true),
            ("[\\-x]", "-", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("a\\\\", "a\\", true),
            ("foo", "foo/bar/baz", true),
            ("foo/bar", "foo/bar/baz", true),
            ("foo/bar", "foo/barbaz", false),
            ("*.go", "src/main.go", false),
            ("**/*.go", "src/main.go", true),
            ("[[:digit:]]*", "2x", true),
            ("[[:^digit:]]*", "2x", false),
            ("\\d*", "7up", true),
            ("^abc", "abc", false),
            ("^abc", "^abc", true),
            ("^abc*", "abcd", true),
            ("a|b*", "axx", true),
            ("a|b*", "x/yb", true),
            ("a{2}*", "aab", true),
            ("a{2}*", "ab", false),
            ("{a,b}*", "{a,b}.txt", true),
            ("**/x", "x", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "ab", false),
            ("*", ".", false),
            ("/", "x", false),
        ];
        for (pattern, path, want) in cases {
            let p = patterns(&[pattern]);
            assert_eq!(
                p.is_excluded(path),
                *want,
                "pattern {pattern:?} path {path:?}"
            );
        }
    }

    #[test]
    fn multi_pattern_matching() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["*.go", "!fileutils.go"], "fileutils.go", false),
            (&["!fileutils.go", "*.go"], "fileutils.go", true),
            (&["docs", "!docs/README.md"], "docs/README.md", false),
            (&["docs/", "!docs/README.md"], "docs/README.md", false),
            (&["docs/*", "!docs/README.md"], "docs/README.md", false),
            (&["docs", "!docs/README.md"], "docs/other.md", true),
            (&["**", "!util/docker/web"], "util/docker/web/foo", false),
            (
                &["**", "!util/docker/web", "util/docker/web/foo"],
                "util/docker/web/foo",
                true,
            ),
            (
                &["**", "!dist/*.whl"],
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                false,
            ),
            (&["*", "!keep", "keep"], "keep", true),
            (&[], "anything", false),
        ];
        for (lines, path, want) in cases {
            assert_eq!(
                patterns(lines).is_excluded(path),
                *want,
                "{lines:?} {path:?}"
            );
        }
    }

    #[test]
    fn cli_matches_checks_one_parent_only() {
        // Old `Matches`: only the parent prefix with as many parts as the pattern.
        let cases: &[(&[&str], &str, bool, bool)] = &[
            // (patterns, path, cli_matches, is_excluded)
            (&["dockerfiles"], "dockerfiles/app/Dockerfile", true, true),
            (&["*/app"], "x/app/y/Dockerfile", true, true),
            (&["a/**/b"], "a/b/c/Dockerfile", false, true),
            (&["a", "!a/**/b"], "a/b/c/Dockerfile", true, false),
            (&["Dockerfile"], "Dockerfile", true, true),
            (&["*"], ".dockerignore", true, true),
        ];
        for (lines, path, cli, full) in cases {
            let p = patterns(lines);
            assert_eq!(p.cli_matches(path), *cli, "cli {lines:?} {path:?}");
            assert_eq!(p.is_excluded(path), *full, "full {lines:?} {path:?}");
        }
    }

    #[test]
    fn build_file_additions() {
        let cases: &[(&[&str], &str, &[&str])] = &[
            (&["*.md"], "Dockerfile", &["*.md"]),
            (
                &["*"],
                "Dockerfile",
                &["*", "!.dockerignore", "!Dockerfile"],
            ),
            (
                &[".dockerignore"],
                "Dockerfile",
                &[".dockerignore", "!.dockerignore"],
            ),
            (
                &["dockerfiles"],
                "dockerfiles/app/Dockerfile",
                &["dockerfiles", "!dockerfiles/app/Dockerfile"],
            ),
            // The CLI's single-parent `Matches` misses this one: no addition.
            (&["a/**/b"], "a/b/c/Dockerfile", &["a/**/b"]),
            // Outside the context: `**` still "matches" `../x/Dockerfile`.
            (
                &["**"],
                "../x/Dockerfile",
                &["**", "!.dockerignore", "!../x/Dockerfile"],
            ),
        ];
        for (lines, dockerfile, want) in cases {
            let got = patterns(lines).with_build_files(dockerfile).unwrap();
            assert_eq!(texts(&got), *want, "{lines:?} {dockerfile}");
        }
        let err = patterns(&["*"])
            .with_build_files("a[b/Dockerfile")
            .unwrap_err();
        assert_eq!(err.line, 0);
    }

    /// Walks a tree given as paths (folders end with `/`) in the CLI's order and returns what
    /// is sent.
    fn sent(p: &Patterns, tree: &[&str], keep: Option<&str>) -> Vec<String> {
        let mut entries: Vec<(Vec<&str>, bool)> = tree
            .iter()
            .map(|t| {
                (
                    t.trim_end_matches('/').split('/').collect(),
                    t.ends_with('/'),
                )
            })
            .collect();
        entries.sort();
        let mut stack: Vec<(String, MatchInfo, bool)> = Vec::new();
        let mut out = Vec::new();
        for (parts, is_dir) in entries {
            let rel = parts.join("/");
            while let Some((top, ..)) = stack.last() {
                if rel.starts_with(&format!("{top}/")) {
                    break;
                }
                stack.pop();
            }
            if stack.last().is_some_and(|(_, _, pruned)| *pruned) {
                continue;
            }
            let parent = stack.last().map(|(_, info, _)| info);
            let (decision, info) =
                p.decide(rel.as_bytes(), is_dir, parent, keep.map(str::as_bytes));
            if decision == Decision::Send {
                out.push(if is_dir {
                    format!("{rel}/")
                } else {
                    rel.clone()
                });
            }
            if is_dir {
                let pruned = decision == Decision::Prune;
                stack.push((rel, info, pruned));
            }
        }
        out
    }

    #[test]
    fn walking_and_pruning() {
        let tree = &[
            ".dockerignore",
            "Dockerfile",
            "dir/",
            "dir/a.txt",
            "dir/keep",
            "dir/sub/",
            "dir/sub/keep",
            "dir/sub/other",
            "src/",
            "src/main.go",
            "src/main_test.go",
        ];
        let all = ".dockerignore Dockerfile dir/ dir/a.txt dir/keep dir/sub/ dir/sub/keep \
                   dir/sub/other src/ src/main.go src/main_test.go";
        // (patterns, what is sent)
        let cases: &[(&[&str], &str)] = &[
            (&[], all),
            // Excluded folder without exceptions: pruned whole.
            (
                &["dir"],
                ".dockerignore Dockerfile src/ src/main.go src/main_test.go",
            ),
            // An exception naming a path inside: walked, folder entries left out.
            (
                &["dir", "!dir/sub/keep", "src"],
                ".dockerignore Dockerfile dir/sub/keep",
            ),
            (
                &["dir", "!dir/keep", "src"],
                ".dockerignore Dockerfile dir/keep",
            ),
            // Losing cases: the exception would match, but its text does not start with the
            // folder's path, so the folder is skipped whole.
            (&["dir", "!**/keep", "src"], ".dockerignore Dockerfile"),
            (&["dir", "!dir/*/keep", "src"], ".dockerignore Dockerfile"),
            (
                &["dir/sub", "!*/sub/keep", "src"],
                ".dockerignore Dockerfile dir/ dir/a.txt dir/keep",
            ),
            // The folder as text prefix, a wildcard further down: reached.
            (
                &["dir", "!dir/sub/*", "src"],
                ".dockerignore Dockerfile dir/sub/keep dir/sub/other",
            ),
            // Re-including a folder sends it and what is inside.
            (
                &["*", "!dir"],
                "dir/ dir/a.txt dir/keep dir/sub/ dir/sub/keep dir/sub/other",
            ),
            (
                &["**/*_test.go"],
                &all[..all.len() - " src/main_test.go".len()],
            ),
            (
                &["*/*", "!src/main.go"],
                ".dockerignore Dockerfile dir/ src/ src/main.go",
            ),
        ];
        for (lines, want) in cases {
            let want: Vec<&str> = want.split_whitespace().collect();
            assert_eq!(sent(&patterns(lines), tree, None), want, "{lines:?}");
        }
    }

    #[test]
    fn parent_results_differ_from_parent_matching() {
        // moby's `MatchesUsingParentResults` skips the last `dir` for `dir` itself (the result
        // is already "excluded"), so `dir/keep` does not inherit it: sent by the walker,
        // although `MatchesOrParentMatches` says excluded.
        let p = patterns(&["dir", "!dir/keep", "dir"]);
        assert!(p.is_excluded("dir/keep"));
        assert_eq!(
            sent(&p, &["dir/", "dir/keep", "dir/other"], None),
            ["dir/keep"]
        );
    }

    #[test]
    fn keep_reaches_the_dockerfile_the_cli_would_lose() {
        let p = patterns(&["a/**/b"])
            .with_build_files("a/b/c/Dockerfile")
            .unwrap();
        let tree = &["a/", "a/b/", "a/b/c/", "a/b/c/Dockerfile", "a/b/c/x", "a/y"];
        assert_eq!(sent(&p, tree, None), ["a/", "a/y"]);
        assert_eq!(
            sent(&p, tree, Some("a/b/c/Dockerfile")),
            ["a/", "a/b/c/Dockerfile", "a/y"]
        );

        // With the CLI's own `!` addition, `keep` changes nothing.
        let p = patterns(&["dockerfiles", "!dockerfiles/*/keep"])
            .with_build_files("dockerfiles/app/Dockerfile")
            .unwrap();
        let tree = &[
            "dockerfiles/",
            "dockerfiles/app/",
            "dockerfiles/app/Dockerfile",
            "dockerfiles/app/keep",
            "dockerfiles/log/",
            "dockerfiles/log/keep",
        ];
        let want = ["dockerfiles/app/Dockerfile", "dockerfiles/app/keep"];
        assert_eq!(sent(&p, tree, None), want);
        assert_eq!(sent(&p, tree, Some("dockerfiles/app/Dockerfile")), want);
    }

    #[test]
    fn invalid_utf8_paths_match_like_go() {
        let p = patterns(&["a?b"]);
        let (excluded, _) = p.match_with_parent(b"a\xffb", None);
        assert!(excluded);
        let (excluded, _) = p.match_with_parent(b"a\xff\xfeb", None);
        assert!(!excluded);
    }
}
