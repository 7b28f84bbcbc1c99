//! The Dockerfile as BuildKit reads it, for what ecrship needs of it: every image it names (each is
//! resolved to a digest for the inputs digest, then pinned in a rewritten copy that the builder
//! gets, the user's file staying as it is), the stages a target needs, and the
//! `RUN --mount=type=cache` mounts. Bytes in, a typed value out; no I/O.
//!
//! Each step mirrors one piece of moby/buildkit's Dockerfile frontend (read there for the facts;
//! nothing here is copied):
//!
//! * Directives (`frontend/dockerfile/parser/directives.go`, `Parse` in `parser.go`): `syntax`,
//!   `escape` and `check`, keys in any case, as `# key = value` comments before anything else.
//!   The first line that is not one (another comment, a blank line, an instruction) ends them;
//!   a directive given twice is an error, and so is an escape other than `\` or `` ` ``. For
//!   `escape`, leading blanks are allowed before the `#` and a first line starting with `#!` ends
//!   the directives; the syntax image is found as `DetectSyntax` finds it: `#` in column 0, after
//!   a skipped `#!` line, or else in the `// syntax=` form. Its value is the text up to the first
//!   space. A `BUILDKIT_SYNTAX` build arg replaces it ([`Dockerfile::syntax_arg`],
//!   `frontend/dockerfile/builder/build.go`).
//! * Lines (`parser.go`): a UTF-8 BOM is skipped; a line whose first non-blank character is `#`
//!   is a comment; a line ending with the escape character (blanks after it allowed, an escaped
//!   escape not counting) goes on with the next one, where comment lines and blank lines are
//!   skipped and leading blanks kept.
//! * Heredocs (`heredocsFromLine`, `ParseHeredoc`): in `RUN`, `COPY` and `ADD` (also under
//!   `ONBUILD`) not in JSON form, every word `[n]<<[-]WORD` of the line (`WORD` possibly quoted)
//!   opens a body read up to a line equal to `WORD` (leading tabs dropped for `<<-`); bodies are
//!   skipped, in order. A body without its terminator is an error.
//! * Commands and flags (`split_command.go`, `instructions/bflag.go`): the instruction's name in
//!   any case, then the `--name=value` words before its arguments, with quotes removed and
//!   escapes resolved. `FROM --platform`, `COPY --from` and `RUN --mount` are read; every other
//!   flag is skipped, as are unknown instructions (a newer builder may know them).
//! * Words (`shell/lex.go`): `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`, `${VAR:+w}`, `${VAR+w}`,
//!   `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`,
//!   `${VAR/pat/s}`, `${VAR//pat/s}` (patterns with `*` and `?`), single and double quotes,
//!   and the escape character; an unset variable is the empty string.
//! * Variables (`dockerfile2llb/convert.go`: `buildMetaArgs`, `dispatchArg`, `dispatchEnv`;
//!   `platform.go`: `defaultArgs`): the global scope holds `BUILDPLATFORM`, `BUILDOS`,
//!   `BUILDOSVERSION`, `BUILDARCH`, `BUILDVARIANT`, `TARGETPLATFORM`, `TARGETOS`,
//!   `TARGETOSVERSION`, `TARGETARCH`, `TARGETVARIANT` and `TARGETSTAGE` (each replaced by a
//!   build arg of its name), then each `ARG` before the first `FROM`: its build arg, else its
//!   default expanded in the scope so far. `FROM` and `--platform` expand in that scope. In a
//!   stage, `ARG name` takes the build arg, else the global value; `ARG name=default` takes the
//!   build arg, else the default expanded in the stage; `ENV` expands all its pairs in the scope
//!   before it. A stage `FROM` another stage starts with that stage's variables, any other with
//!   `PATH` alone (not on Windows): the base image's own `ENV` is not known here.
//! * Stages and sources (`instructions/parse.go`: `parseFrom`; `convert.go`: `toCommand`,
//!   `detectRunMount`, `addState`, `findStateByName`, `resolveTarget`): `FROM image [AS name]`,
//!   the name lowercased and checked; `FROM` names an earlier stage (the last of that name, in
//!   any case: BuildKit itself matches `FROM` exactly and fails on `FROM Build` as an invalid
//!   reference, the classic builder takes the stage), `scratch`, or an image. `COPY --from` names a stage index (a number), a stage, `scratch` or
//!   an image, and `--mount` `from=` a stage, `scratch` or an image (a number there is an image
//!   name, as in BuildKit). Neither may hold a variable: BuildKit rejects them (`--mount` `from=`
//!   with a `$` anywhere but last). A target is found by name in any case; the stages it needs
//!   follow `FROM`, `COPY --from` and `--mount` `from=`.
//! * Mounts (`instructions/commands_runmount.go`: `parseMount`; `convert_runmount.go`): each
//!   `--mount` value is a CSV line of `key=value` fields (`type` bind by default, cache, secret,
//!   ssh, tmpfs; `from`, `source`/`src`, `target`/`dst`/`destination`, `id`, `sharing` shared by
//!   default, private, locked; `uid`, `gid` in decimal, `mode` in octal; `readonly`/`ro`,
//!   `readwrite`/`rw`, `required`, `size`, `env`), values expanded in the stage's scope. A cache
//!   mount's id defaults to its target, cleaned like Go's `path.Clean`.
//! * Platforms (containerd/platforms: `Parse`, `Normalize`, `Format`, `FormatAll`):
//!   `os[(version)]/arch[/variant]`, normalized (`linux/arm64/v8` is `linux/arm64`, `linux/arm`
//!   is `linux/arm/v7`); a lone OS or architecture takes the rest from the build platform.
//!
//! BuildKit fails a build on some errors wherever they are (syntax, a directive, a `FROM` or
//! global `ARG` that does not expand, a `--from` with a variable or a bad index, a cycle), and
//! on others only in a stage it builds (a stage `ARG`/`ENV`/`--mount` value that does not
//! expand, a bad mount option, a `--from` naming a later stage). [`parse`] returns the first kind;
//! the second is kept in [`Stage::error`] and returned by [`Dockerfile::needed_stages`] when the
//! stage is needed. Errors name the line where their instruction starts.
//!
//! An image's [`ImageUse::value`] is the reference as expanded, neither checked nor normalized
//! (`node:20`, not `docker.io/library/node:20`). Each [`ImageUse`] carries the byte range of the
//! reference as written ([`ImageUse::span`]):
//! the whole `FROM` word (`${BASE}` included), the value of `--from=`, the value of `from=` in a
//! mount (inside its quotes), the value of `# syntax=`. [`rewrite`] puts literal references there;
//! every other byte stays as it was.
//!
//! Not covered: `ONBUILD` triggers (a base stage's, run in the stages built on it), named build
//! contexts, the base image's own `ENV` and `WORKDIR` (mount targets are kept as written), and the
//! checks BuildKit makes on what is not read here (unknown flags, unknown instructions, `COPY`
//! arguments, expansions in other instructions).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

/// What a build passes to the Dockerfile besides its text.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    /// The build args (`--build-arg`), by name.
    pub build_args: &'a BTreeMap<String, String>,
    /// The target platform, `os[(version)]/arch[/variant]`; empty for the build platform.
    pub platform: &'a str,
    /// The builder's own platform, `os/arch[/variant]` (the daemon's).
    pub build_platform: &'a str,
    /// The target stage, for `TARGETSTAGE`; pass the one given to [`Dockerfile::needed_stages`].
    pub target: Option<&'a str>,
}

/// What is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileError {
    /// 1-based line where the instruction (or directive) starts; 0 when not in the file.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for DockerfileError {}

fn err(line: usize, message: impl Into<String>) -> DockerfileError {
    DockerfileError {
        line,
        message: message.into(),
    }
}

/// Where an image is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseKind {
    /// `# syntax=`: the frontend image.
    Syntax,
    /// `FROM`.
    From,
    /// `COPY --from=`.
    CopyFrom,
    /// `RUN --mount=...,from=`.
    MountFrom,
}

/// One image reference in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    pub kind: UseKind,
    /// The stage it is in; `None` for the syntax image.
    pub stage: Option<usize>,
    /// 1-based line where its instruction starts.
    pub line: usize,
    /// The bytes of [`ImageUse::span`], as in the file: `${BASE_IMAGE}`, `node:20`.
    pub written: String,
    /// The reference after expansion: `base:abc`.
    pub value: String,
    /// Byte range of `written` in the text given to [`parse`].
    pub span: Range<usize>,
    /// The platform it is pulled for, normalized: the stage's `--platform` for `FROM`, the
    /// target platform for `--from`, the build platform for the syntax image.
    pub platform: String,
}

/// What a stage starts from, or what a `--from` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Image(ImageUse),
    /// An earlier stage (for `--from`, any stage), by index.
    Stage(usize),
    Scratch,
}

/// A `COPY --from` or `RUN --mount` `from=` of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// [`UseKind::CopyFrom`] or [`UseKind::MountFrom`].
    pub kind: UseKind,
    pub line: usize,
    /// The value as read (quotes removed): `build`, `0`, `node:20`.
    pub from: String,
    pub base: Base,
}

/// A cache mount's sharing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    #[default]
    Shared,
    Private,
    Locked,
}

/// A `RUN --mount=type=cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMount {
    pub stage: usize,
    pub line: usize,
    /// `id=`, else the target cleaned.
    pub id: String,
    /// As written, expanded; a relative target is under the stage's working directory.
    pub target: String,
    pub sharing: Sharing,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
    pub from: Option<String>,
    pub source: Option<String>,
    /// The same `RUN` also mounts a secret.
    pub with_secret: bool,
}

/// A `FROM` and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// 1-based line of its `FROM`.
    pub line: usize,
    pub base: Base,
    /// `--platform`, expanded.
    pub platform: Option<String>,
    /// `COPY --from` and `--mount` `from=`, in order.
    pub sources: Vec<Source>,
    pub cache_mounts: Vec<CacheMount>,
    /// An error BuildKit raises only when it builds this stage.
    pub error: Option<DockerfileError>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub stages: Vec<Stage>,
    /// `# syntax=`, unless a `BUILDKIT_SYNTAX` build arg replaces it.
    pub syntax: Option<ImageUse>,
    /// The frontend image from the `BUILDKIT_SYNTAX` build arg; it cannot be rewritten in the file.
    pub syntax_arg: Option<String>,
    /// `\`, or `` ` `` by `# escape=`.
    pub escape: char,
}

impl Dockerfile {
    /// Every image reference (not a stage, not `scratch`), in file order, whatever stage it is in.
    pub fn images(&self) -> impl Iterator<Item = &ImageUse> {
        let from_stages = self.stages.iter().flat_map(|stage| {
            let base = match &stage.base {
                Base::Image(image) => Some(image),
                _ => None,
            };
            base.into_iter()
                .chain(stage.sources.iter().filter_map(|s| match &s.base {
                    Base::Image(image) => Some(image),
                    _ => None,
                }))
        });
        self.syntax.iter().chain(from_stages)
    }

    /// The stages a build of `target` (`None`: the last stage) needs, in file order, as BuildKit
    /// decides it. An unknown target is an error, and so is one that BuildKit raises only in a
    /// stage it builds ([`Stage::error`], or a `--from` naming a later stage).
    pub fn needed_stages(&self, target: Option<&str>) -> Result<Vec<usize>, DockerfileError> {
        let last = self.stages.len().checked_sub(1);
        let start = match target {
            None => last,
            Some("") => last,
            Some(name) => stage_by_name(&self.stages, name, self.stages.len()),
        };
        let Some(start) = start else {
            return Err(err(
                0,
                format!(
                    "target stage {:?} could not be found",
                    target.unwrap_or_default()
                ),
            ));
        };
        let mut needed = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(i) = todo.pop() {
            if !needed.insert(i) {
                continue;
            }
            let stage = &self.stages[i];
            if let Base::Stage(j) = stage.base {
                todo.push(j);
            }
            todo.extend(stage.sources.iter().filter_map(|s| match s.base {
                Base::Stage(j) => Some(j),
                _ => None,
            }));
        }
        for &i in &needed {
            let stage = &self.stages[i];
            let forward = stage.sources.iter().find_map(|s| match s.base {
                Base::Stage(j) if j >= i => Some(err(s.line, forward_message(s, stage))),
                _ => None,
            });
            let first = [forward, stage.error.clone()]
                .into_iter()
                .flatten()
                .min_by_key(|e| e.line);
            if let Some(e) = first {
                return Err(e);
            }
        }
        Ok(needed.into_iter().collect())
    }
}

fn forward_message(source: &Source, stage: &Stage) -> String {
    let current = match &stage.name {
        Some(name) => name.clone(),
        None => format!("stage-{}", stage.index),
    };
    match source.kind {
        UseKind::MountFrom => format!(
            "cannot mount from stage {:?}: it must be defined before the current stage {current:?}",
            source.from
        ),
        _ => format!(
            "cannot copy from stage {:?}, it needs to be defined before current stage {current:?}",
            source.from
        ),
    }
}

/// The last of the first `before` stages named `name` (in any case).
fn stage_by_name(stages: &[Stage], name: &str, before: usize) -> Option<usize> {
    let name = name.to_lowercase();
    stages[..before]
        .iter()
        .rposition(|s| s.name.as_deref() == Some(name.as_str()))
}

