//! `depends_on`: an image built after others of the same config, which it gets as build args
//! (see `plan.rs`). The names must be images of the config, never the image itself, and form no
//! cycle.

use std::collections::{HashMap, HashSet};

use super::Image;

/// `depends_on` names images of this config, never the image itself, and forms no cycle.
/// On error: the line of the image at fault and the message.
pub(super) fn check(images: &[Image]) -> Result<(), (usize, String)> {
    let known: HashSet<&str> = images.iter().map(|i| i.name.as_str()).collect();
    for image in images {
        for dep in &image.depends_on {
            if dep == &image.name {
                return Err((
                    image.line,
                    format!("image `{}` depends on itself", image.name),
                ));
            }
            if !known.contains(dep.as_str()) {
                let mut names: Vec<&str> = known.iter().copied().collect();
                names.sort_unstable();
                return Err((
                    image.line,
                    format!(
                        "image `{}` depends on `{dep}`, which is not an image of this config (images: {})",
                        image.name,
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(images) {
        let line = images
            .iter()
            .find(|i| i.name == cycle[0])
            .map_or(0, |i| i.line);
        return Err((
            line,
            format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
        ));
    }
    Ok(())
}

/// A dependency cycle, as the names along it with the first repeated at the end.
fn find_cycle(images: &[Image]) -> Option<Vec<String>> {
    fn visit<'a>(
        name: &'a str,
        images: &'a [Image],
        state: &mut HashMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(name) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|n| n.to_string()).collect();
                cycle.push(name.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(name, 1);
        path.push(name);
        let deps = images
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.depends_on.as_slice())
            .unwrap_or_default();
        for dep in deps {
            if let Some(cycle) = visit(dep, images, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(name, 2);
        None
    }
    let mut state = HashMap::new();
    images
        .iter()
        .find_map(|image| visit(&image.name, images, &mut state, &mut Vec::new()))
}

#[cfg(test)]
mod tests {
    use crate::config::tests::error;

    #[test]
    fn errors_name_the_image_and_the_names() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[[image]]\nname = \"a1\"\ndepends_on = [\"b1\"]\n[[image]]\nname = \"b1\"\ndepends_on = [\"a1\"]\n",
                &["line 1", "cycle", "a1 -> b1 -> a1"],
            ),
            (
                "[[image]]\nname = \"app\"\ndepends_on = [\"base\"]\n",
                &["line 1", "`base`", "images: app"],
            ),
            (
                "[[image]]\nname = \"app\"\ndepends_on = [\"app\"]\n",
                &["line 1", "depends on itself"],
            ),
        ];
        for (text, needles) in cases {
            let msg = error(text);
            assert!(!msg.contains('\n'), "one line: {msg:?}");
            for needle in *needles {
                assert!(msg.contains(needle), "{text:?}: {msg:?} lacks {needle:?}");
            }
        }
    }
}
