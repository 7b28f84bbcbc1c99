//! Which step an image's build is at, read from its log lines.
//!
//! Both builders number the Dockerfile's instructions in their output, and the live view shows
//! that counter:
//!
//! - BuildKit's plain progress (as rendered by `docker::BuildkitProgress`, after buildkit's
//!   `progressui` plain mode) gives each vertex a number and prints its name on the vertex's first
//!   line: `#5 [2/3] RUN make`, or `#5 [builder 2/5] COPY . .` in a named stage of a multi-stage
//!   build (the `[stage N/M]` prefix is set by buildkit's Dockerfile frontend, `dockerfile2llb`).
//!   Later lines of the same vertex are its output and its end: `#5 DONE 1.2s`, `#5 CACHED`,
//!   `#5 ERROR: ...`. Internal vertices have no counter: `#1 [internal] load build definition`.
//! - The classic builder prints `Step 3/9 : COPY lib ./lib` before each instruction (moby's
//!   `builder/dockerfile` dispatcher), and its output and ` ---> <id>` lines after it.

use std::collections::HashSet;

/// A step of a build, as its log announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its number and the count of steps, within its stage for BuildKit: `(2, 3)` for `[2/3]`.
    pub counter: Option<(u32, u32)>,
    /// The stage, when BuildKit names it (`builder` in `[builder 2/5]`).
    pub stage: Option<String>,
    /// The instruction (`RUN make`), or the name of an internal step (`[internal] load
    /// build context`, `exporting to image`).
    pub text: String,
}

/// Follows one image's log and keeps the step it is at.
#[derive(Debug, Default)]
pub struct StepTracker {
    /// BuildKit vertices whose name line has been seen; their later lines are output.
    named: HashSet<u64>,
    current: Option<Step>,
}

impl StepTracker {
    /// Reads one log line; returns whether it started a step.
    pub fn read(&mut self, line: &str) -> bool {
        let step = if let Some((vertex, rest)) = buildkit_vertex(line) {
            if !self.named.insert(vertex) {
                return false;
            }
            buildkit_step(rest)
        } else if let Some(step) = classic_step(line) {
            step
        } else {
            return false;
        };
        self.current = Some(step);
        true
    }

    /// The step the build is at: the last one that started.
    pub fn current(&self) -> Option<&Step> {
        self.current.as_ref()
    }
}

/// `#5 rest` → `(5, "rest")`.
fn buildkit_vertex(line: &str) -> Option<(u64, &str)> {
    let rest = line.strip_prefix('#')?;
    let (number, rest) = rest.split_once(' ')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, rest))
}

/// A vertex name: `[2/3] RUN make`, `[builder 2/5] COPY . .`, `[internal] load .dockerignore`,
/// `exporting to image`.
fn buildkit_step(name: &str) -> Step {
    let plain = || Step {
        counter: None,
        stage: None,
        text: name.to_owned(),
    };
    let Some((inside, text)) = name
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    else {
        return plain();
    };
    let (stage, numbers) = match inside.rsplit_once(' ') {
        Some((stage, numbers)) => (Some(stage), numbers),
        None => (None, inside),
    };
    let Some(counter) = counter(numbers) else {
        return plain();
    };
    Step {
        counter: Some(counter),
        stage: stage.map(str::to_owned),
        text: text.to_owned(),
    }
}

/// `Step 3/9 : COPY lib ./lib`.
fn classic_step(line: &str) -> Option<Step> {
    let rest = line.strip_prefix("Step ")?;
    let (numbers, text) = rest.split_once(" : ")?;
    Some(Step {
        counter: Some(counter(numbers)?),
        stage: None,
        text: text.to_owned(),
    })
}

/// `2/3` → `(2, 3)`.
fn counter(text: &str) -> Option<(u32, u32)> {
    let (n, m) = text.split_once('/')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(n) || !digits(m) {
        return None;
    }
    Some((n.parse().ok()?, m.parse().ok()?))
}

