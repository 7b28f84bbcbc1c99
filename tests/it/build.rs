//! `build` and `release --dry-run` against the real daemon.

use crate::harness::{Test, docker_api, docker_cli, stack, unique_name};

/// A project shaped like the seed: app from the root context with its Dockerfile under
/// dockerfiles/app, web and log in their own contexts; no config. The tag is unique to the test.
fn seed_project(tag: &str) -> Test {
    let base = &stack().base_image;
    Test::new()
        .file(".git-commit-hash", format!("{tag}\n"))
        .file(".dockerignore", "target\n.git\n")
        .file("target/big.bin", "build output that must not reach the daemon")
        .file("lib/app.ex", "defmodule App do end\n")
        .file(
            "dockerfiles/app/Dockerfile",
            format!("FROM {base}\nARG MIX_ENV\nRUN echo \"mix_env=$MIX_ENV\" > /mix_env\nCOPY lib /app/lib\n"),
        )
        .file("dockerfiles/web/Dockerfile", format!("FROM {base}\nCOPY index.html /www/index.html\n"))
        .file("dockerfiles/web/index.html", "<p>web</p>\n")
        .file("dockerfiles/log/Dockerfile", format!("FROM {base}\nCOPY fluent.conf /etc/fluent.conf\n"))
        .file("dockerfiles/log/fluent.conf", "[SERVICE]\n")
}

