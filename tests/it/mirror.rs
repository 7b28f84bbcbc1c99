//! `[mirror]` against the real daemon, docker-registry and moto. This machine cannot reach Docker
//! Hub, which makes the test a true one: an image "of Docker Hub" exists only where an ECR
//! pull-through cache would keep it, `<push registry>/docker-hub/library/<name>:<tag>`, and a
//! daemon started empty can only build through the mirror.

use crate::harness::{
    Output, Test, docker_api, registry_digest, registry_tags, stack, unique_name,
};

/// A project whose image `app` (repository `<ns>/app`) is built from `ctx/`, with its Dockerfile
/// outside the context, so that the Dockerfile alone can change.
struct Project {
    test: Test,
    ns: String,
    /// Repositories to clean up: the project's and what it published.
    repositories: Vec<String>,
}

impl Project {
    fn new() -> Project {
        let s = stack();
        let ns = unique_name("mirror");
        let test = Test::new()
            .file("ctx/hello", "hello\n")
            .moto_env()
            .env("ECRSHIP_REGISTRY", &s.registry);
        Project {
            repositories: vec![format!("{ns}/app")],
            test,
            ns,
        }
    }

    /// Writes the config: the image, after `head` (`[mirror]`, say).
    fn config(&self, head: &str) {
        let text = format!(
            "{head}\n[[image]]\nname = \"app\"\nrepository = \"{}/app\"\ncontext = \"ctx\"\ndockerfile = \"Dockerfile\"\n",
            self.ns
        );
        std::fs::write(self.test.path("ecrship.toml"), text).unwrap();
    }

    fn dockerfile(&self, text: &str) {
        std::fs::write(self.test.path("Dockerfile"), text).unwrap();
    }

    fn at(&self, tag: &str) {
        std::fs::write(self.test.path(".git-commit-hash"), format!("{tag}\n")).unwrap();
    }

    /// Publishes in the stack's registry, as `repository:v1`, an image holding `/base-marker`
    /// = `marker`, built on the machine's daemon and then removed from it; returns its digest.
    fn publish(&mut self, repository: &str, marker: &str) -> String {
        let s = stack();
        let test = Test::new()
            .file(
                "ecrship.toml",
                format!(
                    "[tag]\nextra = []\n[[image]]\nname = \"base\"\nrepository = \"{repository}\"\n"
                ),
            )
            .file(
                "Dockerfile",
                format!("FROM {}\nRUN echo {marker} > /base-marker\n", s.base_image),
            )
            .file(".git-commit-hash", "v1\n")
            .moto_env()
            .env("ECRSHIP_REGISTRY", &s.registry);
        test.run_with(["release"]).assert_success();
        for name in [
            format!("{repository}:v1"),
            format!("{}/{repository}:v1", s.registry),
        ] {
            let _ = docker_api("DELETE", &format!("/images/{name}?force=1"));
        }
        self.repositories.push(repository.to_owned());
        registry_digest(&s.registry, &s.registry_password, repository, "v1").unwrap()
    }

    fn release_on_fresh_daemon(&self, tag: &str) -> Output {
        self.at(tag);
        self.test
            .run_on_fresh_daemon(["release", "--output", "json"])
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let s = stack();
        for repo in &self.repositories {
            for tag in registry_tags(&s.registry, &s.registry_password, repo) {
                let _ = docker_api("DELETE", &format!("/images/{repo}:{tag}?force=1"));
                let _ = docker_api(
                    "DELETE",
                    &format!("/images/{}/{repo}:{tag}?force=1", s.registry),
                );
            }
        }
    }
}

const HUB: &str = "[mirror]\n\"docker.io\" = { pull_through = \"docker-hub\" }\n";

/// A Dockerfile naming `image` in each place an image can be named, and checking that each gave
/// the published content.
fn naming_everywhere(image: &str) -> String {
    format!(
        "FROM {image}\n\
         COPY --from={image} /base-marker /copied\n\
         RUN --mount=type=bind,from={image},target=/m grep -qx one /m/base-marker && grep -qx one /copied\n"
    )
}

fn summary_row(out: &Output) -> serde_json::Value {
    out.json()["images"][0].clone()
}

#[test]
fn docker_hub_images_are_pulled_through_the_mirror_on_an_empty_daemon() {
    let s = stack();
    let mut p = Project::new();
    let name = unique_name("hub");
    p.publish(&format!("docker-hub/library/{name}"), "one");
    p.config(HUB);
    let dockerfile = naming_everywhere(&format!("{name}:v1"));
    p.dockerfile(&dockerfile);

    let out = p.release_on_fresh_daemon("c1");
    out.assert_success();
    assert_eq!(summary_row(&out)["action"], "built", "{out}");
    let routed = format!(
        "{name}:v1 is pulled through the mirror as {}/docker-hub/library/{name}:v1",
        s.registry
    );
    assert!(
        out.stderr.contains(&routed),
        "the log names both references\n{out}"
    );
    assert_eq!(
        std::fs::read_to_string(p.test.path("Dockerfile")).unwrap(),
        dockerfile,
        "the Dockerfile on disk is unchanged"
    );
    assert!(
        registry_tags(&s.registry, &s.registry_password, &format!("{}/app", p.ns))
            .contains(&"c1".to_owned()),
        "{out}"
    );
}

