//! One pattern: the syntax check, the translation to a regular expression, and matching
//! (moby/patternmatcher `Pattern.compile` and `Pattern.match`).
//!
//! moby turns a pattern into a Go regular expression ([`translate`]) and matches it with Go's
//! `regexp` (flags `Perl`: `.` does not match `\n`, negated classes do, `^`/`$` are text
//! anchors, `MatchString` searches anywhere). Here the `regex` crate runs it, which means the
//! same for the operators the translation writes itself (`^`, `$`, `[^/]*`, `(.*/)?`, `.*`), but
//! not for everything a pattern can carry into the expression: `\` and the character after it,
//! `[...]` classes and `{`, `|`, `^` are passed on as written. [`crate_syntax`] therefore reads
//! the expression the way Go's parser does and writes it again in the crate's syntax, spelling
//! out what Go means where the two differ; the crate parses only the operators both read alike.
//! Each difference is named where it is handled, with the test that shows it. Unicode classes
//! (`\p{..}`) stay refused: they would need the crate's Unicode tables, whose version is not
//! Go's.
//!
//! One limit differs and stays: the crate refuses an expression that compiles to more than
//! 10 MB (some twenty `?{1000}` in one pattern), where Go takes a hundred times more. No
//! `.dockerignore` line comes near it, and the error names the line.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt::Write as _;

/// moby's `matchType`, with what it compares.
#[derive(Debug, Clone)]
pub(super) enum Matcher {
    /// The whole path.
    Exact(Box<[u8]>),
    /// `abc/**`: raw prefix `abc/`.
    Prefix(Box<[u8]>),
    /// `**/abc` or `**abc`: raw suffix `/abc` or `abc`.
    Suffix(Box<[u8]>),
    Regex(regex::Regex),
}

impl Matcher {
    /// moby's `Pattern.compile` for the cleaned pattern without its `!`: the syntax check,
    /// the match type and, for `regexpMatch`, the expression. The error is the reason to show.
    pub(super) fn new(text: &str) -> Result<Matcher, String> {
        check_glob_syntax(text.as_bytes()).map_err(String::from)?;
        let bytes = text.as_bytes();
        let (kind, expr) = translate(text);
        Ok(match kind {
            Kind::Exact => Matcher::Exact(bytes.into()),
            Kind::Prefix => Matcher::Prefix(bytes[..bytes.len() - 2].into()),
            Kind::Suffix => Matcher::Suffix(bytes[2..].into()),
            Kind::Regex => Matcher::Regex(go_regex(&expr).map_err(|reason| {
                format!(
                    "docker turns it into the regular expression `{expr}`, which is invalid: \
                     {reason}"
                )
            })?),
        })
    }

    /// moby's `Pattern.match`.
    pub(super) fn matches(&self, path: &Subject<'_>) -> bool {
        match self {
            Matcher::Exact(text) => path.bytes == &**text,
            Matcher::Prefix(prefix) => path.bytes.starts_with(prefix),
            Matcher::Suffix(suffix) => {
                path.bytes.ends_with(suffix)
                    || (suffix.first() == Some(&b'/') && path.bytes == &suffix[1..])
            }
            Matcher::Regex(re) => re.is_match(path.text()),
        }
    }
}

/// A path being matched; regular expressions see it as Go does, its UTF-8 with U+FFFD for
/// each invalid byte.
pub(super) struct Subject<'a> {
    bytes: &'a [u8],
    text: OnceCell<Cow<'a, str>>,
}

impl<'a> Subject<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Subject {
            bytes,
            text: OnceCell::new(),
        }
    }

    fn text(&self) -> &str {
        self.text.get_or_init(|| match str::from_utf8(self.bytes) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => {
                let mut out = String::with_capacity(self.bytes.len() + 8);
                for chunk in self.bytes.utf8_chunks() {
                    out.push_str(chunk.valid());
                    out.extend(std::iter::repeat_n('\u{fffd}', chunk.invalid().len()));
                }
                Cow::Owned(out)
            }
        })
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

