//! The deploy preflight (`[deploy]`) and `ecrship verify`, against moto's ECS: services and task
//! definitions are made through moto's JSON API, the images are built by the real daemon and
//! pushed to the stack's registry.

use crate::harness::{Test, docker_api, moto_call, registry_tags, stack, unique_name};

const ECS: &str = "AmazonEC2ContainerServiceV20141113";

/// An ECS service in a cluster of its own, running a task definition with these containers.
struct Service {
    cluster: String,
    service: String,
    family: String,
}

impl Service {
    fn create(containers: &[&str], runtime_platform: Option<&str>, controller: &str) -> Service {
        let endpoint = &stack().aws_endpoint;
        let cluster = unique_name("cluster");
        let service = unique_name("svc");
        let family = unique_name("family");
        moto_call(
            endpoint,
            "ecs",
            &format!("{ECS}.CreateCluster"),
            &format!(r#"{{"clusterName":"{cluster}"}}"#),
        );
        let definitions: Vec<String> = containers
            .iter()
            .map(|name| format!(r#"{{"name":"{name}","image":"busybox","memory":128}}"#))
            .collect();
        let platform = runtime_platform
            .map(|p| format!(r#","runtimePlatform":{p}"#))
            .unwrap_or_default();
        moto_call(
            endpoint,
            "ecs",
            &format!("{ECS}.RegisterTaskDefinition"),
            &format!(
                r#"{{"family":"{family}","containerDefinitions":[{}]{platform}}}"#,
                definitions.join(",")
            ),
        );
        moto_call(
            endpoint,
            "ecs",
            &format!("{ECS}.CreateService"),
            &format!(
                r#"{{"cluster":"{cluster}","serviceName":"{service}","taskDefinition":"{family}","desiredCount":0,"deploymentController":{{"type":"{controller}"}}}}"#
            ),
        );
        Service {
            cluster,
            service,
            family,
        }
    }

    fn deploy_section(&self) -> String {
        format!(
            "[deploy]\ncluster = \"{}\"\nservice = \"{}\"\n",
            self.cluster, self.service
        )
    }
}

/// A project of three images (`names`) in repositories unique to the test, deployed to `service`.
fn project(names: &[&str], extra_config: &str, service: &Service) -> (Test, String, String) {
    let tag = unique_name("t");
    let ns = unique_name("deploy");
    let base = &stack().base_image;
    let mut config = String::new();
    for name in names {
        config.push_str(&format!(
            "[[image]]\nname = \"{name}\"\nrepository = \"{ns}/{name}\"\ncontext = \"{name}\"\n{extra_config}\n"
        ));
    }
    config.push_str(&service.deploy_section());
    let mut test = Test::new()
        .file(".git-commit-hash", format!("{tag}\n"))
        .file("ecrship.toml", config)
        .moto_env()
        .env("ECRSHIP_REGISTRY", &stack().registry);
    for name in names {
        test = test
            .file(
                format!("{name}/Dockerfile"),
                format!("FROM {base}\nCOPY hello /hello\n"),
            )
            .file(format!("{name}/hello"), format!("{name} {tag}\n"));
    }
    (test, ns, tag)
}

fn local_image_exists(reference: &str) -> bool {
    docker_api("GET", &format!("/images/{reference}/json"))
        .expect("ask the daemon")
        .status
        == 200
}

/// Removes the test's images from the shared daemon when dropped, also when the test fails.
struct Cleanup<'a> {
    ns: &'a str,
    names: &'a [&'a str],
    tag: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let registry = &stack().registry;
        let (ns, tag) = (self.ns, self.tag);
        for name in self.names {
            for t in [tag, "latest"] {
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
fn a_service_with_the_same_containers_lets_the_release_through() {
    let s = stack();
    let names = ["app", "web", "log"];
    let service = Service::create(&names, None, "ECS");
    let (test, ns, tag) = project(&names, "", &service);
    let _cleanup = Cleanup {
        ns: &ns,
        names: &names,
        tag: &tag,
    };
    let out = test.run_with(["release"]);
    out.assert_success();
    assert!(
        out.stderr
            .contains(&format!("task definition `{}:1` (X86_64)", service.family)),
        "{out}"
    );
    for name in names {
        assert_eq!(
            registry_tags(&s.registry, &s.registry_password, &format!("{ns}/{name}")).len(),
            2,
            "{name} pushed under the tag and latest"
        );
    }
    assert!(
        test.read("imagedefinitions.json")
            .contains(&format!("{}/{ns}/log:{tag}", s.registry))
    );

    // verify passes on what the release wrote, as text and as JSON.
    let out = test.run_with(["verify"]);
    out.assert_success();
    assert!(
        out.stdout.contains(&format!(
            "imagedefinitions.json fits service `{}` in cluster `{}`",
            service.service, service.cluster
        )),
        "{out}"
    );
    let json = test.run_with(["verify", "--output", "json"]);
    json.assert_success();
    let report = json.json();
    assert_eq!(report["task_definition"], format!("{}:1", service.family));
    assert_eq!(report["cpu_architecture"], "X86_64");
    assert_eq!(report["images"], serde_json::json!(["app", "web", "log"]));
}

#[test]
fn an_image_that_is_not_a_container_fails_before_anything_is_built() {
    let s = stack();
    let service = Service::create(&["app", "web", "log"], None, "ECS");
    let names = ["application", "web", "log"];
    let (test, ns, tag) = project(&names, "", &service);
    let _cleanup = Cleanup {
        ns: &ns,
        names: &names,
        tag: &tag,
    };
    let test = test.file("imagedefinitions.json", "previous\n");
    let out = test.run_with(["release"]);
    out.assert_code(1);
    let want = format!(
        "image `application` is not a container of task definition `{}:1` of service `{}` in cluster `{}`; \
         its containers are app, web, log",
        service.family, service.service, service.cluster
    );
    assert!(out.stderr.contains(&want), "{out}");
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "{out}"
    );
    // Nothing built, nothing pushed, the previous artifact untouched.
    for name in names {
        assert!(!local_image_exists(&format!("{ns}/{name}:{tag}")), "{name}");
        assert!(
            registry_tags(&s.registry, &s.registry_password, &format!("{ns}/{name}")).is_empty()
        );
    }
    assert_eq!(test.read("imagedefinitions.json"), "previous\n");
}

#[test]
fn an_arm64_task_refuses_amd64_only_images() {
    let s = stack();
    let names = ["app", "web", "log"];
    let service = Service::create(
        &names,
        Some(r#"{"cpuArchitecture":"ARM64","operatingSystemFamily":"LINUX"}"#),
        "ECS",
    );
    let (test, ns, tag) = project(&names, "", &service);
    let _cleanup = Cleanup {
        ns: &ns,
        names: &names,
        tag: &tag,
    };
    let out = test.run_with(["release"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains(&format!(
            "task definition `{}:1` runs on ARM64 (linux/arm64), but image `app` is built for linux/amd64 only",
            service.family
        )),
        "{out}"
    );
    assert!(
        registry_tags(&s.registry, &s.registry_password, &format!("{ns}/app")).is_empty(),
        "nothing pushed"
    );
    assert!(!test.path("imagedefinitions.json").exists(), "no artifact");

    // verify says the same of a file written for these images.
    let test = test.file(
        "imagedefinitions.json",
        r#"[{"name":"app","imageUri":"r/app:1"},{"name":"web","imageUri":"r/web:1"},{"name":"log","imageUri":"r/log:1"}]"#,
    );
    let out = test.run_with(["verify"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("image `web` is built for linux/amd64 only"),
        "{out}"
    );

    // An image built for arm64 passes.
    let (test, _, _) = project(&["app"], "platform = \"linux/arm64\"\n", &service);
    let test = test.file(
        "imagedefinitions.json",
        r#"[{"name":"app","imageUri":"r/app:1"}]"#,
    );
    test.run_with(["verify"]).assert_success();
}

#[test]
fn verify_checks_an_existing_imagedefinitions_json() {
    let service = Service::create(&["app", "web", "log"], None, "ECS");
    let definitions = |names: &[&str]| {
        let entries: Vec<String> = names
            .iter()
            .map(|n| format!(r#"{{"name":"{n}","imageUri":"r/{n}:abc"}}"#))
            .collect();
        format!("[{}]\n", entries.join(","))
    };
    let config = format!(
        "[[image]]\nname = \"app\"\n[artifacts]\nimagedefinitions = \"out/defs.json\"\n{}",
        service.deploy_section()
    );
    let test = Test::new()
        .file("ecrship.toml", &config)
        .file("out/defs.json", definitions(&["app", "web"]))
        .moto_env()
        .arg("verify");
    let out = test.run();
    out.assert_success();
    // `web` is not in the config: its platform is unknown, and said so.
    assert!(
        out.stdout.contains("images           app, web")
            && out
                .stdout
                .contains("note: image `web` is not in the config"),
        "{out}"
    );

    // A name the task definition lacks: exit 1, with the real names.
    let bad = Test::new()
        .file("ecrship.toml", &config)
        .file("out/defs.json", definitions(&["app", "application"]))
        .moto_env()
        .arg("verify")
        .run();
    bad.assert_code(1);
    assert!(
        bad.stderr
            .contains("image `application` is not a container of task definition")
            && bad.stderr.contains("its containers are app, web, log"),
        "{bad}"
    );

    // No file, or not an image definitions file: exit 2, naming it.
    let missing = Test::new()
        .file("ecrship.toml", &config)
        .moto_env()
        .arg("verify")
        .run();
    missing.assert_code(2);
    assert!(
        missing.stderr.contains("cannot read `out/defs.json`"),
        "{missing}"
    );
    let garbled = Test::new()
        .file("ecrship.toml", &config)
        .file("out/defs.json", r#"[{"name":"app"}]"#)
        .moto_env()
        .arg("verify")
        .run();
    garbled.assert_code(2);
    assert!(garbled.stderr.contains("imageUri"), "{garbled}");

    // No [deploy] section: exit 2.
    let unconfigured = Test::new()
        .file("ecrship.toml", "[[image]]\nname = \"app\"\n")
        .file("imagedefinitions.json", definitions(&["app"]))
        .arg("verify")
        .run();
    unconfigured.assert_code(2);
    assert!(
        unconfigured.stderr.contains("no [deploy] section"),
        "{unconfigured}"
    );

    // A service that does not exist: exit 1, naming it.
    let config = format!(
        "[[image]]\nname = \"app\"\n[deploy]\ncluster = \"{}\"\nservice = \"nope\"\n",
        service.cluster
    );
    let gone = Test::new()
        .file("ecrship.toml", config)
        .file("imagedefinitions.json", definitions(&["app"]))
        .moto_env()
        .arg("verify")
        .run();
    gone.assert_code(1);
    assert!(
        gone.stderr.contains("DescribeServices `nope`")
            && gone.stderr.contains("the service does not exist"),
        "{gone}"
    );
    let no_cluster = Test::new()
        .file(
            "ecrship.toml",
            "[[image]]\nname = \"app\"\n[deploy]\ncluster = \"no-such-cluster\"\nservice = \"s\"\n",
        )
        .file("imagedefinitions.json", definitions(&["app"]))
        .moto_env()
        .arg("verify")
        .run();
    no_cluster.assert_code(1);
    assert!(
        no_cluster.stderr.contains("the cluster does not exist"),
        "{no_cluster}"
    );
}

#[test]
fn a_code_deploy_service_needs_image_detail() {
    let service = Service::create(&["app"], None, "CODE_DEPLOY");
    let defs = r#"[{"name":"app","imageUri":"r/app:1"}]"#;
    let out = Test::new()
        .file(
            "ecrship.toml",
            format!("[[image]]\nname = \"app\"\n{}", service.deploy_section()),
        )
        .file("imagedefinitions.json", defs)
        .moto_env()
        .arg("verify")
        .run();
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("uses the CODE_DEPLOY deployment controller")
            && out.stderr.contains("image_detail"),
        "{out}"
    );

    let out = Test::new()
        .file(
            "ecrship.toml",
            format!(
                "[[image]]\nname = \"app\"\n[artifacts]\nimage_detail = \"app\"\n{}",
                service.deploy_section()
            ),
        )
        .file("imagedefinitions.json", defs)
        .file("imageDetail.json", r#"{"ImageURI":"r/app:1"}"#)
        .moto_env()
        .arg("verify")
        .run();
    out.assert_success();
    assert!(
        out.stdout.contains("deployment controller CODE_DEPLOY"),
        "{out}"
    );
}

#[test]
fn policy_grants_the_ecs_reads_of_the_preflight() {
    let out = Test::new()
        .file(
            "ecrship.toml",
            "[[image]]\nname = \"app\"\n[deploy]\ncluster = \"prod\"\nservice = \"shop\"\n",
        )
        .env("AWS_ACCOUNT_ID", "123456789012")
        .env("AWS_REGION", "eu-west-1")
        .arg("policy")
        .run();
    out.assert_success();
    let policy = out.json();
    let statements = policy["Statement"].as_array().unwrap();
    let find = |action: &str| {
        statements
            .iter()
            .find(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
            .unwrap_or_else(|| panic!("no statement with {action}: {out}"))
    };
    assert_eq!(
        find("ecs:DescribeServices")["Resource"],
        "arn:aws:ecs:eu-west-1:123456789012:service/prod/shop"
    );
    assert_eq!(find("ecs:DescribeTaskDefinition")["Resource"], "*");
}
