//! The shipped `buildspec.yml`, executed with CodeBuild's semantics by
//! `tests/codebuild/run_buildspec.py`: its install phase fetches the release tarball of the binary
//! under test from moto's S3 with the AWS CLI and checks its checksum, then `ecrship build` and
//! `ecrship push` run against the real daemon, the stack's registry and moto.
//!
//! The batch sample (`buildspec-batch.yml` and the merge job's `buildspec-batch-manifest.yml`)
//! runs as a CodeBuild batch build: the amd64 job, the arm64 job, then the merge job. All three
//! run here, one after another, on this amd64 machine and its daemon; the "ARM" job builds its
//! arm64 images through BuildKit without emulation because their Dockerfiles only COPY.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{
    HttpResponse, Output, Test, basic_auth, docker_api, docker_host, http_request, moto_call,
    registry_digest, registry_tags, run_command, stack, unique_name,
};

const RUNNER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/codebuild/run_buildspec.py"
);
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// The stack's venv (moto, PyYAML, boto3, the AWS CLI).
fn venv() -> PathBuf {
    std::env::var_os("ECRSHIP_TEST_VENV")
        .map(PathBuf::from)
        .expect("ECRSHIP_TEST_VENV: run scripts/test")
}

/// Variables that point the AWS CLI, boto3 and ecrship at moto, with dummy credentials.
fn aws_env(test: &Test) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", stack().aws_endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([
        (
            "AWS_CONFIG_FILE".to_owned(),
            test.path(".aws-none/config").display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
            test.path(".aws-none/credentials").display().to_string(),
        ),
    ])
    .collect()
}

/// A command with a clean environment: PATH (with `bin` and the venv first), HOME, and `env`.
fn clean_command(
    program: impl AsRef<std::ffi::OsStr>,
    bin: &Path,
    env: &[(String, String)],
) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env(
        "PATH",
        format!("{}:{}/bin:{path}", bin.display(), venv().display()),
    );
    for name in ["HOME", "TMPDIR", "LANG"] {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// The binary under test packaged as `scripts/dist` packages a release, uploaded with its
/// `.sha256` to a new bucket of moto's S3. Returns the tarball's `s3://` URI.
fn upload_release(test: &Test, corrupt_checksum: bool) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("ecrship-{version}-{TRIPLE}");
    let stage = test.path(".release");
    std::fs::create_dir_all(stage.join(&name)).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_ecrship"),
        stage.join(&name).join("ecrship"),
    )
    .unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        manifest.join("README.md"),
        stage.join(&name).join("README.md"),
    )
    .unwrap();
    let tarball = format!("{name}.tar.gz");
    let mut tar = Command::new("tar");
    tar.current_dir(&stage)
        .args(["-czf", &tarball, "--owner=0", "--group=0", &name]);
    run_command(tar, None, Duration::from_secs(120)).assert_success();
    let mut sum = Command::new("sha256sum");
    sum.current_dir(&stage).arg(&tarball);
    let mut line = run_command(sum, None, Duration::from_secs(60))
        .assert_success()
        .stdout
        .clone();
    if corrupt_checksum {
        line = format!("{}{}", "0".repeat(64), &line[64..]);
    }
    std::fs::write(stage.join(format!("{tarball}.sha256")), line).unwrap();

    let bucket = unique_name("release");
    let env = aws_env(test);
    let aws = venv().join("bin/aws");
    let uri = format!("s3://{bucket}/ecrship/{tarball}");
    for args in [
        vec!["s3".to_owned(), "mb".into(), format!("s3://{bucket}")],
        vec![
            "s3".into(),
            "cp".into(),
            stage.join(&tarball).display().to_string(),
            uri.clone(),
        ],
        vec![
            "s3".into(),
            "cp".into(),
            stage
                .join(format!("{tarball}.sha256"))
                .display()
                .to_string(),
            format!("{uri}.sha256"),
        ],
    ] {
        let mut cmd = clean_command(&aws, &stage, &env);
        cmd.args(&args);
        run_command(cmd, None, Duration::from_secs(120)).assert_success();
    }
    std::fs::remove_dir_all(&stage).unwrap();
    uri
}

