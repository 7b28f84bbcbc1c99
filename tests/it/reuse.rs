//! Reuse of what the registry holds, against the real daemon, docker-registry and moto: images
//! with unchanged inputs are tagged instead of built, changed ones are built from the
//! registry's cache, and the ECR credentials reach no other registry.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine as _;

use crate::harness::{
    Output, Test, docker_api, docker_cli, moto_call, registry_config, registry_digest,
    registry_manifest, registry_tags, stack, unique_name,
};

/// A project of three images (`app`, `web`, `log`) in repositories of its own, at commit `tag`.
struct Project {
    test: Test,
    ns: String,
}

impl Project {
    fn new(extra_config: &str) -> Project {
        let s = stack();
        let ns = unique_name("reuse");
        let base = &s.base_image;
        let mut config = String::from(extra_config);
        for name in ["app", "web", "log"] {
            config.push_str(&format!(
                "\n[[image]]\nname = \"{name}\"\nrepository = \"{ns}/{name}\"\ncontext = \"{name}\"\n"
            ));
        }
        let mut test = Test::new()
            .file("ecrship.toml", config)
            .moto_env()
            .env("ECRSHIP_REGISTRY", &s.registry);
        for name in ["app", "web", "log"] {
            test = test
                .file(
                    format!("{name}/Dockerfile"),
                    format!("FROM {base}\nCOPY hello /hello\nRUN cat /hello > /copy\n"),
                )
                .file(format!("{name}/hello"), format!("{name} {ns}\n"));
        }
        let project = Project { test, ns };
        project.commit();
        project
    }

    /// A new commit: a new `.git-commit-hash`.
    fn commit(&self) {
        self.write(".git-commit-hash", &format!("{}\n", unique_name("c")));
    }

    fn write(&self, path: &str, content: &str) {
        std::fs::write(self.test.path(path), content).unwrap();
    }

    fn tag(&self) -> String {
        self.test.read(".git-commit-hash").trim().to_owned()
    }

    fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.ns)
    }

    fn digest(&self, name: &str, tag: &str) -> Option<String> {
        let s = stack();
        registry_digest(&s.registry, &s.registry_password, &self.repo(name), tag)
    }

    /// The layers of `name:tag` in the registry.
    fn layers(&self, name: &str, tag: &str) -> serde_json::Value {
        let s = stack();
        registry_manifest(&s.registry, &s.registry_password, &self.repo(name), tag)["layers"]
            .clone()
    }

    /// The config of `name:tag` in the registry.
    fn config(&self, name: &str, tag: &str) -> serde_json::Value {
        let s = stack();
        registry_config(&s.registry, &s.registry_password, &self.repo(name), tag)
    }

    /// `name` under the new commit's tag is the image of `earlier` re-labelled for this commit:
    /// the same layers, inputs and creation time, this commit's revision, and `latest` moved to
    /// it.
    #[track_caller]
    fn assert_relabelled(&self, name: &str, earlier: &str) {
        let (old, new) = (self.config(name, earlier), self.config(name, &self.tag()));
        assert_ne!(
            self.digest(name, &self.tag()),
            self.digest(name, earlier),
            "{name}: a new image"
        );
        assert_eq!(
            self.layers(name, &self.tag()),
            self.layers(name, earlier),
            "{name}: its layers"
        );
        let label = |config: &serde_json::Value, key: &str| config["config"]["Labels"][key].clone();
        assert_eq!(
            label(&new, "org.opencontainers.image.revision"),
            self.tag().as_str(),
            "{name}"
        );
        assert_eq!(
            label(&old, "org.opencontainers.image.revision"),
            earlier,
            "{name}"
        );
        for kept in ["dev.ecrship.inputs", "org.opencontainers.image.created"] {
            assert_eq!(label(&new, kept), label(&old, kept), "{name}: {kept}");
        }
        assert_eq!(new["created"], old["created"], "{name}: created");
        assert_eq!(new["rootfs"], old["rootfs"], "{name}: rootfs");
        assert_eq!(
            self.digest(name, "latest"),
            self.digest(name, &self.tag()),
            "{name}"
        );
    }

    /// `ecrship <args> --output json`, which must succeed; the summary's rows by name.
    fn run(&self, args: &[&str]) -> (Output, serde_json::Value) {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.test.run_with(all);
        out.assert_success();
        let json = out.json();
        (out, json)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let s = stack();
        for name in ["app", "web", "log"] {
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

/// The `action` of each image in a summary, in config order.
fn actions(summary: &serde_json::Value) -> Vec<String> {
    summary["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["action"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn row<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name}: {summary}"))
}

#[test]
fn a_second_release_of_the_same_commit_reuses_everything() {
    let p = Project::new("");
    let (_, first) = p.run(&["release"]);
    assert_eq!(actions(&first), ["built", "built", "built"]);
    let digests: Vec<Option<String>> = ["app", "web", "log"]
        .iter()
        .map(|n| p.digest(n, &p.tag()))
        .collect();

    // A pipeline retry: nothing is built, nothing is pushed, every tag keeps its digest.
    let (out, again) = p.run(&["release"]);
    assert_eq!(actions(&again), ["reused", "reused", "reused"], "{out}");
    for (name, digest) in ["app", "web", "log"].iter().zip(&digests) {
        assert_eq!(&p.digest(name, &p.tag()), digest, "{name}");
        assert_eq!(&p.digest(name, "latest"), digest, "{name}");
        assert_eq!(row(&again, name)["reused_from"]["tag"], p.tag().as_str());
    }
    assert!(!out.stderr.contains("building "), "{out}");
    assert!(!out.stderr.contains("pushing "), "{out}");
    assert!(p.test.read("imagedefinitions.json").contains(&p.tag()));
}

#[test]
fn one_changed_source_file_rebuilds_only_its_image() {
    let p = Project::new("");
    p.run(&["release"]);
    let first = p.tag();

    p.write("app/hello", "changed\n");
    p.commit();
    let (out, second) = p.run(&["release"]);
    assert_eq!(actions(&second), ["built", "reused", "reused"], "{out}");
    for name in ["web", "log"] {
        p.assert_relabelled(name, &first);
        assert_eq!(row(&second, name)["reused_from"]["tag"], "latest");
    }
    assert_eq!(
        row(&second, "app")["not_reused"],
        format!(
            "{}:latest was built from other inputs: the context (hello)",
            p.repo("app")
        ),
        "{out}"
    );
    assert_ne!(p.digest("app", &p.tag()), p.digest("app", &first));
    assert_eq!(p.digest("app", "latest"), p.digest("app", &p.tag()));
    // The artifact names every image under the new tag.
    let definitions = p.test.read("imagedefinitions.json");
    for name in ["app", "web", "log"] {
        assert!(
            definitions.contains(&format!("{}:{}", p.repo(name), p.tag())),
            "{definitions}"
        );
    }
}

#[test]
fn a_changed_build_arg_or_ssm_value_rebuilds() {
    let s = stack();
    let ns = unique_name("args");
    let parameter = format!("/{ns}/flavour");
    let put = |value: &str| {
        moto_call(
            &s.aws_endpoint,
            "ssm",
            "AmazonSSM.PutParameter",
            &format!(
                r#"{{"Name":"{parameter}","Value":"{value}","Type":"SecureString","Overwrite":true}}"#
            ),
        );
    };
    put("vanilla-flavour");
    let config = format!(
        "[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\ncontext = \"app\"\n\
         [image.build_args]\nMODE = {{ env = \"MODE\" }}\nFLAVOUR = {{ ssm = \"{parameter}\" }}\n"
    );
    let test = Test::new()
        .file("ecrship.toml", config)
        .file(
            "app/Dockerfile",
            format!(
                "FROM {}\nARG MODE\nARG FLAVOUR\nRUN echo \"$MODE\" > /mode\n",
                s.base_image
            ),
        )
        .moto_env()
        .env("ECRSHIP_REGISTRY", &s.registry);
    let step = |mode: &'static str| {
        let tag = unique_name("c");
        std::fs::write(test.path(".git-commit-hash"), format!("{tag}\n")).unwrap();
        let out = test.run_with_env(["release", "--output", "json"], [("MODE", mode)]);
        out.assert_success();
        out.json()["images"][0]["action"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(step("one"), "built");
    assert_eq!(step("one"), "reused", "nothing changed");
    assert_eq!(step("two"), "built", "a build arg changed");
    assert_eq!(step("two"), "reused");
    put("chocolate-flavour");
    assert_eq!(step("two"), "built", "the SSM value changed");
    // The SSM value is secret: the inputs digest does not give it away, nor does any output.
    let out = test.run_with_env(["-vv", "release", "--output", "json"], [("MODE", "two")]);
    out.assert_success();
    assert!(
        !out.stdout.contains("chocolate") && !out.stderr.contains("chocolate"),
        "{out}"
    );
    let _ = docker_api("DELETE", &format!("/images/{ns}/app:latest?force=1"));
}

#[test]
fn an_image_older_than_reuse_max_age_is_built_again() {
    let p = Project::new("reuse_max_age = \"2s\"\n");
    p.run(&["release"]);
    thread::sleep(Duration::from_secs(3));
    p.commit();
    let (out, second) = p.run(&["release"]);
    assert_eq!(actions(&second), ["built", "built", "built"], "{out}");
    assert!(out.stderr.contains("older than reuse_max_age"), "{out}");
}

#[test]
fn rebuild_builds_everything_and_reuse_false_builds_its_image() {
    let p = Project::new("");
    p.run(&["release"]);
    p.commit();
    let (out, second) = p.run(&["release", "--rebuild"]);
    assert_eq!(actions(&second), ["built", "built", "built"], "{out}");
    assert!(out.stderr.contains("--rebuild"), "{out}");
    assert_eq!(second["reuse_skipped"], "--rebuild: every image is built");

    // reuse = false on one image: that one is built, the others reused.
    let config = p.test.read("ecrship.toml").replacen(
        "context = \"web\"\n",
        "context = \"web\"\nreuse = false\n",
        1,
    );
    p.write("ecrship.toml", &config);
    p.commit();
    let (out, third) = p.run(&["release"]);
    assert_eq!(actions(&third), ["reused", "built", "reused"], "{out}");
}

#[test]
fn build_then_push_retags_a_reused_image_without_building_it() {
    let p = Project::new("");
    p.run(&["release"]);
    let first = p.tag();
    p.write("app/hello", "changed\n");
    p.commit();

    // The buildspec's two phases: `build` decides, `push` follows.
    let (out, built) = p.run(&["build"]);
    assert_eq!(actions(&built), ["built", "reused", "reused"], "{out}");
    assert!(p.test.path(".ecrship/build.json").is_file());
    let local = docker_api(
        "GET",
        &format!("/images/{}:{}/json", p.repo("web"), p.tag()),
    )
    .unwrap();
    assert_eq!(local.status, 404, "a reused image is not pulled");

    let (out, pushed) = p.run(&["push"]);
    assert_eq!(actions(&pushed), ["built", "reused", "reused"], "{out}");
    assert!(!out.stderr.contains("not built here"), "{out}");
    p.assert_relabelled("web", &first);
    assert!(p.digest("app", &p.tag()).is_some());
    let definitions = p.test.read("imagedefinitions.json");
    assert!(
        definitions.contains(&format!("{}:{}", p.repo("web"), p.tag())),
        "{definitions}"
    );
}

#[test]
fn a_foreign_image_under_the_tag_is_built_not_reused() {
    let s = stack();
    let p = Project::new("");
    // Someone else's image, without ecrship's label, under web:latest.
    let foreign = format!("{}/{}:latest", s.registry, p.repo("web"));
    let out = docker_cli()
        .current_dir(p.test.path("web"))
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", &foreign, "."])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    push_with_auth(&foreign);
    assert!(p.digest("web", "latest").is_some());

    let (out, summary) = p.run(&["release"]);
    assert_eq!(row(&summary, "web")["action"], "built", "{out}");
    assert!(out.stderr.contains("not built by ecrship"), "{out}");
}

/// Pushes a local image through the Engine API, with the stack registry's credentials.
fn push_with_auth(reference: &str) {
    let s = stack();
    let auth = base64::engine::general_purpose::URL_SAFE.encode(format!(
        r#"{{"username":"AWS","password":"{}","serveraddress":"{}"}}"#,
        s.registry_password, s.registry
    ));
    let (repo, tag) = reference.rsplit_once(':').unwrap();
    let out = docker_cli()
        .args(["image", "inspect", "--format", "{{.Id}}", reference])
        .output()
        .unwrap();
    assert!(out.status.success());
    let response = crate::harness::docker_api_with(
        "POST",
        &format!("/images/{repo}/push?tag={tag}"),
        &[("X-Registry-Auth", &auth)],
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        !response.text().contains("errorDetail"),
        "{}",
        response.text()
    );
}

#[test]
fn a_dockerfile_excluded_by_dockerignore_stays_out_and_the_second_build_is_cached() {
    let s = stack();
    let ns = unique_name("ignored");
    let test = Test::new()
        .file(
            "ecrship.toml",
            format!("[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\n"),
        )
        // The tag file changes with every commit: a context that holds it is never the same.
        .file(".dockerignore", "/Dockerfile*\n.git-commit-hash\n")
        .file(
            "Dockerfile",
            format!(
                "FROM {}\nCOPY . /ctx/\nRUN ls -a /ctx > /listing && echo {ns} > /stamp\n",
                s.base_image
            ),
        )
        .file("src/app.ex", "defmodule App do end\n")
        .file(".git-commit-hash", "one\n");
    let first = test.run_with(["build"]);
    first.assert_success();
    let listing = file_in_image(&format!("{ns}/app:one"), "/listing");
    assert!(
        !listing.contains("Dockerfile") && !listing.contains(".dockerfile"),
        "{listing}"
    );
    assert!(listing.contains("src"), "{listing}");

    std::fs::write(test.path(".git-commit-hash"), "two\n").unwrap();
    let second = test.run_with(["build"]);
    second.assert_success();
    // Every step of the second build came from the cache: the COPY and the RUN after it.
    for step in ["COPY . /ctx/", "RUN ls -a /ctx"] {
        let vertex = second
            .stderr
            .lines()
            .find(|l| l.contains(step))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no line for `{step}`\n{second}"))
            .to_owned();
        assert!(
            second.stderr.contains(&format!("{vertex} CACHED")),
            "`{step}` ({vertex}) ran again\n{second}"
        );
    }
    for tag in ["one", "two"] {
        let _ = docker_api("DELETE", &format!("/images/{ns}/app:{tag}?force=1"));
    }
}

/// A file's content in a local image, through `docker run`.
fn file_in_image(image: &str, path: &str) -> String {
    let out = docker_cli()
        .args(["run", "--rm", image, "cat", path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_cache_stage_is_hit_on_a_fresh_daemon() {
    let s = stack();
    let ns = unique_name("stages");
    // The base image comes from the registry: the fresh daemon has none.
    let base = Test::new()
        .file(
            "ecrship.toml",
            format!("[[image]]\nname = \"base\"\nrepository = \"{ns}/base\"\n"),
        )
        .file("Dockerfile", format!("FROM {}\n", s.base_image))
        .file(".git-commit-hash", "1\n")
        .moto_env()
        .env("ECRSHIP_REGISTRY", &s.registry);
    base.run_with(["release"]).assert_success();
    let from = format!("{}/{ns}/base:1", s.registry);
    let dockerfile = format!(
        "FROM {from} AS deps\nCOPY lock.txt /deps/lock.txt\nRUN echo deps-{ns}-$(cat /deps/lock.txt) > /deps/out\n\
         FROM {from} AS build\nCOPY --from=deps /deps/out /deps/out\nCOPY src /src\nRUN cat /src/* /deps/out > /app.txt\n\
         FROM scratch\nCOPY --from=build /app.txt /app.txt\n"
    );
    let config =
        |stages: &str| format!("[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\n{stages}");
    let test = Test::new()
        .file("ecrship.toml", config("cache_stages = [\"deps\"]\n"))
        .file("Dockerfile", dockerfile)
        .file("lock.txt", "v1\n")
        .file("src/main.ex", "one\n")
        .file(".git-commit-hash", "1\n")
        .moto_env()
        .env("ECRSHIP_REGISTRY", &s.registry);
    test.run_with(["release"]).assert_success();
    let tags = registry_tags(&s.registry, &s.registry_password, &format!("{ns}/app"));
    assert_eq!(tags, ["1", "cache-deps", "latest"]);

    // The next commit changes a source file of the build stage, on an empty daemon: the deps
    // step comes from the cache-deps image's inline cache.
    std::fs::write(test.path("src/main.ex"), "two\n").unwrap();
    std::fs::write(test.path(".git-commit-hash"), "2\n").unwrap();
    let out = test.run_on_fresh_daemon(["release"]);
    out.assert_success();
    assert!(
        out.stderr.contains(&format!(
            "importing cache manifest from {}/{ns}/app:cache-deps",
            s.registry
        )),
        "the cache stage's image is not a cache source\n{out}"
    );
    // From Docker 27 on, with the stage in the registry, the last image is no cache source:
    // Docker 28.5, given both, ran the deps step again in about half of its builds. Older
    // engines take both, and the final stage's steps from the last image.
    let latest_imported = out.stderr.contains(&format!(
        "importing cache manifest from {}/{ns}/app:latest",
        s.registry
    ));
    assert_eq!(
        latest_imported,
        daemon_api() < (1, 46),
        "the last image beside the cache stage, on Engine API {:?}\n{out}",
        daemon_api()
    );
    assert!(
        step_cached(&out, "RUN echo deps-"),
        "the deps step ran again\n{out}"
    );
    assert!(
        !step_cached(&out, "RUN cat /src/*"),
        "the changed step was cached\n{out}"
    );

    // Without the cache stage, the same change on an empty daemon runs the deps step again:
    // inline cache records only the final image's layers.
    let test = test.file("ecrship.toml", config(""));
    std::fs::write(test.path("src/main.ex"), "three\n").unwrap();
    std::fs::write(test.path(".git-commit-hash"), "3\n").unwrap();
    let out = test.run_on_fresh_daemon(["release"]);
    out.assert_success();
    assert!(!step_cached(&out, "RUN echo deps-"), "{out}");
    for repo in ["base", "app"] {
        for tag in ["1", "2", "3", "latest", "cache-deps"] {
            let _ = docker_api(
                "DELETE",
                &format!("/images/{}/{ns}/{repo}:{tag}?force=1", s.registry),
            );
            let _ = docker_api("DELETE", &format!("/images/{ns}/{repo}:{tag}?force=1"));
        }
    }
}

/// A first release names no cache image the registry does not hold (BuildKit would look each
/// one up and fail); the next commit's build takes its cache from `latest`.
#[test]
fn cache_comes_only_from_images_the_registry_holds() {
    let project = Project::new("");
    let out = project.test.run_with(["release", "app"]);
    out.assert_success();
    assert!(
        !out.stderr.contains("importing cache manifest"),
        "a cache image was looked up in an empty repository\n{out}"
    );
    project.commit();
    project.write("app/hello", "changed\n");
    let out = project.test.run_with(["release", "app"]);
    out.assert_success();
    let latest = format!("{}/{}:latest", stack().registry, project.repo("app"));
    assert!(
        out.stderr
            .contains(&format!("importing cache manifest from {latest}")),
        "{out}"
    );
}

/// The classic builder reads cache only from the `cachefrom` images once it is given any: the
/// registry's image, which a first push has not made yet, must not cost a warm daemon its cache.
#[test]
fn the_classic_builder_keeps_a_warm_daemons_cache_before_the_first_push() {
    let project = Project::new("builder = \"classic\"\n");
    project.test.run_with(["build", "app"]).assert_success();
    // Nothing is in the registry: the release builds, on the daemon that has just built `app`.
    let out = project.test.run_with(["release", "--rebuild", "app"]);
    out.assert_success();
    assert!(
        out.stderr.contains("Using cache"),
        "the classic build of an unchanged Dockerfile ran its steps again\n{out}"
    );
    assert!(project.digest("app", &project.tag()).is_some(), "{out}");
}

/// The Engine API version of the test daemon (a fresh daemon runs the same engine).
fn daemon_api() -> (usize, usize) {
    let version = docker_api("GET", "/version").unwrap();
    let version: serde_json::Value = serde_json::from_slice(&version.body).unwrap();
    let api = version["ApiVersion"].as_str().unwrap();
    let (major, minor) = api.split_once('.').unwrap();
    (major.parse().unwrap(), minor.parse().unwrap())
}

/// Whether the BuildKit step whose text holds `step` was `CACHED` in the log of the image's own
/// build. Vertex numbers count afresh in each build, and a release with `cache_stages` runs a
/// second one for the stage: the search stops where that build's log begins.
fn step_cached(out: &Output, step: &str) -> bool {
    let lines: Vec<&str> = out.stderr.lines().collect();
    let Some((at, vertex)) = lines.iter().enumerate().find_map(|(i, l)| {
        (l.contains(step) && l.contains(" #"))
            .then(|| l.split_whitespace().find(|w| w.starts_with('#')))
            .flatten()
            .map(|v| (i, v))
    }) else {
        panic!("no line for `{step}`\n{out}");
    };
    let cached = format!("{vertex} CACHED");
    lines[at..]
        .iter()
        .take_while(|l| !l.contains("building cache stage"))
        .any(|l| l.ends_with(&cached))
}

/// A registry that answers every request `401` with a Basic challenge and keeps what it was
/// sent; it stands for a registry a Dockerfile names that is not ecrship's.
struct Recorder {
    addr: String,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&seen);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let kept = Arc::clone(&kept);
                thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        kept.lock().unwrap().extend_from_slice(&buf[..n]);
                        let answer = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"recorder\"\r\nDocker-Distribution-Api-Version: registry/2.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                        if conn.write_all(answer.as_bytes()).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Recorder { addr, seen }
    }

    fn seen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }
}

#[test]
fn a_from_on_another_registry_never_receives_the_ecr_credentials() {
    let s = stack();
    let other = Recorder::start();
    let ns = unique_name("foreign");
    let test = Test::new()
        .file(
            "ecrship.toml",
            format!("[[image]]\nname = \"app\"\nrepository = \"{ns}/app\"\n"),
        )
        .file(
            "Dockerfile",
            format!("FROM {}/library/base:1\n", other.addr),
        )
        .file(".git-commit-hash", "1\n")
        .moto_env()
        .env("ECRSHIP_REGISTRY", &s.registry);
    let out = test.run_with(["-vv", "release"]);
    // The other registry wants credentials ecrship does not have for it: the build fails.
    out.assert_code(1);
    let seen = other.seen();
    assert!(
        seen.contains("/v2/library/base/manifests/1"),
        "BuildKit asked the other registry\n{seen}\n{out}"
    );
    let ecr =
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", s.registry_password));
    assert!(
        !seen.contains(&ecr),
        "the ECR credentials reached another registry\n{seen}"
    );
    assert!(
        !seen.to_ascii_lowercase().contains("authorization:"),
        "{seen}"
    );
    assert!(
        out.stderr.contains("none for this registry"),
        "the session was asked and answered with nothing\n{out}"
    );
}
