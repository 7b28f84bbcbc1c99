//! `ecrship source`, the GitLab side: a repository made with the real `git`, zipped and put in
//! moto's S3 with versioning on, then read back by independent readers (Python's `zipfile`,
//! Info-ZIP's `unzip`) and unpacked, where the build side (`ecrship tag`, `ecrship plan`) must
//! find the same commit.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::harness::{HttpResponse, Moto, Output, Test, http_request, stack, unique_name};

// ---------------------------------------------------------------------------------------------
// moto's S3 and IAM, by raw HTTP (moto checks no signature until its auth is turned on).

/// One S3 REST call, path-style, on a moto server.
fn s3(endpoint: &str, method: &str, path: &str, body: &[u8]) -> HttpResponse {
    let addr = endpoint.trim_start_matches("http://");
    let stream = std::net::TcpStream::connect(addr).expect("connect to moto");
    let auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
    http_request(stream, addr, method, path, &[("Authorization", auth)], body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// A bucket of the test's own; versioning `Enabled`, `Suspended`, or never set (`None`).
fn bucket(endpoint: &str, versioning: Option<&str>) -> String {
    let name = unique_name("src");
    let r = s3(endpoint, "PUT", &format!("/{name}"), b"");
    assert_eq!(r.status, 200, "create bucket: {}", r.text());
    if let Some(status) = versioning {
        let body = format!(
            "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>{status}</Status></VersioningConfiguration>"
        );
        let r = s3(
            endpoint,
            "PUT",
            &format!("/{name}?versioning"),
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "put versioning: {}", r.text());
    }
    name
}

/// The bytes of one version of an object; `None` when there is no such object.
fn object(endpoint: &str, bucket: &str, key: &str, version: Option<&str>) -> Option<Vec<u8>> {
    let path = match version {
        Some(v) => format!("/{bucket}/{key}?versionId={v}"),
        None => format!("/{bucket}/{key}"),
    };
    let r = s3(endpoint, "GET", &path, b"");
    match r.status {
        200 => Some(r.body),
        404 => None,
        s => panic!("GET {path}: HTTP {s}: {}", r.text()),
    }
}

/// One IAM query-protocol call on a moto server; the response text.
fn iam(endpoint: &str, params: &[(&str, &str)]) -> String {
    let addr = endpoint.trim_start_matches("http://");
    let stream = std::net::TcpStream::connect(addr).expect("connect to moto");
    let mut body = String::from("Version=2010-05-08");
    for (k, v) in params {
        body.push_str(&format!("&{k}={}", form_encode(v)));
    }
    let auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";
    let r = http_request(
        stream,
        addr,
        "POST",
        "/",
        &[
            ("Authorization", auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
    .expect("IAM call");
    assert_eq!(r.status, 200, "IAM {params:?}: {}", r.text());
    r.text()
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of the first `<tag>` element.
fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = start + xml[start..].find('<').unwrap();
    xml[start..end].to_owned()
}

/// An IAM user with `policy` inline; its access key id and secret.
fn iam_user(endpoint: &str, policy: &str) -> (String, String) {
    let user = unique_name("uploader");
    iam(endpoint, &[("Action", "CreateUser"), ("UserName", &user)]);
    iam(
        endpoint,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", &user),
            ("PolicyName", "source"),
            ("PolicyDocument", policy),
        ],
    );
    let key = iam(
        endpoint,
        &[("Action", "CreateAccessKey"), ("UserName", &user)],
    );
    (
        xml_value(&key, "AccessKeyId"),
        xml_value(&key, "SecretAccessKey"),
    )
}

// ---------------------------------------------------------------------------------------------
// A repository made with the real git.

/// `git <args>` in `dir` with no global or system config and fixed identities and dates.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("GIT_AUTHOR_DATE", "2024-02-29T12:34:56Z")
        .env("GIT_COMMITTER_DATE", "2024-02-29T12:34:56Z")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The project: an `app` image, sources the seed would list, a script, a link, a test folder,
/// and files git does not track (untracked, ignored). `[source]` lists what goes in.
const CONFIG: &str = r#"[tag]
length = 10

[[image]]
name = "app"
dockerfile = "dockerfiles/app/Dockerfile"

[source]
include = [
  ".dockerignore",
  "dockerfiles",
  "mix.exs",
  "lib",
  "bin",
  "current",
  "ecrship.toml",
]
exclude = ["lib/test"]
"#;

/// The files in the zip of [`project`], with their modes, in the zip's order (bytes of the path).
const ZIPPED: &[(&str, u32)] = &[
    (".dockerignore", 0o100644),
    (".git-commit-hash", 0o100644),
    ("bin/migrate", 0o100755),
    ("current", 0o120777),
    ("dockerfiles/app/Dockerfile", 0o100644),
    ("ecrship.toml", 0o100644),
    ("lib/app.ex", 0o100644),
    ("lib/app/web.ex", 0o100644),
    ("mix.exs", 0o100644),
];

/// A committed repository; the harness test and the full commit id.
fn project() -> (Test, String) {
    let test = Test::new()
        .file("ecrship.toml", CONFIG)
        .file(".dockerignore", "_build\n")
        .file(".gitignore", "_build/\n*.secret\n")
        .file("dockerfiles/app/Dockerfile", "FROM scratch\nCOPY . /app\n")
        .file("mix.exs", "defmodule App.MixProject do\nend\n")
        .file("lib/app.ex", "defmodule App do\nend\n".repeat(50))
        .file("lib/app/web.ex", "defmodule App.Web do\nend\n")
        .file("lib/test/app_test.exs", "defmodule AppTest do\nend\n")
        .file("bin/migrate", "#!/bin/sh\necho migrated\n")
        .file("README.md", "not listed\n")
        .env_remove("CI_COMMIT_SHA")
        .env_remove("GITHUB_SHA")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    let root = test.root();
    std::fs::set_permissions(
        root.join("bin/migrate"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("lib/app.ex", root.join("current")).unwrap();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "first"]);
    // Not tracked: in the work tree, yet never in the zip.
    std::fs::write(root.join("lib/scratch.ex"), "untracked\n").unwrap();
    std::fs::create_dir_all(root.join("_build")).unwrap();
    std::fs::write(root.join("_build/app.beam"), "ignored\n").unwrap();
    std::fs::write(root.join("lib/db.secret"), "ignored\n").unwrap();
    let commit = git(root, &["rev-parse", "HEAD"]);
    (test, commit)
}

fn source_json(out: &Output) -> serde_json::Value {
    out.assert_success();
    out.json()
}

/// Entries of a zip as Python's `zipfile` reads them: `name mode size` per line, and the
/// contents of the commit file and of links.
fn python_listing(zip: &Path) -> String {
    let script = r#"
import stat, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    assert z.testzip() is None, "a CRC does not match"
    for i in z.infolist():
        mode = i.external_attr >> 16
        line = "%s %o %d" % (i.filename, mode, i.file_size)
        if stat.S_ISLNK(mode) or i.filename == ".git-commit-hash":
            line += " %r" % z.read(i).decode()
        print(line)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python zipfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn unzip(args: &[&str], zip: &Path) -> String {
    let out = Command::new("unzip")
        .args(args)
        .arg(zip)
        .output()
        .expect("run unzip (Debian's unzip; scripts/stack installs it)");
    assert!(
        out.status.success(),
        "unzip {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_zip_in_s3_holds_the_listed_files_and_the_commit_for_the_build_side() {
    let moto = &stack().aws_endpoint;
    let (test, commit) = project();
    let bucket = bucket(moto, Some("Enabled"));
    let key = "app/src.zip";
    let test = test.moto_env();
    let out = test.run_with([
        "source", "--bucket", &bucket, "--key", key, "--output", "json",
    ]);
    let report = source_json(&out);
    let version = report["upload"]["version_id"]
        .as_str()
        .expect("a version id");
    assert_eq!(report["commit"]["id"], commit.as_str());
    assert_eq!(report["commit"]["tag"], &commit[..10], "[tag] length = 10");
    assert_eq!(report["commit"]["from"], "HEAD");
    assert_eq!(report["files"], ZIPPED.len());
    assert_eq!(report["upload"]["versioning_checked"], true);

    // The object, read back from S3 by its version.
    let bytes = object(moto, &bucket, key, Some(version)).expect("the uploaded version");
    assert_eq!(report["size"], bytes.len());
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("src.zip");
    std::fs::write(&zip, &bytes).unwrap();

    // Python's zipfile: exactly the listed files and the commit file, modes and the link kept.
    let mut want = String::new();
    for (name, mode) in ZIPPED {
        let size = std::fs::symlink_metadata(test.path(name)).map_or(11, |m| m.len());
        want.push_str(&format!("{name} {mode:o} {size}"));
        match *name {
            ".git-commit-hash" => want.push_str(&format!(" '{}\\n'", &commit[..10])),
            "current" => want.push_str(" 'lib/app.ex'"),
            _ => {}
        }
        want.push('\n');
    }
    assert_eq!(python_listing(&zip), want);

    // Info-ZIP's unzip: every CRC checks; unpacked, the script runs and the link is a link.
    let tested = unzip(&["-t"], &zip);
    assert!(tested.contains("No errors detected"), "{tested}");
    let unpacked = dir.path().join("unpacked");
    unzip(&["-q", "-d", unpacked.to_str().unwrap()], &zip);
    let script = unpacked.join("bin/migrate");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o111,
        0o111,
        "bin/migrate stays executable: {mode:o}"
    );
    let ran = Command::new(&script).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "migrated\n");
    assert_eq!(
        std::fs::read_link(unpacked.join("current")).unwrap(),
        Path::new("lib/app.ex")
    );
    assert!(
        !unpacked.join("lib/scratch.ex").exists(),
        "untracked file zipped"
    );
    assert!(!unpacked.join("_build").exists(), "ignored file zipped");
    assert!(
        !unpacked.join("lib/test").exists(),
        "excluded folder zipped"
    );
    assert!(!unpacked.join("README.md").exists(), "unlisted file zipped");

    // The round trip: the build side, in the unpacked tree, tags with that commit.
    let build_side = Test::new().env("ECRSHIP_REGISTRY", "127.0.0.1:5000");
    let run_there = |args: &[&str]| {
        let mut cmd = build_side.command();
        cmd.arg("-C").arg(&unpacked).args(args);
        crate::harness::run_command(cmd, None, std::time::Duration::from_secs(60))
    };
    let tag = run_there(&["tag"]);
    tag.assert_success();
    assert_eq!(tag.stdout, format!("{}\n", &commit[..10]));
    let plan = run_there(&["plan", "--output", "json"]);
    plan.assert_success();
    assert_eq!(
        plan.json()["imagedefinitions_json"][0]["imageUri"],
        format!("127.0.0.1:5000/app:{}", &commit[..10]),
        "{plan}"
    );
}

#[test]
fn two_uploads_of_one_commit_are_the_same_bytes() {
    let moto = &stack().aws_endpoint;
    let (test, commit) = project();
    let bucket = bucket(moto, Some("Enabled"));
    // GitLab's variable, as a GitLab job sets it.
    let test = test.moto_env().env("CI_COMMIT_SHA", &commit);
    let args = ["source", "--output", "json"];
    let env = [
        ("ECRSHIP_SOURCE_BUCKET", bucket.clone()),
        ("ECRSHIP_SOURCE_KEY", "src.zip".into()),
    ];
    let first = {
        let mut cmd = test.command();
        cmd.args(args).envs(env.clone());
        source_json(&crate::harness::run_command(
            cmd,
            None,
            crate::harness::DEFAULT_TIMEOUT,
        ))
    };
    assert_eq!(first["commit"]["from"], "CI_COMMIT_SHA");
    // Another checkout of the same commit: other file times, another umask's modes.
    let root = test.root();
    for file in ["mix.exs", "lib/app.ex", "dockerfiles/app/Dockerfile"] {
        std::fs::set_permissions(root.join(file), std::fs::Permissions::from_mode(0o664)).unwrap();
        let f = std::fs::File::options()
            .append(true)
            .open(root.join(file))
            .unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
    }
    let second = {
        let mut cmd = test.command();
        cmd.args(args).envs(env);
        source_json(&crate::harness::run_command(
            cmd,
            None,
            crate::harness::DEFAULT_TIMEOUT,
        ))
    };
    let v1 = first["upload"]["version_id"].as_str().unwrap();
    let v2 = second["upload"]["version_id"].as_str().unwrap();
    assert_ne!(v1, v2, "two versions of the object");
    let b1 = object(moto, &bucket, "src.zip", Some(v1)).unwrap();
    let b2 = object(moto, &bucket, "src.zip", Some(v2)).unwrap();
    assert!(
        b1 == b2,
        "the two uploads differ ({} and {} bytes)",
        b1.len(),
        b2.len()
    );
    assert_eq!(first["upload"]["etag"], second["upload"]["etag"]);
}

#[test]
fn a_bucket_without_versioning_is_exit_1_and_gets_nothing() {
    let moto = &stack().aws_endpoint;
    let (test, _) = project();
    let test = test.moto_env();
    for (versioning, said) in [
        (None, "versioning off (never enabled)"),
        (Some("Suspended"), "versioning suspended"),
    ] {
        let bucket = bucket(moto, versioning);
        let out = test.run_with(["source", "--bucket", &bucket, "--key", "src.zip"]);
        out.assert_code(1);
        assert!(
            out.stderr
                .contains(&format!("bucket `{bucket}` has {said}"))
                && out.stderr.contains("CodePipeline"),
            "{out}"
        );
        assert_eq!(
            out.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1,
            "{out}"
        );
        assert_eq!(
            object(moto, &bucket, "src.zip", None),
            None,
            "something was uploaded"
        );
    }
}

#[test]
fn a_listed_path_that_does_not_exist_is_exit_2_and_uploads_nothing() {
    let moto = &stack().aws_endpoint;
    let (test, _) = project();
    let bucket = bucket(moto, Some("Enabled"));
    let config = CONFIG.replace("  \"current\",\n", "  \"current\",\n  \"priv/static\",\n");
    std::fs::write(test.path("ecrship.toml"), config).unwrap();
    let test = test.moto_env();
    let out = test.run_with(["source", "--bucket", &bucket, "--key", "src.zip"]);
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("error: ecrship.toml line 16: [source] include `priv/static` does not exist"),
        "{out}"
    );
    // Present in the work tree but not tracked is no better: git decides what goes in.
    std::fs::create_dir_all(test.path("priv/static")).unwrap();
    std::fs::write(test.path("priv/static/app.css"), "body {}\n").unwrap();
    let out = test.run_with(["source", "--bucket", &bucket, "--key", "src.zip"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("`priv/static` is not tracked by git"),
        "{out}"
    );
    assert_eq!(
        object(moto, &bucket, "src.zip", None),
        None,
        "something was uploaded"
    );
}

#[test]
fn a_dry_run_writes_the_zip_and_calls_no_aws() {
    let (test, commit) = project();
    // No region, no credentials, no endpoint: any AWS call would fail.
    let out = test.run_with(["source", "--dry-run", "--out", "out/source.zip"]);
    out.assert_code(1); // the folder `out` does not exist
    assert!(out.stderr.contains("out/source.zip"), "{out}");
    std::fs::create_dir(test.path("out")).unwrap();
    let out = test.run_with(["source", "--dry-run", "--out", "out/source.zip"]);
    out.assert_success();
    assert!(out.stdout.contains("dry run: nothing uploaded"), "{out}");
    let listing = python_listing(&test.path("out/source.zip"));
    assert!(
        listing.contains(&format!(
            ".git-commit-hash 100644 11 '{}\\n'",
            &commit[..10]
        )),
        "{listing}"
    );
    assert_eq!(
        std::fs::read_dir(test.path("out")).unwrap().count(),
        1,
        "a temporary file was left beside the zip"
    );
    assert!(!out.stderr.contains("is not in the zip"), "{out}");
    // Without --out, the seed's name in the current folder; never a file git would then zip.
    // Without the config in the zip, CodeBuild would build another layout: a warning says so.
    let config = CONFIG.replace("  \"ecrship.toml\",\n", "");
    std::fs::write(test.path("ecrship.toml"), config).unwrap();
    let out = test.run_with(["source", "--dry-run"]);
    out.assert_success();
    assert!(
        out.stderr
            .contains("warning: `ecrship.toml` is not in the zip"),
        "{out}"
    );
    assert!(test.path("src.zip").is_file());
}

#[test]
fn a_large_zip_goes_up_in_parts_and_comes_back_whole() {
    let moto = &stack().aws_endpoint;
    let (test, _) = project();
    // 20 MiB that deflate cannot shrink: three parts of 8 MiB at most.
    let mut data = vec![0u8; 20 * 1024 * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(test.path("lib/blob.bin"), &data).unwrap();
    git(test.root(), &["add", "lib/blob.bin"]);
    git(test.root(), &["commit", "-q", "-m", "blob"]);
    let bucket = bucket(moto, Some("Enabled"));
    let test = test.moto_env();
    let out = test.run_with([
        "source",
        "--bucket",
        &bucket,
        "--key",
        "big/src.zip",
        "--out",
        "kept.zip",
        "--output",
        "json",
    ]);
    let report = source_json(&out);
    assert_eq!(report["upload"]["parts"], 3, "{out}");
    let version = report["upload"]["version_id"].as_str().unwrap();
    let uploaded = object(moto, &bucket, "big/src.zip", Some(version)).unwrap();
    let kept = std::fs::read(test.path("kept.zip")).unwrap();
    assert!(
        uploaded == kept,
        "the object differs from the zip ({} and {} bytes)",
        uploaded.len(),
        kept.len()
    );
    let tested = unzip(&["-t"], &test.path("kept.zip"));
    assert!(
        tested.contains("lib/blob.bin") && tested.contains("No errors detected"),
        "{tested}"
    );
}

#[test]
fn credentials_and_the_source_policy_against_moto_with_iam_on() {
    // A moto of this test's own: turning IAM checks on is global to a moto server.
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let bucket = bucket(endpoint, Some("Enabled"));
    let (test, _) = project();
    let policy_out = test.run_with_env(
        [
            "policy", "--source", "--bucket", &bucket, "--key", "src.zip",
        ],
        [("AWS_REGION", "us-east-1")],
    );
    policy_out.assert_success();
    let policy = policy_out.stdout.clone();
    let (full_id, full_secret) = iam_user(endpoint, &policy);
    let put_only = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::{bucket}/src.zip"}}]}}"#
    );
    let (seed_id, seed_secret) = iam_user(endpoint, &put_only);
    // From here on moto checks every request's signature and permissions.
    let r = http_request(
        std::net::TcpStream::connect(endpoint.trim_start_matches("http://")).unwrap(),
        endpoint.trim_start_matches("http://"),
        "POST",
        "/moto-api/reset-auth",
        &[],
        b"0",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    // Wrong keys: exit 1 with S3's reason, and no secret in the output.
    let with_keys = |id: &str, secret: &str| {
        let mut cmd = test.command();
        cmd.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .args([
                "source", "--bucket", &bucket, "--key", "src.zip", "--output", "json",
            ]);
        crate::harness::run_command(cmd, None, crate::harness::DEFAULT_TIMEOUT)
    };
    let out = with_keys("AKIAWRONGWRONGWRONG0", "not-the-secret");
    out.assert_code(1);
    assert!(
        out.stderr.contains("S3 GetBucketVersioning")
            && out.stderr.contains("InvalidAccessKeyId")
            && out.stderr.contains("the credentials are wrong"),
        "{out}"
    );
    assert!(!out.stderr.contains("not-the-secret"), "{out}");
    let out = with_keys(&full_id, "not-the-secret");
    out.assert_code(1);
    assert!(out.stderr.contains("SignatureDoesNotMatch"), "{out}");

    // The policy `ecrship policy --source` printed is enough, versioning check included.
    let out = with_keys(&full_id, &full_secret);
    let report = source_json(&out);
    assert_eq!(report["upload"]["versioning_checked"], true, "{out}");
    assert!(!out.stderr.contains("cannot check"), "{out}");

    // The seed's user may only put the object: a warning, then the upload.
    let out = with_keys(&seed_id, &seed_secret);
    let report = source_json(&out);
    assert_eq!(report["upload"]["versioning_checked"], false, "{out}");
    assert!(
        out.stderr.contains("warning: cannot check that bucket")
            && out.stderr.contains("s3:GetBucketVersioning"),
        "{out}"
    );
    assert!(report["upload"]["version_id"].is_string(), "{out}");
}

#[test]
fn bad_input_is_exit_2_with_one_line_naming_the_value() {
    let (test, _) = project();
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: &[Case] = &[
        (
            &["source", "--key", "src.zip"],
            &[],
            "error: no bucket: give `--bucket`, set ECRSHIP_SOURCE_BUCKET, or set `[source] bucket` in ecrship.toml",
        ),
        (
            &["source", "--bucket", "b-1"],
            &[],
            "error: no key: give `--key`",
        ),
        (
            &["source", "--bucket", "Bad_Bucket", "--key", "k"],
            &[],
            "error: bucket `Bad_Bucket` from `--bucket` is not a bucket name",
        ),
        (
            &["source", "--dry-run"],
            &[("ECRSHIP_SOURCE_KEY", "dir/")],
            "error: key `dir/` from environment variable `ECRSHIP_SOURCE_KEY`",
        ),
        (
            &["source", "--dry-run"],
            &[("CI_COMMIT_SHA", "main")],
            "error: commit `main` from environment variable `CI_COMMIT_SHA` is not a git commit id",
        ),
        (
            &["policy", "--source", "--bucket", "b-1"],
            &[],
            "error: no key: give `--key`",
        ),
    ];
    for (args, env, want) in cases {
        let out = test.run_with_env(args.iter().copied(), env.iter().copied());
        out.assert_code(2);
        assert!(out.stderr.starts_with(want), "{args:?} {env:?}\n{out}");
        assert_eq!(out.stderr.lines().count(), 1, "{out}");
        assert!(out.stdout.is_empty(), "{out}");
    }
    // Outside a git work tree: git's reason and what to do.
    let elsewhere = Test::new().file("ecrship.toml", CONFIG);
    let out = elsewhere.run_with(["source", "--dry-run"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("not a git repository") && out.stderr.contains("-C DIR"),
        "{out}"
    );
    assert!(!elsewhere.path("src.zip").exists(), "{out}");
}
