//! The harness and the test stack work.

use std::net::TcpStream;

use base64::Engine as _;

use crate::harness::*;

#[test]
fn help_exits_zero() {
    let out = Test::new().arg("--help").run();
    out.assert_success();
    assert!(out.stdout.contains("Usage"), "{out}");
}

#[test]
fn test_writes_files_and_hides_inherited_env() {
    let test = Test::new()
        .file("dockerfiles/app/Dockerfile", "FROM scratch\n")
        .env("AWS_REGION", "ap-northeast-1")
        .current_dir("dockerfiles");
    assert_eq!(test.read("dockerfiles/app/Dockerfile"), "FROM scratch\n");
    assert!(test.path("dockerfiles/app").is_dir());

    let cmd = test.command();
    assert_eq!(
        cmd.get_current_dir(),
        Some(test.path("dockerfiles").as_path())
    );
    let envs: Vec<(String, Option<String>)> = cmd
        .get_envs()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.map(|v| v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    // env_clear() makes get_envs() list everything the child gets.
    for (key, value) in &envs {
        if key == "DOCKER_HOST" {
            // Set by the harness: the daemon under test, never an inherited value.
            assert_eq!(value.as_deref(), Some(docker_host().as_str()));
            continue;
        }
        assert!(
            !key.starts_with("ECRSHIP_")
                && !key.starts_with("CODEBUILD_")
                && !key.starts_with("DOCKER_"),
            "{key} leaked"
        );
    }
    let aws: Vec<&str> = envs
        .iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(aws.contains(&"AWS_REGION"), "{aws:?}");
    assert!(
        aws.iter().all(|k| [
            "AWS_REGION",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_EC2_METADATA_DISABLED"
        ]
        .contains(k)),
        "{aws:?}"
    );

    let a = unique_name("smoke");
    let b = unique_name("smoke");
    assert_ne!(a, b);
    assert!(
        a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{a}"
    );
}

#[test]
fn own_registry_requires_basic_auth() {
    let mut registry = Registry::start("pw");
    let addr = registry.addr().to_owned();
    assert_eq!(http_get(&addr, "/v2/", None).unwrap().status, 401);
    assert_eq!(
        http_get(&addr, "/v2/", Some(("AWS", "pw"))).unwrap().status,
        200
    );
    assert_eq!(
        http_get(&addr, "/v2/", Some(("AWS", "wrong")))
            .unwrap()
            .status,
        401
    );
    assert_eq!(registry.tags("nothing/here"), Vec::<String>::new());
    assert_eq!(registry.digest("nothing/here", "latest"), None);

    registry.stop();
    assert!(
        http_get(&addr, "/v2/", None).is_err(),
        "a stopped registry still answers"
    );
}

#[test]
fn own_moto_answers() {
    let moto = Moto::start();
    let addr = moto.endpoint().trim_start_matches("http://");
    assert_eq!(http_get(addr, "/moto-api/", None).unwrap().status, 200);
}

#[test]
fn stack_is_up() {
    let stack = stack();

    let r = http_get(&stack.registry, "/v2/", None).unwrap();
    assert_eq!(r.status, 401);
    let r = http_get(
        &stack.registry,
        "/v2/",
        Some(("AWS", &stack.registry_password)),
    )
    .unwrap();
    assert_eq!(r.status, 200);

    // The registry's password is what moto's ECR GetAuthorizationToken hands out.
    let addr = stack.aws_endpoint.trim_start_matches("http://");
    let r = http_request(
        TcpStream::connect(addr).unwrap(),
        addr,
        "POST",
        "/",
        &[
            ("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=0"),
        ],
        b"{}",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let token = v["authorizationData"][0]["authorizationToken"]
        .as_str()
        .unwrap();
    let token = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap();
    assert_eq!(
        String::from_utf8(token).unwrap(),
        format!("AWS:{}", stack.registry_password)
    );

    let r = docker_api("GET", &format!("/images/{}/json", stack.base_image)).unwrap();
    assert_eq!(
        r.status,
        200,
        "base image {} missing: {}",
        stack.base_image,
        r.text()
    );
}

/// The stack's docker-buildx (`ECRSHIP_TEST_BUILDX_CONFIG`) builds with its `docker` driver on the
/// daemon under test: a RUN step runs (it needs the engine's bridge) and the image lands there.
#[test]
fn buildx_builds_on_the_daemon_under_test() {
    let stack = stack();
    let Some(buildx) = docker_buildx_cli() else {
        panic!(
            "ECRSHIP_TEST_BUILDX_CONFIG is not set: scripts/stack's log says why buildx is missing"
        );
    };
    let test = Test::new().file(
        "ctx/Dockerfile",
        format!("FROM {}\nRUN echo built > /built\n", stack.base_image),
    );
    let image = format!("{}:buildx", unique_name("smoke-buildx"));
    let mut cmd = buildx;
    cmd.args([
        "buildx",
        "build",
        "--progress",
        "plain",
        "--load",
        "-t",
        &image,
    ])
    .arg(test.path("ctx"));
    let out = run_command(cmd, None, DEFAULT_TIMEOUT);
    let found = docker_api("GET", &format!("/images/{image}/json")).unwrap();
    let _ = docker_api("DELETE", &format!("/images/{image}?force=1"));
    out.assert_success();
    assert!(
        out.stderr.contains("RUN echo built"),
        "no RUN step in buildx's output\n{out}"
    );
    assert_eq!(
        found.status,
        200,
        "{image} is not on {}: {}",
        docker_host(),
        found.text()
    );
}
