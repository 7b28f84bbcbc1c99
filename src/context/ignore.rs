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

use std::cell::OnceCell;

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

/// moby's `matchType`.
#[derive(Debug, Clone)]
enum Matcher {
    Exact,
    /// `abc/**`: raw prefix `abc/`.
    Prefix,
    /// `**/abc` or `**abc`: raw suffix.
    Suffix,
    Regex(regex::Regex),
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
        check_glob_syntax(text.as_bytes()).map_err(|reason| error(reason.into()))?;
        let matcher = compile(&text).map_err(|reason| {
            error(format!(
                "docker turns it into the regular expression `{}`, which is invalid: {reason}",
                reason_regex(&text)
            ))
        })?;
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
        let text = self.text.as_bytes();
        match &self.matcher {
            Matcher::Exact => path.bytes == text,
            Matcher::Prefix => path.bytes.starts_with(&text[..text.len() - 2]),
            Matcher::Suffix => {
                let suffix = &text[2..];
                path.bytes.ends_with(suffix)
                    || (suffix.first() == Some(&b'/') && path.bytes == &suffix[1..])
            }
            Matcher::Regex(re) => re.is_match(path.chars()),
        }
    }
}

/// A path being matched; regular expressions see it as Go does, one `char` per UTF-8 rune
/// and U+FFFD per invalid byte.
struct Subject<'a> {
    bytes: &'a [u8],
    chars: OnceCell<Vec<char>>,
}

impl<'a> Subject<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Subject {
            bytes,
            chars: OnceCell::new(),
        }
    }

    fn chars(&self) -> &[char] {
        self.chars.get_or_init(|| {
            let mut out = Vec::with_capacity(self.bytes.len());
            for chunk in self.bytes.utf8_chunks() {
                out.extend(chunk.valid().chars());
                out.extend(std::iter::repeat_n('\u{fffd}', chunk.invalid().len()));
            }
            out
        })
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

/// Go's `filepath.Clean` for `/`-separated paths.
pub(crate) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// The syntax check moby gets from `filepath.Match(pattern, ".")`: Go validates every
/// chunk between unescaped `*`s (its `scanChunk` / `matchChunk` / `getEsc`).
fn check_glob_syntax(pattern: &[u8]) -> Result<(), &'static str> {
    let mut rest = pattern;
    while !rest.is_empty() {
        while rest.first() == Some(&b'*') {
            rest = &rest[1..];
        }
        let mut in_range = false;
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                b'\\' if i + 1 < rest.len() => i += 1,
                b'[' => in_range = true,
                b']' => in_range = false,
                b'*' if !in_range => break,
                _ => {}
            }
            i += 1;
        }
        check_chunk(&rest[..i])?;
        rest = &rest[i..];
    }
    Ok(())
}

fn check_chunk(mut chunk: &[u8]) -> Result<(), &'static str> {
    const LONE_BACKSLASH: &str = "it ends with a lone `\\` (escape it as `\\\\`)";
    while let Some(&first) = chunk.first() {
        match first {
            b'[' => {
                chunk = &chunk[1..];
                if chunk.first() == Some(&b'^') {
                    chunk = &chunk[1..];
                }
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    chunk = class_char(chunk)?;
                    if chunk[0] == b'-' {
                        chunk = class_char(&chunk[1..])?;
                    }
                    ranges += 1;
                }
            }
            b'\\' => {
                if chunk.len() < 2 {
                    return Err(LONE_BACKSLASH);
                }
                chunk = &chunk[2..];
            }
            _ => chunk = &chunk[1..],
        }
    }
    Ok(())
}

/// Go's `getEsc`: one character of a `[...]` class; something must follow it.
fn class_char(chunk: &[u8]) -> Result<&[u8], &'static str> {
    const BAD_CLASS: &str =
        "malformed `[...]` class (unclosed, empty, or a `-`/`]` where a character is expected)";
    if chunk.is_empty() || chunk[0] == b'-' || chunk[0] == b']' {
        return Err(BAD_CLASS);
    }
    let chunk = if chunk[0] == b'\\' {
        &chunk[1..]
    } else {
        chunk
    };
    let Some(chunk) = chunk.utf8_chunks().next().and_then(|c| {
        let len = c.valid().chars().next()?.len_utf8();
        Some(&chunk[len..])
    }) else {
        return Err(BAD_CLASS);
    };
    if chunk.is_empty() {
        return Err(BAD_CLASS);
    }
    Ok(chunk)
}