/// `text` with each range replaced; every other byte unchanged.
///
/// # Panics
///
/// When two ranges overlap, or one is outside `text` or not on character boundaries.
pub fn rewrite(text: &str, replacements: &[(Range<usize>, String)]) -> String {
    let mut sorted: Vec<&(Range<usize>, String)> = replacements.iter().collect();
    sorted.sort_by_key(|(range, _)| (range.start, range.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, replacement) in sorted {
        assert!(
            range.start >= at && range.start <= range.end,
            "overlapping or reversed range {range:?}"
        );
        out.push_str(&text[at..range.start]);
        out.push_str(replacement);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Parses `text` for a build with `args`.
pub fn parse(text: &str, args: &Args<'_>) -> Result<Dockerfile, DockerfileError> {
    let build = parse_platform(args.build_platform, None)
        .map_err(|e| err(0, format!("build platform: {e}")))?;
    let target = if args.platform.is_empty() {
        build.clone()
    } else {
        parse_platform(args.platform, Some(&build)).map_err(|e| err(0, format!("platform: {e}")))?
    };
    let skip = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let lines = physical_lines(text, skip);

    let syntax_arg = args
        .build_args
        .get("BUILDKIT_SYNTAX")
        .and_then(|v| v.split_whitespace().next())
        .map(str::to_owned);
    let syntax = match syntax_arg {
        Some(_) => None,
        None => detect_syntax(text, skip).map(|(line, span)| ImageUse {
            kind: UseKind::Syntax,
            stage: None,
            line,
            written: text[span.clone()].to_owned(),
            value: text[span.clone()].to_owned(),
            span,
            platform: build.format(),
        }),
    };

    let (escape, instructions) = scan(&lines)?;
    let mut reader = Reader {
        escape,
        meta: Vec::new(),
        drafts: Vec::new(),
    };
    for ins in &instructions {
        reader.read(ins)?;
    }
    let Reader {
        meta, mut drafts, ..
    } = reader;
    if instructions.is_empty() {
        return Err(err(lines.len(), "file with no instructions"));
    }
    if drafts.is_empty() {
        return Err(err(0, "dockerfile contains no stages to build"));
    }

    // The global scope.
    let stage_name = match args.target {
        Some(t) if !t.is_empty() => t.to_owned(),
        _ => drafts
            .last()
            .and_then(|d| d.name.clone())
            .unwrap_or_else(|| "default".to_owned()),
    };
    let mut global: Vars = [
        ("BUILDPLATFORM", build.format()),
        ("BUILDOS", build.os.clone()),
        ("BUILDOSVERSION", build.os_version.clone()),
        ("BUILDARCH", build.arch.clone()),
        ("BUILDVARIANT", build.variant.clone()),
        ("TARGETPLATFORM", target.format_all()),
        ("TARGETOS", target.os.clone()),
        ("TARGETOSVERSION", target.os_version.clone()),
        ("TARGETARCH", target.arch.clone()),
        ("TARGETVARIANT", target.variant.clone()),
        ("TARGETSTAGE", stage_name),
    ]
    .into_iter()
    .map(|(k, v)| {
        let v = args.build_args.get(k).cloned().unwrap_or(v);
        (k.to_owned(), v)
    })
    .collect();
    for (line, pairs) in &meta {
        for (key, default) in pairs {
            if let Some(value) = args.build_args.get(key) {
                global.insert(key.clone(), value.clone());
            } else if let Some(default) = default {
                let value = expand(default, &global, escape).map_err(|e| err(*line, e))?;
                global.insert(key.clone(), value);
            }
        }
    }

    // Each stage's base, in order: `FROM` sees the stages before it.
    let mut stages: Vec<Stage> = Vec::with_capacity(drafts.len());
    let mut stage_os: Vec<String> = Vec::with_capacity(drafts.len());
    for (index, draft) in drafts.iter().enumerate() {
        let line = draft.line;
        let written = text_of(&draft.base);
        let value = expand(&written, &global, escape).map_err(|e| err(line, e))?;
        if value.is_empty() {
            return Err(err(
                line,
                format!("base name ({written}) should not be blank"),
            ));
        }
        let mut platform = None;
        let mut pull_platform = target.format();
        let mut os = target.os.clone();
        if let Some(p) = &draft.platform {
            let expanded = expand(p, &global, escape).map_err(|e| err(line, e))?;
            if expanded.is_empty() {
                return Err(err(
                    line,
                    format!("empty platform value from expression {p}"),
                ));
            }
            let parsed = parse_platform(&expanded, Some(&build))
                .map_err(|e| err(line, format!("failed to parse platform {p}: {e}")))?;
            pull_platform = parsed.format();
            os = parsed.os;
            platform = Some(expanded);
        }
        let base = if let Some(j) = stage_by_name(&stages, &value, index) {
            Base::Stage(j)
        } else if value == "scratch" {
            Base::Scratch
        } else {
            let span = span_of(&draft.base, &draft.line_chars).expect("a word is a span");
            Base::Image(ImageUse {
                kind: UseKind::From,
                stage: Some(index),
                line,
                written: text[span.clone()].to_owned(),
                value,
                span,
                platform: pull_platform,
            })
        };
        stages.push(Stage {
            index,
            name: draft.name.clone(),
            line,
            base,
            platform,
            sources: Vec::new(),
            cache_mounts: Vec::new(),
            error: None,
        });
        stage_os.push(os);
    }

    // What each `--from` names; all stages are known now.
    let scratch_stage = stage_by_name(&stages, "scratch", stages.len());
    for (index, draft) in drafts.iter_mut().enumerate() {
        for source in std::mem::take(&mut draft.sources) {
            let base = match (&source.value, source.kind) {
                (None, _) => match scratch_stage {
                    // BuildKit looks up a mount without `from=` as `scratch`: a stage of that
                    // name becomes a dependency.
                    Some(j) => Named::Stage(j),
                    None => continue,
                },
                (Some(from), UseKind::CopyFrom) => {
                    let plain =
                        expand(from, &Vars::new(), escape).map_err(|e| err(source.line, e))?;
                    if plain != *from {
                        return Err(err(
                            source.line,
                            format!(
                                "variable expansion is not supported for --from ({from}): \
                                 copy from a stage whose FROM uses a global ARG instead"
                            ),
                        ));
                    }
                    match go_atoi(from) {
                        Some(n) => match usize::try_from(n).ok().filter(|&n| n < stages.len()) {
                            Some(n) => Named::Stage(n),
                            None => {
                                return Err(err(source.line, format!("invalid stage index {n}")));
                            }
                        },
                        None => stage_base(&stages, from),
                    }
                }
                (Some(from), _) => stage_base(&stages, from),
            };
            let base = match base {
                Named::Image => {
                    let from = source.value.clone().unwrap_or_default();
                    let span = span_of(&source.chars, &source.line_chars).ok_or_else(|| {
                        err(
                            source.line,
                            format!(
                                "cannot locate the image `{from}` for pinning: \
                                 quotes split it; write it without them"
                            ),
                        )
                    })?;
                    Base::Image(ImageUse {
                        kind: source.kind,
                        stage: Some(index),
                        line: source.line,
                        written: text[span.clone()].to_owned(),
                        value: from,
                        span,
                        platform: target.format(),
                    })
                }
                Named::Stage(j) => Base::Stage(j),
                Named::Scratch => Base::Scratch,
            };
            stages[index].sources.push(Source {
                kind: source.kind,
                line: source.line,
                // A mount without `from=` that BuildKit ties to a stage named `scratch`.
                from: source.value.unwrap_or_else(|| "scratch".to_owned()),
                base,
            });
        }
    }
    check_cycles(&stages)?;

    // What BuildKit does when it builds each stage: scopes and mounts.
    let mut final_envs: Vec<Vars> = Vec::with_capacity(stages.len());
    for (index, draft) in drafts.iter().enumerate() {
        let mut env = match stages[index].base {
            Base::Stage(j) => final_envs[j].clone(),
            _ => {
                let mut env = Vars::new();
                if stage_os[index] != "windows" {
                    env.insert("PATH".to_owned(), DEFAULT_PATH.to_owned());
                }
                env
            }
        };
        let dispatched = dispatch(
            &draft.steps,
            index,
            &mut env,
            &global,
            args.build_args,
            escape,
        );
        match dispatched {
            Ok(mounts) => stages[index].cache_mounts = mounts,
            Err(e) => stages[index].error = Some(e),
        }
        final_envs.push(env);
    }

    Ok(Dockerfile {
        stages,
        syntax,
        syntax_arg,
        escape,
    })
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a `--from` names, before its [`ImageUse`] is made.
enum Named {
    Image,
    Stage(usize),
    Scratch,
}

/// A `--from` or mount `from=` that is not a stage index: a stage (by name, any case),
/// `scratch`, or an image.
fn stage_base(stages: &[Stage], from: &str) -> Named {
    match stage_by_name(stages, from, stages.len()) {
        Some(j) => Named::Stage(j),
        None if from == "scratch" => Named::Scratch,
        None => Named::Image,
    }
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits that fit an `i64`.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// BuildKit's `validateCircularDependency`, over `--from` edges.
fn check_cycles(stages: &[Stage]) -> Result<(), DockerfileError> {
    fn visit(
        stages: &[Stage],
        i: usize,
        done: &mut [bool],
        path: &mut Vec<usize>,
    ) -> Option<usize> {
        if done[i] {
            return None;
        }
        done[i] = true;
        path.push(i);
        for source in &stages[i].sources {
            if let Base::Stage(j) = source.base {
                if path.contains(&j) {
                    return Some(source.line);
                }
                if let Some(line) = visit(stages, j, done, path) {
                    return Some(line);
                }
            }
        }
        path.pop();
        None
    }
    let mut done = vec![false; stages.len()];
    for (i, stage) in stages.iter().enumerate() {
        if let Some(line) = visit(stages, i, &mut done, &mut Vec::new()) {
            let name = stage.name.clone().unwrap_or_else(|| format!("stage-{i}"));
            return Err(err(
                line,
                format!("circular dependency detected on stage: {name}"),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Lines and instructions

/// One character of a logical line, with where it came from in the text.
#[derive(Debug, Clone, Copy)]
struct MChar {
    c: char,
    /// Byte range in the text; `start` includes an escape character before it.
    start: usize,
    end: usize,
    /// Index of the character in its logical line, and of its escape character if any.
    at: usize,
    at_escape: usize,
    /// The quote it was read in, by the flag reader.
    quote: Option<char>,
}

fn text_of(chars: &[MChar]) -> String {
    chars.iter().map(|m| m.c).collect()
}

fn trim_chars(chars: &[MChar]) -> &[MChar] {
    let start = chars
        .iter()
        .position(|m| !m.c.is_whitespace())
        .unwrap_or(chars.len());
    let end = chars
        .iter()
        .rposition(|m| !m.c.is_whitespace())
        .map_or(start, |i| i + 1);
    &chars[start..end]
}

/// The byte range of a value read from `line`: from its first character to its last, widened
/// over a quote that opens right before it or closes right after it so that a literal put there
/// reads the same. `None` when quotes split it otherwise.
fn span_of(value: &[MChar], line: &[MChar]) -> Option<Range<usize>> {
    let first = value.first()?;
    let last = value.last()?;
    let (mut start, mut end) = (first.start, last.end);
    if first.quote != last.quote {
        if let Some(q) = last.quote {
            let next = line.get(last.at + 1).filter(|m| m.c == q)?;
            end = next.end;
        }
        if let Some(q) = first.quote {
            let prev = line
                .get(first.at_escape.checked_sub(1)?)
                .filter(|m| m.c == q)?;
            start = prev.start;
        }
    }
    Some(start..end)
}

/// The file's lines: byte offset and text without `\n`.
fn physical_lines(text: &str, from: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = from;
    while start < text.len() {
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        out.push((start, &text[start..end]));
        start = end + 1;
    }
    out
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// `parser.go`'s `trimContinuationCharacter`: the line without its continuation, and whether it
/// goes on.
fn continuation(line: &str, escape: char) -> (usize, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    match body.strip_suffix(escape) {
        Some(before) if !before.ends_with(escape) => (before.len(), true),
        _ => (line.len(), false),
    }
}

/// An instruction: its name, flags and arguments, each character placed in the text.
struct Instruction {
    line: usize,
    /// Lowercased.
    cmd: String,
    flags: Vec<Vec<MChar>>,
    args: Vec<MChar>,
    /// The whole logical line.
    chars: Vec<MChar>,
}

/// The directive parser of `parser.go` (`DirectiveParser`): `Some((key, value))` for a directive.
#[derive(Default)]
struct Directives {
    done: bool,
    seen: BTreeSet<String>,
}

impl Directives {
    fn check<'t>(
        &mut self,
        line: &'t str,
        prefix: &str,
    ) -> Result<Option<(String, &'t str)>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix(prefix) else {
            self.done = true;
            return Ok(None);
        };
        let rest = rest.trim_start();
        let Some((key, value)) = directive_match(rest) else {
            self.done = true;
            return Ok(None);
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if !self.seen.insert(key.clone()) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        Ok(Some((key, value)))
    }
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn directive_match(s: &str) -> Option<(&str, &str)> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r');
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let key_end = s
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(s.len());
    let after_key = s[key_end..].trim_start_matches(is_space);
    let after_eq = after_key.strip_prefix('=')?;
    if after_eq.is_empty() {
        return None;
    }
    let value = after_eq
        .trim_start_matches(is_space)
        .trim_end_matches(is_space);
    if value.is_empty() {
        // Blanks only: the regexp leaves the last one to `.+?`.
        let n = after_eq.len();
        let last = after_eq.char_indices().last().map_or(0, |(i, _)| i);
        return Some((&s[..key_end], &after_eq[last..n]));
    }
    Some((&s[..key_end], value))
}

/// `DetectSyntax`: the line and byte range of the syntax image.
fn detect_syntax(text: &str, skip: usize) -> Option<(usize, Range<usize>)> {
    let mut from = skip;
    let mut line_no = 0;
    if text[skip..].starts_with("#!") {
        from = text[skip..].find('\n').map_or(text.len(), |i| skip + i + 1);
        line_no = 1;
    }
    for prefix in ["#", "//"] {
        let mut directives = Directives::default();
        for (n, (offset, line)) in physical_lines(text, from).into_iter().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            match directives.check(line, prefix) {
                Ok(Some((key, value))) if key == "syntax" => {
                    let image = value.split(' ').next().unwrap_or_default();
                    if image.is_empty() {
                        return None;
                    }
                    let start = offset + (value.as_ptr() as usize - line.as_ptr() as usize);
                    return Some((line_no + n + 1, start..start + image.len()));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    None
}

/// `Parse` of `parser.go`: the escape character and the instructions, heredoc bodies skipped.
fn scan(lines: &[(usize, &str)]) -> Result<(char, Vec<Instruction>), DockerfileError> {
    let mut escape = '\\';
    let mut directives = Directives::default();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (offset, raw) = lines[i];
        i += 1;
        let start_line = i;
        let content = trim_newline(raw);
        let lead = content.len() - content.trim_start().len();
        let body = &content[lead..];
        if let Some((key, value)) = directives
            .check(body, "#")
            .map_err(|e| err(start_line, e))?
            && key == "escape"
        {
            escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(err(
                        start_line,
                        format!("invalid escape token '{value}' does not match ` or \\"),
                    ));
                }
            };
        }
        if is_comment(body) || body.is_empty() {
            continue;
        }
        let (end, mut more) = continuation(body, escape);
        let mut chars = Vec::new();
        push_chars(&mut chars, &body[..end], offset + lead);
        while more && i < lines.len() {
            let (offset, raw) = lines[i];
            i += 1;
            let content = trim_newline(raw);
            if is_comment(content) || content.trim_start().is_empty() {
                continue;
            }
            let (end, goes_on) = continuation(content, escape);
            more = goes_on;
            push_chars(&mut chars, &content[..end], offset);
        }
        for (at, m) in chars.iter_mut().enumerate() {
            m.at = at;
            m.at_escape = at;
        }
        let ins = instruction(chars, start_line, escape);
        let Some(ins) = ins else { continue };

        // Heredoc bodies.
        let (cmd, args) = if ins.cmd == "onbuild" {
            let (sub, _, sub_args) = split_command(&ins.args, escape);
            (sub.to_lowercase(), sub_args)
        } else {
            (ins.cmd.clone(), ins.args.clone())
        };
        if matches!(cmd.as_str(), "run" | "copy" | "add") {
            let args_text = text_of(&args);
            let json =
                !args_text.is_empty() && json_form(&args_text).map_err(|e| err(start_line, e))?;
            let line_text = text_of(&ins.chars);
            if !json && line_text.contains("<<") {
                for (name, chomp) in heredocs(&line_text).map_err(|e| err(start_line, e))? {
                    loop {
                        let Some(&(_, raw)) = lines.get(i) else {
                            return Err(err(start_line, "unterminated heredoc"));
                        };
                        i += 1;
                        let mut candidate = trim_newline(raw);
                        if chomp {
                            candidate = candidate.trim_start_matches('\t');
                        }
                        if candidate == name {
                            break;
                        }
                    }
                }
            }
        }
        out.push(ins);
    }
    Ok((escape, out))
}

fn push_chars(chars: &mut Vec<MChar>, piece: &str, offset: usize) {
    chars.extend(piece.char_indices().map(|(i, c)| MChar {
        c,
        start: offset + i,
        end: offset + i + c.len_utf8(),
        at: 0,
        at_escape: 0,
        quote: None,
    }));
}

fn instruction(chars: Vec<MChar>, line: usize, escape: char) -> Option<Instruction> {
    let (cmd, flags, args) = split_command(&chars, escape);
    if cmd.is_empty() {
        return None;
    }
    Some(Instruction {
        line,
        cmd: cmd.to_lowercase(),
        flags,
        args,
        chars,
    })
}

/// `splitCommand`: the instruction's name, its flags, and the rest, trimmed.
fn split_command(chars: &[MChar], escape: char) -> (String, Vec<Vec<MChar>>, Vec<MChar>) {
    let line = trim_chars(chars);
    let is_sep = |c: char| matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r');
    let cmd_end = line.iter().position(|m| is_sep(m.c)).unwrap_or(line.len());
    let rest_start = line[cmd_end..]
        .iter()
        .position(|m| !is_sep(m.c))
        .map_or(line.len(), |i| cmd_end + i);
    let (flags, args) = extract_flags(&line[rest_start..], escape);
    (text_of(&line[..cmd_end]), flags, trim_chars(args).to_vec())
}

/// `extractBuilderFlags`: the `--` words before the arguments, quotes removed and escapes
/// resolved, and the rest of the line.
fn extract_flags(line: &[MChar], escape: char) -> (Vec<Vec<MChar>>, &[MChar]) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut word: Vec<MChar> = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let at_end = pos >= line.len();
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            let m = line[pos];
            if m.c.is_whitespace() {
                pos += 1;
                continue;
            }
            if m.c != '-' || line.get(pos + 1).is_none_or(|n| n.c != '-') {
                return (words, &line[pos..]);
            }
            phase = Phase::Word;
        }
        if at_end {
            if text_of(&word) != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        let m = line[pos];
        if phase == Phase::Word {
            if m.c.is_whitespace() {
                phase = Phase::Spaces;
                if text_of(&word) == "--" {
                    return (words, &line[pos..]);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if m.c == '\'' || m.c == '"' {
                quote = m.c;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
        } else if m.c == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut out = m;
        if m.c == escape {
            if pos + 1 == line.len() {
                if phase == Phase::Quote {
                    phase = Phase::Word;
                }
                pos += 1;
                continue;
            }
            pos += 1;
            out = line[pos];
            out.start = m.start;
            out.at_escape = m.at;
        }
        out.quote = (phase == Phase::Quote).then_some(quote);
        word.push(out);
        pos += 1;
    }
    (words, &line[line.len()..])
}

/// `parseWords` of `line_parsers.go`: words split on blanks, quotes and escapes kept.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let at_end = pos >= chars.len();
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if chars[pos].is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        let mut ch = chars[pos];
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            word.push(ch);
            pos += 1;
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// `parseJSON`: whether the arguments are a JSON array of strings (exec form). A JSON array of
/// anything else is an error; any other text is the shell form.
fn json_form(args: &str) -> Result<bool, String> {
    let text = args.trim_start();
    if !text.starts_with('[') {
        return Ok(false);
    }
    let mut json = Json {
        b: text.as_bytes(),
        i: 0,
    };
    let Some(all_strings) = json.top_array() else {
        return Ok(false);
    };
    if all_strings {
        Ok(true)
    } else {
        Err("when using JSON array syntax, arrays must be comprised of strings only".to_owned())
    }
}

/// Just enough of a JSON reader to tell a valid document.
struct Json<'a> {
    b: &'a [u8],
    i: usize,
}

impl Json<'_> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let ok = self.b.get(self.i) == Some(&b);
        if ok {
            self.i += 1;
        }
        ok
    }

    /// `Some(all elements are strings)` for a whole valid document that is an array.
    fn top_array(&mut self) -> Option<bool> {
        self.ws();
        if !self.eat(b'[') {
            return None;
        }
        let mut all_strings = true;
        self.ws();
        if !self.eat(b']') {
            loop {
                self.ws();
                all_strings &= self.value()?;
                self.ws();
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.ws();
        (self.i == self.b.len()).then_some(all_strings)
    }

    /// Reads one value; `Some(is a string)`.
    fn value(&mut self) -> Option<bool> {
        match *self.b.get(self.i)? {
            b'"' => self.string().map(|()| true),
            b'[' | b'{' => {
                let (open, close) = if self.b[self.i] == b'[' {
                    (b'[', b']')
                } else {
                    (b'{', b'}')
                };
                self.eat(open);
                self.ws();
                if self.eat(close) {
                    return Some(false);
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        if !self.eat(b':') {
                            return None;
                        }
                        self.ws();
                    }
                    self.value()?;
                    self.ws();
                    if self.eat(close) {
                        return Some(false);
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => self.number(),
        }
    }

    fn word(&mut self, w: &[u8]) -> Option<bool> {
        let ok = self.b[self.i..].starts_with(w);
        self.i += w.len();
        ok.then_some(false)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<bool> {
        self.eat(b'-');
        if self.eat(b'0') {
        } else if self.digits() == 0 {
            return None;
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(false)
    }

    fn string(&mut self) -> Option<()> {
        if !self.eat(b'"') {
            return None;
        }
        loop {
            let b = *self.b.get(self.i)?;
            self.i += 1;
            match b {
                b'"' => return Some(()),
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 4;
                        }
                        _ => return None,
                    }
                }
                0..0x20 => return None,
                _ => {}
            }
        }
    }
}

/// `heredocsFromLine`: each heredoc's terminator and whether its lines lose leading tabs.
fn heredocs(line: &str) -> Result<Vec<(String, bool)>, String> {
    let lexer = LexOptions {
        escape: '\\',
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
    };
    let empty = Vars::new();
    let Ok(words) = WordLexer::new(line, &empty, lexer).words() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for word in &words {
        out.extend(heredoc_word(word, &empty)?);
    }
    Ok(out)
}

/// `ParseHeredoc`: `^(\d*)<<(-?)\s*([^<]*)$`, the word a single shell word.
fn heredoc_word(word: &str, empty: &Vars) -> Result<Option<(String, bool)>, String> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\x0c', '\r']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let lexer = LexOptions {
        escape: '\\',
        raw_quotes: false,
        raw_escapes: false,
        skip_unset: true,
    };
    let words = WordLexer::new(rest, empty, lexer)
        .words()
        .map_err(|e| format!("failed to process {rest:?}: {e}"))?;
    Ok(match words.as_slice() {
        [name] => Some((name.clone(), chomp)),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading instructions into stages

/// A stage as read, before its variables are known.
struct Draft {
    line: usize,
    name: Option<String>,
    /// The `FROM` word as written.
    base: Vec<MChar>,
    /// `--platform` as read.
    platform: Option<String>,
    line_chars: Vec<MChar>,
    sources: Vec<SourceDraft>,
    steps: Vec<Step>,
}

struct SourceDraft {
    kind: UseKind,
    line: usize,
    /// `None` for a mount without `from=`.
    value: Option<String>,
    chars: Vec<MChar>,
    line_chars: Vec<MChar>,
}

/// What a stage's build evaluates.
enum Step {
    Arg {
        line: usize,
        pairs: Vec<(String, Option<String>)>,
    },
    Env {
        line: usize,
        pairs: Vec<(String, String)>,
    },
    Run {
        line: usize,
        mounts: Vec<Vec<Field>>,
    },
}

/// One CSV field of a `--mount`.
struct Field {
    text: String,
    /// Lowercased.
    key: String,
    value: Option<String>,
}

type MetaArgs = Vec<(usize, Vec<(String, Option<String>)>)>;

struct Reader {
    escape: char,
    meta: MetaArgs,
    drafts: Vec<Draft>,
}

const KNOWN_INSTRUCTIONS: &[&str] = &[
    "add",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

impl Reader {
    fn read(&mut self, ins: &Instruction) -> Result<(), DockerfileError> {
        let line = ins.line;
        let fail = |m: String| err(line, m);
        match ins.cmd.as_str() {
            "from" => {
                let platform = single_flag(ins, "platform").map_err(fail)?;
                let words = split_blanks(&ins.args);
                let name = match words.as_slice() {
                    [_] => None,
                    [_, as_, name] if text_of(as_).eq_ignore_ascii_case("as") => {
                        let written = text_of(name);
                        let lower = written.to_lowercase();
                        if !valid_stage_name(&lower) {
                            return Err(fail(format!(
                                "invalid name for build stage: {written:?}, \
                                 name can't start with a number or contain symbols"
                            )));
                        }
                        Some(lower)
                    }
                    _ => return Err(fail("FROM requires either one or three arguments".into())),
                };
                self.drafts.push(Draft {
                    line,
                    name,
                    base: words[0].clone(),
                    platform: platform.map(|p| text_of(&p)),
                    line_chars: ins.chars.clone(),
                    sources: Vec::new(),
                    steps: Vec::new(),
                });
            }
            "arg" => {
                let words = parse_words(&text_of(&ins.args), self.escape);
                if words.is_empty() {
                    return Err(fail("ARG requires at least one argument".into()));
                }
                let mut pairs = Vec::new();
                for word in words {
                    match word.split_once('=') {
                        Some(("", _)) => return Err(fail("ARG names can not be blank".into())),
                        Some((k, v)) => pairs.push((k.to_owned(), Some(v.to_owned()))),
                        None => pairs.push((word, None)),
                    }
                }
                match self.drafts.last_mut() {
                    None => self.meta.push((line, pairs)),
                    Some(d) => d.steps.push(Step::Arg { line, pairs }),
                }
            }
            "env" => {
                let pairs = env_pairs(&text_of(&ins.args), self.escape).map_err(fail)?;
                self.stage(line)?.steps.push(Step::Env { line, pairs });
            }
            "copy" => {
                let from = single_flag(ins, "from").map_err(fail)?;
                let stage = self.stage(line)?;
                if let Some(from) = from.filter(|f| !f.is_empty()) {
                    stage.sources.push(SourceDraft {
                        kind: UseKind::CopyFrom,
                        line,
                        value: Some(text_of(&from)),
                        chars: from,
                        line_chars: ins.chars.clone(),
                    });
                }
            }
            "run" => {
                let mut mounts = Vec::new();
                let mut sources = Vec::new();
                for value in flag_values(ins, "mount").map_err(fail)? {
                    let fields = csv_fields(&value)
                        .map_err(|e| fail(format!("failed to parse csv mounts: {e}")))?;
                    let mut from = None;
                    let mut read = Vec::new();
                    for field in fields {
                        let text = text_of(&field);
                        let eq = field.iter().position(|m| m.c == '=');
                        let key = text_of(&field[..eq.unwrap_or(field.len())]).to_lowercase();
                        let value = eq.map(|i| field[i + 1..].to_vec());
                        if key == "from"
                            && let Some(v) = &value
                        {
                            let v_text = text_of(v);
                            if v_text.find('$').is_some_and(|i| i + 1 != v_text.len()) {
                                return Err(fail(format!(
                                    "'{key}' doesn't support variable expansion, \
                                     define alias stage instead"
                                )));
                            }
                            from = Some(v.clone());
                        }
                        read.push(Field {
                            text,
                            key,
                            value: value.map(|v| text_of(&v)),
                        });
                    }
                    let from = from.filter(|f| !f.is_empty());
                    sources.push(SourceDraft {
                        kind: UseKind::MountFrom,
                        line,
                        value: from.as_deref().map(text_of),
                        chars: from.unwrap_or_default(),
                        line_chars: ins.chars.clone(),
                    });
                    mounts.push(read);
                }
                let stage = self.stage(line)?;
                stage.sources.extend(sources);
                stage.steps.push(Step::Run { line, mounts });
            }
            cmd if KNOWN_INSTRUCTIONS.contains(&cmd) => {
                self.stage(line)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn stage(&mut self, line: usize) -> Result<&mut Draft, DockerfileError> {
        self.drafts
            .last_mut()
            .ok_or_else(|| err(line, "no build stage in current context"))
    }
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Words split on `[\t\v\f\r ]+` (`parseStringsWhitespaceDelimited`), quotes kept.
fn split_blanks(chars: &[MChar]) -> Vec<Vec<MChar>> {
    chars
        .split(|m| matches!(m.c, ' ' | '\t' | '\x0b' | '\x0c' | '\r'))
        .filter(|w| !w.is_empty())
        .map(<[MChar]>::to_vec)
        .collect()
}

/// The values of a repeatable `--name=value` flag; a flag without `=` is an error.
fn flag_values(ins: &Instruction, name: &str) -> Result<Vec<Vec<MChar>>, String> {
    let mut out = Vec::new();
    for word in &ins.flags {
        let eq = word.iter().position(|m| m.c == '=');
        let flag = text_of(&word[..eq.unwrap_or(word.len())]);
        if flag.strip_prefix("--") != Some(name) {
            continue;
        }
        match eq {
            Some(i) => out.push(word[i + 1..].to_vec()),
            None => return Err(format!("missing a value on flag: --{name}")),
        }
    }
    Ok(out)
}

/// The value of a flag given at most once.
fn single_flag(ins: &Instruction, name: &str) -> Result<Option<Vec<MChar>>, String> {
    let mut values = flag_values(ins, name)?;
    if values.len() > 1 {
        return Err(format!("duplicate flag specified: --{name}"));
    }
    Ok(values.pop())
}

/// `parseNameVal` and `parseKvps` for `ENV`.
fn env_pairs(rest: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Err("ENV requires at least one argument".to_owned());
    };
    let mut pairs = Vec::new();
    if !first.contains('=') {
        // The old form: `ENV name value...`.
        let sep = |c: char| matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r');
        let Some((key, value)) = rest.split_once(sep) else {
            return Err("ENV must have two arguments".to_owned());
        };
        pairs.push((key.to_owned(), value.trim_start_matches(sep).to_owned()));
    } else {
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!(
                    "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
                ));
            };
            pairs.push((key.to_owned(), value.to_owned()));
        }
    }
    if pairs.iter().any(|(k, _)| k.is_empty()) {
        return Err("ENV names can not be blank".to_owned());
    }
    Ok(pairs)
}

/// tonistiigi/go-csvvalue's `Fields` with its defaults, over placed characters.
fn csv_fields(line: &[MChar]) -> Result<Vec<Vec<MChar>>, String> {
    if line.is_empty() {
        return Err("EOF".to_owned());
    }
    let mut fields = Vec::new();
    let mut i = 0;
    'field: loop {
        if line.get(i).is_none_or(|m| m.c != '"') {
            let end = line[i..].iter().position(|m| m.c == ',').map(|p| i + p);
            let field = &line[i..end.unwrap_or(line.len())];
            if let Some(j) = field.iter().position(|m| m.c == '"') {
                return Err(format!(
                    "parse error on line 1, column {}: bare \" in non-quoted-field",
                    i + j + 1
                ));
            }
            fields.push(field.to_vec());
            match end {
                Some(e) => {
                    i = e + 1;
                    continue;
                }
                None => break,
            }
        }
        i += 1;
        let mut field = Vec::new();
        loop {
            let Some(p) = line[i..].iter().position(|m| m.c == '"') else {
                return Err(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    i + 1
                ));
            };
            field.extend_from_slice(&line[i..i + p]);
            i += p + 1;
            match line.get(i).map(|m| m.c) {
                Some('"') => {
                    field.push(line[i]);
                    i += 1;
                }
                Some(',') => {
                    i += 1;
                    fields.push(field);
                    continue 'field;
                }
                None => {
                    fields.push(field);
                    break 'field;
                }
                Some(_) => {
                    return Err(format!(
                        "parse error on line 1, column {i}: \
                         extraneous or missing \" in quoted-field"
                    ));
                }
            }
        }
    }
    Ok(fields)
}

// ---------------------------------------------------------------------------------------------
// A stage's build: its scope and its mounts

type Vars = BTreeMap<String, String>;

/// Keys `dispatchArg` keeps out of the environment.
const NON_ENV_ARGS: &[&str] = &["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

fn dispatch(
    steps: &[Step],
    stage: usize,
    env: &mut Vars,
    global: &Vars,
    build_args: &BTreeMap<String, String>,
    escape: char,
) -> Result<Vec<CacheMount>, DockerfileError> {
    let mut cache_mounts = Vec::new();
    for step in steps {
        match step {
            Step::Arg { line, pairs } => {
                for (key, default) in pairs {
                    let value = if let Some(v) = build_args.get(key) {
                        Some(v.clone())
                    } else if let Some(default) = default {
                        Some(expand(default, env, escape).map_err(|e| err(*line, e))?)
                    } else {
                        global.get(key).cloned()
                    };
                    if let Some(value) = value
                        && !NON_ENV_ARGS.contains(&key.as_str())
                    {
                        env.insert(key.clone(), value);
                    }
                }
            }
            Step::Env { line, pairs } => {
                let mut expanded = Vec::with_capacity(pairs.len());
                for (key, value) in pairs {
                    let key = expand(key, env, escape).map_err(|e| err(*line, e))?;
                    let value = expand(value, env, escape).map_err(|e| err(*line, e))?;
                    expanded.push((key, value));
                }
                env.extend(expanded);
            }
            Step::Run { line, mounts } => {
                let mut read = Vec::with_capacity(mounts.len());
                for fields in mounts {
                    read.push(mount(fields, env, escape).map_err(|e| err(*line, e))?);
                }
                let with_secret = read.iter().any(|m| m.kind == MountType::Secret);
                for m in read.into_iter().filter(|m| m.kind == MountType::Cache) {
                    let id = if m.id.is_empty() {
                        crate::path::clean(&m.target)
                    } else {
                        m.id
                    };
                    cache_mounts.push(CacheMount {
                        stage,
                        line: *line,
                        id,
                        target: m.target,
                        sharing: m.sharing.unwrap_or_default(),
                        uid: m.uid,
                        gid: m.gid,
                        mode: m.mode,
                        from: Some(m.from).filter(|f| !f.is_empty()),
                        source: Some(m.source).filter(|s| !s.is_empty()),
                        with_secret,
                    });
                }
            }
        }
    }
    Ok(cache_mounts)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MountType {
    Bind,
    Cache,
    Secret,
    Ssh,
    Tmpfs,
}

impl MountType {
    fn name(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

struct Mount {
    kind: MountType,
    from: String,
    source: String,
    target: String,
    id: String,
    sharing: Option<Sharing>,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: Option<u32>,
}

/// `parseMount` with an expander: one `--mount`, its values expanded in `env`.
fn mount(fields: &[Field], env: &Vars, escape: char) -> Result<Mount, String> {
    let mut m = Mount {
        kind: MountType::Bind,
        from: String::new(),
        source: String::new(),
        target: String::new(),
        id: String::new(),
        sharing: None,
        uid: None,
        gid: None,
        mode: None,
    };
    let only_for = |m: &Mount, key: &str, kinds: &[MountType]| {
        if kinds.contains(&m.kind) {
            Ok(())
        } else {
            Err(format!(
                "unexpected key '{key}' for mount type '{}'",
                m.kind.name()
            ))
        }
    };
    for field in fields {
        let key = field.key.as_str();
        let Some(value) = &field.value else {
            match key {
                "readonly" | "ro" | "readwrite" | "rw" => {}
                "required" => only_for(&m, key, &[MountType::Secret, MountType::Ssh])?,
                _ => {
                    return Err(format!(
                        "invalid field '{}' must be a key=value pair",
                        field.text
                    ));
                }
            }
            continue;
        };
        let value = expand(value, env, escape)?;
        let invalid = || format!("invalid value for {key}: {value}");
        match key {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    "tmpfs" => MountType::Tmpfs,
                    _ => return Err(format!("unsupported mount type {value:?}")),
                }
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" | "readwrite" | "rw" => {
                go_parse_bool(&value).ok_or_else(invalid)?;
            }
            "required" => {
                only_for(&m, key, &[MountType::Secret, MountType::Ssh])?;
                go_parse_bool(&value).ok_or_else(invalid)?;
            }
            "size" => {
                only_for(&m, key, &[MountType::Tmpfs])?;
                if !valid_size(&value) {
                    return Err(invalid());
                }
            }
            "id" => m.id = value,
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(format!("unsupported sharing value {value:?}")),
                })
            }
            "mode" => {
                m.mode = Some(
                    go_parse_u32(&value, 8)
                        .ok_or_else(|| format!("invalid value {value} for mode"))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    go_parse_u32(&value, 10)
                        .ok_or_else(|| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    go_parse_u32(&value, 10)
                        .ok_or_else(|| format!("invalid value {value} for gid"))?,
                )
            }
            "env" => {}
            _ => return Err(format!("unexpected key '{key}' in '{}'", field.text)),
        }
    }
    if !matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    ) {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(format!(
                    "{name} not allowed for {:?} type mounts",
                    m.kind.name()
                ));
            }
        }
    }
    if m.kind == MountType::Secret {
        if !m.from.is_empty() {
            return Err("secret mount should not have a from".to_owned());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".to_owned());
        }
        if m.source.is_empty() && m.target.is_empty() && m.id.is_empty() {
            return Err("invalid secret mount. one of source, target required".to_owned());
        }
        if !m.source.is_empty() && !m.id.is_empty() {
            return Err("both source and id can't be set".to_owned());
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            m.kind.name()
        ));
    }
    Ok(m)
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, radix, 32)`: digits only, no sign or prefix.
fn go_parse_u32(s: &str, radix: u32) -> Option<u32> {
    if s.is_empty() || !s.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(s, radix).ok()
}

/// docker/go-units `RAMInBytes`: a number, an optional space, an optional unit
/// (`b`, or `k`, `m`, `g`, `t`, `p` with an optional `b` or `ib`).
fn valid_size(s: &str) -> bool {
    let Some(sep) = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return false;
    };
    let (num, suffix) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    if num.parse::<f64>().map_or(true, |n| n < 0.0) {
        return false;
    }
    let suffix = suffix.to_ascii_lowercase();
    match suffix.as_bytes() {
        [] | [b'b'] => true,
        [u, rest @ ..] if b"kmgtp".contains(u) => matches!(rest, [] | [b'b'] | [b'i', b'b']),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Platforms

#[derive(Debug, Clone, PartialEq, Eq)]
struct Platform {
    os: String,
    os_version: String,
    /// `(version+features)` as written, for `FormatAll`.
    os_options: String,
    arch: String,
    variant: String,
}

impl Platform {
    /// `Format`: `os/arch[/variant]`.
    fn format(&self) -> String {
        let mut s = format!("{}/{}", self.os, self.arch);
        if !self.variant.is_empty() {
            s.push('/');
            s.push_str(&self.variant);
        }
        s
    }

    /// `FormatAll`: `os[(version)]/arch[/variant]`.
    fn format_all(&self) -> String {
        let mut s = self.os.clone();
        if !self.os_options.is_empty() {
            s.push('(');
            s.push_str(&self.os_options);
            s.push(')');
        }
        s.push('/');
        s.push_str(&self.arch);
        if !self.variant.is_empty() {
            s.push('/');
            s.push_str(&self.variant);
        }
        s
    }
}

/// containerd's `Parse` then `Normalize`; a lone OS or architecture is completed from `host`.
fn parse_platform(spec: &str, host: Option<&Platform>) -> Result<Platform, String> {
    let specifier = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    if spec.contains('*') {
        return Err(format!("{spec:?}: wildcards not yet supported"));
    }
    let parts: Vec<&str> = spec.splitn(4, '/').collect();
    let (os, options) = match parts[0].split_once('(') {
        Some((os, rest)) => {
            let options = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("{:?} is an invalid OS component of {spec:?}", parts[0]))?;
            (os, options)
        }
        None => (parts[0], ""),
    };
    let os_ok = !os.is_empty()
        && os
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    let options_ok = options
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '%' | '-' | '+'));
    if !os_ok || !options_ok {
        return Err(format!(
            "{:?} is an invalid OS component of {spec:?}",
            parts[0]
        ));
    }
    if let Some(bad) = parts[1..].iter().find(|p| !specifier(p)) {
        return Err(format!("{bad:?} is an invalid component of {spec:?}"));
    }
    let os_version = options.split('+').next().unwrap_or_default().to_owned();
    let mut p = Platform {
        os: normalize_os(os),
        os_version,
        os_options: options.to_owned(),
        arch: String::new(),
        variant: String::new(),
    };
    match parts.len() {
        1 => {
            let host = host.ok_or_else(|| format!("{spec:?}: give os/arch"))?;
            if KNOWN_OS.contains(&p.os.as_str()) {
                p.arch = host.arch.clone();
                p.variant = host.variant.clone();
            } else {
                (p.arch, p.variant) = normalize_arch(parts[0], "");
                if !KNOWN_ARCH.contains(&p.arch.as_str()) {
                    return Err(format!(
                        "{spec:?}: unknown operating system or architecture"
                    ));
                }
                p.os = host.os.clone();
                p.os_version = String::new();
                p.os_options = String::new();
            }
        }
        2 => (p.arch, p.variant) = normalize_arch(parts[1], ""),
        3 => (p.arch, p.variant) = normalize_arch(parts[1], parts[2]),
        _ => return Err(format!("{spec:?}: cannot parse platform specifier")),
    }
    Ok(p)
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "windows",
    "zos",
];

const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

fn normalize_os(os: &str) -> String {
    match os.to_lowercase().as_str() {
        "macos" => "darwin".to_owned(),
        other => other.to_owned(),
    }
}

/// containerd's `normalizeArch`.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_lowercase();
    let variant = variant.to_lowercase();
    let (a, v): (&str, &str) = match arch.as_str() {
        "i386" => ("386", ""),
        "x86_64" | "x86-64" | "amd64" => ("amd64", if variant == "v1" { "" } else { &variant }),
        "aarch64" | "arm64" => (
            "arm64",
            match variant.as_str() {
                "8" | "v8" | "v8.0" => "",
                "9" | "9.0" | "v9.0" => "v9",
                v => v,
            },
        ),
        "armhf" => ("arm", "v7"),
        "armel" => ("arm", "v6"),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7",
                "5" => "v5",
                "6" => "v6",
                "8" => "v8",
                v => v,
            },
        ),
        a => (a, &variant),
    };
    (a.to_owned(), v.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Words: BuildKit's shell lexer

/// Expands `word` as BuildKit's `ProcessWord`.
fn expand(word: &str, vars: &Vars, escape: char) -> Result<String, String> {
    let options = LexOptions {
        escape,
        raw_quotes: false,
        raw_escapes: false,
        skip_unset: false,
    };
    WordLexer::new(word, vars, options)
        .process()
        .map(|(result, _)| result)
        .map_err(|e| format!("failed to process {word:?}: {e}"))
}

#[derive(Debug, Clone, Copy)]
struct LexOptions {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset: bool,
}

struct WordLexer<'a> {
    chars: Vec<char>,
    pos: usize,
    vars: &'a Vars,
    options: LexOptions,
    raw_escapes: bool,
}

/// The words of a processed line (`wordsStruct`).
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_str(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

type Lexed = Result<(String, Vec<String>), String>;

impl<'a> WordLexer<'a> {
    fn new(word: &str, vars: &'a Vars, options: LexOptions) -> Self {
        WordLexer {
            chars: word.chars().collect(),
            pos: 0,
            vars,
            options,
            raw_escapes: options.raw_escapes,
        }
    }

    fn process(&mut self) -> Lexed {
        self.stop_on(None, self.options.raw_escapes)
    }

    fn words(mut self) -> Result<Vec<String>, String> {
        self.process().map(|(_, words)| words)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.vars.get(name).map(String::as_str)
    }

    fn stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Lexed {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let out = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Lexed {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let t = self.dollar()?;
                    result.push_str(&t);
                    words.add_str(&t);
                }
                '<' => {
                    let t = self.possible_heredoc();
                    result.push_str(&t);
                    words.add_raw_str(&t);
                }
                '\'' | '"' => {
                    let t = self.quoted(ch)?;
                    result.push_str(&t);
                    words.add_raw_str(&t);
                }
                _ => {
                    self.pos += 1;
                    let mut c = ch;
                    if c == self.options.escape {
                        if self.raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        match self.next() {
                            None => break,
                            Some(n) => {
                                c = n;
                                words.add_raw_char(c);
                            }
                        }
                    } else {
                        words.add_char(c);
                    }
                    result.push(c);
                }
            }
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of statement while looking for matching {s}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    /// A quoted word from its opening `quote` (`'` or `"`) to the closing one: taken as it
    /// stands between single quotes; between double quotes, `$` expands and the escape
    /// character escapes `"`, `$` and itself.
    fn quoted(&mut self, quote: char) -> Result<String, String> {
        let name = if quote == '"' { "double" } else { "single" };
        let mut out = String::new();
        self.pos += 1;
        if self.options.raw_quotes {
            out.push(quote);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(format!(
                        "unexpected end of statement while looking for matching {name}-quote"
                    ));
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    if self.options.raw_quotes {
                        out.push(quote);
                    }
                    return Ok(out);
                }
                Some('$') if quote == '"' => out.push_str(&self.dollar()?),
                Some(mut c) => {
                    self.pos += 1;
                    if quote == '"' && c == self.options.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.options.escape => {
                                c = n;
                                self.pos += 1;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// The word up to `stop` (taken off), its escapes kept when `raw`; `missing` when the text
    /// ends first.
    fn word_until(&mut self, stop: char, raw: bool, missing: &str) -> Result<String, String> {
        match self.stop_on(Some(stop), raw) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(missing.to_owned()),
            Err(e) => Err(e),
        }
    }

    fn possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_owned();
        }
        self.pos += 1;
        let mut s = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            s.push(c);
            self.pos += 1;
        }
        s
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(c) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(c);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!') {
                self.pos += 1;
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || ch.is_numeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.get(&name) {
                Some(v) => v.to_owned(),
                None if self.options.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_owned()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_owned()),
            Some(_) => {}
        }
        let name = self.name();
        let ch = self.next();
        if ch.is_none() {
            return Err("syntax error: missing '}'".to_owned());
        }
        let mut modifier: String = ch.map(String::from).unwrap_or_default();
        let unsupported = |m: &str| format!("unsupported modifier ({m}) in substitution");
        match ch {
            Some('}') => Ok(match self.get(&name) {
                Some(v) => v.to_owned(),
                None if self.options.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let null_is_unset = ch == Some(':');
                let mut op = ch;
                if null_is_unset {
                    op = self.next();
                    modifier.extend(op);
                }
                let raw = matches!(op, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(unsupported(&modifier));
                }
                let word = self.word_until('}', raw, "syntax error: missing '}'")?;
                let value = self.get(&name);
                if self.options.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                let absent = !set || (null_is_unset && value.is_empty());
                match op {
                    Some('-') => Ok(if absent { word } else { value.to_owned() }),
                    Some('+') => Ok(if absent { String::new() } else { word }),
                    Some('?') => {
                        let why = if !set {
                            "is not allowed to be unset"
                        } else if absent {
                            "is not allowed to be empty"
                        } else {
                            return Ok(value.to_owned());
                        };
                        let message = if word.is_empty() { why } else { &word };
                        Err(format!("{name}: {message}"))
                    }
                    Some(c @ ('#' | '%')) => {
                        let (greedy, pattern) = match word.strip_prefix(c) {
                            Some(p) => (true, p),
                            None => (false, word.as_str()),
                        };
                        let tokens = compile_pattern(pattern).map_err(|e| {
                            format!("invalid pattern ({pattern}) in substitution: {e}")
                        })?;
                        Ok(if c == '%' {
                            trim_suffix(&tokens, value, greedy)
                        } else {
                            trim_prefix(&tokens, value, greedy)
                        })
                    }
                    _ => Err(unsupported(&modifier)),
                }
            }
            Some('/') => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pattern = self.word_until('/', true, "syntax error: missing '/' in ${}")?;
                let replacement = self.word_until('}', true, "syntax error: missing '}'")?;
                let value = self.get(&name);
                if self.options.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let tokens = compile_pattern(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                Ok(replace(
                    &tokens,
                    value.unwrap_or_default(),
                    &replacement,
                    all,
                ))
            }
            _ => Err(unsupported(&modifier)),
        }
    }
}

/// A shell pattern's pieces (`convertShellPatternToRegex`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pat {
    Lit(char),
    Any,
    Star,
}

fn compile_pattern(pattern: &str) -> Result<Vec<Pat>, String> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(Pat::Star),
            '?' => out.push(Pat::Any),
            '\\' => {
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => out.push(Pat::Lit(e)),
                    Some(e) => return Err(format!("invalid escape '\\{e}'")),
                    None => return Err("invalid escape '\\'".to_owned()),
                }
            }
            c => out.push(Pat::Lit(c)),
        }
    }
    Ok(out)
}

