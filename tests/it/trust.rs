//! Reuse that never deploys what a fresh build would not have made, against the real daemon,
//! docker-registry and moto: a changed dependency, a base that moved upstream, `--no-cache`, a
//! candidate of another platform or from the future are built, each saying why; a reused image
//! names its own commit.

use std::time::{Duration, SystemTime};

use crate::harness::{
    Output, Test, docker_api, docker_cli, registry_config, registry_digest, registry_manifest,
    registry_put_blob, registry_put_manifest, registry_tags, stack, unique_name,
};

/// A project in repositories of its own, released one commit after another.
struct Project {
    test: Test,
    ns: String,
    names: Vec<&'static str>,
}

impl Project {
    /// `images` is the config's `[[image]]` tables, in which `{ns}` names the namespace.
    fn new(images: &str, names: &[&'static str]) -> Project {
        let s = stack();
        let ns = unique_name("trust");
        let test = Test::new()
            .file("ecrship.toml", images.replace("{ns}", &ns))
            .moto_env()
            .env("ECRSHIP_REGISTRY", &s.registry);
        Project {
            test,
            ns,
            names: names.to_vec(),
        }
    }

    fn file(mut self, path: &str, content: &str) -> Project {
        self.test = std::mem::take(&mut self.test).file(path, content.replace("{ns}", &self.ns));
        self
    }

    fn write(&self, path: &str, content: &str) {
        std::fs::write(self.test.path(path), content.replace("{ns}", &self.ns)).unwrap();
    }

    /// `ecrship <args> --output json` at commit `tag`, which must succeed.
    fn release(&self, tag: &str, args: &[&str]) -> (Output, serde_json::Value) {
        self.write(".git-commit-hash", &format!("{tag}\n"));
        let mut all = vec!["release"];
        all.extend(args);
        all.extend(["--output", "json"]);
        let out = self.test.run_with(all);
        out.assert_success();
        let json = out.json();
        (out, json)
    }

    fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.ns)
    }

    fn digest(&self, name: &str, tag: &str) -> Option<String> {
        let s = stack();
        registry_digest(&s.registry, &s.registry_password, &self.repo(name), tag)
    }

    fn config(&self, name: &str, tag: &str) -> serde_json::Value {
        let s = stack();
        registry_config(&s.registry, &s.registry_password, &self.repo(name), tag)
    }

    /// What `/path` holds in the local image `name:tag`.
    fn file_in(&self, name: &str, tag: &str, path: &str) -> String {
        let out = docker_cli()
            .args([
                "run",
                "--rm",
                &format!("{}:{tag}", self.repo(name)),
                "cat",
                path,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Puts under `name:latest` a copy of that image whose config `change` edits (its labels
    /// kept unless `change` touches them): a stand-in written through the registry API.
    fn stand_in(&self, name: &str, change: impl FnOnce(&mut serde_json::Value)) {
        let s = stack();
        let repo = self.repo(name);
        let mut config = self.config(name, "latest");
        change(&mut config);
        let bytes = serde_json::to_vec(&config).unwrap();
        let digest = registry_put_blob(&s.registry, &s.registry_password, &repo, &bytes);
        let mut manifest = registry_manifest(&s.registry, &s.registry_password, &repo, "latest");
        manifest["config"]["digest"] = serde_json::Value::String(digest);
        manifest["config"]["size"] = serde_json::Value::from(bytes.len());
        registry_put_manifest(
            &s.registry,
            &s.registry_password,
            &repo,
            "latest",
            &manifest,
        );
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let s = stack();
        for name in &self.names {
            let repo = self.repo(name);
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

/// `name: action` for each image of a summary, in its order.
fn actions(summary: &serde_json::Value) -> Vec<String> {
    summary["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            format!(
                "{}: {}",
                i["name"].as_str().unwrap(),
                i["action"].as_str().unwrap()
            )
        })
        .collect()
}

fn not_reused(summary: &serde_json::Value, name: &str) -> String {
    let row = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name}: {summary}"));
    row["not_reused"].as_str().unwrap_or_default().to_owned()
}

const GRAPH: &str = "[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\ncontext = \"app\"\ndepends_on = [\"base\"]\n\n\
    [[image]]\nname = \"base\"\nrepository = \"{ns}/base\"\ncontext = \"base\"\ndeploy = false\n";

/// `depends_on`: a change to the base alone builds the base and every image on it; a change to
/// the dependent alone builds it on the reused base.
#[test]
fn a_changed_base_rebuilds_its_dependents() {
    let s = stack();
    let base = |marker: &str| format!("FROM {}\nRUN echo {marker} > /base-marker\n", s.base_image);
    let app = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN cat /base-marker > /app-saw\n";
    let p = Project::new(GRAPH, &["app", "base"])
        .file("base/Dockerfile", &base("one"))
        .file("app/Dockerfile", app);
    let (_, first) = p.release("c1", &[]);
    assert_eq!(actions(&first), ["base: built", "app: built"]);

    // Only the base changes.
    p.write("base/Dockerfile", &base("two"));
    let (out, second) = p.release("c2", &[]);
    assert_eq!(actions(&second), ["base: built", "app: built"], "{out}");
    assert!(
        not_reused(&second, "app").contains("`base`, which it builds on, has other inputs"),
        "{out}"
    );
    assert_eq!(p.file_in("app", "c2", "/app-saw"), "two\n");

    // Only the dependent changes.
    p.write("app/Dockerfile", &format!("{app}RUN true\n"));
    let (out, third) = p.release("c3", &[]);
    assert_eq!(actions(&third), ["base: reused", "app: built"], "{out}");
    assert!(
        not_reused(&third, "app").contains("the Dockerfile"),
        "{out}"
    );

    let (out, fourth) = p.release("c4", &[]);
    assert_eq!(actions(&fourth), ["base: reused", "app: reused"], "{out}");
}

/// Publishes `{ns}/upstream:v1` in the stack's registry, holding `/base-marker` = `marker`: a
/// base image that moves when published again.
fn publish_upstream(ns: &str, marker: &str) -> String {
    let s = stack();
    let test = Test::new()
        .file(
            "ecrship.toml",
            format!("[tag]\nextra = []\n[[image]]\nname = \"upstream\"\nrepository = \"{ns}/upstream\"\n"),
        )
        .file(
            "Dockerfile",
            format!("FROM {}\nRUN echo {marker} > /base-marker\n", s.base_image),
        )
        .file(".git-commit-hash", "v1\n")
        .moto_env()
        .env("ECRSHIP_REGISTRY", &s.registry);
    test.run_with(["release"]).assert_success();
    format!("{}/{ns}/upstream:v1", s.registry)
}

/// The base is another registry's image under a tag that is pushed again (an upstream security
/// fix): the image on it is built on the new base, not reused, and says which base moved.
#[test]
fn a_base_that_moved_upstream_is_built_on() {
    let s = stack();
    let p = Project::new(
        "[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\n",
        &["app", "upstream"],
    );
    let upstream = publish_upstream(&p.ns, "one");
    let before = registry_digest(
        &s.registry,
        &s.registry_password,
        &format!("{}/upstream", p.ns),
        "v1",
    )
    .unwrap();
    let p = p
        .file(
            "Dockerfile",
            &format!("FROM {upstream}\nRUN cat /base-marker > /app-saw\n"),
        )
        .file(".dockerignore", ".git-commit-hash\n");
    let (_, first) = p.release("c1", &[]);
    assert_eq!(actions(&first), ["app: built"]);
    let (out, again) = p.release("c2", &[]);
    assert_eq!(actions(&again), ["app: reused"], "{out}");

    publish_upstream(&p.ns, "two");
    let after = registry_digest(
        &s.registry,
        &s.registry_password,
        &format!("{}/upstream", p.ns),
        "v1",
    )
    .unwrap();
    assert_ne!(before, after);
    let (out, moved) = p.release("c3", &[]);
    assert_eq!(actions(&moved), ["app: built"], "{out}");
    let why = not_reused(&moved, "app");
    let short = |d: &str| d["sha256:".len().."sha256:".len() + 12].to_owned();
    assert!(
        why.contains(&format!("the base {upstream} moved"))
            && why.contains(&short(&before))
            && why.contains(&short(&after)),
        "{why}\n{out}"
    );
    // The builder got the base pinned to what was hashed, and built on it.
    assert!(out.stderr.contains(&format!("{upstream}@{after}")), "{out}");
    assert_eq!(p.file_in("app", "c3", "/app-saw"), "two\n");
    let parts = &p.config("app", "c3")["config"]["Labels"]["dev.ecrship.inputs.parts"];
    let parts: serde_json::Value = serde_json::from_str(parts.as_str().unwrap()).unwrap();
    assert_eq!(parts["bases"][0]["digest"], after.as_str(), "{parts}");

    let (out, settled) = p.release("c4", &[]);
    assert_eq!(actions(&settled), ["app: reused"], "{out}");
}

const TWO: &str = "[[image]]\nname = \"web\"\nrepository = \"{ns}/web\"\ncontext = \"web\"\n\n\
    [[image]]\nname = \"log\"\nrepository = \"{ns}/log\"\ncontext = \"log\"\n";

fn two_images() -> Project {
    let s = stack();
    let mut p = Project::new(TWO, &["web", "log"]);
    for name in ["web", "log"] {
        p = p
            .file(
                &format!("{name}/Dockerfile"),
                &format!("FROM {}\nCOPY hello /hello\n", s.base_image),
            )
            .file(&format!("{name}/hello"), &format!("{name} {{ns}}\n"));
    }
    p
}

/// `--no-cache` (the README's advice after rotating a secret, which the digest cannot see)
/// builds every image, as `--rebuild` and `--pull` do.
#[test]
fn no_cache_builds_every_image() {
    let p = two_images();
    p.release("c1", &[]);
    let (out, summary) = p.release("c2", &["--no-cache"]);
    assert_eq!(actions(&summary), ["web: built", "log: built"], "{out}");
    assert_eq!(not_reused(&summary, "web"), "--no-cache");
    assert!(
        out.stderr.contains("--no-cache: every image is built"),
        "{out}"
    );
}

/// A candidate whose config is for another platform is never reused, whatever its label says.
#[test]
fn a_candidate_of_another_platform_is_not_reused() {
    let p = two_images();
    p.release("c1", &[]);
    p.stand_in("web", |config| {
        config["architecture"] = "arm64".into();
        config["variant"] = "v8".into();
    });
    let (out, summary) = p.release("c2", &[]);
    assert_eq!(actions(&summary), ["web: built", "log: reused"], "{out}");
    assert_eq!(
        not_reused(&summary, "web"),
        format!("{}:latest: a linux/arm64/v8 image", p.repo("web")),
        "{out}"
    );
}

/// A creation time more than a few minutes ahead cannot be aged: such a candidate is never
/// reused.
#[test]
fn a_candidate_created_in_the_future_is_not_reused() {
    let p = two_images();
    p.release("c1", &[]);
    let tomorrow = SystemTime::now() + Duration::from_secs(86_400);
    let created = chrono::DateTime::<chrono::Utc>::from(tomorrow).to_rfc3339();
    p.stand_in("log", |config| config["created"] = created.clone().into());
    let (out, summary) = p.release("c2", &[]);
    assert_eq!(actions(&summary), ["web: reused", "log: built"], "{out}");
    assert!(
        not_reused(&summary, "log").contains("in the future"),
        "{out}"
    );
}

/// An unchanged image, released three times: each commit's tag holds an image that names that
/// commit (the same layers, inputs and creation time), so no digest gathers the tags of every
/// release; a re-run of the last commit puts nothing.
#[test]
fn a_reused_image_names_its_own_commit() {
    let s = stack();
    let p = two_images();
    p.release("c1", &[]);
    p.release("c2", &[]);
    p.release("c3", &[]);
    let digests: Vec<String> = ["c1", "c2", "c3"]
        .iter()
        .map(|t| p.digest("web", t).unwrap())
        .collect();
    assert!(
        digests[0] != digests[1] && digests[1] != digests[2],
        "{digests:?}"
    );
    for tag in ["c1", "c2", "c3"] {
        let config = p.config("web", tag);
        let labels = &config["config"]["Labels"];
        assert_eq!(labels["org.opencontainers.image.revision"], tag);
        assert_eq!(
            labels["dev.ecrship.inputs"],
            p.config("web", "c1")["config"]["Labels"]["dev.ecrship.inputs"]
        );
        assert_eq!(config["created"], p.config("web", "c1")["created"]);
    }
    // Each digest: its commit's tag, and the moving tag on the last one.
    let repo = p.repo("web");
    let mut holders: Vec<(String, String)> =
        registry_tags(&s.registry, &s.registry_password, &repo)
            .into_iter()
            .map(|tag| (p.digest("web", &tag).unwrap(), tag))
            .collect();
    holders.sort();
    for digest in &digests {
        let tags: Vec<&str> = holders
            .iter()
            .filter(|(d, _)| d == digest)
            .map(|(_, t)| t.as_str())
            .collect();
        assert!(tags.len() <= 2, "{digest}: {tags:?}");
    }
    assert_eq!(p.digest("web", "latest"), Some(digests[2].clone()));

    let (out, retry) = p.release("c3", &[]);
    assert_eq!(actions(&retry), ["web: reused", "log: reused"], "{out}");
    assert_eq!(
        p.digest("web", "c3"),
        Some(digests[2].clone()),
        "a re-run puts nothing"
    );
}

/// An image the Dockerfile names that neither a registry nor the daemon holds is named in a
/// warning; the build goes on as `docker build` would (and fails, as it would).
#[test]
fn a_base_that_cannot_be_resolved_is_named() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let p = Project::new(
        "[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\n",
        &["app"],
    )
    .file(
        "Dockerfile",
        &format!("FROM 127.0.0.1:{closed}/nowhere/base:1\n"),
    );
    p.write(".git-commit-hash", "c1\n");
    let out = p.test.run_with(["release"]);
    assert_eq!(out.code, 1, "{out}");
    let warning = format!("[app] 127.0.0.1:{closed}/nowhere/base:1 cannot be resolved");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains(&warning) && l.ends_with("not reused")),
        "{out}"
    );
}
