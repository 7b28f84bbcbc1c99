//! `tag`, `plan`, config errors and usage: everything that needs neither Docker nor AWS.

use crate::harness::Test;

const CBV: &str = "CODEBUILD_RESOLVED_SOURCE_VERSION";
const REGISTRY: &str = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com";

/// A folder shaped like the seed: one Dockerfile folder per container, no config.
fn seed_layout() -> Test {
    Test::new()
        .file("dockerfiles/app/Dockerfile", "FROM scratch\n")
        .file("dockerfiles/web/Dockerfile", "FROM scratch\n")
        .file("dockerfiles/log/Dockerfile", "FROM scratch\n")
}

#[test]
fn tag_file_wins_over_codebuild_variable() {
    let out = Test::new()
        .file(".git-commit-hash", "abc12345\n")
        .env(CBV, "0123456789abcdef")
        .arg("tag")
        .run();
    out.assert_success();
    assert_eq!(out.stdout, "abc12345\n");
}

#[test]
fn tag_from_environment_then_fallback() {
    let out = Test::new().env(CBV, "0123456789abcdef").arg("tag").run();
    out.assert_success();
    assert_eq!(out.stdout, "0123456789abcdef\n");

    let out = Test::new().arg("tag").run();
    out.assert_success();
    assert_eq!(out.stdout, "latest\n");
}

#[test]
fn tag_empty_file_falls_through() {
    let out = Test::new()
        .file(".git-commit-hash", "")
        .env(CBV, "fromenv")
        .arg("tag")
        .run();
    out.assert_success();
    assert_eq!(out.stdout, "fromenv\n");
}

#[test]
fn tag_verbose_names_the_source_on_stderr_only() {
    let out = Test::new().env(CBV, "fromenv").args(["tag", "-v"]).run();
    out.assert_success();
    assert_eq!(out.stdout, "fromenv\n");
    assert!(out.stderr.contains(CBV), "{out}");
}

#[test]
fn tag_invalid_values_exit_2_naming_the_file() {
    for content in ["bad tag!\n".to_owned(), format!("{}\n", "a".repeat(129))] {
        let out = Test::new()
            .file(".git-commit-hash", &content)
            .arg("tag")
            .run();
        out.assert_code(2);
        assert!(out.stderr.contains(".git-commit-hash"), "{out}");
        assert!(
            out.stderr.contains(content.trim()),
            "the value is shown: {out}"
        );
        assert!(out.stdout.is_empty(), "{out}");
    }
}

#[test]
fn tag_rejects_an_s3_version_id_from_the_environment() {
    let out = Test::new()
        .env(CBV, "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY/x")
        .arg("tag")
        .run();
    out.assert_code(2);
    assert!(
        out.stderr.contains(CBV) && out.stderr.contains("`/` or `+`"),
        "{out}"
    );
}

#[test]
fn tag_works_in_a_folder_without_images() {
    let out = Test::new()
        .file(
            "ecrship.toml",
            "[tag]\nfallback = \"dev\"\n[[image]]\nname = \"app\"\n",
        )
        .arg("tag")
        .run();
    out.assert_success();
    assert_eq!(out.stdout, "dev\n");
}

/// A config that only tunes the tag chain keeps the built-in images: `tag` needs none of them.
#[test]
fn a_config_of_the_tag_chain_alone_is_a_config() {
    let test = Test::new()
        .file("ecrship.toml", "[tag]\nlength = 8\n")
        .file(".git-commit-hash", "0123456789abcdef\n");
    let out = test.run_with(["tag"]);
    out.assert_success();
    assert_eq!(out.stdout, "01234567\n");
    let plan = seed_layout()
        .file("ecrship.toml", "[tag]\nlength = 8\n")
        .file(".git-commit-hash", "0123456789abcdef\n")
        .env("ECRSHIP_REGISTRY", "r.example")
        .args(["plan", "--output", "json"])
        .run();
    plan.assert_success();
    let json = plan.json();
    assert_eq!(json["tag"]["value"], "01234567");
    let names: Vec<&str> = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "web", "log"]);
}

#[test]
fn plan_shows_the_seed_layout_and_writes_nothing() {
    let test = seed_layout()
        .file(".git-commit-hash", "abc12345\n")
        .env("AWS_ACCOUNT_ID", "123456789012")
        .env("AWS_REGION", "ap-northeast-1");
    let out = test.run_with(["plan"]);
    out.assert_success();
    for name in ["app", "web", "log"] {
        let uri = format!("{REGISTRY}/{name}:abc12345");
        assert!(out.stdout.contains(&uri), "{uri} missing: {out}");
        assert!(
            out.stdout.contains(&format!("{REGISTRY}/{name}:latest")),
            "{out}"
        );
    }
    assert!(out.stdout.contains("dockerfiles/app/Dockerfile"), "{out}");
    assert!(
        !test.path("imagedefinitions.json").exists(),
        "plan writes nothing"
    );
}

