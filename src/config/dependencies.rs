//! `depends_on`: an image built after others of the same config, which it gets as build args
//! (see `plan.rs`). The names must be images of the config, never the image itself, and form no
//! cycle ([`crate::order`], the one ordering the plan and the run take too).

use std::collections::HashSet;

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
    let names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    let depends_on = |name: &str| {
        images
            .iter()
            .find(|i| i.name == name)
            .map_or(&[][..], |i| i.depends_on.as_slice())
    };
    if let Err(cycle) = crate::order::groups(&names, depends_on) {
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