/// A step as the tests of the view write it.
#[cfg(test)]
pub(super) fn step(counter: Option<(u32, u32)>, stage: Option<&str>, text: &str) -> Step {
    Step {
        counter,
        stage: stage.map(str::to_owned),
        text: text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_read_from_either_builder() {
        // (line, the step it starts, if any), each read by a fresh tracker.
        let cases: &[(&str, Option<Step>)] = &[
            (
                "#5 [2/3] RUN make",
                Some(step(Some((2, 3)), None, "RUN make")),
            ),
            (
                "#5 [builder 2/5] COPY . .",
                Some(step(Some((2, 5)), Some("builder"), "COPY . .")),
            ),
            (
                "#12 [stage-1 10/12] RUN cp /a /b",
                Some(step(Some((10, 12)), Some("stage-1"), "RUN cp /a /b")),
            ),
            (
                "#1 [internal] load build definition from Dockerfile",
                Some(step(
                    None,
                    None,
                    "[internal] load build definition from Dockerfile",
                )),
            ),
            (
                "#9 exporting to image",
                Some(step(None, None, "exporting to image")),
            ),
            // A bracket that is not a counter stays part of the text.
            (
                "#3 [auth] library/busybox:pull token",
                Some(step(None, None, "[auth] library/busybox:pull token")),
            ),
            ("#4 [a/b] RUN x", Some(step(None, None, "[a/b] RUN x"))),
            (
                "Step 3/9 : COPY lib ./lib",
                Some(step(Some((3, 9)), None, "COPY lib ./lib")),
            ),
            (
                "Step 1/2 : FROM scratch",
                Some(step(Some((1, 2)), None, "FROM scratch")),
            ),
            // Not steps.
            (" ---> Running in 1e8f0c2a3b4d", None),
            ("Successfully built 1e8f0c2a3b4d", None),
            ("Step 3 : COPY a b", None),
            ("Steps 3/9 : COPY a b", None),
            ("#x [2/3] RUN make", None),
            ("# [2/3] RUN make", None),
            ("#5", None),
            ("building app:v1 from dockerfiles/app/Dockerfile", None),
            ("", None),
        ];
        for (line, expected) in cases {
            let mut tracker = StepTracker::default();
            assert_eq!(tracker.read(line), expected.is_some(), "{line:?}");
            assert_eq!(tracker.current(), expected.as_ref(), "{line:?}");
        }
    }

    #[test]
    fn a_vertex_is_named_by_its_first_line_only() {
        let mut t = StepTracker::default();
        assert!(t.read("#1 [internal] load build definition from Dockerfile"));
        assert!(!t.read("#1 transferring dockerfile: 71B done"));
        assert!(!t.read("#1 DONE 0.0s"));
        assert!(t.read("#4 [1/2] FROM docker.io/library/busybox"));
        assert!(!t.read("#4 CACHED"));
        assert!(t.read("#5 [2/2] RUN echo [3/4] fake"));
        // Output that looks like a step is output of #5, not a new step.
        assert!(!t.read("#5 [3/4] fake"));
        assert!(!t.read("#5 Step 1/1 : also output"));
        assert_eq!(
            t.current(),
            Some(&step(Some((2, 2)), None, "RUN echo [3/4] fake"))
        );
        assert!(!t.read("#5 ERROR: process \"/bin/sh -c exit 3\" did not complete"));
        // An earlier vertex that ends later does not move the counter back.
        assert!(!t.read("#4 DONE 0.1s"));
        assert_eq!(t.current().and_then(|s| s.counter), Some((2, 2)));
        assert!(t.read("#6 exporting to image"));
        assert_eq!(t.current(), Some(&step(None, None, "exporting to image")));
    }

    #[test]
    fn classic_steps_follow_each_other() {
        let mut t = StepTracker::default();
        assert!(t.read("Step 1/3 : FROM scratch"));
        assert!(!t.read(" ---> "));
        assert!(t.read("Step 2/3 : COPY a /a"));
        assert!(!t.read(" ---> 3f2a1b0c9d8e"));
        assert_eq!(t.current(), Some(&step(Some((2, 3)), None, "COPY a /a")));
    }
}