#[test]
fn plan_json_is_one_document_with_the_artifact() {
    let out = seed_layout()
        .env("AWS_ACCOUNT_ID", "123456789012")
        .env("AWS_DEFAULT_REGION", "ap-northeast-1")
        .env(CBV, "deadbeef")
        .args(["plan", "--output", "json"])
        .run();
    out.assert_success();
    let json = out.json();
    assert_eq!(json["tag"]["value"], "deadbeef");
    let defs = json["imagedefinitions_json"].as_array().expect("an array");
    let names: Vec<&str> = defs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app", "web", "log"]);
    assert_eq!(defs[1]["imageUri"], format!("{REGISTRY}/web:deadbeef"));
}

#[test]
fn plan_without_account_uses_a_placeholder_that_says_what_to_set() {
    let out = seed_layout().arg("plan").run();
    out.assert_success();
    assert!(
        out.stdout
            .contains("ACCOUNT-ID.dkr.ecr.REGION.amazonaws.com/app:latest"),
        "{out}"
    );
    assert!(out.stderr.contains("AWS_ACCOUNT_ID"), "{out}");
}

#[test]
fn plan_registry_from_environment_twin() {
    let out = seed_layout()
        .env("ECRSHIP_REGISTRY", "127.0.0.1:5000")
        .args(["plan", "web"])
        .run();
    out.assert_success();
    assert!(out.stdout.contains("127.0.0.1:5000/web:latest"), "{out}");
    assert!(
        !out.stdout.contains("/app:"),
        "only the selected image: {out}"
    );
}

#[test]
fn global_flags_before_or_after_the_command() {
    let test = seed_layout();
    let a = test.run_with(["--output", "json", "plan"]);
    let b = test.run_with(["plan", "--output", "json"]);
    a.assert_success();
    assert_eq!(a.stdout, b.stdout);
    let c = Test::new()
        .dir("sub")
        .file("sub/.git-commit-hash", "fromsub\n")
        .args(["tag", "-C", "sub"])
        .run();
    assert_eq!(c.stdout, "fromsub\n", "{c}");
}

#[test]
fn bad_usage_exits_2() {
    let out = Test::new().arg("frobnicate").run();
    out.assert_code(2);
    let out = Test::new().args(["tag", "--output", "yaml"]).run();
    out.assert_code(2);
    let out = seed_layout().args(["plan", "nope"]).run();
    out.assert_code(2);
    assert!(out.stderr.contains("`nope`"), "{out}");
}

/// Each broken config: exit 2, one line naming the file, the line and the key or value.
#[test]
fn config_errors_name_file_line_and_value() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "syntax",
            "[[image]]\nname = \"app\"\ncontext = [\n",
            &["ecrship.toml line 3"],
        ),
        (
            "unknown key",
            "[[image]]\nname = \"app\"\ncontxt = \"x\"\n",
            &["line 3", "contxt"],
        ),
        (
            "wrong type",
            "jobs = \"many\"\n[[image]]\nname = \"app\"\n",
            &["line 1", "jobs"],
        ),
        (
            "duplicate",
            "[[image]]\nname = \"app\"\n\n[[image]]\nname = \"app\"\n",
            &["line 4", "`app` is used twice"],
        ),
        (
            "repository",
            "[[image]]\nname = \"app\"\nrepository = \"My_App\"\n",
            &["line 3", "`My_App`"],
        ),
        ("no images", "image = []\n", &["no images"]),
        (
            "no [[image]]: the seed layout, whose folders are not here",
            "registry = \"r.example\"\n",
            &["has no [[image]]", "dockerfiles/app/Dockerfile"],
        ),
        (
            "leaves root",
            "[[image]]\nname = \"app\"\ncontext = \"../elsewhere\"\n",
            &["line 3", "../elsewhere"],
        ),
        (
            "missing dockerfile",
            "[[image]]\nname = \"app\"\ndockerfile = \"nope/Dockerfile\"\n",
            &["line 1", "nope/Dockerfile", "not found"],
        ),
        (
            "missing context",
            "[[image]]\nname = \"app\"\ncontext = \"gone\"\n",
            &["line 1", "`gone`", "not a folder"],
        ),
    ];
    for (what, config, needles) in cases {
        let test = Test::new()
            .file("Dockerfile", "FROM scratch\n")
            .file("ecrship.toml", config)
            .file("imagedefinitions.json", "previous\n");
        let out = test.run_with(["plan"]);
        assert_eq!(out.code, 2, "{what}: {out}");
        let line = out.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "{what}: one line: {out}");
        assert!(line.contains("ecrship.toml"), "{what}: {out}");
        for needle in *needles {
            assert!(line.contains(needle), "{what}: `{needle}` missing: {out}");
        }
        assert_eq!(test.read("imagedefinitions.json"), "previous\n", "{what}");
    }
}