#[test]
fn without_the_mirror_the_same_build_fails_naming_docker_hub() {
    let mut p = Project::new();
    let name = unique_name("hub");
    p.publish(&format!("docker-hub/library/{name}"), "one");
    p.config("");
    p.dockerfile(&naming_everywhere(&format!("{name}:v1")));

    let out = p.release_on_fresh_daemon("c1");
    out.assert_code(1);
    let error = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        error.contains(&format!(
            "registry-1.docker.io/v2/library/{name}/manifests/v1"
        )),
        "the failure names the image on Docker Hub\n{out}"
    );
    assert!(!p.test.path("imagedefinitions.json").exists(), "{out}");
}

/// Turning the mirror on rebuilds nothing: the inputs take each base's content digest, whether
/// it is named in full or pulled through the mirror.
#[test]
fn the_inputs_are_the_same_through_the_mirror_as_named_in_full() {
    let s = stack();
    let mut p = Project::new();
    let name = unique_name("hub");
    p.publish(&format!("docker-hub/library/{name}"), "one");

    p.config("");
    p.dockerfile(&naming_everywhere(&format!(
        "{}/docker-hub/library/{name}:v1",
        s.registry
    )));
    p.at("c1");
    let full = p.test.run_with(["release", "--output", "json"]);
    full.assert_success();
    assert_eq!(summary_row(&full)["action"], "built", "{full}");

    p.config(HUB);
    p.dockerfile(&naming_everywhere(&format!("{name}:v1")));
    p.at("c2");
    let mirrored = p.test.run_with(["release", "--output", "json"]);
    mirrored.assert_success();
    let row = summary_row(&mirrored);
    assert_eq!(row["action"], "reused", "{mirrored}");
    assert_eq!(row["inputs"], summary_row(&full)["inputs"], "{mirrored}");
    assert!(
        row["inputs"]
            .as_str()
            .is_some_and(|i| i.starts_with("sha256:")),
        "{row}"
    );
}

/// A mirror that does not hold an image fails that image, naming both references, before
/// anything is built; with `fallback = "upstream"`, the image is pulled from its own registry,
/// with a warning.
#[test]
fn an_image_the_mirror_cannot_serve_fails_or_falls_back_to_the_upstream() {
    let s = stack();
    let mut p = Project::new();
    let upstream = format!("{}/upstream", p.ns);
    p.publish(&upstream, "one");
    let named = format!("{}/{upstream}:v1", s.registry);
    let via = format!("{}/{}/copies/{upstream}:v1", s.registry, p.ns);
    p.dockerfile(&naming_everywhere(&named));

    let mirror = |fallback: &str| {
        format!(
            "[mirror]\n\"{}\" = {{ prefix = \"{}/{}/copies\"{fallback} }}\n",
            s.registry, s.registry, p.ns
        )
    };
    p.config(&mirror(""));
    let out = p.release_on_fresh_daemon("c1");
    out.assert_code(1);
    assert!(
        out.stderr.contains(&format!(
            "{named} (Dockerfile line 1) cannot be pulled through the mirror as {via}"
        )),
        "{out}"
    );
    assert!(out.stderr.contains("fallback = \"upstream\""), "{out}");
    assert!(!out.stderr.contains("#1 "), "nothing was built\n{out}");

    p.config(&mirror(", fallback = \"upstream\""));
    let out = p.release_on_fresh_daemon("c2");
    out.assert_success();
    assert!(
        out.stderr.contains(&format!(
            "{named} cannot be pulled through the mirror as {via}"
        )),
        "a warning names both\n{out}"
    );
    assert_eq!(summary_row(&out)["action"], "built", "{out}");
}

#[test]
fn plan_lists_each_reference_and_what_it_is_pulled_as() {
    let s = stack();
    let p = Project::new();
    p.config(HUB);
    p.dockerfile("# syntax=docker/dockerfile:1\nFROM node:20 AS build\nFROM scratch\nCOPY --from=build /a /a\nCOPY --from=ghcr.io/org/tool:1 /t /t\n");
    let out = p.test.run_with(["plan"]);
    out.assert_success();
    for line in [
        format!(
            "pulls       docker/dockerfile:1 (line 1, # syntax) as {}/docker-hub/docker/dockerfile:1",
            s.registry
        ),
        format!(
            "            node:20 (line 2) as {}/docker-hub/library/node:20",
            s.registry
        ),
        "            ghcr.io/org/tool:1 (line 5, COPY --from)\n".to_owned(),
    ] {
        assert!(out.stdout.contains(&line), "{line}\n{out}");
    }
    let json = p.test.run_with(["plan", "--output", "json"]).json();
    let refs = &json["references"]["app"]["known"];
    assert_eq!(refs[1]["reference"], "node:20", "{json}");
    assert_eq!(
        refs[1]["pulled_as"],
        format!("{}/docker-hub/library/node:20", s.registry),
        "{json}"
    );
    assert!(refs[2]["pulled_as"].is_null(), "{json}");

    let flag = p
        .test
        .run_with(["plan", "--mirror", "docker.io=public.ecr.aws/docker"]);
    flag.assert_success();
    assert!(
        flag.stdout
            .contains("node:20 (line 2) as public.ecr.aws/docker/library/node:20"),
        "the flag's mirror takes the place of the config's\n{flag}"
    );
    let bad = p.test.run_with(["plan", "--mirror", "docker.io"]);
    bad.assert_code(2);
    assert!(
        bad.stderr
            .contains("--mirror / ECRSHIP_MIRROR `docker.io` is not UPSTREAM=TO"),
        "{bad}"
    );
}
