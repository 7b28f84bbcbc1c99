//! Multi-architecture images, against the real daemon and registry: one image per platform
//! (built through BuildKit on this amd64 daemon, no emulation: COPY steps only), pushed as
//! `<tag>-<arch>`, joined into one manifest list by `ecrship manifest` or by a `release` that
//! built every platform. The registry is read back with an independent client, skopeo.

use std::process::Command;

use base64::Engine as _;

use crate::harness::{
    Output, Test, docker_api, docker_api_with, registry_digest, registry_tags, stack, unique_name,
};

/// `app` with two platforms and `web` with one, in repositories of their own.
fn project() -> (Test, String, String) {
    let s = stack();
    let ns = unique_name("multi");
    let tag = unique_name("c");
    let config = format!(
        "[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\ncontext = \"app\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
         [[image]]\nname = \"web\"\nrepository = \"{ns}/web\"\ncontext = \"web\"\n"
    );
    let test = Test::new()
        .file("ecrship.toml", config)
        .file("app/Dockerfile", "FROM scratch\nCOPY hello /hello\n")
        .file("app/hello", format!("app {ns}\n"))
        .file(
            "web/Dockerfile",
            "FROM scratch\nCOPY index.html /index.html\n",
        )
        .file("web/index.html", format!("web {ns}\n"))
        .file(".git-commit-hash", format!("{tag}\n"))
        .file("imagedefinitions.json", "previous\n")
        .moto_env()
        .env("ECRSHIP_REGISTRY", &s.registry);
    (test, ns, tag)
}

fn cleanup(ns: &str) {
    let s = stack();
    for name in ["app", "web"] {
        let repo = format!("{ns}/{name}");
        for tag in registry_tags(&s.registry, &s.registry_password, &repo) {
            let _ = docker_api("DELETE", &format!("/images/{repo}:{tag}?force=1"));
            let _ = docker_api(
                "DELETE",
                &format!("/images/{}/{repo}:{tag}?force=1", s.registry),
            );
        }
    }
}