#[test]
fn explicit_config_path_and_its_absence() {
    let test = Test::new()
        .file("Dockerfile", "FROM scratch\n")
        .file("ci/images.toml", "[[image]]\nname = \"api\"\n");
    let out = test.run_with(["-c", "ci/images.toml", "plan"]);
    out.assert_success();
    assert!(out.stdout.contains("/api:latest"), "{out}");
    let out = test.run_with(["-c", "ci/missing.toml", "plan"]);
    out.assert_code(2);
    assert!(out.stderr.contains("ci/missing.toml"), "{out}");
}

#[test]
fn seed_default_names_the_missing_dockerfile() {
    let out = Test::new()
        .file("dockerfiles/app/Dockerfile", "FROM scratch\n")
        .arg("plan")
        .run();
    out.assert_code(2);
    assert!(
        out.stderr.contains("image `web`") && out.stderr.contains("dockerfiles/web"),
        "{out}"
    );
    assert!(out.stderr.contains("no ecrship.toml"), "{out}");
}

#[test]
fn version_names_the_commit() {
    let out = Test::new().arg("--version").run();
    out.assert_success();
    assert!(
        out.stdout
            .starts_with(&format!("ecrship {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(out.stdout.contains('('), "{out}");
}

#[test]
fn policy_names_exactly_the_repositories_and_parameters() {
    let config = "[[image]]\nname = \"app\"\nrepository = \"team/app\"\n[image.build_args]\nA = { ssm = \"/app/prod/KEY\" }\nB = { ssm = \"PLAIN\" }\n\n[[image]]\nname = \"web\"\n";
    let out = Test::new()
        .file("ecrship.toml", config)
        .env("AWS_ACCOUNT_ID", "123456789012")
        .env("AWS_REGION", "eu-west-1")
        .arg("policy")
        .run();
    out.assert_success();
    let doc = out.json();
    assert_eq!(doc["Version"], "2012-10-17");
    let statements = doc["Statement"].as_array().unwrap();
    let resources = |sid: &str| -> Vec<String> {
        let s = statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("{sid}: {out}"));
        match &s["Resource"] {
            serde_json::Value::String(r) => vec![r.clone()],
            serde_json::Value::Array(list) => list
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect(),
            other => panic!("{other}"),
        }
    };
    assert_eq!(resources("EcrLogin"), ["*"]);
    assert_eq!(
        resources("EcrPush"),
        [
            "arn:aws:ecr:eu-west-1:123456789012:repository/team/app",
            "arn:aws:ecr:eu-west-1:123456789012:repository/web"
        ]
    );
    assert_eq!(
        resources("SsmParameters"),
        [
            "arn:aws:ssm:eu-west-1:123456789012:parameter/app/prod/KEY",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/PLAIN"
        ]
    );
    assert!(out.stderr.contains("kms:Decrypt"), "{out}");
}

/// The README's table of flags and the command line's definitions say the same: every flag (long
/// and short) and every environment twin of `cli.rs` is in the table, nothing else is, and every
/// flag has a twin.
#[test]
fn the_readme_lists_every_flag_and_its_environment_twin() {
    use clap::CommandFactory as _;
    use std::collections::BTreeSet;

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| flag | env | meaning |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(!table.is_empty(), "the README has no table of flags");
    let (mut documented, mut documented_env) = (BTreeSet::new(), BTreeSet::new());
    for row in &table {
        let cells: Vec<&str> = row.split(" | ").collect();
        for word in cells[0].split(['`', ' ', ',', '|']) {
            if word.starts_with('-') && word.len() > 1 {
                documented.insert(word.trim_end_matches('\\').to_owned());
            }
        }
        for word in cells[1].split(['`', '=', ' ']) {
            if word.starts_with("ECRSHIP_") {
                documented_env.insert(word.to_owned());
            }
        }
    }

    let (mut defined, mut defined_env, mut without_env) =
        (BTreeSet::new(), BTreeSet::new(), Vec::new());
    let cli = ecrship::cli::Cli::command();
    let commands = std::iter::once(&cli).chain(cli.get_subcommands());
    for command in commands {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_positional() || id == "help" || id == "version" {
                continue;
            }
            if let Some(long) = arg.get_long() {
                defined.insert(format!("--{long}"));
            }
            if let Some(short) = arg.get_short() {
                defined.insert(format!("-{short}"));
            }
            match arg.get_env() {
                Some(env) => {
                    defined_env.insert(env.to_string_lossy().into_owned());
                }
                // -v counts: its twin is read by the printer (ECRSHIP_VERBOSE=1|2).
                None if id == "verbose" => {
                    defined_env.insert("ECRSHIP_VERBOSE".to_owned());
                }
                None => without_env.push(format!("{} --{}", command.get_name(), id)),
            }
        }
    }
    // `-vv` is `-v` given twice.
    documented.remove("-vv");
    assert_eq!(
        documented, defined,
        "flags: README table (left) against cli.rs (right)"
    );
    assert_eq!(
        documented_env, defined_env,
        "environment twins: README against cli.rs"
    );
    assert!(
        without_env.is_empty(),
        "flags without an environment twin: {without_env:?}"
    );
}