/// moby's `Pattern.compile`: the match type, and for `regexpMatch` the expression.
fn compile(pattern: &str) -> Result<Matcher, String> {
    let (kind, expr) = translate(pattern);
    match kind {
        Kind::Exact => Ok(Matcher::Exact),
        Kind::Prefix => Ok(Matcher::Prefix),
        Kind::Suffix => Ok(Matcher::Suffix),
        Kind::Regex => regex::Regex::new(&expr).map(Matcher::Regex),
    }
}

fn reason_regex(pattern: &str) -> String {
    translate(pattern).1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// The pattern → Go regular expression translation, step for step as moby does it.
fn translate(pattern: &str) -> (Kind, String) {
    let mut expr = String::from("^");
    let mut kind = Kind::Exact;
    let mut chars = pattern.chars().peekable();
    let mut index = 0;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is treated as `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        expr.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    expr.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if index == 0 {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                expr.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                expr.push_str("[^/]");
                kind = Kind::Regex;
            }
            // moby means to escape `.+()|{}$`, but its 8-byte bitmap drops the bits of
            // `|`, `{` and `}` (`1 << (b/8)` overflows a byte for b >= 64), so only these
            // five are escaped and `|{}` keep their regexp meaning.
            '.' | '+' | '(' | ')' | '$' => {
                expr.push('\\');
                expr.push(ch);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    expr.push('\\');
                    expr.push(next);
                    kind = Kind::Regex;
                }
                None => expr.push('\\'),
            },
            '[' | ']' => {
                expr.push(ch);
                kind = Kind::Regex;
            }
            _ => expr.push(ch),
        }
        index += 1;
    }
    if kind == Kind::Regex {
        expr.push('$');
    }
    (kind, expr)
}

/// A small regular-expression engine for the expressions [`translate`] produces, with Go's
/// `regexp` syntax and semantics (flags `Perl`: `.` does not match `\n`, negated classes do,
/// `^`/`$` are text anchors, `MatchString` searches anywhere). Unicode `\p{..}` classes are
/// the one part of Go's syntax it rejects.
mod regex {
    #[derive(Debug, Clone)]
    pub(super) struct Regex {
        prog: Vec<Inst>,
        classes: Vec<Class>,
    }

    #[derive(Debug, Clone, Copy)]
    enum Inst {
        Char(char),
        AnyNotNl,
        Class(usize),
        Assert(Look),
        Split(usize, usize),
        Jmp(usize),
        Match,
    }

    #[derive(Debug, Clone, Copy)]
    enum Look {
        BeginText,
        EndText,
        WordBoundary,
        NotWordBoundary,
    }

    #[derive(Debug, Clone)]
    enum Ast {
        Lit(char),
        AnyNotNl,
        Class(Class),
        Look(Look),
        Concat(Vec<Ast>),
        Alt(Vec<Ast>),
        Repeat {
            sub: Box<Ast>,
            min: u32,
            max: Option<u32>,
        },
    }

    #[derive(Debug, Clone)]
    struct Class {
        negated: bool,
        items: Vec<Item>,
    }

    #[derive(Debug, Clone, Copy)]
    enum Item {
        Range(char, char),
        Group(Group, bool),
    }

    #[derive(Debug, Clone, Copy)]
    enum Group {
        PerlDigit,
        PerlSpace,
        PerlWord,
        Alnum,
        Alpha,
        Ascii,
        Blank,
        Cntrl,
        Graph,
        Lower,
        Print,
        Punct,
        Space,
        Upper,
        Xdigit,
    }

    impl Group {
        fn contains(self, c: char) -> bool {
            match self {
                Group::PerlDigit => c.is_ascii_digit(),
                Group::PerlSpace => matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' '),
                Group::PerlWord => c.is_ascii_alphanumeric() || c == '_',
                Group::Alnum => c.is_ascii_alphanumeric(),
                Group::Alpha => c.is_ascii_alphabetic(),
                Group::Ascii => c.is_ascii(),
                Group::Blank => matches!(c, '\t' | ' '),
                Group::Cntrl => matches!(c, '\0'..='\x1f' | '\x7f'),
                Group::Graph => matches!(c, '!'..='~'),
                Group::Lower => c.is_ascii_lowercase(),
                Group::Print => matches!(c, ' '..='~'),
                Group::Punct => c.is_ascii_punctuation(),
                Group::Space => matches!(c, '\t' | '\n' | '\x0b' | '\x0c' | '\r' | ' '),
                Group::Upper => c.is_ascii_uppercase(),
                Group::Xdigit => c.is_ascii_hexdigit(),
            }
        }

        fn perl(c: char) -> Option<Item> {
            let (group, negated) = match c {
                'd' => (Group::PerlDigit, false),
                'D' => (Group::PerlDigit, true),
                's' => (Group::PerlSpace, false),
                'S' => (Group::PerlSpace, true),
                'w' => (Group::PerlWord, false),
                'W' => (Group::PerlWord, true),
                _ => return None,
            };
            Some(Item::Group(group, negated))
        }

        fn posix(name: &str) -> Option<Item> {
            let (negated, name) = match name.strip_prefix('^') {
                Some(rest) => (true, rest),
                None => (false, name),
            };
            let group = match name {
                "alnum" => Group::Alnum,
                "alpha" => Group::Alpha,
                "ascii" => Group::Ascii,
                "blank" => Group::Blank,
                "cntrl" => Group::Cntrl,
                "digit" => Group::PerlDigit,
                "graph" => Group::Graph,
                "lower" => Group::Lower,
                "print" => Group::Print,
                "punct" => Group::Punct,
                "space" => Group::Space,
                "upper" => Group::Upper,
                "word" => Group::PerlWord,
                "xdigit" => Group::Xdigit,
                _ => return None,
            };
            Some(Item::Group(group, negated))
        }
    }

    impl Class {
        fn contains(&self, c: char) -> bool {
            let hit = self.items.iter().any(|item| match *item {
                Item::Range(lo, hi) => lo <= c && c <= hi,
                Item::Group(group, negated) => group.contains(c) != negated,
            });
            hit != self.negated
        }
    }

    fn is_word(c: Option<char>) -> bool {
        c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    impl Regex {
        pub(super) fn new(expr: &str) -> Result<Regex, String> {
            let mut parser = Parser {
                s: expr.chars().collect(),
                i: 0,
            };
            let ast = parser.parse_alt()?;
            if parser.i < parser.s.len() {
                return Err("unexpected `)`".into());
            }
            let mut re = Regex {
                prog: Vec::new(),
                classes: Vec::new(),
            };
            re.emit(&ast);
            re.prog.push(Inst::Match);
            Ok(re)
        }

        fn push(&mut self, inst: Inst) -> usize {
            self.prog.push(inst);
            self.prog.len() - 1
        }

        fn emit(&mut self, ast: &Ast) {
            match ast {
                Ast::Lit(c) => {
                    self.push(Inst::Char(*c));
                }
                Ast::AnyNotNl => {
                    self.push(Inst::AnyNotNl);
                }
                Ast::Class(class) => {
                    self.classes.push(class.clone());
                    self.push(Inst::Class(self.classes.len() - 1));
                }
                Ast::Look(look) => {
                    self.push(Inst::Assert(*look));
                }
                Ast::Concat(items) => items.iter().for_each(|a| self.emit(a)),
                Ast::Alt(branches) => {
                    let mut jumps = Vec::new();
                    for (k, branch) in branches.iter().enumerate() {
                        if k + 1 == branches.len() {
                            self.emit(branch);
                        } else {
                            let split = self.push(Inst::Split(0, 0));
                            self.emit(branch);
                            jumps.push(self.push(Inst::Jmp(0)));
                            self.prog[split] = Inst::Split(split + 1, self.prog.len());
                        }
                    }
                    let end = self.prog.len();
                    for jump in jumps {
                        self.prog[jump] = Inst::Jmp(end);
                    }
                }
                Ast::Repeat { sub, min, max } => {
                    for _ in 0..*min {
                        self.emit(sub);
                    }
                    match max {
                        None => {
                            let split = self.push(Inst::Split(0, 0));
                            self.emit(sub);
                            self.push(Inst::Jmp(split));
                            self.prog[split] = Inst::Split(split + 1, self.prog.len());
                        }
                        Some(max) => {
                            let mut splits = Vec::new();
                            for _ in *min..*max {
                                splits.push(self.push(Inst::Split(0, 0)));
                                self.emit(sub);
                            }
                            let end = self.prog.len();
                            for split in splits {
                                self.prog[split] = Inst::Split(split + 1, end);
                            }
                        }
                    }
                }
            }
        }

        /// Go's `MatchString`: a match anywhere in `input`.
        pub(super) fn is_match(&self, input: &[char]) -> bool {
            let mut current = Threads::new(self.prog.len());
            let mut next = Threads::new(self.prog.len());
            let mut stack = Vec::new();
            for pos in 0..=input.len() {
                if self.add(&mut current, &mut stack, 0, pos, input) {
                    return true;
                }
                let Some(&c) = input.get(pos) else { break };
                next.clear();
                for k in 0..current.dense.len() {
                    let pc = current.dense[k];
                    let step = match self.prog[pc] {
                        Inst::Char(x) => x == c,
                        Inst::AnyNotNl => c != '\n',
                        Inst::Class(k) => self.classes[k].contains(c),
                        _ => false,
                    };
                    if step && self.add(&mut next, &mut stack, pc + 1, pos + 1, input) {
                        return true;
                    }
                }
                std::mem::swap(&mut current, &mut next);
            }
            false
        }

        /// Adds `pc` and what it reaches without reading; true when that reaches `Match`.
        fn add(
            &self,
            list: &mut Threads,
            stack: &mut Vec<usize>,
            pc: usize,
            pos: usize,
            input: &[char],
        ) -> bool {
            stack.clear();
            stack.push(pc);
            while let Some(pc) = stack.pop() {
                if !list.insert(pc) {
                    continue;
                }
                match self.prog[pc] {
                    Inst::Jmp(to) => stack.push(to),
                    Inst::Split(a, b) => {
                        stack.push(b);
                        stack.push(a);
                    }
                    Inst::Assert(look) => {
                        let before = pos.checked_sub(1).map(|i| input[i]);
                        let after = input.get(pos).copied();
                        let ok = match look {
                            Look::BeginText => pos == 0,
                            Look::EndText => pos == input.len(),
                            Look::WordBoundary => is_word(before) != is_word(after),
                            Look::NotWordBoundary => is_word(before) == is_word(after),
                        };
                        if ok {
                            stack.push(pc + 1);
                        }
                    }
                    Inst::Match => return true,
                    Inst::Char(_) | Inst::AnyNotNl | Inst::Class(_) => {}
                }
            }
            false
        }
    }

    struct Threads {
        dense: Vec<usize>,
        seen: Vec<bool>,
    }

    impl Threads {
        fn new(n: usize) -> Self {
            Threads {
                dense: Vec::with_capacity(n),
                seen: vec![false; n],
            }
        }

        fn insert(&mut self, pc: usize) -> bool {
            if self.seen[pc] {
                return false;
            }
            self.seen[pc] = true;
            self.dense.push(pc);
            true
        }

        fn clear(&mut self) {
            for &pc in &self.dense {
                self.seen[pc] = false;
            }
            self.dense.clear();
        }
    }

    /// Go's `regexp/syntax` parser, for the subset of syntax that can reach it.
    struct Parser {
        s: Vec<char>,
        i: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<char> {
            self.s.get(self.i).copied()
        }

        fn peek_at(&self, k: usize) -> Option<char> {
            self.s.get(self.i + k).copied()
        }

        fn next(&mut self) -> Option<char> {
            let c = self.peek();
            self.i += usize::from(c.is_some());
            c
        }

        fn parse_alt(&mut self) -> Result<Ast, String> {
            let mut branches = vec![self.parse_concat()?];
            while self.peek() == Some('|') {
                self.i += 1;
                branches.push(self.parse_concat()?);
            }
            Ok(if branches.len() == 1 {
                branches.pop().unwrap_or(Ast::Concat(Vec::new()))
            } else {
                Ast::Alt(branches)
            })
        }

        fn parse_concat(&mut self) -> Result<Ast, String> {
            let mut items: Vec<Ast> = Vec::new();
            // Start of the last repetition operator, for Go's nested-repetition error.
            let mut last_repeat: Option<usize> = None;
            while let Some(c) = self.peek() {
                let start = self.i;
                let mut repeat = None;
                match c {
                    '|' | ')' => break,
                    '(' => {
                        if self.peek_at(1) == Some('?') {
                            return Err("groups with flags `(?` are not supported".into());
                        }
                        self.i += 1;
                        let inner = self.parse_alt()?;
                        if self.next() != Some(')') {
                            return Err("missing closing `)`".into());
                        }
                        items.push(inner);
                    }
                    '*' | '+' | '?' => {
                        self.i += 1;
                        repeat = Some(match c {
                            '*' => (0, None),
                            '+' => (1, None),
                            _ => (0, Some(1)),
                        });
                    }
                    '{' => match self.repeat_bounds()? {
                        Some(bounds) => repeat = Some(bounds),
                        None => {
                            self.i += 1;
                            items.push(Ast::Lit('{'));
                        }
                    },
                    '^' => {
                        self.i += 1;
                        items.push(Ast::Look(Look::BeginText));
                    }
                    '$' => {
                        self.i += 1;
                        items.push(Ast::Look(Look::EndText));
                    }
                    '.' => {
                        self.i += 1;
                        items.push(Ast::AnyNotNl);
                    }
                    '[' => {
                        self.i += 1;
                        let class = self.parse_class()?;
                        items.push(Ast::Class(class));
                    }
                    '\\' => {
                        let atoms = self.parse_escape_atom()?;
                        items.extend(atoms);
                    }
                    c => {
                        self.i += 1;
                        items.push(Ast::Lit(c));
                    }
                }
                let Some((min, max)) = repeat else {
                    last_repeat = None;
                    continue;
                };
                // A `?` right after an operator makes it non-greedy: same matches.
                if self.peek() == Some('?') {
                    self.i += 1;
                }
                if let Some(prev) = last_repeat {
                    let text: String = self.s[prev..self.i].iter().collect();
                    return Err(format!("invalid nested repetition operator `{text}`"));
                }
                let Some(sub) = items.pop() else {
                    let text: String = self.s[start..self.i].iter().collect();
                    return Err(format!("missing argument to repetition operator `{text}`"));
                };
                items.push(Ast::Repeat {
                    sub: Box::new(sub),
                    min,
                    max,
                });
                last_repeat = Some(start);
            }
            Ok(Ast::Concat(items))
        }

        /// Go's `parseRepeat` at a `{`: `Ok(None)` when it is a literal `{`.
        fn repeat_bounds(&mut self) -> Result<Option<(u32, Option<u32>)>, String> {
            fn int(p: &Parser, at: &mut usize) -> Option<i64> {
                let first = p.s.get(*at).copied()?;
                if !first.is_ascii_digit() {
                    return None;
                }
                if first == '0' && p.s.get(*at + 1).is_some_and(|c| c.is_ascii_digit()) {
                    return None;
                }
                let mut n: i64 = 0;
                while let Some(d) = p.s.get(*at).and_then(|c| c.to_digit(10)) {
                    if n >= 100_000_000 {
                        n = -1;
                    } else if n >= 0 {
                        n = n * 10 + i64::from(d);
                    }
                    *at += 1;
                }
                Some(n)
            }
            let mut at = self.i + 1;
            let Some(mut min) = int(self, &mut at) else {
                return Ok(None);
            };
            let max;
            match self.s.get(at) {
                None => return Ok(None),
                Some(',') => {
                    at += 1;
                    match self.s.get(at) {
                        None => return Ok(None),
                        Some('}') => max = -1,
                        Some(_) => {
                            let Some(m) = int(self, &mut at) else {
                                return Ok(None);
                            };
                            if m < 0 {
                                min = -1;
                            }
                            max = m;
                        }
                    }
                }
                Some(_) => max = min,
            }
            if self.s.get(at) != Some(&'}') {
                return Ok(None);
            }
            let text: String = self.s[self.i..=at].iter().collect();
            self.i = at + 1;
            if !(0..=1000).contains(&min) || max > 1000 || (max >= 0 && min > max) {
                return Err(format!("invalid repeat count `{text}`"));
            }
            let max = u32::try_from(max).ok();
            Ok(Some((min as u32, max)))
        }

        fn parse_class(&mut self) -> Result<Class, String> {
            let mut class = Class {
                negated: false,
                items: Vec::new(),
            };
            if self.peek() == Some('^') {
                self.i += 1;
                class.negated = true;
            }
            let mut first = true;
            loop {
                match self.peek() {
                    None => return Err("missing closing `]`".into()),
                    Some(']') if !first => {
                        self.i += 1;
                        return Ok(class);
                    }
                    _ => {}
                }
                first = false;
                if self.peek() == Some('[') && self.peek_at(1) == Some(':') {
                    let rest: String = self.s[self.i + 2..].iter().collect();
                    if let Some(end) = rest.find(":]") {
                        let name = &rest[..end];
                        let item = Group::posix(name)
                            .ok_or_else(|| format!("invalid character class `[:{name}:]`"))?;
                        class.items.push(item);
                        self.i += 2 + name.chars().count() + 2;
                        continue;
                    }
                }
                if self.peek() == Some('\\') {
                    if let Some(c @ ('p' | 'P')) = self.peek_at(1) {
                        return Err(format!("Unicode classes `\\{c}` are not supported"));
                    }
                    if let Some(item) = self.peek_at(1).and_then(Group::perl) {
                        class.items.push(item);
                        self.i += 2;
                        continue;
                    }
                }
                let lo = self.class_char()?;
                let mut hi = lo;
                if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                    self.i += 1;
                    hi = self.class_char()?;
                    if hi < lo {
                        return Err(format!("invalid character class range `{lo}-{hi}`"));
                    }
                }
                class.items.push(Item::Range(lo, hi));
            }
        }

        fn class_char(&mut self) -> Result<char, String> {
            match self.peek() {
                None => Err("missing closing `]`".into()),
                Some('\\') => self.escape_char(),
                Some(c) => {
                    self.i += 1;
                    Ok(c)
                }
            }
        }

        /// An escape outside a class: anchors, `\Q...\E`, Perl classes, or one character.
        fn parse_escape_atom(&mut self) -> Result<Vec<Ast>, String> {
            let look = match self.peek_at(1) {
                Some('A') => Some(Look::BeginText),
                Some('z') => Some(Look::EndText),
                Some('b') => Some(Look::WordBoundary),
                Some('B') => Some(Look::NotWordBoundary),
                _ => None,
            };
            if let Some(look) = look {
                self.i += 2;
                return Ok(vec![Ast::Look(look)]);
            }
            match self.peek_at(1) {
                Some('C') => return Err("invalid escape sequence `\\C`".into()),
                Some('Q') => {
                    self.i += 2;
                    let mut lits = Vec::new();
                    while let Some(c) = self.peek() {
                        if c == '\\' && self.peek_at(1) == Some('E') {
                            self.i += 2;
                            break;
                        }
                        self.i += 1;
                        lits.push(Ast::Lit(c));
                    }
                    return Ok(lits);
                }
                Some(c @ ('p' | 'P')) => {
                    return Err(format!("Unicode classes `\\{c}` are not supported"));
                }
                _ => {}
            }
            if let Some(item) = self.peek_at(1).and_then(Group::perl) {
                self.i += 2;
                return Ok(vec![Ast::Class(Class {
                    negated: false,
                    items: vec![item],
                })]);
            }
            Ok(vec![Ast::Lit(self.escape_char()?)])
        }

        /// Go's `parseEscape`: `\` and what follows, as one character.
        fn escape_char(&mut self) -> Result<char, String> {
            let start = self.i;
            self.i += 1;
            let Some(c) = self.next() else {
                return Err("trailing backslash at end of expression".into());
            };
            let invalid = |p: &Parser| {
                let text: String = p.s[start..p.i].iter().collect();
                format!("invalid escape sequence `{text}`")
            };
            if c.is_ascii() && !c.is_ascii_alphanumeric() {
                return Ok(c);
            }
            let octal = |c: Option<char>| c.filter(|c| ('0'..='7').contains(c));
            match c {
                '1'..='7' if octal(self.peek()).is_none() => Err(invalid(self)),
                '0'..='7' => {
                    let mut r = c as u32 - '0' as u32;
                    for _ in 1..3 {
                        let Some(d) = octal(self.peek()) else { break };
                        r = r * 8 + (d as u32 - '0' as u32);
                        self.i += 1;
                    }
                    char::from_u32(r).ok_or_else(|| invalid(self))
                }
                'x' => {
                    let hex = |c: Option<char>| c.and_then(|c| c.to_digit(16));
                    if self.peek() == Some('{') {
                        self.i += 1;
                        let mut r: u32 = 0;
                        let mut digits = 0;
                        loop {
                            match self.next() {
                                Some('}') => break,
                                c => {
                                    let Some(v) = hex(c) else {
                                        return Err(invalid(self));
                                    };
                                    r = r * 16 + v;
                                    digits += 1;
                                    if r > 0x10ffff {
                                        return Err(invalid(self));
                                    }
                                }
                            }
                        }
                        if digits == 0 {
                            return Err(invalid(self));
                        }
                        char::from_u32(r).ok_or_else(|| invalid(self))
                    } else {
                        let x = hex(self.next());
                        let y = hex(self.next());
                        match (x, y) {
                            (Some(x), Some(y)) => {
                                char::from_u32(x * 16 + y).ok_or_else(|| invalid(self))
                            }
                            _ => Err(invalid(self)),
                        }
                    }
                }
                'a' => Ok('\x07'),
                'f' => Ok('\x0c'),
                'n' => Ok('\n'),
                'r' => Ok('\r'),
                't' => Ok('\t'),
                'v' => Ok('\x0b'),
                _ => Err(invalid(self)),
            }
        }
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

    #[test]
    fn match_types() {
        let cases: &[(&str, Kind, &str)] = &[
            ("*", Kind::Regex, "^[^/]*$"),
            ("a*/b", Kind::Regex, "^a[^/]*/b$"),
            ("**", Kind::Suffix, ""),
            ("**/**", Kind::Regex, "^(.*/)?.*$"),
            ("dir/**", Kind::Prefix, ""),
            ("**/dir", Kind::Suffix, ""),
            ("**/dir2/*", Kind::Regex, "^(.*/)?dir2/[^/]*$"),
            ("**/dir2/**", Kind::Regex, "^(.*/)?dir2/.*$"),
            ("**/**/*.txt", Kind::Regex, "^(.*/)?(.*/)?[^/]*\\.txt$"),
            (".*", Kind::Regex, "^\\.[^/]*$"),
            ("abc.def", Kind::Exact, ""),
            ("a(b)c/def", Kind::Exact, ""),
            ("a.|)$(}+{bc", Kind::Exact, ""),
            ("a|b*", Kind::Regex, "^a|b[^/]*$"),
            ("a\\*b", Kind::Regex, "^a\\*b$"),
        ];
        for (pattern, kind, expr) in cases {
            let (got_kind, got_expr) = translate(pattern);
            assert_eq!(got_kind, *kind, "{pattern}");
            if *kind == Kind::Regex {
                assert_eq!(got_expr, *expr, "{pattern}");
            }
        }
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
    fn cleaning() {
        let cases = [
            ("", "."),
            ("a/", "a"),
            ("a//b", "a/b"),
            ("./a/../b", "b"),
            ("a/..", "."),
            ("../../a", "../../a"),
            ("a/../../b", "../b"),
            ("/", "/"),
            ("/..", "/"),
            ("/../a/", "/a"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input:?}");
        }
    }

    #[test]
    fn regex_engine() {
        let cases: &[(&str, &str, bool)] = &[
            ("^a|b$", "ax", true),
            ("^a|b$", "xb", true),
            ("^a|b$", "xa", false),
            ("^(.*/)?x$", "x", true),
            ("^(.*/)?x$", "a\n/x", false),
            ("^[^/]*$", "a\nb", true),
            ("^a{2,3}$", "aaaa", false),
            ("^a{2,}$", "aaaa", true),
            ("^a{,2}$", "a{,2}", true),
            ("^\\x41\\101\\x{42}$", "AAB", true),
            ("^\\Q*.\\E$", "*.", true),
            ("^\\bab\\B", "abc", true),
            ("^\\bab\\B", "ab", false),
            ("^[\\d\\-]+$", "1-2", true),
        ];
        for (expr, input, want) in cases {
            let re = regex::Regex::new(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let chars: Vec<char> = input.chars().collect();
            assert_eq!(re.is_match(&chars), *want, "{expr} on {input:?}");
        }
        for bad in ["a**", "(a", "a)", "[a", "\\", "x{2}{3}", "[b-a]", "\\8"] {
            assert!(regex::Regex::new(bad).is_err(), "{bad}");
        }
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