/// Compiles an expression [`translate`] wrote with the `regex` crate, keeping Go's meaning.
fn go_regex(expr: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&crate_syntax(expr)?).map_err(|error| match error {
        // The message quotes the rewritten expression, which the user never wrote.
        regex::Error::Syntax(text) => {
            let last = text.lines().last().unwrap_or_default();
            last.trim_start_matches("error: ").to_string()
        }
        error => error.to_string(),
    })
}

/// The POSIX class names Go knows; the crate knows the same, ASCII in both.
const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// `expr` read as Go's `regexp/syntax` reads it (flags `Perl`) and written in the `regex`
/// crate's syntax. `^ $ . | ( ) * + ?` and valid `{n,m}` counts mean the same in both and are
/// passed on; everything else is spelled out.
fn crate_syntax(expr: &str) -> Result<String, String> {
    let mut out = String::with_capacity(2 * expr.len());
    let mut rest = expr;
    // Where the previous item began, when it was a repetition operator.
    let mut last_repeat: Option<&str> = None;
    while let Some(c) = rest.chars().next() {
        let start = rest;
        let mut repeat = false;
        match c {
            '\\' => rest = escape(rest, &mut out)?,
            '[' => rest = class(rest, &mut out)?,
            '{' => match repeat_count(rest)? {
                Some(after) => {
                    out.push_str(&rest[..rest.len() - after.len()]);
                    rest = after;
                    repeat = true;
                }
                // Go reads a `{` that starts no valid count (`{a,b}`, `{,2}`) as itself; the
                // crate refuses it (test `braces_like_go`).
                None => {
                    out.push_str(r"\{");
                    rest = &rest[1..];
                }
            },
            '*' | '+' | '?' => {
                out.push(c);
                rest = &rest[1..];
                repeat = true;
            }
            '^' | '$' | '.' | '|' | '(' | ')' => {
                out.push(c);
                rest = &rest[1..];
            }
            _ => {
                push_char(&mut out, c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !repeat {
            last_repeat = None;
            continue;
        }
        // A `?` after an operator makes it non-greedy: the same matches.
        if let Some(after) = rest.strip_prefix('?') {
            out.push('?');
            rest = after;
        }
        // Go refuses an operator on an operator (`a**`, `*{2}`); the crate repeats the
        // repetition (tests `braces_like_go`, `regex_engine`).
        if let Some(previous) = last_repeat {
            let text = &previous[..previous.len() - rest.len()];
            return Err(format!("invalid nested repetition operator `{text}`"));
        }
        last_repeat = Some(start);
    }
    Ok(out)
}

/// An escape outside a class (`s` starts at the `\`); returns what follows it.
fn escape<'a>(s: &'a str, out: &mut String) -> Result<&'a str, String> {
    match s[1..].chars().next() {
        // The same in both.
        Some('A') => out.push_str(r"\A"),
        Some('z') => out.push_str(r"\z"),
        // Go's word boundaries are ASCII, the crate's Unicode (test `ascii_perl_classes`).
        Some('b') => out.push_str(r"(?-u:\b)"),
        Some('B') => out.push_str(r"(?-u:\B)"),
        // Go quotes up to the first `\E` or the end; the crate has no `\Q` (test
        // `escapes_like_go`).
        Some('Q') => {
            let (quoted, after) = s[2..].split_once(r"\E").unwrap_or((&s[2..], ""));
            quoted.chars().for_each(|c| push_char(out, c));
            return Ok(after);
        }
        Some(c) => {
            if let Some(class) = perl_class(c)? {
                out.push_str(class);
                return Ok(&s[2..]);
            }
            let (c, after) = go_escape(s)?;
            push_char(out, c);
            return Ok(after);
        }
        None => return Err("trailing backslash at end of expression".into()),
    }
    Ok(&s[2..])
}

/// Go's Perl classes `\d`, `\s`, `\w` and their negations are ASCII, the crate's Unicode, and
/// Go's `\s` leaves out `\v` (test `ascii_perl_classes`). Go's Unicode classes `\pN`,
/// `\p{Greek}` are refused.
fn perl_class(c: char) -> Result<Option<&'static str>, String> {
    Ok(Some(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => r"[\t\n\f\r ]",
        'S' => r"[^\t\n\f\r ]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        'p' | 'P' => return Err(format!("Unicode classes `\\{c}` are not supported")),
        _ => return Ok(None),
    }))
}

