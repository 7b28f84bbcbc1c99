//! The shipped `buildspec.yml`, executed with CodeBuild's semantics by
//! `tests/codebuild/run_buildspec.py`: its install phase fetches the release tarball of the binary
//! under test from moto's S3 with the AWS CLI and checks its checksum, then `ecrship build` and
//! `ecrship push` run against the real daemon, the stack's registry and moto.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{
    Output, Test, docker_api, docker_host, moto_call, registry_tags, run_command, stack,
    unique_name,
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