/// Where the first match (in the order a backtracking regexp prefers) starting at `i` ends.
fn match_at(p: &[Pat], v: &[char], i: usize, greedy: bool) -> Option<usize> {
    match p.first() {
        None => Some(i),
        Some(Pat::Lit(c)) => (v.get(i) == Some(c))
            .then(|| match_at(&p[1..], v, i + 1, greedy))
            .flatten(),
        Some(Pat::Any) => v
            .get(i)
            .filter(|c| **c != '\n')
            .and_then(|_| match_at(&p[1..], v, i + 1, greedy)),
        Some(Pat::Star) => {
            // `.` does not match a newline.
            let max = v[i..]
                .iter()
                .position(|c| *c == '\n')
                .map_or(v.len(), |k| i + k);
            let try_at = |k: usize| match_at(&p[1..], v, k, greedy);
            if greedy {
                (i..=max).rev().find_map(try_at)
            } else {
                (i..=max).find_map(try_at)
            }
        }
    }
}

fn trim_prefix(p: &[Pat], value: &str, greedy: bool) -> String {
    let v: Vec<char> = value.chars().collect();
    match match_at(p, &v, 0, greedy) {
        Some(end) => v[end..].iter().collect(),
        None => value.to_owned(),
    }
}

fn trim_suffix(p: &[Pat], value: &str, greedy: bool) -> String {
    let reversed: Vec<Pat> = p.iter().rev().copied().collect();
    let value: String = value.chars().rev().collect();
    trim_prefix(&reversed, &value, greedy)
        .chars()
        .rev()
        .collect()
}