/// A literal character.
fn push_char(out: &mut String, c: char) {
    out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
}

/// A `[...]` class as Go's `parseClass` reads it (`s` starts at the `[`); returns what follows.
/// Every member is written as `\x{..}`: inside a class the crate reads `[` as a nested class
/// and `&&`, `--`, `~~` as set operations, where Go sees characters, and `[:name:]` with a name
/// Go refuses as a nested class (test `classes_like_go`).
fn class<'a>(s: &'a str, out: &mut String) -> Result<&'a str, String> {
    let mut rest = &s[1..];
    out.push('[');
    if let Some(after) = rest.strip_prefix('^') {
        out.push('^');
        rest = after;
    }
    let mut first = true;
    loop {
        if !first && let Some(after) = rest.strip_prefix(']') {
            out.push(']');
            return Ok(after);
        }
        first = false;
        if let Some(body) = rest.strip_prefix("[:")
            && let Some(end) = body.find(":]")
        {
            let name = &body[..end];
            if !POSIX_CLASSES.contains(&name.strip_prefix('^').unwrap_or(name)) {
                return Err(format!("invalid character class `[:{name}:]`"));
            }
            out.push_str(&rest[..end + 4]);
            rest = &body[end + 2..];
            continue;
        }
        if let Some(after) = rest.strip_prefix('\\')
            && let Some(c) = after.chars().next()
            && let Some(class) = perl_class(c)?
        {
            out.push_str(class);
            rest = &after[1..];
            continue;
        }
        let range = rest;
        let (lo, after) = class_member(rest)?;
        rest = after;
        let mut hi = lo;
        if let Some(after) = rest.strip_prefix('-')
            && !after.is_empty()
            && !after.starts_with(']')
        {
            (hi, rest) = class_member(after)?;
            if hi < lo {
                let text = &range[..range.len() - rest.len()];
                return Err(format!("invalid character class range `{text}`"));
            }
        }
        let _ = write!(out, r"\x{{{:x}}}", u32::from(lo));
        if hi != lo {
            let _ = write!(out, r"-\x{{{:x}}}", u32::from(hi));
        }
    }
}

/// Go's `parseClassChar`: one member of a class.
fn class_member(s: &str) -> Result<(char, &str), String> {
    match s.chars().next() {
        None => Err("missing closing `]`".into()),
        Some('\\') => go_escape(s),
        Some(c) => Ok((c, &s[c.len_utf8()..])),
    }
}

