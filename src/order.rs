//! The one dependency ordering of a config's images (`depends_on`): groups that build at once,
//! each after the groups before it. The config's check refuses a cycle with it, `ecrship plan`
//! shows its groups, and a run builds in its order.

/// The names in groups: the first group depends on nothing among `names`, each later group only
/// on the groups before it; within a group, the order of `names`. A dependency that is not among
/// `names` (an image not selected for this run) is left out. Err: a cycle, as the names along it
/// with the first repeated at the end (`a -> b -> a`).
pub fn groups<'a, D: AsRef<str> + 'a>(
    names: &[&'a str],
    depends_on: impl Fn(&str) -> &'a [D],
) -> Result<Vec<Vec<&'a str>>, Vec<String>> {
    if let Some(cycle) = cycle(names, &depends_on) {
        return Err(cycle);
    }
    let mut placed: Vec<&str> = Vec::with_capacity(names.len());
    let mut groups = Vec::new();
    while placed.len() < names.len() {
        let group: Vec<&'a str> = names
            .iter()
            .copied()
            .filter(|name| !placed.contains(name))
            .filter(|name| {
                depends_on(name)
                    .iter()
                    .all(|d| placed.contains(&d.as_ref()) || !names.contains(&d.as_ref()))
            })
            .collect();
        placed.extend(&group);
        groups.push(group);
    }
    Ok(groups)
}

/// The first cycle found from `names`, in their order, depth first.
fn cycle<'a, D: AsRef<str> + 'a>(
    names: &[&'a str],
    depends_on: &impl Fn(&str) -> &'a [D],
) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a, D: AsRef<str> + 'a>(
        name: &'a str,
        names: &[&'a str],
        depends_on: &impl Fn(&str) -> &'a [D],
        marks: &mut std::collections::HashMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<String> =
                    path[start..].iter().map(|n| (*n).to_owned()).collect();
                cycle.push(name.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(name, Mark::Open);
        path.push(name);
        for dep in depends_on(name) {
            let Some(&dep) = names.iter().find(|n| **n == dep.as_ref()) else {
                continue;
            };
            if let Some(cycle) = visit(dep, names, depends_on, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(name, Mark::Done);
        None
    }
    let mut marks = std::collections::HashMap::new();
    names
        .iter()
        .find_map(|name| visit(name, names, depends_on, &mut marks, &mut Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(
        graph: &[(&'static str, &'static [&'static str])],
    ) -> Result<Vec<Vec<&'static str>>, Vec<String>> {
        let names: Vec<&str> = graph.iter().map(|(n, _)| *n).collect();
        groups(&names, |name| {
            graph
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&[][..], |(_, deps)| *deps)
        })
    }

    #[test]
    fn groups_build_after_what_they_depend_on() {
        assert_eq!(
            order(&[
                ("app", &["app-base"]),
                ("worker", &["app-base"]),
                ("app-base", &[]),
                ("web", &[])
            ]),
            Ok(vec![vec!["app-base", "web"], vec!["app", "worker"]])
        );
        assert_eq!(
            order(&[("c", &["b"]), ("b", &["a"]), ("a", &[])]),
            Ok(vec![vec!["a"], vec!["b"], vec!["c"]])
        );
        assert_eq!(order(&[("a", &["not-selected"])]), Ok(vec![vec!["a"]]));
        assert_eq!(order(&[]), Ok(vec![]));
    }

    #[test]
    fn a_cycle_is_named_along_its_path() {
        assert_eq!(
            order(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]),
            Err(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert_eq!(
            order(&[("x", &[]), ("a", &["a"])]),
            Err(vec!["a".into(), "a".into()])
        );
    }
}