/// `${VAR/pat/s}` and `${VAR//pat/s}`: leftmost matches, as Go's `regexp` finds them.
fn replace(p: &[Pat], value: &str, replacement: &str, all: bool) -> String {
    let v: Vec<char> = value.chars().collect();
    let find =
        |from: usize| (from..=v.len()).find_map(|s| match_at(p, &v, s, true).map(|e| (s, e)));
    let mut out = String::new();
    let mut copied = 0;
    let mut pos = 0;
    let mut prev_end: Option<usize> = None;
    while pos <= v.len() {
        let Some((s, e)) = find(pos) else { break };
        let mut accept = true;
        if e == pos {
            // An empty match right after a match is skipped.
            if prev_end == Some(s) {
                accept = false;
            }
            pos += 1;
        } else {
            pos = e;
        }
        prev_end = Some(e);
        if accept {
            out.extend(&v[copied..s]);
            out.push_str(replacement);
            copied = e;
            if !all {
                break;
            }
        }
    }
    out.extend(&v[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_args() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn args(build_args: &BTreeMap<String, String>) -> Args<'_> {
        Args {
            build_args,
            platform: "linux/amd64",
            build_platform: "linux/amd64",
            target: None,
        }
    }

    fn parse_ok(text: &str) -> Dockerfile {
        let b = no_args();
        parse(text, &args(&b)).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn parse_with(text: &str, pairs: &[(&str, &str)]) -> Result<Dockerfile, DockerfileError> {
        let b: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(text, &args(&b))
    }

    fn parse_err(text: &str) -> DockerfileError {
        let b = no_args();
        match parse(text, &args(&b)) {
            Ok(d) => panic!("parsed, expected an error: {d:?}\n{text}"),
            Err(e) => e,
        }
    }

    fn values(d: &Dockerfile) -> Vec<(UseKind, String)> {
        d.images().map(|i| (i.kind, i.value.clone())).collect()
    }

    fn image(base: &Base) -> &ImageUse {
        match base {
            Base::Image(i) => i,
            other => panic!("not an image: {other:?}"),
        }
    }

    #[test]
    fn syntax_directive_forms() {
        let cases: &[(&str, Option<(&str, usize)>)] = &[
            (
                "# syntax=docker/dockerfile:1\nFROM a\n",
                Some(("docker/dockerfile:1", 1)),
            ),
            (
                "#syntax = docker/dockerfile:1.7 \nFROM a\n",
                Some(("docker/dockerfile:1.7", 1)),
            ),
            ("# SYNTAX=x/y:1\nFROM a\n", Some(("x/y:1", 1))),
            ("# escape=`\n# syntax=x/y:2\nFROM a\n", Some(("x/y:2", 2))),
            ("# syntax=x/y:1 --opt=1\nFROM a\n", Some(("x/y:1", 1))),
            (
                "#!/usr/bin/env buildctl\n# syntax=x/y:3\nFROM a\n",
                Some(("x/y:3", 2)),
            ),
            ("// syntax=x/y:4\nFROM a\n", Some(("x/y:4", 1))),
            ("\u{feff}# syntax=x/y:5\nFROM a\n", Some(("x/y:5", 1))),
            // A directive after a comment, a blank line or an instruction is a comment.
            ("# hello\n# syntax=x/y:1\nFROM a\n", None),
            ("\n# syntax=x/y:1\nFROM a\n", None),
            ("FROM a\n# syntax=x/y:1\n", None),
            ("# nope=1\n# syntax=x/y:1\nFROM a\n", None),
            // `DetectSyntax` wants the `#` in column 0.
            ("  # syntax=x/y:1\nFROM a\n", None),
        ];
        for (text, want) in cases {
            let d = parse_ok(text);
            let got = d.syntax.as_ref().map(|s| (s.value.as_str(), s.line));
            assert_eq!(got, *want, "{text:?}");
            if let Some(s) = &d.syntax {
                assert_eq!(&text[s.span.clone()], s.value, "{text:?}");
                assert_eq!(s.kind, UseKind::Syntax);
                assert_eq!(s.stage, None);
                assert_eq!(s.platform, "linux/amd64");
                assert_eq!(d.images().next(), Some(s), "the syntax image comes first");
            }
        }
    }

    #[test]
    fn buildkit_syntax_arg_replaces_the_directive() {
        let d = parse_with(
            "# syntax=x/y:1\nFROM a\n",
            &[("BUILDKIT_SYNTAX", "other/frontend:2 --x")],
        )
        .unwrap();
        assert_eq!(d.syntax, None);
        assert_eq!(d.syntax_arg.as_deref(), Some("other/frontend:2"));
        assert_eq!(values(&d), [(UseKind::From, "a".to_string())]);
    }

    #[test]
    fn escape_directive() {
        // With a backtick, `\` is an ordinary character and `` ` `` continues lines.
        let d = parse_ok("# escape=`\nFROM c:\\base `\n  AS build\nCOPY --from=c:\\x\\y . .\n");
        assert_eq!(d.escape, '`');
        assert_eq!(d.stages[0].name.as_deref(), Some("build"));
        assert_eq!(image(&d.stages[0].base).value, "c:\\base");
        assert_eq!(image(&d.stages[0].sources[0].base).value, "c:\\x\\y");

        // After a comment, `# escape=` is a comment: `\` still continues the line.
        let d = parse_ok("# a comment\n# escape=`\nFROM a \\\n  AS b\n");
        assert_eq!(d.escape, '\\');
        assert_eq!(d.stages[0].name.as_deref(), Some("b"));

        // Leading blanks are allowed before the `#` here.
        assert_eq!(parse_ok("  # escape = `\nFROM a\n").escape, '`');

        let e = parse_err("# escape=x\nFROM a\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("invalid escape token 'x'"), "{e}");
        let e = parse_err("# syntax=a\n# escape=`\n# syntax=b\nFROM a\n");
        assert_eq!(e.line, 3);
        assert!(
            e.message.contains("only one syntax parser directive"),
            "{e}"
        );
    }

    #[test]
    fn continuations_skip_comments_and_blank_lines() {
        let text =
            "FROM alpine:3 \\\n# a comment\n\n   \\\n  AS base\nFROM base\nRUN echo \\\\\nFROM x\n";
        let d = parse_ok(text);
        assert_eq!(d.stages.len(), 3, "{:?}", d.stages);
        assert_eq!(d.stages[0].name.as_deref(), Some("base"));
        assert_eq!(d.stages[0].line, 1);
        assert_eq!(d.stages[1].base, Base::Stage(0));
        assert_eq!(d.stages[1].line, 6);
        // `\\` at the end is an escaped escape, not a continuation: `FROM x` is a stage.
        assert_eq!(d.stages[2].line, 8);
        assert_eq!(image(&d.stages[2].base).value, "x");
        // Windows line ends.
        let d = parse_ok("FROM a \\\r\n  AS b\r\nFROM b\r\n");
        assert_eq!(d.stages[1].base, Base::Stage(0));
    }

    #[test]
    fn heredoc_bodies_are_skipped() {
        let cases: &[(&str, usize)] = &[
            ("FROM a\nRUN <<EOF\nFROM x\nEOF\nFROM b\n", 2),
            ("FROM a\nRUN <<-EOT\n\tFROM x\n\tEOT\nFROM b\n", 2),
            ("FROM a\nCOPY <<\"EOF\" /dst\nFROM x\nEOF\nFROM b\n", 2),
            ("FROM a\nCOPY <<'EOF' /dst\nFROM x\nEOF\nFROM b\n", 2),
            (
                "FROM a\nRUN <<A cat - <<B\nFROM x\nA\nFROM y\nB\nFROM b\n",
                2,
            ),
            ("FROM a\nRUN 3<<EOF cat /dev/fd/3\nFROM x\nEOF\nFROM b\n", 2),
            (
                "FROM a\nRUN --mount=type=cache,target=/c <<EOF\nFROM x\nEOF\nFROM b\n",
                2,
            ),
            ("FROM a\nONBUILD RUN <<EOF\nFROM x\nEOF\nFROM b\n", 2),
            // Not heredocs: quoted, JSON form, another instruction, `<<` inside a word.
            ("FROM a\nRUN echo \"<<EOF\"\nFROM x\n", 2),
            ("FROM a\nRUN [\"sh\", \"-c\", \"cat <<EOF\"]\nFROM x\n", 2),
            ("FROM a\nLABEL x=<<EOF\nFROM x\n", 2),
            ("FROM a\nRUN a<<EOF\nFROM x\n", 2),
        ];
        for (text, stages) in cases {
            let d = parse_ok(text);
            assert_eq!(d.stages.len(), *stages, "{text:?}: {:?}", d.stages);
        }
        // The bodies' `FROM x` lines are not stages.
        let d = parse_ok("FROM a\nRUN <<EOF\nFROM x\nEOF\nFROM b\n");
        assert_eq!(
            values(&d),
            [(UseKind::From, "a".into()), (UseKind::From, "b".into())]
        );
        // Where the JSON form or quotes make `<<` no heredoc, the next line is an instruction.
        let d = parse_ok("FROM a\nRUN [\"sh\", \"-c\", \"cat <<EOF\"]\nFROM x\n");
        assert_eq!(image(&d.stages[1].base).value, "x");

        let e = parse_err("FROM a\nRUN <<EOF\necho\n");
        assert_eq!((e.line, e.message.as_str()), (2, "unterminated heredoc"));
        let e = parse_err("FROM a\nRUN [\"sh\", 1]\n");
        assert!(e.message.contains("strings only"), "{e}");
    }

    #[test]
    fn global_args_in_from() {
        let text = "ARG BASE_IMAGE=node\nARG TAG=20\nARG FULL=${BASE_IMAGE}:${TAG}\nFROM ${FULL} AS build\nFROM $BASE_IMAGE:${TAG}-slim\n";
        let d = parse_ok(text);
        assert_eq!(
            values(&d),
            [
                (UseKind::From, "node:20".into()),
                (UseKind::From, "node:20-slim".into())
            ]
        );
        let first = image(&d.stages[0].base);
        assert_eq!(first.written, "${FULL}");
        assert_eq!(&text[first.span.clone()], "${FULL}");

        // A build arg replaces the default, also for later defaults built from it.
        let d = parse_with(text, &[("TAG", "22"), ("UNDECLARED", "x")]).unwrap();
        assert_eq!(image(&d.stages[0].base).value, "node:22");
        // A build arg for an ARG without default; a build arg not declared is not seen.
        let d = parse_with(
            "ARG IMG\nFROM $IMG$UNDECLARED\n",
            &[("IMG", "busybox"), ("UNDECLARED", "x")],
        )
        .unwrap();
        assert_eq!(image(&d.stages[0].base).value, "busybox");
        // An ARG declared without a value expands to nothing.
        let e = parse_err("ARG IMG\nFROM $IMG\n");
        assert_eq!(e.line, 2);
        assert!(
            e.message.contains("base name ($IMG) should not be blank"),
            "{e}"
        );
        // ARGs after the first FROM are not global.
        let d = parse_with("FROM a\nARG X=b\nFROM x${X}\n", &[]).unwrap();
        assert_eq!(image(&d.stages[1].base).value, "x");
    }

    #[test]
    fn automatic_platform_args() {
        let b = no_args();
        let a = Args {
            build_args: &b,
            platform: "linux/arm64/v8",
            build_platform: "linux/amd64",
            target: Some("final"),
        };
        let text = "FROM --platform=$BUILDPLATFORM golang:1 AS build\nFROM x/$TARGETPLATFORM:$TARGETOS-$TARGETARCH-${TARGETVARIANT:-none}-$TARGETSTAGE AS final\n";
        let d = parse(text, &a).unwrap();
        assert_eq!(d.stages[0].platform.as_deref(), Some("linux/amd64"));
        assert_eq!(image(&d.stages[0].base).platform, "linux/amd64");
        assert_eq!(
            image(&d.stages[1].base).value,
            "x/linux/arm64:linux-arm64-none-final"
        );
        assert_eq!(image(&d.stages[1].base).platform, "linux/arm64");

        // A build arg replaces an automatic one; an empty platform is the build platform.
        let mut b = no_args();
        b.insert("TARGETARCH".into(), "riscv64".into());
        let a = Args {
            build_args: &b,
            platform: "",
            build_platform: "linux/arm/v7",
            target: None,
        };
        let d = parse(
            "FROM a-$TARGETARCH-$TARGETPLATFORM-$BUILDVARIANT-$TARGETSTAGE\n",
            &a,
        )
        .unwrap();
        assert_eq!(
            image(&d.stages[0].base).value,
            "a-riscv64-linux/arm/v7-v7-default"
        );

        let e = parse("FROM --platform=$NOPE a\n", &args(&no_args())).unwrap_err();
        assert!(e.message.contains("empty platform value"), "{e}");
        let e = parse("FROM --platform=linux/a/b/c a\n", &args(&no_args())).unwrap_err();
        assert!(e.message.contains("failed to parse platform"), "{e}");
    }

    #[test]
    fn platforms_normalize() {
        let host = parse_platform("linux/arm64", None).unwrap();
        let cases: &[(&str, &str, &str)] = &[
            // spec, Format, FormatAll
            ("linux/amd64", "linux/amd64", "linux/amd64"),
            ("linux/arm64/v8", "linux/arm64", "linux/arm64"),
            ("linux/aarch64", "linux/arm64", "linux/arm64"),
            ("linux/arm", "linux/arm/v7", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6", "linux/arm/v6"),
            ("Linux/x86_64", "linux/amd64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3", "linux/amd64/v3"),
            (
                "windows(10.0.17763)/amd64",
                "windows/amd64",
                "windows(10.0.17763)/amd64",
            ),
            ("linux", "linux/arm64", "linux/arm64"),
            ("amd64", "linux/amd64", "linux/amd64"),
        ];
        for (spec, format, all) in cases {
            let p = parse_platform(spec, Some(&host)).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(
                (p.format().as_str(), p.format_all().as_str()),
                (*format, *all),
                "{spec}"
            );
        }
        for bad in [
            "",
            "linux/*",
            "linux/a b",
            "nonsense",
            "a/b/c/d",
            "lin ux/amd64",
        ] {
            assert!(parse_platform(bad, Some(&host)).is_err(), "{bad:?}");
        }
        assert!(parse_platform("linux", None).is_err());
        let b = no_args();
        let a = Args {
            build_args: &b,
            platform: "",
            build_platform: "amd64",
            target: None,
        };
        assert!(parse("FROM a\n", &a).is_err());
    }

    #[test]
    fn expansion_forms() {
        let vars: Vars = [
            ("SET", "v"),
            ("EMPTY", ""),
            ("FILE", "a.tar.gz"),
            ("PATHS", "a/b/a/b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cases: &[(&str, &str)] = &[
            ("$SET", "v"),
            ("${SET}", "v"),
            ("x${SET}y", "xvy"),
            ("$UNSET", ""),
            ("${UNSET}", ""),
            ("${SET:-d}", "v"),
            ("${EMPTY:-d}", "d"),
            ("${UNSET:-d}", "d"),
            ("${SET-d}", "v"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${SET:+a}", "a"),
            ("${EMPTY:+a}", ""),
            ("${UNSET:+a}", ""),
            ("${SET+a}", "a"),
            ("${EMPTY+a}", "a"),
            ("${UNSET+a}", ""),
            ("${SET:?m}", "v"),
            ("${EMPTY?m}", ""),
            ("${UNSET:-${SET}x}", "vx"),
            ("${UNSET:-\"a b\"}", "a b"),
            ("${FILE%.*}", "a.tar"),
            ("${FILE%%.*}", "a"),
            ("${FILE#*.}", "tar.gz"),
            ("${FILE##*.}", "gz"),
            ("${FILE#?}", ".tar.gz"),
            ("${FILE%.zip}", "a.tar.gz"),
            ("${PATHS/b/X}", "a/X/a/b"),
            ("${PATHS//b/X}", "a/X/a/X"),
            ("${PATHS//a*b/X}", "X"),
            ("${UNSET//a/b}", ""),
            ("\\$SET", "$SET"),
            ("'$SET'", "$SET"),
            ("\"$SET\"", "v"),
            ("\"\\$SET\"", "$SET"),
            ("a\\ b", "a b"),
            ("$", "$"),
            ("x$", "x$"),
            ("$1", ""),
            ("${SET}$SET", "vv"),
        ];
        for (word, want) in cases {
            assert_eq!(expand(word, &vars, '\\').as_deref(), Ok(*want), "{word}");
        }
        // With a backtick escape, `\` is literal and `` ` `` escapes.
        assert_eq!(expand("a\\b`$SET", &vars, '`').as_deref(), Ok("a\\b$SET"));
        let errors: &[(&str, &str)] = &[
            ("${UNSET:?boom}", "UNSET: boom"),
            ("${UNSET?}", "UNSET: is not allowed to be unset"),
            ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
            ("${SET", "missing '}'"),
            ("${}", "bad substitution"),
            ("${:a}", "bad substitution"),
            ("${SET:#a}", "unsupported modifier"),
            ("${SET!}", "unsupported modifier"),
            ("'abc", "single-quote"),
            ("\"abc", "double-quote"),
            ("${FILE#\\a}", "invalid escape"),
        ];
        for (word, want) in errors {
            let e = expand(word, &vars, '\\').unwrap_err();
            assert!(e.contains(want), "{word}: {e}");
        }
    }

    #[test]
    fn stage_scope_in_mounts() {
        let text = "ARG GLOBAL_ID=g\nFROM a\nARG GLOBAL_ID\nARG LOCAL=l\nENV DIR=/root/.cache\nENV DIR=$DIR/x OLD=$DIR\nRUN --mount=type=cache,id=${GLOBAL_ID}-${LOCAL}-$OLD,target=$DIR echo\n";
        let d = parse_ok(text);
        let m = &d.stages[0].cache_mounts[0];
        assert_eq!(m.id, "g-l-/root/.cache");
        assert_eq!(m.target, "/root/.cache/x");
        // A build arg wins over a stage default; `ARG NAME` without a build arg or global is unset.
        let d = parse_with(
            "FROM a\nARG LOCAL=l\nARG NONE\nRUN --mount=type=cache,target=/$LOCAL$NONE echo\n",
            &[("LOCAL", "b")],
        )
        .unwrap();
        assert_eq!(d.stages[0].cache_mounts[0].target, "/b");
        // A stage FROM another starts with its variables; others start with PATH alone.
        let d = parse_ok(
            "FROM a AS one\nENV X=1\nARG Y=2\nFROM one\nRUN --mount=type=cache,target=/$X$Y echo\nFROM b\nRUN --mount=type=cache,target=/$X,id=$PATH echo\n",
        );
        assert_eq!(d.stages[1].cache_mounts[0].target, "/12");
        assert_eq!(d.stages[2].cache_mounts[0].target, "/");
        assert_eq!(d.stages[2].cache_mounts[0].id, DEFAULT_PATH);
    }

    #[test]
    fn variables_in_from_flags_are_rejected() {
        // BuildKit does not expand `COPY --from` or a mount's `from=`.
        let e = parse_err("FROM a\nARG SRC=b\nCOPY --from=$SRC /a /b\n");
        assert_eq!(e.line, 3);
        assert!(
            e.message
                .contains("variable expansion is not supported for --from"),
            "{e}"
        );
        let e = parse_err("FROM a\nRUN --mount=from=${SRC},target=/x echo\n");
        assert_eq!(e.line, 2);
        assert!(
            e.message
                .contains("'from' doesn't support variable expansion"),
            "{e}"
        );
        // Even in a stage no target needs.
        let e = parse_err("FROM a AS unused\nCOPY --from=${X:-b} /a /b\nFROM c\n");
        assert_eq!(e.line, 2);
        // A `$` at the very end of a mount's `from=` is a plain character.
        let d = parse_ok("FROM a\nRUN --mount=from=img$,target=/x echo\n");
        assert_eq!(image(&d.stages[0].sources[0].base).value, "img$");
    }

    #[test]
    fn stage_names_ignore_case() {
        let text = "FROM alpine AS Build\nFROM BUILD\nCOPY --from=bUiLd /a /b\nRUN --mount=from=BUILD,target=/x echo\n";
        let d = parse_ok(text);
        assert_eq!(d.stages[0].name.as_deref(), Some("build"));
        assert_eq!(d.stages[1].base, Base::Stage(0));
        assert_eq!(d.stages[1].sources.len(), 2);
        assert!(d.stages[1].sources.iter().all(|s| s.base == Base::Stage(0)));
        assert_eq!(d.needed_stages(Some("BUILD")).unwrap(), [0]);
        assert_eq!(values(&d), [(UseKind::From, "alpine".into())]);
        // Only earlier stages: a stage's own name in its FROM is an image.
        let d = parse_ok("FROM alpine AS alpine\nFROM alpine\n");
        assert_eq!(image(&d.stages[0].base).value, "alpine");
        assert_eq!(d.stages[1].base, Base::Stage(0));
        // The last stage of a name wins.
        let d = parse_ok("FROM a AS x\nFROM b AS x\nFROM x\nCOPY --from=x / /\n");
        assert_eq!(d.stages[2].base, Base::Stage(1));
        assert_eq!(d.stages[2].sources[0].base, Base::Stage(1));
        let e = parse_err("FROM a AS 1bad\n");
        assert!(e.message.contains("invalid name for build stage"), "{e}");
    }

    #[test]
    fn copy_from_forms() {
        let text = "FROM a AS first\nFROM b\nCOPY --from=0 /a /b\nCOPY --link --from=first /a /b\nCOPY --from=golang:1.22 /a /b\nCOPY --from=scratch /a /b\nCOPY --chown=1:1 /a /b\nCOPY --from=\"node:20\" /a /b\n";
        let d = parse_ok(text);
        let bases: Vec<&Base> = d.stages[1].sources.iter().map(|s| &s.base).collect();
        assert_eq!(bases[0], &Base::Stage(0));
        assert_eq!(bases[1], &Base::Stage(0));
        assert_eq!(image(bases[2]).value, "golang:1.22");
        assert_eq!(image(bases[2]).kind, UseKind::CopyFrom);
        assert_eq!(bases[3], &Base::Scratch);
        assert_eq!(bases.len(), 5);
        let quoted = image(bases[4]);
        assert_eq!(
            (quoted.value.as_str(), quoted.written.as_str()),
            ("node:20", "node:20")
        );
        assert_eq!(
            &text[quoted.span.start - 1..quoted.span.end + 1],
            "\"node:20\""
        );
        let e = parse_err("FROM a\nFROM b\nCOPY --from=2 /a /b\n");
        assert_eq!((e.line, e.message.as_str()), (3, "invalid stage index 2"));
        let e = parse_err("FROM a\nCOPY --from=-1 /a /b\n");
        assert!(e.message.contains("invalid stage index -1"), "{e}");
        let e = parse_err("FROM a\nCOPY --from=a --from=b /a /b\n");
        assert!(
            e.message.contains("duplicate flag specified: --from"),
            "{e}"
        );
        let e = parse_err("FROM a\nCOPY --from /a /b\n");
        assert!(e.message.contains("missing a value on flag: --from"), "{e}");
    }

    #[test]
    fn mounts() {
        let text = "FROM a AS deps\nFROM b\n\
            RUN --mount=type=cache,target=/root/.cache/ \\\n    --mount='type=cache,\"target=/a,b\",id=ab,sharing=locked,uid=1000,gid=1001,mode=0755' \\\n    --mount=type=secret,id=npm \\\n    --mount=type=bind,from=deps,source=/x,target=/y \\\n    --network=none --unknown-flag=1 \\\n    [\"sh\", \"-c\", \"true\"]\n\
            RUN --mount=\"type=cache,target=/c,sharing=private,from=cachebase:1,source=/s\" true\n\
            RUN --mount=type=tmpfs,target=/t --mount=type=ssh true\n";
        let d = parse_ok(text);
        let stage = &d.stages[1];
        let m = &stage.cache_mounts;
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(
            (
                m[0].id.as_str(),
                m[0].target.as_str(),
                m[0].sharing,
                m[0].with_secret,
                m[0].line
            ),
            ("/root/.cache", "/root/.cache/", Sharing::Shared, true, 3)
        );
        assert_eq!(
            (
                m[1].id.as_str(),
                m[1].target.as_str(),
                m[1].sharing,
                m[1].uid,
                m[1].gid,
                m[1].mode
            ),
            (
                "ab",
                "/a,b",
                Sharing::Locked,
                Some(1000),
                Some(1001),
                Some(0o755)
            )
        );
        assert!(m[1].with_secret);
        assert_eq!(
            (
                m[2].id.as_str(),
                m[2].sharing,
                m[2].from.as_deref(),
                m[2].source.as_deref(),
                m[2].with_secret
            ),
            (
                "/c",
                Sharing::Private,
                Some("cachebase:1"),
                Some("/s"),
                false
            )
        );
        assert_eq!(stage.sources.len(), 2);
        assert_eq!(stage.sources[0].base, Base::Stage(0));
        let cache_base = image(&stage.sources[1].base);
        assert_eq!(
            (cache_base.kind, cache_base.value.as_str()),
            (UseKind::MountFrom, "cachebase:1")
        );
        assert_eq!(&text[cache_base.span.clone()], "cachebase:1");
        assert_eq!(d.needed_stages(None).unwrap(), [0, 1]);

        // In a quoted CSV field, `""` is a quote (here kept by the lexer's single quotes).
        let d =
            parse_ok("FROM a\nRUN --mount=type=cache,target=/c,\\\"id=\\'a\\\"\\\"b\\'\\\" true\n");
        assert_eq!(d.stages[0].error, None);
        assert_eq!(d.stages[0].cache_mounts[0].id, "a\"b");

        // The id defaults to the target cleaned like Go's path.Clean.
        for (target, id) in [
            ("/a/./b/../c//", "/a/c"),
            ("rel/dir/", "rel/dir"),
            ("", "."),
            ("/", "/"),
        ] {
            let d = parse_ok(&format!(
                "FROM a\nRUN --mount=type=cache,target={target} true\n"
            ));
            assert_eq!(d.stages[0].cache_mounts[0].id, id, "{target:?}");
        }
    }

    #[test]
    fn mount_errors_wait_for_the_stage() {
        let cases: &[(&str, &str)] = &[
            (
                "type=cache,target=/x,mode=0999",
                "invalid value 0999 for mode",
            ),
            ("type=cache,target=/x,uid=-1", "invalid value -1 for uid"),
            ("type=cache,target=/x,gid=x", "invalid value x for gid"),
            (
                "type=cache,target=/x,sharing=nope",
                "unsupported sharing value",
            ),
            ("type=volume,target=/x", "unsupported mount type"),
            (
                "type=bind,target=/x,uid=1",
                "uid not allowed for \"bind\" type mounts",
            ),
            (
                "type=secret,id=a,from=b",
                "secret mount should not have a from",
            ),
            ("type=secret", "one of source, target required"),
            (
                "type=bind,target=/x,sharing=locked",
                "invalid cache sharing set for bind mount",
            ),
            (
                "required,type=secret,id=a",
                "unexpected key 'required' for mount type 'bind'",
            ),
            ("type=cache,target=/x,size=1m", "unexpected key 'size'"),
            ("type=cache,target=/x,bogus=1", "unexpected key 'bogus'"),
            (
                "type=cache,target=/x,ro=maybe",
                "invalid value for ro: maybe",
            ),
            ("type=cache,target=/x,nokey", "must be a key=value pair"),
            ("type=cache,target=${T:?notarget}", "T: notarget"),
        ];
        for (mount, want) in cases {
            let text = format!("FROM a AS broken\nRUN --mount={mount} true\nFROM b AS fine\n");
            let d = parse_ok(&text);
            let e = d.stages[0]
                .error
                .clone()
                .unwrap_or_else(|| panic!("{mount}: no error"));
            assert!(e.message.contains(want), "{mount}: {e}");
            assert_eq!(e.line, 2, "{mount}");
            assert_eq!(d.needed_stages(Some("fine")).unwrap(), [1], "{mount}");
            assert_eq!(d.needed_stages(Some("broken")).unwrap_err(), e, "{mount}");
        }
        // Options that are fine.
        for mount in [
            "type=tmpfs,target=/t,size=64m",
            "type=tmpfs,target=/t,size=1.5 GiB",
            "type=secret,id=a,required",
            "type=secret,id=a,required=true,mode=0400,uid=1",
            "type=ssh,required=1",
            "type=cache,target=/x,ro",
            "type=cache,target=/x,rw=false,env=X",
            "type=bind,src=/a,dst=/b",
        ] {
            let d = parse_ok(&format!("FROM a\nRUN --mount={mount} true\n"));
            assert_eq!(d.stages[0].error, None, "{mount}");
        }
        // A CSV error is BuildKit's parse error, whatever the target.
        let e = parse_err("FROM a AS x\nRUN --mount='type=cache,tar\"get=/x' true\nFROM b\n");
        assert!(e.message.contains("failed to parse csv mounts"), "{e}");
        let e = parse_err("FROM a\nRUN --mount= true\n");
        assert!(e.message.contains("failed to parse csv mounts: EOF"), "{e}");
    }

    #[test]
    fn stage_errors_wait_for_the_stage() {
        let text =
            "FROM a AS dev\nARG TOKEN=\"${TOKEN_FILE:?set TOKEN_FILE}\"\nFROM b AS release\n";
        let d = parse_ok(text);
        assert_eq!(d.needed_stages(Some("release")).unwrap(), [1]);
        let e = d.needed_stages(Some("dev")).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("TOKEN_FILE: set TOKEN_FILE"), "{e}");
        assert_eq!(e.to_string(), format!("line 2: {}", e.message));
        let e = parse_ok("FROM a\nENV X=${Y:?}\n")
            .needed_stages(None)
            .unwrap_err();
        assert!(e.message.contains("Y: is not allowed to be unset"), "{e}");
    }

    #[test]
    fn needed_stages_follow_from_copy_and_mounts() {
        let text = "\
FROM node:20 AS deps
FROM deps AS build
COPY --from=tools /bin/x /bin/x
RUN --mount=type=cache,from=cachesrc,target=/c true
FROM golang:1 AS unused
FROM alpine:3 AS tools
FROM build AS test
FROM gcr.io/distroless/static AS release
COPY --from=build /app /app
COPY --from=scratch / /
";
        let d = parse_ok(text);
        let names: Vec<Option<&str>> = d.stages.iter().map(|s| s.name.as_deref()).collect();
        assert_eq!(
            names,
            [
                Some("deps"),
                Some("build"),
                Some("unused"),
                Some("tools"),
                Some("test"),
                Some("release")
            ]
        );
        // `build` copies from `tools`, defined after it: BuildKit fails that build.
        let e = d.needed_stages(None).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(
            e.message.contains("cannot copy from stage \"tools\""),
            "{e}"
        );
        assert_eq!(d.needed_stages(Some("unused")).unwrap(), [2]);
        assert_eq!(d.needed_stages(Some("deps")).unwrap(), [0]);

        let fixed = text
            .replace("FROM golang:1 AS unused\nFROM alpine:3 AS tools\n", "")
            .replace(
                "FROM node:20 AS deps\n",
                "FROM node:20 AS deps\nFROM alpine:3 AS tools\nFROM golang:1 AS unused\n",
            );
        let d = parse_ok(&fixed);
        assert_eq!(d.needed_stages(None).unwrap(), [0, 1, 3, 5]);
        assert_eq!(d.needed_stages(Some("TEST")).unwrap(), [0, 1, 3, 4]);
        assert_eq!(d.needed_stages(Some("unused")).unwrap(), [2]);
        let needed = d.needed_stages(None).unwrap();
        let pulled: Vec<&str> = d
            .images()
            .filter(|i| i.stage.is_some_and(|s| needed.contains(&s)))
            .map(|i| i.value.as_str())
            .collect();
        assert_eq!(
            pulled,
            [
                "node:20",
                "alpine:3",
                "cachesrc",
                "gcr.io/distroless/static"
            ]
        );

        let e = d.needed_stages(Some("nope")).unwrap_err();
        assert_eq!(
            (e.line, e.to_string()),
            (0, "target stage \"nope\" could not be found".into())
        );

        // A cycle is an error whatever the target.
        let e =
            parse_err("FROM a AS x\nCOPY --from=y / /\nFROM b AS y\nCOPY --from=x / /\nFROM c\n");
        assert!(
            e.message
                .contains("circular dependency detected on stage: x"),
            "{e}"
        );
        let e = parse_err("FROM a AS x\nCOPY --from=x / /\n");
        assert!(e.message.contains("circular dependency"), "{e}");
        // A stage named `scratch` is needed by every mount without `from=` (as in BuildKit).
        let d = parse_ok("FROM a AS scratch\nFROM b\nRUN --mount=type=cache,target=/c true\n");
        assert_eq!(d.needed_stages(None).unwrap(), [0, 1]);
    }

    #[test]
    fn errors_name_their_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "FROM a\nFROM\n",
                2,
                "FROM requires either one or three arguments",
            ),
            (
                "FROM a b\n",
                1,
                "FROM requires either one or three arguments",
            ),
            (
                "FROM --platform=linux/amd64\n",
                1,
                "FROM requires either one or three arguments",
            ),
            ("ARG X\n\nFROM ${X:?boom}\n", 3, "X: boom"),
            ("ARG A=\"${B:?no B}\"\nFROM a\n", 1, "B: no B"),
            ("ARG A=${B:?no B}\nFROM a\n", 1, "missing '}'"),
            ("FROM ${X\n", 1, "missing '}'"),
            ("RUN true\nFROM a\n", 1, "no build stage in current context"),
            ("ARG =x\nFROM a\n", 1, "ARG names can not be blank"),
            ("FROM a\nENV X\n", 2, "ENV must have two arguments"),
            ("FROM a\nENV X=1 Y\n", 2, "can't find = in \"Y\""),
            ("# only a comment\n", 1, "file with no instructions"),
            ("ARG A=1\n", 0, "dockerfile contains no stages to build"),
            ("", 0, "file with no instructions"),
        ];
        for (text, line, want) in cases {
            let e = parse_err(text);
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn unknown_flags_and_instructions_are_skipped() {
        let d = parse_ok(
            "FROM --foo=bar a AS b\nNEWTHING --x=1 whatever\nRUN --device=x --security=insecure --network=host true\nCOPY --parents --exclude=*.md --chmod=755 a /b\nADD --from=c x /y\nFROM b\n",
        );
        assert_eq!(values(&d), [(UseKind::From, "a".into())]);
        assert_eq!(d.stages[1].base, Base::Stage(0));
        assert!(d.stages[0].sources.is_empty());
    }

    #[test]
    fn rewrite_is_byte_exact() {
        let text = "# syntax=docker/dockerfile:1\nARG BASE=node:20\nFROM --platform=$BUILDPLATFORM ${BASE} AS build\nRUN --mount=type=cache,target=/root/.npm \\\n    --mount=type=bind,from=tools:1,target=/t \\\n    npm ci\nCOPY --from=\"golang:1.22\" /go /go\nFROM gcr.io/distro\\\nless/static AS release\nCOPY --from=build /app /app\n";
        let d = parse_ok(text);
        let uses: Vec<&ImageUse> = d.images().collect();
        let written: Vec<&str> = uses.iter().map(|u| u.written.as_str()).collect();
        assert_eq!(
            written,
            [
                "docker/dockerfile:1",
                "${BASE}",
                "tools:1",
                "golang:1.22",
                "gcr.io/distro\\\nless/static"
            ]
        );
        for u in &uses {
            assert_eq!(&text[u.span.clone()], u.written);
        }
        let pinned = |u: &ImageUse| {
            format!(
                "docker.io/pinned/{}@sha256:{}",
                u.kind as u8,
                "ab".repeat(32)
            )
        };
        let replacements: Vec<(Range<usize>, String)> = uses
            .iter()
            .rev()
            .map(|u| (u.span.clone(), pinned(u)))
            .collect();
        let out = rewrite(text, &replacements);

        // Every byte outside the spans is unchanged.
        let mut at_in = 0;
        let mut at_out = 0;
        let mut sorted = uses.clone();
        sorted.sort_by_key(|u| u.span.start);
        for u in &sorted {
            let keep = u.span.start - at_in;
            assert_eq!(&out[at_out..at_out + keep], &text[at_in..u.span.start]);
            at_out += keep;
            let p = pinned(u);
            assert_eq!(&out[at_out..at_out + p.len()], p);
            at_out += p.len();
            at_in = u.span.end;
        }
        assert_eq!(&out[at_out..], &text[at_in..]);

        // The result reads back with the literal references in the same places.
        let again = parse_ok(&out);
        let got: Vec<(UseKind, String)> = values(&again);
        let want: Vec<(UseKind, String)> = uses.iter().map(|u| (u.kind, pinned(u))).collect();
        assert_eq!(got, want);
        assert_eq!(again.stages.len(), 2);
        assert_eq!(again.stages[1].name.as_deref(), Some("release"));
        assert_eq!(again.stages[0].cache_mounts, d.stages[0].cache_mounts);

        // No replacement: the same text.
        assert_eq!(rewrite(text, &[]), text);
    }

    #[test]
    fn spans_inside_quotes() {
        let cases: &[(&str, &str, &str)] = &[
            // text, value, written
            (
                "FROM a\nRUN --mount='type=bind,\"from=img:1\",target=/x' true\n",
                "img:1",
                "img:1",
            ),
            (
                "FROM a\nRUN --mount=\"type=bind,from=img:2,target=/x\" true\n",
                "img:2",
                "img:2",
            ),
            ("FROM a\nCOPY --from='img:3' / /\n", "img:3", "img:3"),
            ("FROM a\nCOPY --from=img\\:4 / /\n", "img:4", "img\\:4"),
            ("FROM a\nCOPY --from=im'g:5' / /\n", "img:5", "im'g:5'"),
            ("FROM a\nCOPY --from='im'g:6 / /\n", "img:6", "'im'g:6"),
        ];
        for (text, value, written) in cases {
            let d = parse_ok(text);
            let u = d.images().nth(1).unwrap_or_else(|| panic!("{text:?}"));
            assert_eq!(
                (u.value.as_str(), u.written.as_str()),
                (*value, *written),
                "{text:?}"
            );
            let out = rewrite(text, &[(u.span.clone(), "r/x:1".into())]);
            let again = parse_ok(&out);
            assert_eq!(
                again.images().nth(1).map(|u| u.value.as_str()),
                Some("r/x:1"),
                "{out:?}"
            );
        }
        // Quotes that split a value so that no literal can stand in for it.
        let e = parse_err("FROM a\nRUN --mount=from=im'g,target=/'x true\n");
        assert!(e.message.contains("cannot locate the image"), "{e}");
    }

    #[test]
    fn byte_order_mark_and_offsets() {
        let text = "\u{feff}FROM node:20\n";
        let d = parse_ok(text);
        let u = image(&d.stages[0].base);
        assert_eq!(u.span, 8..15);
        assert_eq!(&text[u.span.clone()], "node:20");
    }

    #[test]
    fn json_reader() {
        let cases: &[(&str, Result<bool, ()>)] = &[
            ("[\"a\", \"b\"]", Ok(true)),
            ("  [ ]", Ok(true)),
            ("[\"a\\\"\\u00e9\"]", Ok(true)),
            ("[\"a\", 1]", Err(())),
            ("[\"a\", {\"k\": [1, -2.5e3, true, null]}]", Err(())),
            ("[\"a\"] x", Ok(false)),
            ("[\"a\"", Ok(false)),
            ("[a]", Ok(false)),
            ("[\"a\",]", Ok(false)),
            ("[01]", Ok(false)),
            ("echo [", Ok(false)),
        ];
        for (text, want) in cases {
            assert_eq!(json_form(text).map_err(|_| ()), *want, "{text}");
        }
    }

    #[test]
    fn flag_reader() {
        let line = "--a=1 --b='x y' --c=\"q\\\"\" --d=e\\ f -- --notflag rest";
        let mut chars = Vec::new();
        push_chars(&mut chars, line, 0);
        for (i, m) in chars.iter_mut().enumerate() {
            m.at = i;
            m.at_escape = i;
        }
        let (flags, rest) = extract_flags(&chars, '\\');
        let flags: Vec<String> = flags.iter().map(|f| text_of(f)).collect();
        assert_eq!(flags, ["--a=1", "--b=x y", "--c=q\"", "--d=e f"]);
        assert_eq!(text_of(trim_chars(rest)), "--notflag rest");
    }
}