/// Go's `parseEscape` (`s` starts at the `\`): the character the escape stands for, and what
/// follows. Go reads every ASCII punctuation escaped as itself, where the crate reads `\<` and
/// `\>` as word boundaries, and has octal escapes, which the crate refuses (test
/// `escapes_like_go`). Surrogates (`\x{d800}`) are refused, as the crate does: Go takes them,
/// but what they match depends on how its matcher runs (same test).
fn go_escape(s: &str) -> Result<(char, &str), String> {
    let mut chars = s[1..].chars();
    let c = chars
        .next()
        .ok_or("trailing backslash at end of expression")?;
    let mut rest = chars.as_str();
    let invalid = |rest: &str| format!("invalid escape sequence `{}`", &s[..s.len() - rest.len()]);
    if c.is_ascii() && !c.is_ascii_alphanumeric() {
        return Ok((c, rest));
    }
    let octal = |rest: &str| rest.chars().next().and_then(|d| d.to_digit(8));
    let code = match c {
        // `\1` alone would be a back-reference.
        '1'..='7' if octal(rest).is_none() => return Err(invalid(rest)),
        '0'..='7' => {
            let mut code = u32::from(c) - u32::from('0');
            for _ in 1..3 {
                let Some(digit) = octal(rest) else { break };
                code = code * 8 + digit;
                rest = &rest[1..];
            }
            code
        }
        'x' => {
            // Two hex digits, or one or more in braces.
            let split = match rest.strip_prefix('{') {
                Some(body) => body
                    .split_once('}')
                    .filter(|(digits, _)| !digits.is_empty()),
                None => rest.split_at_checked(2),
            };
            let Some((digits, after)) = split else {
                return Err(invalid(""));
            };
            rest = after;
            let code = digits.chars().try_fold(0u32, |code, digit| {
                let code = code * 16 + digit.to_digit(16)?;
                (code <= 0x10ffff).then_some(code)
            });
            code.ok_or_else(|| invalid(rest))?
        }
        'a' => 0x07,
        'f' => 0x0c,
        'n' => 0x0a,
        'r' => 0x0d,
        't' => 0x09,
        'v' => 0x0b,
        _ => return Err(invalid(rest)),
    };
    let c = char::from_u32(code).ok_or_else(|| invalid(rest))?;
    Ok((c, rest))
}

