//! One pattern: the syntax check, the translation to a regular expression, and matching
//! (moby/patternmatcher `Pattern.compile` and `Pattern.match`).
//!
//! moby turns a pattern into a Go regular expression ([`translate`]), which [`regex`] runs
//! with Go's syntax and semantics.

use std::cell::OnceCell;

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
            Kind::Regex => Matcher::Regex(regex::Regex::new(&expr).map_err(|reason| {
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
            Matcher::Regex(re) => re.is_match(path.chars()),
        }
    }
}

/// A path being matched; regular expressions see it as Go does, one `char` per UTF-8 rune
/// and U+FFFD per invalid byte.
pub(super) struct Subject<'a> {
    bytes: &'a [u8],
    chars: OnceCell<Vec<char>>,
}

impl<'a> Subject<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
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

/// A small regular-expression engine for the expressions [`translate`] produces, with Go's
/// `regexp` syntax and semantics (flags `Perl`: `.` does not match `\n`, negated classes do,
/// `^`/`$` are text anchors, `MatchString` searches anywhere). Unicode `\p{..}` classes are
/// the one part of Go's syntax it rejects.
mod regex {
    #[derive(Debug, Clone)]
    pub(crate) struct Regex {
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
}
