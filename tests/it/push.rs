//! `build` then `push`, as the buildspec's two phases run, against the real daemon, Debian's
//! docker-registry (htpasswd user AWS) and moto's ECR.

use crate::harness::{
    Registry, Test, docker_api, registry_digest, registry_tags, stack, unique_name,
};

/// Three images in repositories unique to the test (the registry is shared by all tests).
fn project(prefix: &str) -> (Test, String, String) {
    let tag = unique_name("t");
    let ns = unique_name(prefix);
    let base = &stack().base_image;
    let mut config = String::new();
    for name in ["app", "web", "log"] {
        config.push_str(&format!(
            "[[image]]\nname = \"{name}\"\nrepository = \"{ns}/{name}\"\ncontext = \"{name}\"\n\n"
        ));
    }
    let mut test = Test::new()
        .file(".git-commit-hash", format!("{tag}\n"))
        .file("ecrship.toml", config);
    for name in ["app", "web", "log"] {
        test = test
            .file(
                format!("{name}/Dockerfile"),
                format!("FROM {base}\nCOPY hello /hello\n"),
            )
            .file(format!("{name}/hello"), format!("{name} {tag}\n"));
    }
    (test, ns, tag)
}

fn cleanup(ns: &str, tag: &str, registry: &str) {
    for name in ["app", "web", "log"] {
        for t in [tag, "latest"] {
            let _ = docker_api("DELETE", &format!("/images/{ns}/{name}:{t}?force=1"));
            let _ = docker_api(
                "DELETE",
                &format!("/images/{registry}/{ns}/{name}:{t}?force=1"),
            );
        }
    }
}

#[test]
fn build_then_push_fills_the_registry_and_writes_the_artifact() {
    let s = stack();
    let (test, ns, tag) = project("push");
    let test = test.moto_env().env("ECRSHIP_REGISTRY", &s.registry);
    test.run_with(["build"]).assert_success();
    let out = test.run_with(["-vv", "push", "--output", "json"]);
    out.assert_success();
    // The credentials came from moto's GetAuthorizationToken (the registry accepts no other
    // password), and the password is printed nowhere, even at -vv.
    assert!(
        !out.stdout.contains(&s.registry_password) && !out.stderr.contains(&s.registry_password),
        "{out}"
    );

    let mut want = String::from("[\n");
    for (i, name) in ["app", "web", "log"].iter().enumerate() {
        let mut tags = registry_tags(&s.registry, &s.registry_password, &format!("{ns}/{name}"));
        tags.sort();
        let mut expected = vec![tag.clone(), "latest".to_owned()];
        expected.sort();
        assert_eq!(tags, expected, "{name} holds the tag and latest");
        let sep = if i < 2 { "," } else { "" };
        want.push_str(&format!(
            "  {{\n    \"name\": \"{name}\",\n    \"imageUri\": \"{}/{ns}/{name}:{tag}\"\n  }}{sep}\n",
            s.registry
        ));
    }
    want.push_str("]\n");
    assert_eq!(test.read("imagedefinitions.json"), want);

    // The summary reports the digest the registry holds.
    let summary = out.json();
    let digest = summary["images"][0]["digest"]
        .as_str()
        .expect("a digest")
        .to_owned();
    let stored = registry_digest(
        &s.registry,
        &s.registry_password,
        &format!("{ns}/app"),
        &tag,
    );
    assert_eq!(Some(digest.clone()), stored);

    // Pushing the same tag again succeeds, with the same digest.
    let again = test.run_with(["push", "--pin-digest"]);
    again.assert_success();
    assert!(
        test.read("imagedefinitions.json")
            .contains(&format!("{}/{ns}/app@{digest}", s.registry)),
        "--pin-digest writes repo@digest"
    );
    cleanup(&ns, &tag, &s.registry);
}

#[test]
fn a_failed_build_phase_pushes_nothing() {
    let s = stack();
    let (test, ns, tag) = project("stale");
    let test = test
        .moto_env()
        .env("ECRSHIP_REGISTRY", &s.registry)
        .file("imagedefinitions.json", "previous\n");
    test.run_with(["build"]).assert_success();
    let out = test.run_with_env(["push"], [("CODEBUILD_BUILD_SUCCEEDING", "0")]);
    out.assert_code(1);
    assert!(out.stderr.contains("CODEBUILD_BUILD_SUCCEEDING=0"), "{out}");
    assert!(registry_tags(&s.registry, &s.registry_password, &format!("{ns}/app")).is_empty());
    assert_eq!(test.read("imagedefinitions.json"), "previous\n");
    cleanup(&ns, &tag, &s.registry);
}