/// Go's `parseRepeat` at a `{`: what follows a count `{n}`, `{n,}` or `{n,m}`, or `None` when
/// the `{` starts no count. Go refuses counts over 1000; the crate takes them (test
/// `braces_like_go`).
fn repeat_count(s: &str) -> Result<Option<&str>, String> {
    /// A decimal number without a leading zero (saturated: anything too big is refused).
    fn number(s: &str) -> Option<(u32, &str)> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let digits = &s[..end];
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return None;
        }
        Some((digits.parse().unwrap_or(u32::MAX), &s[end..]))
    }
    let Some((min, rest)) = number(&s[1..]) else {
        return Ok(None);
    };
    let (max, rest) = match rest.strip_prefix(',') {
        None => (Some(min), rest),
        Some(rest) if rest.starts_with('}') => (None, rest),
        Some(rest) => match number(rest) {
            Some((max, rest)) => (Some(max), rest),
            None => return Ok(None),
        },
    };
    let Some(after) = rest.strip_prefix('}') else {
        return Ok(None);
    };
    if min > 1000 || max.is_some_and(|max| max > 1000 || min > max) {
        let text = &s[..s.len() - after.len()];
        return Err(format!("invalid repeat count `{text}`"));
    }
    Ok(Some(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pattern against one path as moby's `Pattern.match` decides (`None`: docker refuses
    /// the pattern). The expected answers are Go's `regexp` on the expression [`translate`]
    /// writes, unless a row says otherwise. The tables below hold the constructs for which the
    /// `regex` crate, given that expression as it is, answers otherwise, and some neighbours
    /// on which both agree.
    fn check(cases: &[(&str, &str, Option<bool>)]) {
        for (pattern, path, want) in cases {
            let got = Matcher::new(pattern)
                .ok()
                .map(|m| m.matches(&Subject::new(path.as_bytes())));
            assert_eq!(got, *want, "pattern {pattern:?} path {path:?}");
        }
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

    /// `{`: a count only when Go reads one, at most 1000, never on another operator.
    #[test]
    fn braces_like_go() {
        check(&[
            ("{a,b}*", "{a,b}.txt", Some(true)),
            ("a{,2}*", "a{,2}", Some(true)),
            ("a{,2}*", "aa", Some(false)),
            ("a{01}*", "a{01}", Some(true)),
            ("a{1,01}*", "a{1,01}", Some(true)),
            ("a{2}*", "aab", Some(true)),
            ("a{2,}*", "aaaa", Some(true)),
            ("a\\b{start}*", "a{start}", Some(true)),
            ("a\\b{start}*", "a", Some(false)),
            ("a{1000}*", "a", Some(false)),
            ("a{1001}*", "a", None),
            ("a{2,1001}*", "aa", None),
            ("a{3,2}*", "aa", None),
            ("*{2}", "ab", None),
            ("a{2}{3}*", "aaaaaa", None),
            ("a\\Q\\E{2}*", "aa", Some(true)),
        ]);
    }

    /// `\` escapes outside a class.
    #[test]
    fn escapes_like_go() {
        check(&[
            // `\Q...\E` quotes, up to the end of the expression when there is no `\E`.
            ("a\\Q|b\\E*", "a|bc", Some(true)),
            ("a\\Q|b\\E*", "b", Some(false)),
            ("\\Qa*", "a[^/]*$", Some(true)),
            ("\\Qa*", "ab", Some(false)),
            // Octal.
            ("\\101*", "AB", Some(true)),
            ("\\1*", "1", None),
            // Any ASCII punctuation stands for itself.
            ("a\\<b*", "a<b", Some(true)),
            ("a\\>b*", "a>b", Some(true)),
            ("a\\_b*", "a_b", Some(true)),
            // Refused here (see `go_escape`); past the last code point, by Go too.
            ("a\\x{d800}*", "a\u{fffd}", None),
            ("a\\x{110000}*", "a", None),
            // Non-ASCII letters and other letters are no escapes.
            ("a\\é*", "aé", None),
            ("a\\e*", "a\u{1b}", None),
        ]);
    }

    /// `\d`, `\s`, `\w`, their negations and `\b`, `\B` know ASCII only.
    #[test]
    fn ascii_perl_classes() {
        check(&[
            ("\\d*", "\u{663}", Some(false)),
            ("\\D*", "\u{663}", Some(true)),
            ("[\\d]*", "\u{663}", Some(false)),
            ("\\w*", "é", Some(false)),
            ("\\W*", "é", Some(true)),
            ("[^\\w]*", "é", Some(true)),
            ("\\s*", "\u{b}", Some(false)),
            ("\\S*", "\u{b}", Some(true)),
            ("\\s*", "\u{85}", Some(false)),
            ("[\\s]*", "\u{b}", Some(false)),
            ("[[:space:]]*", "\u{b}", Some(true)),
            ("é\\b*", "é", Some(false)),
            ("é\\B*", "é", Some(true)),
            ("x\\b*", "x", Some(true)),
        ]);
    }

    /// `[...]` classes.
    #[test]
    fn classes_like_go() {
        check(&[
            // `[` inside a class is itself.
            ("[[]*", "[x", Some(true)),
            ("[[:a]", ":", Some(true)),
            // `*` and `?` inside a class become `[^/]*` and `[^/]` there, read as members
            // `[`, `^`, `/` (then a repetition, or a `]` after the class).
            ("[*]", "]", Some(true)),
            ("[*]", "^/[]", Some(true)),
            ("[*]", "x", Some(false)),
            ("[?]", "?", Some(false)),
            ("[?]", "/]", Some(true)),
            // No set operations.
            ("[a&&b]", "&", Some(true)),
            ("[a~~b]", "~", Some(true)),
            // POSIX names: Go knows 14, ASCII.
            ("[[:nope:]]", "n", None),
            ("[[:alpha:]]*", "é", Some(false)),
            ("[[:^alpha:]]*", "é", Some(true)),
            ("[x[:digit:]]", "5", Some(true)),
            // A class is no glob: `[^...]` matches `/`.
            ("a[^b]c", "a/c", Some(true)),
        ]);
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
            let re = go_regex(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(re.is_match(input), *want, "{expr} on {input:?}");
        }
        for bad in ["a**", "(a", "a)", "[a", "\\", "x{2}{3}", "[b-a]", "\\8"] {
            assert!(go_regex(bad).is_err(), "{bad}");
        }
    }
}