/// A project like the buildspec expects it (its own `ecrship.toml`, repositories unique to the
/// test), with the shipped `buildspec.yml` copied in unchanged.
fn project(app_dockerfile: &str) -> (Test, String, String) {
    let tag = unique_name("t");
    let ns = unique_name("buildspec");
    let mut config = String::new();
    for name in ["app", "web", "log"] {
        config.push_str(&format!(
            "[[image]]\nname = \"{name}\"\nrepository = \"{ns}/{name}\"\ncontext = \"{name}\"\n\n"
        ));
    }
    let base = &stack().base_image;
    let shipped = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/buildspec.yml")).unwrap();
    let mut test = Test::new()
        .file("src/buildspec.yml", shipped)
        .file("src/.git-commit-hash", format!("{tag}\n"))
        .file("src/ecrship.toml", config)
        .dir("bin");
    for name in ["app", "web", "log"] {
        let dockerfile = if name == "app" {
            app_dockerfile.replace("{base}", base)
        } else {
            format!("FROM {base}\nCOPY hello /hello\n")
        };
        test = test
            .file(format!("src/{name}/Dockerfile"), dockerfile)
            .file(format!("src/{name}/hello"), format!("{name} {tag}\n"));
    }
    (test, ns, tag)
}

/// Runs `src/buildspec.yml` of `test` with the runner, on the daemon under test; artifacts land
/// in `artifacts/`.
fn run_buildspec(test: &Test, extra: &[(&str, &str)]) -> Output {
    let mut env = aws_env(test);
    env.push(("DOCKER_HOST".to_owned(), docker_host()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut cmd = clean_command(venv().join("bin/python3"), &test.path("bin"), &env);
    cmd.arg(RUNNER)
        .arg("--src")
        .arg(test.path("src"))
        .arg("--artifacts")
        .arg(test.path("artifacts"));
    run_command(cmd, None, Duration::from_secs(600))
}

/// Removes the test's images from the shared daemon, also when the test fails.
struct Cleanup {
    ns: String,
    tag: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let registry = &stack().registry;
        for name in ["app", "web", "log"] {
            for t in [self.tag.as_str(), "latest"] {
                let ns = &self.ns;
                let _ = docker_api("DELETE", &format!("/images/{ns}/{name}:{t}?force=1"));
                let _ = docker_api(
                    "DELETE",
                    &format!("/images/{registry}/{ns}/{name}:{t}?force=1"),
                );
            }
        }
    }
}

#[test]
fn the_shipped_buildspec_installs_builds_pushes_and_collects_imagedefinitions() {
    let s = stack();
    let (test, ns, tag) = project("FROM {base}\nCOPY hello /hello\n");
    let _cleanup = Cleanup {
        ns: ns.clone(),
        tag: tag.clone(),
    };
    let release = upload_release(&test, false);
    let bin = test.path("bin").display().to_string();
    let out = run_buildspec(
        &test,
        &[
            ("ECRSHIP_RELEASE_S3", &release),
            ("ECRSHIP_INSTALL_DIR", &bin),
            ("ECRSHIP_REGISTRY", &s.registry),
        ],
    );
    out.assert_success();
    assert!(out.stdout.ends_with("Build status: SUCCEEDED\n"), "{out}");
    // The install phase checked the checksum and installed the binary under test where asked.
    assert!(out.stdout.contains("ecrship.tar.gz: OK"), "{out}");
    assert!(
        out.stdout
            .contains(&format!("ecrship {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert_eq!(
        std::fs::read(test.path("bin/ecrship")).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_ecrship")).unwrap()
    );

    let mut want = String::from("[\n");
    for (i, name) in ["app", "web", "log"].iter().enumerate() {
        let sep = if i < 2 { "," } else { "" };
        want.push_str(&format!(
            "  {{\n    \"name\": \"{name}\",\n    \"imageUri\": \"{}/{ns}/{name}:{tag}\"\n  }}{sep}\n",
            s.registry
        ));
        let mut tags = registry_tags(&s.registry, &s.registry_password, &format!("{ns}/{name}"));
        tags.sort();
        let mut expected = vec![tag.clone(), "latest".to_owned()];
        expected.sort();
        assert_eq!(tags, expected, "{name}");
    }
    want.push_str("]\n");
    assert_eq!(test.read("artifacts/imagedefinitions.json"), want);
}

#[test]
fn a_failed_build_phase_runs_post_build_pushes_nothing_and_leaves_no_artifact() {
    let s = stack();
    let (test, ns, tag) = project("FROM {base}\nRUN exit 1\n");
    let _cleanup = Cleanup {
        ns: ns.clone(),
        tag: tag.clone(),
    };
    let release = upload_release(&test, false);
    let bin = test.path("bin").display().to_string();
    let out = run_buildspec(
        &test,
        &[
            ("ECRSHIP_RELEASE_S3", &release),
            ("ECRSHIP_INSTALL_DIR", &bin),
            ("ECRSHIP_REGISTRY", &s.registry),
        ],
    );
    out.assert_code(1);
    // In this order in the log; ecrship's own message is on stderr.
    let order = [
        "Phase complete: BUILD State: FAILED",
        "Entering phase POST_BUILD",
        "Running command ecrship push",
        "Phase complete: POST_BUILD State: FAILED",
        "Entering phase UPLOAD_ARTIFACTS",
        "no matching artifact paths found",
        "Build status: FAILED",
    ];
    let mut rest = out.stdout.as_str();
    for line in order {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order\n{out}"));
        rest = &rest[at + line.len()..];
    }
    assert!(
        out.stderr
            .contains("the build phase failed (CODEBUILD_BUILD_SUCCEEDING=0)"),
        "{out}"
    );
    for name in ["app", "web", "log"] {
        assert!(
            registry_tags(&s.registry, &s.registry_password, &format!("{ns}/{name}")).is_empty(),
            "{name} was pushed"
        );
    }
    assert!(!test.path("artifacts/imagedefinitions.json").exists());
    assert!(!test.path("src/imagedefinitions.json").exists());
}

#[test]
fn a_release_whose_checksum_does_not_match_stops_in_install() {
    let (test, _, _) = project("FROM {base}\nCOPY hello /hello\n");
    let release = upload_release(&test, true);
    let bin = test.path("bin").display().to_string();
    let out = run_buildspec(
        &test,
        &[
            ("ECRSHIP_RELEASE_S3", &release),
            ("ECRSHIP_INSTALL_DIR", &bin),
        ],
    );
    out.assert_code(1);
    assert!(
        out.stdout.contains("Phase complete: INSTALL State: FAILED"),
        "{out}"
    );
    assert!(!out.stdout.contains("Entering phase BUILD"), "{out}");
    assert!(!test.path("bin/ecrship").exists(), "nothing installed");
}

/// The runner itself, on a buildspec of the test's own: the semantics it claims.
#[test]
fn the_runner_follows_codebuild_semantics() {
    let parameter = format!("/{}/DB_PASSWORD", unique_name("runner"));
    moto_call(
        &stack().aws_endpoint,
        "ssm",
        "AmazonSSM.PutParameter",
        &format!(r#"{{"Name":"{parameter}","Value":"s3cr3t-from-ssm","Type":"SecureString"}}"#),
    );
    let spec = format!(
        r#"version: 0.2
env:
  variables:
    GREETING: hello
  parameter-store:
    DB_PASSWORD: {parameter}
phases:
  install:
    commands:
      - echo "install $GREETING $CODEBUILD_BUILD_SUCCEEDING"
      - export CARRIED=yes
      - mkdir -p out && cd out
  pre_build:
    commands:
      - echo "pre_build in $(basename "$PWD") carried=$CARRIED password=$DB_PASSWORD"
  build:
    commands:
      - echo result > result.txt
      - exit 7
      - echo never runs
  post_build:
    commands:
      - echo "post_build succeeding=$CODEBUILD_BUILD_SUCCEEDING"
artifacts:
  files:
    - out/result.txt
"#
    );
    let test = Test::new().file("src/buildspec.yml", &spec).dir("bin");
    let out = run_buildspec(&test, &[]);
    out.assert_code(1);
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("[Container] Running command"))
        .collect();
    assert_eq!(
        lines,
        [
            "[Container] Processing environment variables",
            "[Container] Entering phase INSTALL",
            "install hello 1",
            "[Container] Phase complete: INSTALL State: SUCCEEDED",
            "[Container] Entering phase PRE_BUILD",
            "pre_build in out carried=yes password=s3cr3t-from-ssm",
            "[Container] Phase complete: PRE_BUILD State: SUCCEEDED",
            "[Container] Entering phase BUILD",
            "[Container] Command did not exit successfully exit 7 exit status 7",
            "[Container] Phase complete: BUILD State: FAILED",
            "[Container] Entering phase POST_BUILD",
            "post_build succeeding=0",
            "[Container] Phase complete: POST_BUILD State: SUCCEEDED",
            "[Container] Entering phase UPLOAD_ARTIFACTS",
            "[Container] Collected out/result.txt",
            "[Container] Phase complete: UPLOAD_ARTIFACTS State: SUCCEEDED",
            "Build status: FAILED",
        ],
        "{out}"
    );
    assert_eq!(test.read("artifacts/out/result.txt"), "result\n");

    // A missing artifact fails a build that otherwise succeeds.
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo ok\nartifacts:\n  files:\n    - imagedefinitions.json\n";
    let test = Test::new().file("src/buildspec.yml", spec).dir("bin");
    let out = run_buildspec(&test, &[]);
    out.assert_code(1);
    assert!(
        out.stdout
            .contains("CLIENT_ERROR Message: no matching artifact paths found"),
        "{out}"
    );

    // A failed install ends the build: no later phase, no artifacts.
    let spec = "version: 0.2\nphases:\n  install:\n    commands:\n      - false\n  build:\n    commands:\n      - echo never\n";
    let test = Test::new().file("src/buildspec.yml", spec).dir("bin");
    let out = run_buildspec(&test, &[]);
    out.assert_code(1);
    assert!(
        !out.stdout.contains("PRE_BUILD") && !out.stdout.contains("never"),
        "{out}"
    );

    // What the runner does not implement is refused, not ignored.
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo ok\n    finally:\n      - echo f\n";
    let test = Test::new().file("src/buildspec.yml", spec).dir("bin");
    let out = run_buildspec(&test, &[]);
    out.assert_code(2);
    assert!(out.stderr.contains("`finally` is not implemented"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// The batch sample: buildspec-batch.yml, a build graph of an amd64 job, an arm64 job and a merge
// job.

/// A project for the batch sample: the two shipped files copied in unchanged, `app` with
/// platforms linux/amd64 and linux/arm64 and the single-platform `web` (linux/amd64, as it names
/// none), each in a repository of the test's own.
fn batch_project(app_dockerfile: &str, app_files: &[&str]) -> (Test, String, String) {
    let tag = unique_name("t");
    let ns = unique_name("batch");
    let config = format!(
        "[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\ncontext = \"app\"\n\
         platforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
         [[image]]\nname = \"web\"\nrepository = \"{ns}/web\"\ncontext = \"web\"\n"
    );
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut test = Test::new()
        .file(
            "src/buildspec-batch.yml",
            std::fs::read(manifest_dir.join("buildspec-batch.yml")).unwrap(),
        )
        .file(
            "src/buildspec-batch-manifest.yml",
            std::fs::read(manifest_dir.join("buildspec-batch-manifest.yml")).unwrap(),
        )
        .file("src/.git-commit-hash", format!("{tag}\n"))
        .file("src/ecrship.toml", config)
        .file("src/app/Dockerfile", app_dockerfile)
        .file(
            "src/web/Dockerfile",
            "FROM scratch\nCOPY index.html /index.html\n",
        )
        .file("src/web/index.html", format!("web {tag}\n"))
        .dir("bin");
    for name in app_files {
        test = test.file(format!("src/app/{name}"), format!("app {name} {tag}\n"));
    }
    (test, ns, tag)
}

/// Runs `src/buildspec-batch.yml` of `test` as a batch build, with the release of the binary
/// under test, the stack's registry and the daemon under test; artifacts land in `artifacts/`.
fn run_batch_sample(test: &Test) -> Output {
    let release = upload_release(test, false);
    let bin = test.path("bin").display().to_string();
    let mut env = aws_env(test);
    env.extend([
        ("ECRSHIP_RELEASE_S3".to_owned(), release),
        ("ECRSHIP_INSTALL_DIR".to_owned(), bin),
        ("ECRSHIP_REGISTRY".to_owned(), stack().registry.clone()),
        ("DOCKER_HOST".to_owned(), docker_host()),
    ]);
    let mut cmd = clean_command(venv().join("bin/python3"), &test.path("bin"), &env);
    cmd.arg(RUNNER)
        .arg("--batch")
        .arg("--buildspec")
        .arg("buildspec-batch.yml")
        .arg("--src")
        .arg(test.path("src"))
        .arg("--artifacts")
        .arg(test.path("artifacts"));
    run_command(cmd, None, Duration::from_secs(900))
}

/// The `[Batch] ...` lines of a batch run.
fn batch_lines(out: &Output) -> Vec<&str> {
    out.stdout
        .lines()
        .filter(|l| l.starts_with("[Batch] ") || l.starts_with("Batch status: "))
        .collect()
}

/// GET from the stack's registry (user AWS) with an `Accept` header.
fn registry_get(path: &str, accept: &str) -> HttpResponse {
    let s = stack();
    let stream = TcpStream::connect(&s.registry).unwrap();
    let auth = basic_auth("AWS", &s.registry_password);
    let response = http_request(
        stream,
        &s.registry,
        "GET",
        path,
        &[("Authorization", &auth), ("Accept", accept)],
        b"",
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(response.status, 200, "GET {path}: {}", response.text());
    response
}

/// Removes the local images of the test's repositories from the shared daemon.
struct BatchCleanup {
    ns: String,
}

impl Drop for BatchCleanup {
    fn drop(&mut self) {
        let s = stack();
        for name in ["app", "web"] {
            let repo = format!("{}/{name}", self.ns);
            for tag in registry_tags(&s.registry, &s.registry_password, &repo) {
                let _ = docker_api("DELETE", &format!("/images/{repo}:{tag}?force=1"));
                let _ = docker_api(
                    "DELETE",
                    &format!("/images/{}/{repo}:{tag}?force=1", s.registry),
                );
            }
        }
    }
}

#[test]
fn the_batch_sample_builds_each_platform_then_the_merge_job_writes_imagedefinitions() {
    let s = stack();
    let (test, ns, tag) = batch_project("FROM scratch\nCOPY hello /hello\n", &["hello"]);
    let _cleanup = BatchCleanup { ns: ns.clone() };
    let out = run_batch_sample(&test);
    out.assert_success();
    assert_eq!(
        batch_lines(&out),
        [
            "[Batch] Starting build build_amd64 (LINUX_CONTAINER, aws/codebuild/amazonlinux2-x86_64-standard:5.0, BUILD_GENERAL1_MEDIUM, privileged mode)",
            "[Batch] Build build_amd64: SUCCEEDED",
            "[Batch] Starting build build_arm64 (ARM_CONTAINER, aws/codebuild/amazonlinux2-aarch64-standard:3.0, BUILD_GENERAL1_LARGE, privileged mode)",
            "[Batch] Build build_arm64: SUCCEEDED",
            "[Batch] Starting build merge (LINUX_CONTAINER, aws/codebuild/amazonlinux2-x86_64-standard:5.0, BUILD_GENERAL1_SMALL, no privileged mode)",
            "[Batch] Build merge: SUCCEEDED",
            "Batch status: SUCCEEDED",
        ],
        "{out}"
    );
    // Each job installed the release after checking it; the platform jobs wrote no artifact
    // (ecrship says so), and only the merge job, which ran without a Docker daemon, has one.
    assert_eq!(out.stdout.matches("ecrship.tar.gz: OK").count(), 3, "{out}");
    for platform in ["linux/amd64", "linux/arm64"] {
        assert!(
            out.stderr.contains(&format!(
                "only {platform} was built: the artifacts are written by `ecrship manifest`"
            )),
            "{out}"
        );
    }
    let mut uploaded: Vec<String> = std::fs::read_dir(test.path("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    uploaded.sort();
    assert_eq!(uploaded, ["merge"]);
    assert_eq!(
        test.read("artifacts/merge/imagedefinitions.json"),
        format!(
            "[\n  {{\n    \"name\": \"app\",\n    \"imageUri\": \"{r}/{ns}/app:{tag}\"\n  }},\n  \
             {{\n    \"name\": \"web\",\n    \"imageUri\": \"{r}/{ns}/web:{tag}\"\n  }}\n]\n",
            r = s.registry
        )
    );

    // The registry: both platforms under <tag>-<arch>, the list under the tag and latest.
    let mut want = vec![
        tag.clone(),
        format!("{tag}-amd64"),
        format!("{tag}-arm64"),
        "latest".to_owned(),
    ];
    want.sort();
    let app = format!("{ns}/app");
    assert_eq!(registry_tags(&s.registry, &s.registry_password, &app), want);
    let web = format!("{ns}/web");
    let mut want = vec![tag.clone(), "latest".to_owned()];
    want.sort();
    assert_eq!(registry_tags(&s.registry, &s.registry_password, &web), want);
    const LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json, \
                        application/vnd.oci.image.index.v1+json";
    const IMAGE: &str = "application/vnd.docker.distribution.manifest.v2+json, \
                         application/vnd.oci.image.manifest.v1+json";
    let list: serde_json::Value =
        serde_json::from_slice(&registry_get(&format!("/v2/{app}/manifests/{tag}"), LIST).body)
            .unwrap();
    assert_eq!(
        list["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json",
        "{list}"
    );
    let entries = list["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{list}");
    for (entry, arch) in entries.iter().zip(["amd64", "arm64"]) {
        let child = format!("{tag}-{arch}");
        assert_eq!(entry["platform"]["architecture"], arch, "{list}");
        assert_eq!(entry["platform"]["os"], "linux", "{list}");
        assert_eq!(
            entry["digest"].as_str(),
            registry_digest(&s.registry, &s.registry_password, &app, &child).as_deref(),
            "{child}"
        );
        // The image the arm64 job pushed is an arm64 image, by its config.
        let manifest: serde_json::Value = serde_json::from_slice(
            &registry_get(&format!("/v2/{app}/manifests/{child}"), IMAGE).body,
        )
        .unwrap();
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config: serde_json::Value = serde_json::from_slice(
            &registry_get(&format!("/v2/{app}/blobs/{config_digest}"), "*/*").body,
        )
        .unwrap();
        assert_eq!(config["architecture"], arch, "{child}");
    }
    assert_eq!(
        registry_digest(&s.registry, &s.registry_password, &app, "latest"),
        registry_digest(&s.registry, &s.registry_password, &app, &tag),
    );
}

#[test]
fn a_failing_arm64_job_leaves_no_artifact_and_no_list() {
    let s = stack();
    // Only the amd64 build finds its file: the arm64 job fails in its build phase.
    let (test, ns, tag) = batch_project(
        "FROM scratch\nARG TARGETARCH\nCOPY hello-${TARGETARCH} /hello\n",
        &["hello-amd64"],
    );
    let _cleanup = BatchCleanup { ns: ns.clone() };
    let out = run_batch_sample(&test);
    out.assert_code(1);
    assert_eq!(
        batch_lines(&out),
        [
            "[Batch] Starting build build_amd64 (LINUX_CONTAINER, aws/codebuild/amazonlinux2-x86_64-standard:5.0, BUILD_GENERAL1_MEDIUM, privileged mode)",
            "[Batch] Build build_amd64: SUCCEEDED",
            "[Batch] Starting build build_arm64 (ARM_CONTAINER, aws/codebuild/amazonlinux2-aarch64-standard:3.0, BUILD_GENERAL1_LARGE, privileged mode)",
            "[Batch] Build build_arm64: FAILED",
            "[Batch] Build merge: NOT STARTED (build_arm64 did not succeed)",
            "Batch status: FAILED",
        ],
        "{out}"
    );
    assert!(
        out.stderr.contains("hello-arm64"),
        "the arm64 build fails on its missing file\n{out}"
    );
    assert!(!test.path("artifacts/merge").exists(), "{out}");
    assert_eq!(
        std::fs::read_dir(test.path("artifacts")).unwrap().count(),
        0
    );
    // The amd64 half is in, the arm64 half and the list are not.
    let app = format!("{ns}/app");
    assert_eq!(
        registry_tags(&s.registry, &s.registry_password, &app),
        [format!("{tag}-amd64")]
    );
    assert!(registry_digest(&s.registry, &s.registry_password, &app, &tag).is_none());
    assert!(registry_digest(&s.registry, &s.registry_password, &app, "latest").is_none());
}

/// Runs the runner with `args` after `--src src --artifacts artifacts` of `test`.
fn run_runner(test: &Test, args: &[&str]) -> Output {
    let mut cmd = clean_command(venv().join("bin/python3"), &test.path("bin"), &[]);
    cmd.arg(RUNNER)
        .arg("--src")
        .arg(test.path("src"))
        .arg("--artifacts")
        .arg(test.path("artifacts"))
        .args(args);
    run_command(cmd, None, Duration::from_secs(120))
}

/// The runner's batch builds, on a build graph of the test's own.
#[test]
fn the_runner_runs_a_build_graph_as_codebuild_does() {
    let graph = r#"version: 0.2
batch:
  build-graph:
    - identifier: first
      env:
        variables:
          WHO: first-entry
    - identifier: second
      buildspec: second.yml
      depend-on: [first]
      env:
        privileged-mode: false
    - identifier: flaky
      ignore-failure: true
      env:
        variables:
          FAIL: "yes"
    - identifier: after_flaky
      depend-on: [flaky]
    - identifier: after_second
      depend-on: [second]
      env:
        variables:
          FAIL: "yes"
    - identifier: last
      depend-on: [after_second]
env:
  variables:
    WHO: buildspec
    KEPT: buildspec
phases:
  build:
    commands:
      - echo "$CODEBUILD_BATCH_BUILD_IDENTIFIER who=$WHO kept=$KEPT saw=$(cat mark.txt 2>/dev/null || echo nothing)"
      - echo "$CODEBUILD_BATCH_BUILD_IDENTIFIER" > mark.txt
      - test -z "$FAIL"
artifacts:
  files:
    - mark.txt
"#;
    let second = r#"version: 0.2
phases:
  build:
    commands:
      - echo "second who=$WHO kept=${KEPT:-unset} daemon=$(test -S "${DOCKER_HOST#unix://}" && echo yes || echo no)"
"#;
    let test = Test::new()
        .file("src/buildspec.yml", graph)
        .file("src/second.yml", second)
        .dir("bin");
    let out = run_runner(&test, &["--batch", "--env", "WHO=project"]);
    out.assert_code(1);
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("[Container]"))
        .collect();
    assert_eq!(
        lines,
        [
            // In depend-on order; the graph entry's variables win over the project's, which win
            // over the buildspec's.
            "[Batch] Starting build first",
            "first who=first-entry kept=buildspec saw=nothing",
            "[Batch] Build first: SUCCEEDED",
            // Its own buildspec (so not the batch buildspec's variables), its own copy of the
            // source (first's mark.txt is not there), no Docker daemon without privileged mode.
            "[Batch] Starting build second (no privileged mode)",
            "second who=project kept=unset daemon=no",
            "[Batch] Build second: SUCCEEDED",
            "[Batch] Starting build flaky",
            "flaky who=project kept=buildspec saw=nothing",
            "[Batch] Build flaky: FAILED",
            // A failure that may be ignored does not block what depends on it...
            "[Batch] Starting build after_flaky",
            "after_flaky who=project kept=buildspec saw=nothing",
            "[Batch] Build after_flaky: SUCCEEDED",
            "[Batch] Starting build after_second",
            "after_second who=project kept=buildspec saw=nothing",
            "[Batch] Build after_second: FAILED",
            // ...any other does, and fails the batch.
            "[Batch] Build last: NOT STARTED (after_second did not succeed)",
            "Batch status: FAILED",
        ],
        "{out}"
    );
    // Each build's artifacts under its identifier; second's buildspec has none.
    for job in ["first", "flaky", "after_flaky", "after_second"] {
        assert_eq!(
            test.read(format!("artifacts/{job}/mark.txt")),
            format!("{job}\n")
        );
    }
    assert!(!test.path("artifacts/second").exists());
    assert!(!test.path("artifacts/last").exists());

    // fast-fail: nothing starts after a failure.
    let test = Test::new()
        .file(
            "src/buildspec.yml",
            graph
                .replace("batch:\n", "batch:\n  fast-fail: true\n")
                .replace(
                    "WHO: first-entry",
                    "WHO: first-entry\n          FAIL: \"yes\"",
                ),
        )
        .file("src/second.yml", second)
        .dir("bin");
    let out = run_runner(&test, &["--batch"]);
    out.assert_code(1);
    assert_eq!(
        batch_lines(&out),
        [
            "[Batch] Starting build first",
            "[Batch] Build first: FAILED",
            "[Batch] Build second: NOT STARTED (first did not succeed)",
            "[Batch] Build flaky: NOT STARTED (fast-fail stopped the batch)",
            "[Batch] Build after_flaky: NOT STARTED (flaky did not succeed)",
            "[Batch] Build after_second: NOT STARTED (second did not succeed)",
            "[Batch] Build last: NOT STARTED (after_second did not succeed)",
            "Batch status: FAILED",
        ],
        "{out}"
    );

    // An identifier CodeBuild rejects fails the batch before any build starts.
    let test = Test::new()
        .file(
            "src/buildspec.yml",
            graph.replace("identifier: first\n", "identifier: build-first\n"),
        )
        .file("src/second.yml", second)
        .dir("bin");
    let out = run_runner(&test, &["--batch"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("BATCH_SPEC_VALIDATION_ERROR Message: build identifier `build-first` must contain only alphanumeric characters and underscores"),
        "{out}"
    );
    assert!(!out.stdout.contains("Starting build"), "{out}");

    // What the runner does not implement is refused, not ignored; so is a batch buildspec run
    // as a single build.
    let test = Test::new()
        .file(
            "src/buildspec.yml",
            graph.replace("build-graph:", "build-list:"),
        )
        .dir("bin");
    let out = run_runner(&test, &["--batch"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("batch kind `build-list` is not implemented"),
        "{out}"
    );
    let test = Test::new().file("src/buildspec.yml", graph).dir("bin");
    let out = run_runner(&test, &[]);
    out.assert_code(2);
    assert!(out.stderr.contains("runs with --batch"), "{out}");
}
