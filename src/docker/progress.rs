//! Build output as plain lines: the classic builder's text, and BuildKit's status messages
//! rendered like buildkit's `--progress=plain`.

use std::collections::{HashMap, HashSet};

use bollard::moby::buildkit::v1::StatusResponse;

/// Splits text that arrives in arbitrary chunks into lines; a `\r` progress line keeps only
/// its last state; blank lines are dropped.
#[derive(Debug, Default)]
pub(super) struct LineSplitter {
    partial: String,
}

impl LineSplitter {
    pub(super) fn push(&mut self, text: &str) -> Vec<String> {
        self.partial.push_str(text);
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        complete.lines().filter_map(clean_line).collect()
    }

    pub(super) fn finish(&mut self) -> Option<String> {
        clean_line(&std::mem::take(&mut self.partial))
    }
}

fn clean_line(line: &str) -> Option<String> {
    let line = line.trim_end_matches(['\r', '\n']);
    let line = line.rsplit('\r').next().unwrap_or(line);
    let line = strip_ansi(line);
    let line = line.trim_end();
    (!line.is_empty()).then(|| line.to_string())
}

/// Removes ANSI escape sequences (CSI, such as the classic builder's red around stderr), which
/// would otherwise bleed colour into the next prefixed line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            // Parameters and intermediates, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// Renders BuildKit's `StatusResponse` messages as plain lines, in the manner of buildkit's
/// `--progress=plain`: each vertex gets a number in order of appearance, its name is printed
/// once when it starts, then its output (`#3 text`), completed transfers, and how it ended
/// (`#3 CACHED`, `#3 DONE 0.4s`, `#3 ERROR: ...`, `#3 CANCELED`).
#[derive(Debug, Default)]
pub struct BuildkitProgress {
    vertices: HashMap<String, VertexState>,
    next_index: usize,
}

#[derive(Debug, Default)]
struct VertexState {
    index: usize,
    name: String,
    announced: bool,
    ended: bool,
    output: LineSplitter,
    statuses_done: HashSet<String>,
}

impl VertexState {
    fn flush(&mut self, lines: &mut Vec<String>) {
        if let Some(line) = self.output.finish() {
            lines.push(format!("#{} {line}", self.index));
        }
    }
}

impl BuildkitProgress {
    /// The lines one status message adds to the log.
    pub fn render(&mut self, status: &StatusResponse) -> Vec<String> {
        let mut lines = Vec::new();
        for v in &status.vertexes {
            let state = self.vertex(&v.digest);
            if !v.name.is_empty() {
                state.name.clone_from(&v.name);
            }
            if v.started.is_some() || v.cached || v.completed.is_some() {
                announce(state, &mut lines);
            }
        }
        for s in &status.statuses {
            let state = self.vertex(&s.vertex);
            if s.completed.is_none() || !state.statuses_done.insert(s.id.clone()) {
                continue;
            }
            announce(state, &mut lines);
            let amount = match (s.current, s.total) {
                (_, 0) if s.current == 0 => String::new(),
                (current, 0) => format!(" {}", human_bytes(current)),
                (current, total) => format!(" {} / {}", human_bytes(current), human_bytes(total)),
            };
            lines.push(format!("#{} {}{amount} done", state.index, s.id));
        }
        for log in &status.logs {
            let state = self.vertex(&log.vertex);
            announce(state, &mut lines);
            let text = String::from_utf8_lossy(&log.msg);
            for line in state.output.push(&text) {
                lines.push(format!("#{} {line}", state.index));
            }
        }
        for w in &status.warnings {
            let state = self.vertex(&w.vertex);
            announce(state, &mut lines);
            let short = String::from_utf8_lossy(&w.short);
            lines.push(format!("#{} WARN: {}", state.index, short.trim_end()));
        }
        for v in &status.vertexes {
            let state = self.vertex(&v.digest);
            if state.ended {
                continue;
            }
            let end = if v.cached {
                "CACHED".to_string()
            } else if v.error.contains("context canceled") {
                "CANCELED".to_string()
            } else if !v.error.is_empty() {
                format!("ERROR: {}", v.error)
            } else if let (Some(start), Some(end)) = (&v.started, &v.completed) {
                let secs =
                    (end.seconds - start.seconds) as f64 + f64::from(end.nanos - start.nanos) / 1e9;
                format!("DONE {:.1}s", secs.max(0.0))
            } else if v.completed.is_some() {
                "DONE 0.0s".to_string()
            } else {
                continue;
            };
            state.flush(&mut lines);
            state.ended = true;
            lines.push(format!("#{} {end}", state.index));
        }
        lines
    }

