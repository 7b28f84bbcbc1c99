//! `/`-separated paths as Go's `path` package treats them: the Docker CLI, buildx and BuildKit
//! clean `.dockerignore` patterns, context paths and mount targets with `path.Clean`.

/// Go's `path.Clean`: the shortest path naming the same place, by lexical processing alone
/// (`a//b/../c/` → `a/c`, `/..` → `/`, `` → `.`).
pub fn clean(path: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_as_go_does() {
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
}
