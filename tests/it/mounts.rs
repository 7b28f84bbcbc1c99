//! `cache_mounts` on empty daemons (`run_on_fresh_daemon`: a daemon of its own for each run, as
//! CodeBuild hosts start), against the real docker-registry and moto: a lock-file change
//! downloads only what the mount, restored from the registry, does not hold.

use crate::harness::{Output, Test, docker_api, registry_tags, stack, unique_name};

/// A project whose `deps` stage "downloads" (writes into the cache mount `/cache`) each package
/// of `lock` that the mount does not hold, saying `downloaded <name>` for each.
struct Project {
    test: Test,
    repo: String,
}

const DOCKERFILE: &str = "FROM {base} AS deps\n\
    COPY lock /lock\n\
    RUN --mount=type=cache,id={id},target=/cache for p in $(cat /lock); do if [ ! -f /cache/$p ]; then echo \"downloaded $p\"; echo $p > /cache/$p; fi; done; ls /cache > /have\n\
    FROM {base}\n\
    COPY --from=deps /have /have\n\
    COPY app.txt /app.txt\n";

impl Project {
    fn new(keep: bool) -> Project {
        let s = stack();
        let repo = unique_name("mounts");
        // The base comes from the registry: an empty daemon has none.
        Test::new()
            .file(
                "ecrship.toml",
                format!("[[image]]\nname = \"base\"\nrepository = \"{repo}-base\"\n"),
            )
            .file("Dockerfile", format!("FROM {}\n", s.base_image))
            .file(".git-commit-hash", "1\n")
            .moto_env()
            .env("ECRSHIP_REGISTRY", &s.registry)
            .run_with(["release"])
            .assert_success();
        let base = format!("{}/{repo}-base:1", s.registry);
        let keep = if keep { "cache_mounts = true\n" } else { "" };
        let test = Test::new()
            .file(
                "ecrship.toml",
                format!("[[image]]\nname = \"app\"\nrepository = \"{repo}\"\ncache_stages = [\"deps\"]\n{keep}"),
            )
            .file(
                "Dockerfile",
                DOCKERFILE.replace("{base}", &base).replace("{id}", &repo),
            )
            .file(".dockerignore", ".git-commit-hash\n")
            .file("app.txt", "one\n")
            .moto_env()
            .env("ECRSHIP_REGISTRY", &s.registry);
        Project { test, repo }
    }

    fn lock(&self, packages: &[&str]) {
        std::fs::write(self.test.path("lock"), packages.join("\n") + "\n").unwrap();
    }

    /// `release` at commit `tag` on a daemon of its own, which must succeed.
    fn release(&self, tag: &str) -> Output {
        std::fs::write(self.test.path(".git-commit-hash"), format!("{tag}\n")).unwrap();
        let out =
            self.test
                .run_on_fresh_daemon(["release", "--output", "json", "--progress", "plain"]);
        out.assert_success();
        out
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let s = stack();
        for tag in registry_tags(&s.registry, &s.registry_password, &self.repo) {
            let _ = docker_api(
                "DELETE",
                &format!("/images/{}/{}:{tag}?force=1", s.registry, self.repo),
            );
        }
    }
}