/// Runs a command in a throwaway container of `image` and returns its stdout.
fn run_in(image: &str, script: &str) -> String {
    let out = docker_cli()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker run {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image_exists(reference: &str) -> bool {
    let response = docker_api("GET", &format!("/images/{reference}/json")).expect("docker api");
    response.status == 200
}

/// Removes what a seed-layout build left on the daemon: `<repo>:<tag>` and the `latest` it
/// also tags locally. A build cancelled by another's failure can still be tagged by the daemon
/// after ecrship exits: the removal is tried again for a few seconds.
fn remove_images(tag: &str) {
    for attempt in 0..10 {
        let mut left = false;
        for repo in ["app", "web", "log"] {
            for name in [format!("{repo}:{tag}"), format!("{repo}:latest")] {
                let _ = docker_api("DELETE", &format!("/images/{name}?force=1"));
                left |= name.ends_with(tag) && image_exists(&name);
            }
        }
        if !left && attempt > 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn release_dry_run_builds_the_seed_layout() {
    let tag = unique_name("dry");
    let test = seed_project(&tag).env("MIX_ENV", "staging").env(
        "ECRSHIP_REGISTRY",
        "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com",
    );
    let out = test.run_with(["release", "--dry-run"]);
    out.assert_success();
    for repo in ["app", "web", "log"] {
        assert!(
            image_exists(&format!("{repo}:{tag}")),
            "{repo}:{tag} is tagged locally: {out}"
        );
        assert!(
            out.stderr.contains(&format!("[{repo}]")),
            "log lines carry the image: {out}"
        );
    }
    assert_eq!(
        run_in(&format!("app:{tag}"), "cat /mix_env"),
        "mix_env=staging\n"
    );
    assert_eq!(run_in(&format!("app:{tag}"), "ls /app/lib"), "app.ex\n");
    let r = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com";
    let want = format!(
        "[\n  {{\n    \"name\": \"app\",\n    \"imageUri\": \"{r}/app:{tag}\"\n  }},\n  {{\n    \"name\": \"web\",\n    \"imageUri\": \"{r}/web:{tag}\"\n  }},\n  {{\n    \"name\": \"log\",\n    \"imageUri\": \"{r}/log:{tag}\"\n  }}\n]\n"
    );
    assert_eq!(test.read("imagedefinitions.json"), want);
    // The summary names every image with its id.
    for repo in ["app", "web", "log"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(repo) && l.contains(&tag)),
            "{out}"
        );
    }
    remove_images(&tag);
}

#[test]
fn labels_carry_the_revision_and_the_build_arn() {
    let tag = unique_name("labels");
    let test = seed_project(&tag)
        .env(
            "CODEBUILD_BUILD_ARN",
            "arn:aws:codebuild:us-east-1:123456789012:build/p:1",
        )
        .env("SOURCE_DATE_EPOCH", "1798761599");
    test.run_with(["build", "web"]).assert_success();
    let response = docker_api("GET", &format!("/images/web:{tag}/json")).unwrap();
    let inspect: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let labels = &inspect["Config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.revision"], tag.as_str());
    assert_eq!(
        labels["com.amazonaws.codebuild.build-arn"],
        "arn:aws:codebuild:us-east-1:123456789012:build/p:1"
    );
    assert_eq!(
        labels["org.opencontainers.image.created"], "2026-12-31T23:59:59Z",
        "from SOURCE_DATE_EPOCH"
    );
    assert!(
        !image_exists(&format!("app:{tag}")),
        "only the named image is built"
    );
    remove_images(&tag);
}

#[test]
fn a_failing_step_names_the_image_and_keeps_the_artifact() {
    for builder in ["buildkit", "classic"] {
        let tag = unique_name("fail");
        let base = &stack().base_image;
        let test = seed_project(&tag)
            .file(
                "dockerfiles/web/Dockerfile",
                format!("FROM {base}\nRUN echo about to fail; exit 3\n"),
            )
            .file("imagedefinitions.json", "previous\n");
        let out = test.run_with(["release", "--dry-run", "--builder", builder]);
        out.assert_code(1);
        assert!(out.stderr.contains("image `web`"), "{builder}: {out}");
        let daemon_error = out.stderr.contains("returned a non-zero code: 3")
            || out.stderr.contains("exit code: 3");
        assert!(
            daemon_error,
            "{builder}: the daemon's error is shown: {out}"
        );
        assert!(
            out.stderr.contains("about to fail"),
            "{builder}: the log's tail is shown: {out}"
        );
        assert_eq!(
            test.read("imagedefinitions.json"),
            "previous\n",
            "{builder}"
        );
        remove_images(&tag);
    }
}

#[test]
fn both_builders_build_the_same_project() {
    for builder in ["classic", "buildkit"] {
        let tag = unique_name(builder);
        let test = seed_project(&tag)
            .env("MIX_ENV", builder)
            .env("ECRSHIP_BUILDER", builder);
        let out = test.run_with(["release", "--dry-run"]);
        out.assert_success();
        assert_eq!(
            run_in(&format!("app:{tag}"), "cat /mix_env"),
            format!("mix_env={builder}\n")
        );
        assert_eq!(
            run_in(&format!("web:{tag}"), "cat /www/index.html"),
            "<p>web</p>\n"
        );
        remove_images(&tag);
    }
}

#[test]
fn buildkit_cache_mounts_work() {
    let tag = unique_name("cache");
    let base = &stack().base_image;
    let test = seed_project(&tag).file(
        "dockerfiles/log/Dockerfile",
        format!("FROM {base}\nRUN --mount=type=cache,target=/cache echo cached > /cache/x && cp /cache/x /x\n"),
    );
    test.run_with(["build", "log"]).assert_success();
    assert_eq!(run_in(&format!("log:{tag}"), "cat /x"), "cached\n");
    remove_images(&tag);
}

/// Overlap is read from the logs: both waiting steps start before either finishes.
#[test]
fn builds_run_at_the_same_time() {
    let tag = unique_name("overlap");
    let base = &stack().base_image;
    let test = seed_project(&tag)
        .file(
            "dockerfiles/web/Dockerfile",
            format!("FROM {base}\nRUN echo web-start && sleep 3 && echo web-end\n"),
        )
        .file(
            "dockerfiles/log/Dockerfile",
            format!("FROM {base}\nRUN echo log-start && sleep 3 && echo log-end\n"),
        );
    let out = test.run_with(["build", "web", "log", "--no-cache"]);
    out.assert_success();
    let position = |needle: &str| {
        out.stderr
            .lines()
            .position(|l| l.contains(needle) && !l.contains("RUN"))
            .unwrap_or_else(|| panic!("`{needle}` not in the log: {out}"))
    };
    let first_end = position("web-end").min(position("log-end"));
    assert!(
        position("web-start") < first_end && position("log-start") < first_end,
        "{out}"
    );
    remove_images(&tag);
}

#[test]
fn unreachable_daemon_exits_1() {
    let test = seed_project("unreachable")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .file("imagedefinitions.json", "previous\n");
    let out = test.run_with(["release", "--dry-run"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("cannot reach the Docker daemon at unix:///nonexistent/docker.sock"),
        "{out}"
    );
    assert_eq!(test.read("imagedefinitions.json"), "previous\n");
}

#[test]
fn unset_required_build_arg_is_bad_input() {
    let tag = unique_name("unset");
    let test = seed_project(&tag).file(
        "ecrship.toml",
        "[[image]]\nname = \"app\"\ndockerfile = \"dockerfiles/app/Dockerfile\"\n[image.build_args]\nMIX_ENV = { env = \"MIX_ENV_FOR_TEST\" }\n",
    );
    let out = test.run_with(["build"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("MIX_ENV_FOR_TEST") && out.stderr.contains("image `app`"),
        "{out}"
    );
}
