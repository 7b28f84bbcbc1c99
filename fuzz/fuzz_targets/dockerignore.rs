//! `.dockerignore` reader and matcher: no input panics or hangs.
//!
//! The input is a `.dockerignore` text, then (after the first NUL byte) paths to match, one a
//! line. Every path goes through each matcher that the context walker and the classic-builder
//! emulation use, folder by folder as the walker meets it.
#![no_main]

use ecrship::context::ignore::{Decision, Patterns};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, paths) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"a\na/b\n.dockerignore\nDockerfile\nsrc/x/y.rs"[..]),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let patterns = match Patterns::parse(text) {
        Ok(patterns) => patterns,
        Err(error) => {
            // The message is shown to users: building it must not panic either.
            let _ = error.to_string();
            return;
        }
    };
    for path in paths.split(|&b| b == b'\n').take(64) {
        let as_text = String::from_utf8_lossy(path);
        let _ = patterns.is_excluded(&as_text);
        let _ = patterns.cli_matches(&as_text);
        let _ = patterns.with_build_files(&as_text);
        // The walker's view: each folder's results handed down to its children.
        let parts: Vec<&[u8]> = path.split(|&b| b == b'/').filter(|p| !p.is_empty()).collect();
        let mut rel = Vec::with_capacity(path.len());
        let mut parent = None;
        for (k, part) in parts.iter().enumerate() {
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(part);
            let is_dir = k + 1 < parts.len();
            let (decision, info) = patterns.decide(&rel, is_dir, parent.as_ref(), Some(path));
            if matches!(decision, Decision::Skip | Decision::Prune) {
                break;
            }
            parent = Some(info);
        }
    }
});