    /// Output still buffered without a trailing newline.
    pub fn finish(&mut self) -> Vec<String> {
        let mut states: Vec<_> = self.vertices.values_mut().collect();
        states.sort_by_key(|s| s.index);
        let mut lines = Vec::new();
        for state in states {
            state.flush(&mut lines);
        }
        lines
    }

    fn vertex(&mut self, digest: &str) -> &mut VertexState {
        let next = &mut self.next_index;
        self.vertices.entry(digest.to_string()).or_insert_with(|| {
            *next += 1;
            VertexState {
                index: *next,
                ..Default::default()
            }
        })
    }
}

fn announce(state: &mut VertexState, lines: &mut Vec<String>) {
    if !state.announced && !state.name.is_empty() {
        state.announced = true;
        lines.push(format!("#{} {}", state.index, state.name));
    }
}

/// Bytes in decimal units with up to 4 significant digits, as Docker prints them (`2.35kB`).
fn human_bytes(n: i64) -> String {
    let (value, unit) = crate::text::decimal_units(n.max(0).unsigned_abs());
    if unit == "B" {
        return format!("{n}B");
    }
    let decimals = if value >= 100.0 {
        1
    } else if value >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::moby::buildkit::v1::{Vertex, VertexLog, VertexStatus};

    #[test]
    fn classic_stream_text_is_split_into_lines() {
        let mut s = LineSplitter::default();
        assert_eq!(
            s.push("Step 1/2 : FROM scratch\n ---> "),
            vec!["Step 1/2 : FROM scratch"]
        );
        assert_eq!(s.push("abc\n\nStep 2/2"), vec![" ---> abc"]);
        assert_eq!(s.push(" : COPY a /a\r\n"), vec!["Step 2/2 : COPY a /a"]);
        assert_eq!(s.push("10%\r50%\r100%\n"), vec!["100%"]);
        assert_eq!(
            s.push("\u{1b}[91mto-stderr\n\u{1b}[0mRemoving intermediate container 1e8f\n"),
            vec!["to-stderr", "Removing intermediate container 1e8f"]
        );
        assert_eq!(s.push("\u{1b}[1;31mred\u{1b}[0m text\n"), vec!["red text"]);
        assert_eq!(s.push("no newline"), Vec::<String>::new());
        assert_eq!(s.finish().as_deref(), Some("no newline"));
        assert_eq!(s.finish(), None);
    }

    fn vertex(digest: &str, name: &str) -> Vertex {
        Vertex {
            digest: digest.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn at(v: &mut Vertex, start: (i64, i32), end: Option<(i64, i32)>) {
        let mut t = v.started.unwrap_or_default();
        (t.seconds, t.nanos) = start;
        v.started = Some(t);
        if let Some((s, n)) = end {
            let mut t = v.started.unwrap_or_default();
            (t.seconds, t.nanos) = (s, n);
            v.completed = Some(t);
        }
    }

    fn log(digest: &str, msg: &str) -> VertexLog {
        VertexLog {
            vertex: digest.into(),
            msg: msg.as_bytes().to_vec(),
            stream: 1,
            ..Default::default()
        }
    }

    #[test]
    fn buildkit_status_renders_like_plain_progress() {
        let mut p = BuildkitProgress::default();

        // A vertex that is only known (not started) prints nothing.
        let pending = vertex("sha256:run", "[2/3] RUN echo hi");
        let msg = StatusResponse {
            vertexes: vec![pending.clone()],
            ..Default::default()
        };
        assert!(p.render(&msg).is_empty());

        // Context transfer: started, then a completed status, then done.
        let mut ctx = vertex("sha256:ctx", "[internal] load build context");
        at(&mut ctx, (10, 0), None);
        let transfer = VertexStatus {
            id: "transferring context:".into(),
            vertex: "sha256:ctx".into(),
            current: 2350,
            completed: ctx.started,
            ..Default::default()
        };
        let msg = StatusResponse {
            vertexes: vec![ctx.clone()],
            statuses: vec![transfer.clone()],
            ..Default::default()
        };
        assert_eq!(
            p.render(&msg),
            vec![
                "#2 [internal] load build context",
                "#2 transferring context: 2.35kB done",
            ]
        );
        // The same completed status again is not repeated.
        let msg = StatusResponse {
            statuses: vec![transfer],
            ..Default::default()
        };
        assert!(p.render(&msg).is_empty());
        at(&mut ctx, (10, 0), Some((10, 400_000_000)));
        let msg = StatusResponse {
            vertexes: vec![ctx.clone()],
            ..Default::default()
        };
        assert_eq!(p.render(&msg), vec!["#2 DONE 0.4s"]);

        // A cached step: name once, then CACHED, and nothing when it is sent again.
        let mut cached = vertex("sha256:copy", "[1/3] COPY a /a");
        cached.cached = true;
        at(&mut cached, (11, 0), Some((11, 0)));
        let msg = StatusResponse {
            vertexes: vec![cached.clone()],
            ..Default::default()
        };
        assert_eq!(p.render(&msg), vec!["#3 [1/3] COPY a /a", "#3 CACHED"]);
        assert!(p.render(&msg).is_empty());

        // A RUN step with output split across messages, then a failure.
        let mut run = pending;
        at(&mut run, (12, 0), None);
        let msg = StatusResponse {
            vertexes: vec![run.clone()],
            logs: vec![log("sha256:run", "hi\nhal")],
            ..Default::default()
        };
        assert_eq!(p.render(&msg), vec!["#1 [2/3] RUN echo hi", "#1 hi"]);
        run.error =
            "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3".into();
        at(&mut run, (12, 0), Some((13, 0)));
        let msg = StatusResponse {
            vertexes: vec![run],
            logs: vec![log("sha256:run", "f")],
            ..Default::default()
        };
        assert_eq!(
            p.render(&msg),
            vec![
                "#1 half",
                "#1 ERROR: process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3",
            ]
        );

        // A canceled step, and unfinished output flushed at the end.
        let mut other = vertex("sha256:other", "[3/3] RUN sleep 9");
        at(&mut other, (12, 0), None);
        let msg = StatusResponse {
            vertexes: vec![other.clone()],
            logs: vec![log("sha256:other", "partial")],
            ..Default::default()
        };
        assert_eq!(p.render(&msg), vec!["#4 [3/3] RUN sleep 9"]);
        assert_eq!(p.finish(), vec!["#4 partial"]);
        other.error = "context canceled".into();
        at(&mut other, (12, 0), Some((14, 0)));
        let msg = StatusResponse {
            vertexes: vec![other],
            ..Default::default()
        };
        assert_eq!(p.render(&msg), vec!["#4 CANCELED"]);
    }

    #[test]
    fn bytes_are_human_sized() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(999), "999B");
        assert_eq!(human_bytes(2350), "2.35kB");
        assert_eq!(human_bytes(12_345_678), "12.35MB");
        assert_eq!(human_bytes(123_456_789), "123.5MB");
        assert_eq!(human_bytes(1_000_000), "1MB");
    }
}