/// `skopeo` against the stack's registry (plain HTTP, user AWS): `inspect` takes `--creds`,
/// `copy` `--src-creds`.
fn skopeo(args: &[&str]) -> Output {
    let s = stack();
    let creds = format!("AWS:{}", s.registry_password);
    let flag = if args[0] == "copy" {
        "--src-creds"
    } else {
        "--creds"
    };
    let out = Command::new("skopeo")
        .args(&args[..1])
        .args([flag, &creds])
        .args(&args[1..])
        .output()
        .expect("run skopeo (scripts/stack installs it)");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn raw_manifest(reference: &str) -> serde_json::Value {
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    out.assert_success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

fn config_of(reference: &str) -> serde_json::Value {
    let out = skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    out.assert_success();
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn batch_jobs_per_platform_then_manifest_join_them() {
    let s = stack();
    let (test, ns, tag) = project();
    let at = |name: &str, t: &str| format!("{}/{ns}/{name}:{t}", s.registry);

    // The amd64 job builds app's amd64 image and the single-platform web; no artifact yet.
    let out = test.run_with(["release", "--platform", "linux/amd64"]);
    out.assert_success();
    assert_eq!(test.read("imagedefinitions.json"), "previous\n", "{out}");
    assert!(out.stderr.contains("ecrship manifest"), "{out}");
    let app_tags = registry_tags(&s.registry, &s.registry_password, &format!("{ns}/app"));
    assert_eq!(app_tags, [format!("{tag}-amd64")]);

    // The merge job before the arm64 job is done: exit 1, the missing platform named, nothing
    // written.
    let early = test.run_with(["manifest"]);
    early.assert_code(1);
    assert!(
        early.stderr.contains(&format!("{ns}/app:{tag}-arm64"))
            && early.stderr.contains("linux/arm64"),
        "{early}"
    );
    assert_eq!(test.read("imagedefinitions.json"), "previous\n");
    assert!(
        registry_digest(
            &s.registry,
            &s.registry_password,
            &format!("{ns}/app"),
            &tag
        )
        .is_none()
    );

    // The arm64 job builds only app's arm64 image.
    let out = test.run_with(["release", "--platform", "linux/arm64", "--output", "json"]);
    out.assert_success();
    let json = out.json();
    let built: Vec<&str> = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uri"].as_str().unwrap())
        .collect();
    assert_eq!(built, [at("app", &format!("{tag}-arm64"))]);

    // Each platform's image is an image of that platform, built without emulation.
    for arch in ["amd64", "arm64"] {
        let config = config_of(&at("app", &format!("{tag}-{arch}")));
        assert_eq!(
            (config["os"].as_str(), config["architecture"].as_str()),
            (Some("linux"), Some(arch))
        );
    }

    // The merge job: a list under the tag and latest, then the artifact.
    let out = test.run_with(["manifest", "--output", "json"]);
    out.assert_success();
    let summary = out.json();
    let list_digest = summary["lists"][0]["digest"].as_str().unwrap().to_owned();
    let definitions = test.read("imagedefinitions.json");
    assert!(
        definitions.contains(&format!("\"{}\"", at("app", &tag))),
        "{definitions}"
    );
    assert!(
        definitions.contains(&format!("\"{}\"", at("web", &tag))),
        "{definitions}"
    );
    for t in [tag.as_str(), "latest"] {
        let list = raw_manifest(&at("app", t));
        assert_eq!(
            list["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json",
            "{list}"
        );
        let entries = list["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{list}");
        for (entry, arch) in entries.iter().zip(["amd64", "arm64"]) {
            assert_eq!(entry["platform"]["os"], "linux");
            assert_eq!(entry["platform"]["architecture"], arch);
            let child = at("app", &format!("{tag}-{arch}"));
            let digest = registry_digest(
                &s.registry,
                &s.registry_password,
                &format!("{ns}/app"),
                &format!("{tag}-{arch}"),
            );
            assert_eq!(entry["digest"].as_str(), digest.as_deref(), "{child}");
            let raw = skopeo(&[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{child}"),
            ]);
            assert_eq!(
                entry["size"].as_u64(),
                Some(raw.stdout.len() as u64),
                "{child}"
            );
        }
        assert_eq!(
            registry_digest(&s.registry, &s.registry_password, &format!("{ns}/app"), t),
            Some(list_digest.clone())
        );
    }

    // skopeo walks the whole list into an OCI layout, checking every manifest and blob.
    let layout = tempfile::tempdir().unwrap();
    let out = skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{}", at("app", &tag)),
        &format!("oci:{}:copied", layout.path().display()),
    ]);
    out.assert_success();

    // The daemon pulls the arm64 image of the list when asked for that platform.
    let auth = base64::engine::general_purpose::URL_SAFE.encode(format!(
        r#"{{"username":"AWS","password":"{}","serveraddress":"{}"}}"#,
        s.registry_password, s.registry
    ));
    let pulled = docker_api_with(
        "POST",
        &format!(
            "/images/create?fromImage={}/{ns}/app&tag={tag}&platform=linux/arm64",
            s.registry
        ),
        &[("X-Registry-Auth", &auth)],
    )
    .unwrap();
    assert_eq!(pulled.status, 200, "{}", pulled.text());
    assert!(!pulled.text().contains("errorDetail"), "{}", pulled.text());
    let inspect = docker_api("GET", &format!("/images/{}/json", at("app", &tag))).unwrap();
    let image: serde_json::Value = serde_json::from_slice(&inspect.body).unwrap();
    assert_eq!(image["Architecture"], "arm64", "{image}");

    // A re-run puts the same list again.
    let again = test.run_with(["manifest", "--output", "json"]);
    again.assert_success();
    assert_eq!(
        again.json()["lists"][0]["digest"].as_str(),
        Some(list_digest.as_str())
    );
    let pinned = test.run_with(["manifest", "--pin-digest"]);
    pinned.assert_success();
    assert!(
        test.read("imagedefinitions.json")
            .contains(&format!("{}/{ns}/app@{list_digest}", s.registry)),
        "--pin-digest names the list's digest"
    );
    cleanup(&ns);
}

#[test]
fn a_release_on_one_daemon_builds_every_platform_and_joins_them() {
    let s = stack();
    let (test, ns, tag) = project();
    let out = test.run_with(["release", "--output", "json"]);
    out.assert_success();
    let summary = out.json();
    let rows: Vec<(&str, &str)> = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap(),
                i["platform"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("app", "linux/amd64"), ("app", "linux/arm64"), ("web", "-")]
    );
    let list = raw_manifest(&format!("{}/{ns}/app:{tag}", s.registry));
    let archs: Vec<&str> = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let definitions = test.read("imagedefinitions.json");
    assert!(
        definitions.contains(&format!("{}/{ns}/app:{tag}\"", s.registry)),
        "{definitions}"
    );

    // A second run of the same commit reuses both platforms' images and the same list.
    let again = test.run_with(["release", "--output", "json"]);
    again.assert_success();
    let again_json = again.json();
    let actions: Vec<&str> = again_json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["reused", "reused", "reused"], "{again}");
    assert_eq!(
        again.json()["lists"][0]["digest"],
        summary["lists"][0]["digest"]
    );
    cleanup(&ns);
}

#[test]
fn plan_shows_each_platform_and_a_bad_platform_is_bad_input() {
    let (test, ns, _) = project();
    let test = test.file(
        "ecrship.toml",
        format!("[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\ncontext = \"app\"\nplatforms = [\"linux/s390x\"]\n"),
    );
    // A COPY-only image builds for any platform; `plan` shows what a run would push.
    let out = test.run_with(["plan"]);
    out.assert_success();
    assert!(out.stdout.contains("-s390x"), "{out}");
    assert!(out.stdout.contains("(manifest list)"), "{out}");
    let bad = test.run_with(["release", "--platform", "linux"]);
    bad.assert_code(2);
    assert!(bad.stderr.contains("`linux`"), "{bad}");
    cleanup(&ns);
}