#[test]
fn a_registry_that_refuses_the_password_is_not_retried() {
    let s = stack();
    let refusing = Registry::start("not-the-ecr-password");
    let (test, ns, tag) = project("unauth");
    let test = test
        .moto_env()
        .env("ECRSHIP_REGISTRY", refusing.addr())
        .file("imagedefinitions.json", "previous\n");
    test.run_with(["build", "app"]).assert_success();
    let out = test.run_with(["push", "app"]);
    out.assert_code(1);
    assert!(out.stderr.contains("unauthorized"), "{out}");
    assert!(
        out.stderr.contains(refusing.addr()),
        "names the registry: {out}"
    );
    assert!(
        !out.stderr.contains("retrying"),
        "auth failures are not retried: {out}"
    );
    assert_eq!(test.read("imagedefinitions.json"), "previous\n");
    cleanup(&ns, &tag, refusing.addr());
    let _ = s;
}

#[test]
fn a_registry_that_is_down_fails_after_bounded_retries() {
    let mut down = Registry::start("123456789012-auth-token");
    let addr = down.addr().to_owned();
    down.stop();
    let (test, ns, tag) = project("down");
    let test = test.moto_env().env("ECRSHIP_REGISTRY", &addr);
    test.run_with(["build", "web"]).assert_success();
    let out = test.run_with(["push", "web"]);
    out.assert_code(1);
    assert!(out.stderr.contains(&addr), "names the registry: {out}");
    assert!(
        out.stderr.contains("retrying"),
        "transient failures are retried: {out}"
    );
    assert!(!test.path("imagedefinitions.json").exists());
    cleanup(&ns, &tag, &addr);
}

#[test]
fn push_without_region_or_build_exits_1() {
    let s = stack();
    let (test, ns, tag) = project("noregion");
    let out = test
        .moto_env()
        .env_remove("AWS_REGION")
        .env("ECRSHIP_REGISTRY", &s.registry)
        .run_with(["push"]);
    // The region is checked before anything is pushed.
    let _ = (&ns, &tag);
    out.assert_code(1);
    assert!(out.stderr.contains("AWS_REGION"), "{out}");

    let (test, _, tag) = project("unbuilt");
    let out = test
        .moto_env()
        .env("ECRSHIP_REGISTRY", &s.registry)
        .run_with(["push"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("is not built here; run `ecrship build` first"),
        "{out}"
    );
    assert!(out.stderr.contains(&tag), "{out}");
}

#[test]
fn release_builds_and_pushes_in_one_process() {
    let s = stack();
    let (test, ns, tag) = project("release");
    let test = test.moto_env().env("ECRSHIP_REGISTRY", &s.registry);
    let out = test.run_with(["release", "web"]);
    out.assert_success();
    assert_eq!(
        registry_tags(&s.registry, &s.registry_password, &format!("{ns}/web")).len(),
        2,
        "{out}"
    );
    assert!(
        test.read("imagedefinitions.json")
            .contains(&format!("{ns}/web:{tag}"))
    );
    cleanup(&ns, &tag, &s.registry);
}

/// moto's ECR repositories, through its JSON API.
fn ecr_repositories(endpoint: &str) -> String {
    let target = "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories";
    crate::harness::moto_call(endpoint, "ecr", target, "{}")
}

#[test]
fn create_repositories_creates_what_is_missing() {
    let s = stack();
    let (test, ns, tag) = project("create");
    let test = test.moto_env().env("ECRSHIP_REGISTRY", &s.registry);
    assert!(!ecr_repositories(&s.aws_endpoint).contains(&format!("{ns}/log")));
    let out = test.run_with(["release", "log", "--create-repositories"]);
    out.assert_success();
    assert!(
        ecr_repositories(&s.aws_endpoint).contains(&format!("\"{ns}/log\"")),
        "{out}"
    );
    // A second run finds it there: no error.
    test.run_with(["push", "log", "--create-repositories"])
        .assert_success();
    cleanup(&ns, &tag, &s.registry);
}
