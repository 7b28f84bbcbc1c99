//! `[image.secrets]`: BuildKit secret mounts, through the real binary and the real daemon. The
//! value reaches the `RUN` step that mounts it, and nothing else: not the image's history, not
//! its layers, not the output at `-vv`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::{Output, Test, docker_api, docker_cli, stack, unique_name};

/// A project with one image, `app`, whose `SKB` secret comes from `SKB_VALUE`; the tag is
/// unique to the test.
fn project(repository: &str, tag: &str, dockerfile: &str) -> Test {
    Test::new()
        .file(".git-commit-hash", format!("{tag}\n"))
        .file(
            "ecrship.toml",
            format!(
                "[[image]]\nname = \"app\"\nrepository = \"{repository}\"\n[image.secrets]\nSKB = {{ env = \"SKB_VALUE\" }}\n"
            ),
        )
        .file("Dockerfile", dockerfile)
}

/// `docker <args>`, which must succeed; its stdout.
fn docker(args: &[&str]) -> Vec<u8> {
    let out = docker_cli().args(args).output().expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The hex SHA-256 of `data`, by `sha256sum` (the value goes through stdin, not an argument).
fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_owned()
}

/// The RUN step saw `value`: the image's `/skb.sha256` holds its hash.
fn assert_run_step_saw(image: &str, value: &str, out: &Output) {
    let inside = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "cat",
        "/skb.sha256",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&inside).trim(),
        sha256_hex(value.as_bytes()),
        "{out}"
    );
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn assert_not_printed(out: &Output, value: &str) {
    assert!(
        !out.stdout.contains(value) && !out.stderr.contains(value),
        "the secret's value is printed\n{out}"
    );
}

fn remove_images(repository: &str, tag: &str) {
    for reference in [
        format!("{repository}:{tag}"),
        format!("{repository}:latest"),
    ] {
        let _ = docker_api("DELETE", &format!("/images/{reference}?force=1"));
    }
}

#[test]
fn a_secret_reaches_its_run_step_and_nothing_else() {
    let base = &stack().base_image;
    let repository = unique_name("secret");
    let tag = unique_name("v");
    let value = format!("skb-{}-never-printed", unique_name("value"));
    let test = project(
        &repository,
        &tag,
        &format!(
            "FROM {base}\nRUN --mount=type=secret,id=SKB sha256sum /run/secrets/SKB | cut -d' ' -f1 > /skb.sha256\n"
        ),
    )
    .env("SKB_VALUE", &value);
    // BuildKit's cache key of a step does not cover its secrets' values: without --no-cache, an
    // earlier run's layer (another value) would be reused.
    let out = test.run_with(["-vv", "build", "--no-cache"]);
    out.assert_success();
    let image = format!("{repository}:{tag}");

    // The RUN step read the value.
    assert_run_step_saw(&image, &value, &out);

    // Nowhere else: not the history, the image config or any layer, nor the output.
    let history = docker(&["history", "--no-trunc", &image]);
    assert!(
        contains(&history, "/run/secrets/SKB"),
        "the step is in the history: {}",
        String::from_utf8_lossy(&history)
    );
    assert!(
        !contains(&history, &value),
        "the value is in the history: {}",
        String::from_utf8_lossy(&history)
    );
    let saved = docker(&["save", &image]);
    assert!(
        saved.len() > 1000,
        "docker save wrote {} bytes",
        saved.len()
    );
    assert!(
        !contains(&saved, &value),
        "the value is in `docker save` output"
    );
    assert!(!contains(&saved, "SKB_VALUE"));
    assert_not_printed(&out, &value);
    // Every secret the build asked for was there: no warning about missing ones.
    assert!(!out.stderr.contains("WARNING"), "{out}");
    remove_images(&repository, &tag);
}