/// The packages a run downloaded, in order.
fn downloaded(out: &Output) -> Vec<String> {
    let mut names: Vec<String> = out
        .stderr
        .lines()
        .filter_map(|l| l.split("downloaded ").nth(1))
        .filter(|rest| !rest.contains('$'))
        .map(|rest| rest.trim().to_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn saved(out: &Output) -> serde_json::Value {
    out.json()["cache_mounts"][0].clone()
}

#[test]
fn a_lock_file_change_downloads_only_the_new_package_on_an_empty_daemon() {
    let p = Project::new(true);
    p.lock(&["a", "b", "c", "d", "e"]);
    let first = p.release("c1");
    assert_eq!(downloaded(&first), ["a", "b", "c", "d", "e"], "{first}");
    let save = saved(&first);
    assert_eq!(save["outcome"], "saved", "{first}");
    assert_eq!(save["layers"], 5, "one layer per top-level entry\n{first}");
    let s = stack();
    let tags = registry_tags(&s.registry, &s.registry_password, &p.repo);
    assert!(
        tags.contains(&format!("cache-mount-{}", p.repo)),
        "{tags:?}"
    );

    p.lock(&["a", "b", "c", "d", "f"]);
    let second = p.release("c2");
    assert_eq!(
        downloaded(&second),
        ["f"],
        "the mount was restored\n{second}"
    );
    assert!(
        second
            .stderr
            .contains(&format!("restored the cache mount `{}`", p.repo)),
        "{second}"
    );
    let save = saved(&second);
    assert_eq!(save["outcome"], "saved", "{second}");
    assert_eq!(save["layers"], 6, "{second}");
    assert_eq!(
        save["layers_uploaded"], 1,
        "only the new package's layer\n{second}"
    );

    // The lock file stays; only the app changes: the mount is restored and not changed, so
    // its save uploads nothing.
    std::fs::write(p.test.path("app.txt"), "two\n").unwrap();
    let third = p.release("c3");
    assert!(downloaded(&third).is_empty(), "{third}");
    let save = saved(&third);
    assert_eq!(save["outcome"], "unchanged", "{third}");
    assert_eq!(save["bytes_uploaded"], 0, "{third}");
}

#[test]
fn without_cache_mounts_an_empty_daemon_downloads_everything_again() {
    let p = Project::new(false);
    p.lock(&["a", "b", "c", "d", "e"]);
    let first = p.release("c1");
    assert_eq!(downloaded(&first), ["a", "b", "c", "d", "e"], "{first}");
    assert!(first.json()["cache_mounts"].is_null(), "{first}");
    p.lock(&["a", "b", "c", "d", "f"]);
    let second = p.release("c2");
    assert_eq!(downloaded(&second), ["a", "b", "c", "d", "f"], "{second}");
}

/// A mount larger than `cache_mount_max_size` is not saved, with a warning giving its size; the
/// release succeeds.
#[test]
fn a_mount_over_the_size_bound_is_not_saved_and_the_release_goes_on() {
    let s = stack();
    let p = Project::new(true);
    let config = std::fs::read_to_string(p.test.path("ecrship.toml")).unwrap();
    std::fs::write(
        p.test.path("ecrship.toml"),
        format!("cache_mount_max_size = \"4KiB\"\n{config}"),
    )
    .unwrap();
    let packages: Vec<String> = (0..40).map(|i| format!("package-{i}")).collect();
    let names: Vec<&str> = packages.iter().map(String::as_str).collect();
    p.lock(&names);
    std::fs::write(p.test.path(".git-commit-hash"), "c1\n").unwrap();
    let out = p.test.run_with(["release", "--output", "json"]);
    out.assert_success();
    let save = saved(&out);
    assert_eq!(save["outcome"], "not saved", "{out}");
    let why = save["why"].as_str().unwrap_or_default();
    assert!(
        why.contains("more than cache_mount_max_size (4.1kB)") && why.contains("it holds "),
        "{why}\n{out}"
    );
    assert!(
        out.stderr.contains("was not saved: it holds"),
        "a warning\n{out}"
    );
    let tags = registry_tags(&s.registry, &s.registry_password, &p.repo);
    assert!(
        !tags.iter().any(|t| t.starts_with("cache-mount-")),
        "{tags:?}"
    );
}

#[test]
fn plan_lists_the_mounts_it_would_restore_and_save() {
    let s = stack();
    let p = Project::new(true);
    p.lock(&["a"]);
    let out = p.test.run_with(["plan"]);
    out.assert_success();
    let line = format!(
        "  cache mount {} (line 3): restored from and saved to {}/{}:cache-mount-{}\n",
        p.repo, s.registry, p.repo, p.repo
    );
    assert!(out.stdout.contains(&line), "{out}");
}

/// The buildspec's two phases: `build` restores and records, `push` saves; the next commit, on
/// an empty daemon, starts from what `push` saved.
#[test]
fn push_after_build_saves_the_mounts_build_kept() {
    let p = Project::new(true);
    p.lock(&["a", "b", "c"]);
    std::fs::write(p.test.path(".git-commit-hash"), "c1\n").unwrap();
    p.test.run_with(["build"]).assert_success();
    let pushed = p.test.run_with(["push", "--output", "json"]);
    pushed.assert_success();
    let save = saved(&pushed);
    assert_eq!(save["outcome"], "saved", "{pushed}");
    assert_eq!(save["layers"], 3, "{pushed}");

    p.lock(&["a", "b", "c", "d"]);
    let next = p.release("c2");
    assert_eq!(downloaded(&next), ["d"], "{next}");
}
