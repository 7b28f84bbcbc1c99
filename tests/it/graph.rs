//! Images that build on each other (`depends_on`), per-image extra tags, images left out of the
//! artifacts, and `push --dry-run`, against the real daemon and registry.

use crate::harness::{Test, docker_api, docker_cli, registry_tags, stack, unique_name};

/// `base` (not deployed), and `app` and `worker` built `FROM ${BASE_IMAGE}`.
fn project(ns: &str) -> Test {
    let s = stack();
    let config = format!(
        "[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\ncontext = \"app\"\ndepends_on = [\"base\"]\nextra_tags = [\"stable\"]\n\n\
         [[image]]\nname = \"worker\"\nrepository = \"{ns}/worker\"\ncontext = \"worker\"\ndepends_on = [\"base\"]\n\n\
         [[image]]\nname = \"base\"\nrepository = \"{ns}/base\"\ncontext = \"base\"\ndeploy = false\n"
    );
    let mut test = Test::new()
        .file("ecrship.toml", config)
        .file(
            "base/Dockerfile",
            format!("FROM {}\nRUN echo base-{ns} > /base-marker\n", s.base_image),
        )
        .file(".git-commit-hash", "g1\n");
    for name in ["app", "worker"] {
        test = test.file(
            format!("{name}/Dockerfile"),
            format!(
                "ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN sleep 1 && cat /base-marker > /{name}-saw\n"
            ),
        );
    }
    test
}

fn cleanup(ns: &str) {
    let s = stack();
    for name in ["app", "worker", "base"] {
        for tag in ["g1", "latest", "stable"] {
            let _ = docker_api("DELETE", &format!("/images/{ns}/{name}:{tag}?force=1"));
            let _ = docker_api(
                "DELETE",
                &format!("/images/{}/{ns}/{name}:{tag}?force=1", s.registry),
            );
        }
    }
}

/// `<name> <action>` of each image of a run's JSON summary, in its order.
fn actions(out: &crate::harness::Output) -> Vec<String> {
    out.json()["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["name"].as_str().unwrap(),
                i["action"].as_str().unwrap()
            )
        })
        .collect()
}