#[test]
fn a_secret_the_dockerfile_requires_but_ecrship_lacks_fails_the_build() {
    let base = &stack().base_image;
    let repository = unique_name("secret-missing");
    let tag = unique_name("v");
    let value = format!("skb-{}-never-printed", unique_name("value"));
    let test = project(
        &repository,
        &tag,
        &format!(
            "FROM {base}\nRUN --mount=type=secret,id=NPM_TOKEN,required=true cat /run/secrets/NPM_TOKEN\n"
        ),
    )
    .env("SKB_VALUE", &value);
    let out = test.run_with(["-vv", "build"]);
    out.assert_code(1);
    assert!(out.stderr.contains("image `app`"), "{out}");
    // BuildKit's own error, and ecrship's hint, both name the secret. BuildKit's wording
    // differs by version: `secret NPM_TOKEN not found` (Docker 20.10 passes on the session's
    // NotFound message), `secret NPM_TOKEN: not found` (Docker 28.5 words it itself).
    assert!(
        out.stderr.contains("secret NPM_TOKEN not found")
            || out.stderr.contains("secret NPM_TOKEN: not found"),
        "BuildKit's error is shown: {out}"
    );
    // Only the Dockerfile's secret: not the HTTP auth ids newer BuildKit asks for by itself.
    assert!(
        out.stderr.contains(
            "hint: the Dockerfile mounts secret `NPM_TOKEN` that ecrship was not given; add it to [image.secrets]"
        ),
        "{out}"
    );
    assert_not_printed(&out, &value);
    remove_images(&repository, &tag);
}

#[test]
fn the_classic_builder_refuses_secrets() {
    let base = &stack().base_image;
    let repository = unique_name("secret-classic");
    let tag = unique_name("v");
    let test = project(
        &repository,
        &tag,
        &format!("FROM {base}\nRUN echo never-built\n"),
    )
    .env("SKB_VALUE", "skb-classic-never-printed");
    let out = test.run_with(["build", "--builder", "classic"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("SKB") && out.stderr.contains("BuildKit"),
        "{out}"
    );
    assert!(
        !out.stderr.contains("never-built"),
        "nothing was built: {out}"
    );
    assert_not_printed(&out, "skb-classic-never-printed");
}

/// Stores a SecureString in moto's SSM through its JSON API.
fn ssm_put_secure(endpoint: &str, name: &str, value: &str) {
    let body = serde_json::json!({ "Name": name, "Value": value, "Type": "SecureString", "Overwrite": true });
    crate::harness::moto_call(endpoint, "ssm", "AmazonSSM.PutParameter", &body.to_string());
}

#[test]
fn an_ssm_secure_string_reaches_the_build_as_a_secret_mount() {
    let base = &stack().base_image;
    let repository = unique_name("secret-ssm");
    let tag = unique_name("v");
    let parameter = format!("/ecrship/{}/SECRET_KEY_BASE", unique_name("p"));
    let value = format!("ssm-{}-never-printed", unique_name("value"));
    ssm_put_secure(&stack().aws_endpoint, &parameter, &value);
    let test = Test::new()
        .file(".git-commit-hash", format!("{tag}\n"))
        .file(
            "ecrship.toml",
            format!("[[image]]\nname = \"app\"\nrepository = \"{repository}\"\n[image.secrets]\nSECRET_KEY_BASE = {{ ssm = \"{parameter}\" }}\n"),
        )
        .file(
            "Dockerfile",
            format!("FROM {base}\nRUN --mount=type=secret,id=SECRET_KEY_BASE sha256sum /run/secrets/SECRET_KEY_BASE | cut -d' ' -f1 > /skb.sha256\n"),
        )
        .moto_env();
    let out = test.run_with(["-vv", "build", "--no-cache"]);
    out.assert_success();
    let image = format!("{repository}:{tag}");
    assert_run_step_saw(&image, &value, &out);
    assert!(!contains(
        &docker(&["history", "--no-trunc", &image]),
        &value
    ));
    assert!(!contains(&docker(&["save", &image]), &value));
    assert_not_printed(&out, &value);

    // `plan` names the source, never the value.
    let plan = test.run_with(["plan", "--output", "json"]);
    plan.assert_success();
    assert!(plan.stdout.contains(&parameter), "{plan}");
    assert_not_printed(&plan, &value);
    remove_images(&repository, &tag);
}

#[test]
fn a_missing_ssm_parameter_is_named() {
    let parameter = format!("/ecrship/{}/nope", unique_name("p"));
    let test = Test::new()
        .file(
            "ecrship.toml",
            format!(
                "[[image]]\nname = \"app\"\n[image.secrets]\nX = {{ ssm = \"{parameter}\" }}\n"
            ),
        )
        .file("Dockerfile", "FROM scratch\n")
        .file("imagedefinitions.json", "previous\n")
        .moto_env();
    let out = test.run_with(["build"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains(&parameter) && out.stderr.contains("does not exist"),
        "{out}"
    );
    assert_eq!(test.read("imagedefinitions.json"), "previous\n");
}