/// The position of the first stderr line that holds `needle`.
fn line_of(stderr: &str, needle: &str) -> usize {
    stderr
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}`\n{stderr}"))
}

#[test]
fn dependents_build_after_their_base_at_the_same_time() {
    let s = stack();
    let ns = unique_name("graph");
    let test = project(&ns).moto_env().env("ECRSHIP_REGISTRY", &s.registry);
    let out = test.run_with(["release", "--output", "json"]);
    out.assert_success();
    let err = &out.stderr;

    // base first; then app and worker both start before either is done.
    let base_built = line_of(err, "[base] built ");
    for name in ["app", "worker"] {
        assert!(
            line_of(err, &format!("[{name}] building ")) > base_built,
            "{out}"
        );
    }
    let started = line_of(err, "[app] building ").max(line_of(err, "[worker] building "));
    let first_done = line_of(err, "[app] built ").min(line_of(err, "[worker] built "));
    assert!(
        started < first_done,
        "app and worker ran one after the other\n{out}"
    );

    // Each dependent was built FROM the base through BASE_IMAGE.
    for name in ["app", "worker"] {
        let out = docker_cli()
            .args([
                "run",
                "--rm",
                &format!("{ns}/{name}:g1"),
                "cat",
                &format!("/{name}-saw"),
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("base-{ns}\n"));
    }

    // base is pushed (the next run reuses it) but is not deployed.
    assert_eq!(
        registry_tags(&s.registry, &s.registry_password, &format!("{ns}/base")),
        ["g1", "latest"]
    );
    let definitions = test.read("imagedefinitions.json");
    assert!(!definitions.contains("base"), "{definitions}");
    assert!(
        definitions.contains(&format!("{ns}/app:g1"))
            && definitions.contains(&format!("{ns}/worker:g1"))
    );
    // app's own extra tag comes after [tag] extra's.
    assert_eq!(
        registry_tags(&s.registry, &s.registry_password, &format!("{ns}/app")),
        ["g1", "latest", "stable"]
    );

    // plan shows the graph.
    let plan = test.run_with(["plan", "--output", "json"]);
    plan.assert_success();
    assert_eq!(
        plan.json()["order"],
        serde_json::json!([["base"], ["app", "worker"]])
    );

    // A new commit that changes nothing: base is reused, and app and worker (whose inputs
    // include base's, not its tag) are reused too.
    std::fs::write(test.path(".git-commit-hash"), "g2\n").unwrap();
    let again = test.run_with(["release", "--output", "json"]);
    again.assert_success();
    let actions = actions(&again);
    assert_eq!(
        actions,
        ["base reused", "app reused", "worker reused"],
        "{again}"
    );
    cleanup(&ns);
}

#[test]
fn a_changed_dependent_is_built_from_its_pulled_base() {
    let s = stack();
    let ns = unique_name("graph2");
    let test = project(&ns).moto_env().env("ECRSHIP_REGISTRY", &s.registry);
    test.run_with(["release"]).assert_success();
    // app changes, base does not: base is reused (not built here); app is built FROM it, so
    // ecrship pulls it and names it as a build here would have.
    let _ = docker_api("DELETE", &format!("/images/{ns}/base:g1?force=1"));
    std::fs::write(test.path(".git-commit-hash"), "g2\n").unwrap();
    std::fs::write(
        test.path("app/Dockerfile"),
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN cat /base-marker > /app-saw-too\n",
    )
    .unwrap();
    let out = test.run_with(["release", "--output", "json"]);
    out.assert_success();
    let actions = actions(&out);
    assert_eq!(
        actions,
        ["base reused", "app built", "worker reused"],
        "{out}"
    );
    assert!(out.stderr.contains("[app] pulling "), "{out}");
    cleanup(&ns);
    let _ = docker_api("DELETE", &format!("/images/{ns}/base:g2?force=1"));
    let _ = docker_api("DELETE", &format!("/images/{ns}/app:g2?force=1"));
}

#[test]
fn a_dependency_cycle_is_bad_input() {
    let test = Test::new()
        .file(
            "ecrship.toml",
            "[[image]]\nname = \"a1\"\ndepends_on = [\"b1\"]\n[[image]]\nname = \"b1\"\ndepends_on = [\"a1\"]\n",
        )
        .file("Dockerfile", "FROM scratch\n");
    for command in ["plan", "build"] {
        let out = test.run_with([command]);
        out.assert_code(2);
        assert!(out.stderr.contains("cycle: a1 -> b1 -> a1"), "{out}");
    }
}

#[test]
fn push_dry_run_says_what_would_be_pushed_without_a_login() {
    let ns = unique_name("dry");
    let test = project(&ns).env("ECRSHIP_REGISTRY", "127.0.0.1:9");
    test.run_with(["build"]).assert_success();
    // No AWS at all, and a registry address nothing listens on: no network is needed.
    let out = test.run_with(["push", "--dry-run", "--output", "json"]);
    out.assert_success();
    let summary = out.json();
    let app = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "app")
        .expect("a row for app");
    assert_eq!(
        app["would_push"],
        serde_json::json!([
            format!("127.0.0.1:9/{ns}/app:g1"),
            format!("127.0.0.1:9/{ns}/app:latest"),
            format!("127.0.0.1:9/{ns}/app:stable")
        ])
    );
    assert!(app["image_id"].as_str().unwrap().starts_with("sha256:"));
    assert!(
        !test.path("imagedefinitions.json").exists(),
        "a dry-run writes nothing"
    );
    let text = test.run_with(["push", "--dry-run"]);
    text.assert_success();
    assert!(
        text.stdout
            .contains(&format!("app would push 127.0.0.1:9/{ns}/app:g1")),
        "{text}"
    );
    cleanup(&ns);
}
