//! `ecrship policy`: the least-privilege IAM policy that a build role needs for this config.
//!
//! Pure: the environment comes in as a closure and nothing is read or written here. The result is
//! the policy document (valid JSON on stdout) and notes that cannot live in IAM JSON, which the
//! command prints on stderr.

use std::fmt;

use serde::Serialize;

use crate::config::{Config, DeployConfig, ValueSource, Via};
use crate::plan::ecr_registry;

/// The policy language version every document uses.
pub const POLICY_VERSION: &str = "2012-10-17";

/// Where the ARNs point: account, region and partition, each `*` when unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInput {
    pub account: String,
    pub region: String,
    pub partition: &'static str,
}

/// Resolves the account and region of the ARNs.
///
/// Account: `AWS_ACCOUNT_ID`, else the account of `registry` when it is an ECR host, else `*`.
/// Region: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the region of an ECR `registry`, else `*`.
/// Empty or blank variables count as unset.
pub fn resolve_scope(registry: Option<&str>, env: impl Fn(&str) -> Option<String>) -> PolicyInput {
    let nonempty = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let ecr = registry.and_then(ecr_registry);
    let account = nonempty("AWS_ACCOUNT_ID")
        .or_else(|| ecr.map(|(account, _)| account.to_owned()))
        .unwrap_or_else(|| "*".to_owned());
    let region = nonempty("AWS_REGION")
        .or_else(|| nonempty("AWS_DEFAULT_REGION"))
        .or_else(|| ecr.map(|(_, region)| region.to_owned()))
        .unwrap_or_else(|| "*".to_owned());
    PolicyInput {
        partition: partition_of(&region),
        account,
        region,
    }
}

/// `aws-cn` for the China regions, `aws-us-gov` for GovCloud, else `aws` (also for an unknown region).
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The IAM policy document: `{"Version": ..., "Statement": [...]}`.
///
/// `Display` is the pretty JSON with a final newline; `Serialize` is the same document, so the text
/// and `--output json` results are identical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    pub version: &'static str,
    pub statement: Vec<Statement>,
}

/// One `Allow` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub sid: &'static str,
    pub effect: &'static str,
    pub action: Vec<&'static str>,
    pub resource: Resource,
}

/// A single resource is written as a string, several as a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Resource {
    One(String),
    Many(Vec<String>),
}

impl Resource {
    /// The resources as a list, whichever way they are written.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Resource::One(one) => std::slice::from_ref(one),
            Resource::Many(many) => many,
        }
    }
}

impl From<Vec<String>> for Resource {
    fn from(mut resources: Vec<String>) -> Resource {
        if resources.len() == 1 {
            Resource::One(resources.remove(0))
        } else {
            Resource::Many(resources)
        }
    }
}

impl fmt::Display for PolicyDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string_pretty(self).map_err(|_| fmt::Error)?;
        writeln!(f, "{json}")
    }
}

/// What `ecrship policy` prints: the document on stdout, the notes on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub document: PolicyDocument,
    pub notes: Vec<String>,
}

/// Actions that a run needs on each repository, in the order they are listed: the push of
/// layers and manifests (`PutImage` also tags a reused image, and joins a manifest list), and
/// the reads of a reuse check, of an inline-cache import and of `ecrship manifest`
/// (`BatchGetImage` for manifests, `GetDownloadUrlForLayer` for an image config or a layer).
const PUSH_ACTIONS: [&str; 7] = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
];

/// The least-privilege policy for every image of `config`.
///
/// `create_repositories` adds `ecr:CreateRepository` on the same repositories.
pub fn policy(config: &Config, scope: &PolicyInput, create_repositories: bool) -> Policy {
    let PolicyInput {
        account,
        region,
        partition,
    } = scope;
    let mut statement = vec![Statement {
        sid: "EcrLogin",
        effect: "Allow",
        action: vec!["ecr:GetAuthorizationToken"],
        resource: Resource::One("*".into()),
    }];

    let mut action = PUSH_ACTIONS.to_vec();
    if create_repositories {
        action.push("ecr:CreateRepository");
    }
    let repositories = distinct(config.images.iter().map(|image| {
        format!(
            "arn:{partition}:ecr:{region}:{account}:repository/{}",
            image.repository
        )
    }));
    statement.push(Statement {
        sid: "EcrPush",
        effect: "Allow",
        action,
        resource: repositories.into(),
    });

    let parameters = distinct(
        config
            .images
            .iter()
            .flat_map(|image| image.build_args.values().chain(image.secrets.values()))
            .filter_map(|source| match source {
                ValueSource::Ssm { name } => Some(parameter_arn(name, scope)),
                _ => None,
            }),
    );
    let mut notes = Vec::new();
    if !parameters.is_empty() {
        statement.push(Statement {
            sid: "SsmParameters",
            effect: "Allow",
            action: vec!["ssm:GetParameter", "ssm:GetParameters"],
            resource: parameters.into(),
        });
        notes.push(format!(
            "SecureString parameters encrypted with a customer-managed KMS key also need `kms:Decrypt` on that key \
             (arn:{partition}:kms:{region}:{account}:key/<key-id>); the AWS-managed key `aws/ssm` needs nothing more"
        ));
    }
    statement.extend(mirror_statements(config, scope));
    if let Some(deploy) = &config.deploy {
        statement.extend(deploy_statements(deploy, scope));
    }
    let unknown: Vec<&str> = [
        (account == "*").then_some("account (set AWS_ACCOUNT_ID, or an ECR `registry`)"),
        (region == "*").then_some("region (set AWS_REGION, or an ECR `registry`)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !unknown.is_empty() {
        notes.push(format!(
            "unknown {}: the ARNs use `*` there, which is wider than needed",
            unknown.join(" and ")
        ));
    }

    Policy {
        document: PolicyDocument {
            version: POLICY_VERSION,
            statement,
        },
        notes,
    }
}

/// What pulling through the `[mirror]` pull-through caches of the push registry needs
/// (ECR User Guide, "IAM permissions required to sync an upstream registry with a private
/// registry"): on the repositories under each prefix, the pulls, `ecr:BatchImportUpstreamImage`
/// (which makes ECR fetch an image it does not hold yet) and `ecr:CreateRepository` (its first
/// pull creates the repository); and `ecr:DescribePullThroughCacheRules`, which the run reads to
/// check the rules. That one is a read of the registry's settings, granted on `*` as ECR's
/// registry-level reads are.
fn mirror_statements(config: &Config, scope: &PolicyInput) -> Vec<Statement> {
    let PolicyInput {
        account,
        region,
        partition,
    } = scope;
    let prefixes = distinct(config.mirrors.0.iter().filter_map(|m| match &m.via {
        Via::PullThrough(prefix) => Some(format!(
            "arn:{partition}:ecr:{region}:{account}:repository/{prefix}/*"
        )),
        Via::Prefix { .. } => None,
    }));
    if prefixes.is_empty() {
        return Vec::new();
    }
    vec![
        Statement {
            sid: "EcrPullThroughCache",
            effect: "Allow",
            action: vec![
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchImportUpstreamImage",
                "ecr:CreateRepository",
            ],
            resource: prefixes.into(),
        },
        Statement {
            sid: "EcrPullThroughCacheRules",
            effect: "Allow",
            action: vec!["ecr:DescribePullThroughCacheRules"],
            resource: Resource::One("*".to_owned()),
        },
    ]
}

/// What the deploy preflight reads: the service, then its task definition.
///
/// From the Service Authorization Reference ("Actions, resources, and condition keys for Amazon
/// Elastic Container Service"): `ecs:DescribeServices` takes the `service` resource type,
/// `arn:<partition>:ecs:<region>:<account>:service/<cluster>/<service>`, so it is granted on the
/// one service; `ecs:DescribeTaskDefinition` has no resource type and can only be granted on `*`.
fn deploy_statements(deploy: &DeployConfig, scope: &PolicyInput) -> [Statement; 2] {
    let PolicyInput {
        account,
        region,
        partition,
    } = scope;
    [
        Statement {
            sid: "EcsDeployService",
            effect: "Allow",
            action: vec!["ecs:DescribeServices"],
            resource: Resource::One(format!(
                "arn:{partition}:ecs:{region}:{account}:service/{}/{}",
                deploy.cluster, deploy.service
            )),
        },
        Statement {
            sid: "EcsDeployTaskDefinition",
            effect: "Allow",
            action: vec!["ecs:DescribeTaskDefinition"],
            resource: Resource::One("*".into()),
        },
    ]
}

/// The ARN of an SSM parameter: `/app/prod/KEY` and `KEY` give `parameter/app/prod/KEY` and
/// `parameter/KEY`. A version or label selector (`KEY:3`) is dropped, since IAM matches the
/// parameter itself; a name that already is an ARN is kept (without its selector).
pub fn parameter_arn(name: &str, scope: &PolicyInput) -> String {
    let name = name.trim();
    if name.starts_with("arn:") {
        return match name.split_once(":parameter/") {
            Some((head, path)) => format!("{head}:parameter/{}", without_selector(path)),
            None => name.to_owned(),
        };
    }
    let path = without_selector(name).trim_start_matches('/');
    let PolicyInput {
        account,
        region,
        partition,
    } = scope;
    format!("arn:{partition}:ssm:{region}:{account}:parameter/{path}")
}

/// A parameter name without a trailing `:version` or `:label` (names themselves never hold `:`).
fn without_selector(name: &str) -> &str {
    name.split_once(':').map_or(name, |(name, _)| name)
}

/// The items in first-seen order, each once.
fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The policy of the source side (`ecrship policy --source`), for the CI user or role that runs
/// `ecrship source`: `s3:PutObject` on exactly the zip's object (it also covers the multipart
/// upload's `CreateMultipartUpload`, `UploadPart` and `CompleteMultipartUpload`: Amazon S3 API
/// Reference, "Multipart upload API and permissions"), and `s3:GetBucketVersioning` on its bucket
/// for the versioning check. S3 ARNs carry no region and no account.
pub fn source_policy(target: &crate::source::object::Object, partition: &str) -> Policy {
    let crate::source::object::Object { bucket, key } = target;
    let statement = vec![
        Statement {
            sid: "SourceUpload",
            effect: "Allow",
            action: vec!["s3:PutObject"],
            resource: Resource::One(format!("arn:{partition}:s3:::{bucket}/{key}")),
        },
        Statement {
            sid: "SourceVersioning",
            effect: "Allow",
            action: vec!["s3:GetBucketVersioning"],
            resource: Resource::One(format!("arn:{partition}:s3:::{bucket}")),
        },
    ];
    let mut notes = vec![format!(
        "a zip above 8 MiB goes up in parts; when such an upload fails, ecrship aborts it only with          `s3:AbortMultipartUpload` on arn:{partition}:s3:::{bucket}/{key}, else its parts stay until a lifecycle          rule (AbortIncompleteMultipartUpload) removes them"
    )];
    if key.contains(['*', '?']) {
        notes.push(format!(
            "the key `{key}` holds `*` or `?`, which IAM reads as wildcards: the policy allows more objects than this one"
        ));
    }
    Policy {
        document: PolicyDocument {
            version: POLICY_VERSION,
            statement,
        },
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;
    use crate::test_env::env;
    use serde_json::json;

    fn config(text: &str) -> Config {
        Config::parse(text, Origin::Embedded).unwrap()
    }

    fn scope(account: &str, region: &str) -> PolicyInput {
        PolicyInput {
            account: account.into(),
            region: region.into(),
            partition: partition_of(region),
        }
    }

    /// The document as JSON, parsed back from its text.
    fn parsed(policy: &Policy) -> serde_json::Value {
        serde_json::from_str(&policy.document.to_string()).unwrap()
    }

    fn statement<'a>(policy: &'a Policy, sid: &str) -> Option<&'a Statement> {
        policy.document.statement.iter().find(|s| s.sid == sid)
    }

    const ECR_HOST: &str = "111122223333.dkr.ecr.eu-west-1.amazonaws.com";

    #[test]
    fn a_pull_through_mirror_may_import_under_its_prefix_only() {
        let base = "[[image]]\nname = \"app\"\n";
        let without = policy(&config(base), &scope("111122223333", "eu-west-1"), false);
        assert!(statement(&without, "EcrPullThroughCache").is_none());
        let text = format!(
            "{base}[mirror]\n\"docker.io\" = {{ pull_through = \"docker-hub\" }}\n\"ghcr.io\" = {{ prefix = \"public.ecr.aws/x\" }}\n"
        );
        let with = policy(&config(&text), &scope("111122223333", "eu-west-1"), false);
        let pull = statement(&with, "EcrPullThroughCache").expect("a statement for the cache");
        assert!(pull.action.contains(&"ecr:BatchImportUpstreamImage"));
        assert!(pull.action.contains(&"ecr:CreateRepository"));
        assert_eq!(
            pull.resource,
            Resource::One("arn:aws:ecr:eu-west-1:111122223333:repository/docker-hub/*".into()),
            "the prefix of the pull-through cache only; another registry's copies need nothing here"
        );
        let rules = statement(&with, "EcrPullThroughCacheRules").unwrap();
        assert_eq!(rules.action, ["ecr:DescribePullThroughCacheRules"]);
    }

    #[test]
    fn scope_resolution_order() {
        type Case<'a> = (
            Option<&'a str>,
            &'a [(&'a str, &'a str)],
            (&'a str, &'a str, &'a str),
        );
        let cases: &[Case] = &[
            // The environment wins over the registry host.
            (
                Some(ECR_HOST),
                &[
                    ("AWS_ACCOUNT_ID", "123456789012"),
                    ("AWS_REGION", "us-east-1"),
                ],
                ("123456789012", "us-east-1", "aws"),
            ),
            // AWS_REGION before AWS_DEFAULT_REGION.
            (
                None,
                &[
                    ("AWS_REGION", "us-east-2"),
                    ("AWS_DEFAULT_REGION", "us-west-2"),
                ],
                ("*", "us-east-2", "aws"),
            ),
            (
                None,
                &[("AWS_DEFAULT_REGION", "us-west-2")],
                ("*", "us-west-2", "aws"),
            ),
            // Blank variables count as unset.
            (
                Some(ECR_HOST),
                &[("AWS_ACCOUNT_ID", " "), ("AWS_REGION", "")],
                ("111122223333", "eu-west-1", "aws"),
            ),
            // Each part falls back on its own.
            (
                Some(ECR_HOST),
                &[("AWS_ACCOUNT_ID", "123456789012")],
                ("123456789012", "eu-west-1", "aws"),
            ),
            (
                Some(ECR_HOST),
                &[("AWS_DEFAULT_REGION", "ap-south-1")],
                ("111122223333", "ap-south-1", "aws"),
            ),
            // China and GovCloud partitions, from the host or the environment.
            (
                Some("111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn"),
                &[],
                ("111122223333", "cn-north-1", "aws-cn"),
            ),
            (
                None,
                &[("AWS_REGION", "cn-northwest-1")],
                ("*", "cn-northwest-1", "aws-cn"),
            ),
            (
                None,
                &[("AWS_REGION", "us-gov-west-1")],
                ("*", "us-gov-west-1", "aws-us-gov"),
            ),
            (
                Some("111122223333.dkr.ecr-fips.us-east-1.amazonaws.com"),
                &[],
                ("111122223333", "us-east-1", "aws"),
            ),
            (
                Some("111122223333.dkr.ecr.eu-west-1.amazonaws.com:443"),
                &[],
                ("111122223333", "eu-west-1", "aws"),
            ),
            // Hosts that are not ECR tell nothing.
            (Some("127.0.0.1:5000"), &[], ("*", "*", "aws")),
            (Some("registry.example.com"), &[], ("*", "*", "aws")),
            (
                Some(crate::plan::PLACEHOLDER_REGISTRY),
                &[],
                ("*", "*", "aws"),
            ),
            (
                Some("12345.dkr.ecr.us-east-1.amazonaws.com"),
                &[],
                ("*", "*", "aws"),
            ),
            (
                Some("111122223333.dkr.ecr.us-east-1.amazonaws.com.evil.example"),
                &[],
                ("*", "*", "aws"),
            ),
            (None, &[], ("*", "*", "aws")),
        ];
        for (registry, vars, (account, region, partition)) in cases {
            let got = resolve_scope(*registry, env(vars));
            assert_eq!(
                (got.account.as_str(), got.region.as_str(), got.partition),
                (*account, *region, *partition),
                "registry {registry:?}, env {vars:?}"
            );
        }
    }

    #[test]
    fn ecr_host_round_trips() {
        for region in ["us-east-1", "cn-north-1", "us-gov-east-1", "ap-southeast-4"] {
            let host = crate::plan::ecr_host("123456789012", region);
            assert_eq!(
                ecr_registry(&host),
                Some(("123456789012", region)),
                "{host}"
            );
        }
    }

    #[test]
    fn parameter_arns() {
        let aws = scope("123456789012", "us-east-1");
        let cn = scope("123456789012", "cn-north-1");
        let cases = [
            (
                "/app/prod/KEY",
                &aws,
                "arn:aws:ssm:us-east-1:123456789012:parameter/app/prod/KEY",
            ),
            (
                "KEY",
                &aws,
                "arn:aws:ssm:us-east-1:123456789012:parameter/KEY",
            ),
            (
                "/KEY",
                &aws,
                "arn:aws:ssm:us-east-1:123456789012:parameter/KEY",
            ),
            (
                "/app/KEY:3",
                &aws,
                "arn:aws:ssm:us-east-1:123456789012:parameter/app/KEY",
            ),
            (
                "KEY:prod",
                &aws,
                "arn:aws:ssm:us-east-1:123456789012:parameter/KEY",
            ),
            (
                "/app/KEY",
                &cn,
                "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/app/KEY",
            ),
            (
                "arn:aws:ssm:eu-west-1:444455556666:parameter/shared/KEY:2",
                &aws,
                "arn:aws:ssm:eu-west-1:444455556666:parameter/shared/KEY",
            ),
        ];
        for (name, scope, want) in cases {
            let got = parameter_arn(name, scope);
            assert_eq!(got, want, "{name}");
            assert!(!got.contains("//"), "{got}");
        }
    }

    #[test]
    fn full_document_parses_back_exactly() {
        let c = config(
            r#"
[[image]]
name = "app"
repository = "team/app"
[image.build_args]
MIX_ENV = { env = "MIX_ENV" }
KEY = { ssm = "/app/prod/KEY" }
PLAIN = "hunter2"
[image.secrets]
TOKEN = { ssm = "TOKEN" }
SKB = { file = "secrets/skb" }
[[image]]
name = "web"
[image.build_args]
KEY = { ssm = "/app/prod/KEY" }
[[image]]
name = "worker"
repository = "team/app"
"#,
        );
        let p = policy(&c, &scope("123456789012", "us-east-1"), false);
        let want = json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "EcrLogin",
                    "Effect": "Allow",
                    "Action": ["ecr:GetAuthorizationToken"],
                    "Resource": "*"
                },
                {
                    "Sid": "EcrPush",
                    "Effect": "Allow",
                    "Action": [
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:InitiateLayerUpload",
                        "ecr:UploadLayerPart",
                        "ecr:CompleteLayerUpload",
                        "ecr:PutImage",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer"
                    ],
                    "Resource": [
                        "arn:aws:ecr:us-east-1:123456789012:repository/team/app",
                        "arn:aws:ecr:us-east-1:123456789012:repository/web"
                    ]
                },
                {
                    "Sid": "SsmParameters",
                    "Effect": "Allow",
                    "Action": ["ssm:GetParameter", "ssm:GetParameters"],
                    "Resource": [
                        "arn:aws:ssm:us-east-1:123456789012:parameter/app/prod/KEY",
                        "arn:aws:ssm:us-east-1:123456789012:parameter/TOKEN"
                    ]
                }
            ]
        });
        assert_eq!(parsed(&p), want);
        assert_eq!(
            serde_json::to_value(&p.document).unwrap(),
            want,
            "Serialize is the same document"
        );

        let text = p.document.to_string();
        assert!(text.ends_with("}\n") && !text.ends_with("\n\n"), "{text:?}");
        assert_eq!(
            text,
            format!("{}\n", serde_json::to_string_pretty(&p.document).unwrap())
        );
        assert!(!text.contains("hunter2") && !text.contains("//"), "{text}");
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(p.notes[0].contains("kms:Decrypt"), "{:?}", p.notes);
    }

    #[test]
    fn repositories_are_distinct_in_config_order() {
        let c = config(
            "[[image]]\nname = \"zed\"\n[[image]]\nname = \"a1\"\nrepository = \"shared/x\"\n\
             [[image]]\nname = \"b1\"\nrepository = \"zed\"\n[[image]]\nname = \"c1\"\nrepository = \"shared/x\"\n",
        );
        let p = policy(&c, &scope("123456789012", "us-east-1"), false);
        let push = statement(&p, "EcrPush").unwrap();
        assert_eq!(
            push.resource.as_slice(),
            [
                "arn:aws:ecr:us-east-1:123456789012:repository/zed",
                "arn:aws:ecr:us-east-1:123456789012:repository/shared/x",
            ]
        );
    }

    #[test]
    fn single_repository_is_a_string() {
        let p = policy(
            &config("[[image]]\nname = \"app\"\n"),
            &scope("123456789012", "us-east-1"),
            false,
        );
        assert_eq!(
            parsed(&p)["Statement"][1]["Resource"],
            json!("arn:aws:ecr:us-east-1:123456789012:repository/app")
        );
    }

    #[test]
    fn no_ssm_statement_without_ssm_sources() {
        let texts = [
            "[[image]]\nname = \"app\"\n[image.build_args]\nA = \"lit\"\nB = { env = \"B\" }\n\
             [image.secrets]\nC = { file = \"c\" }\n",
            include_str!("default.toml"),
        ];
        for text in texts {
            let p = policy(&config(text), &scope("123456789012", "us-east-1"), true);
            let sids: Vec<&str> = p.document.statement.iter().map(|s| s.sid).collect();
            assert_eq!(sids, ["EcrLogin", "EcrPush"], "{text}");
            assert!(p.notes.is_empty(), "{:?}", p.notes);
            assert!(!p.document.to_string().contains("ssm"));
        }
    }

    #[test]
    fn optional_actions_follow_the_flags() {
        let c = config("[[image]]\nname = \"app\"\n");
        let cases = [(false, &[][..]), (true, &["ecr:CreateRepository"][..])];
        for (create, extra) in cases {
            let p = policy(&c, &scope("123456789012", "us-east-1"), create);
            let push = statement(&p, "EcrPush").unwrap();
            let want: Vec<&str> = PUSH_ACTIONS.iter().chain(extra).copied().collect();
            assert_eq!(push.action, want, "create {create}");
            assert_eq!(
                push.resource.as_slice(),
                ["arn:aws:ecr:us-east-1:123456789012:repository/app"]
            );
            let login = statement(&p, "EcrLogin").unwrap();
            assert_eq!(
                (login.action.as_slice(), &login.resource),
                (
                    &["ecr:GetAuthorizationToken"][..],
                    &Resource::One("*".into())
                )
            );
        }
    }

    #[test]
    fn china_partition_in_every_arn() {
        let c = config("[[image]]\nname = \"app\"\n[image.build_args]\nK = { ssm = \"/p/K\" }\n");
        let s = resolve_scope(
            Some("111122223333.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            env(&[]),
        );
        let p = policy(&c, &s, false);
        let arns: Vec<&String> = p
            .document
            .statement
            .iter()
            .skip(1)
            .flat_map(|s| s.resource.as_slice())
            .collect();
        assert_eq!(
            arns,
            [
                "arn:aws-cn:ecr:cn-north-1:111122223333:repository/app",
                "arn:aws-cn:ssm:cn-north-1:111122223333:parameter/p/K",
            ]
        );
        assert!(
            p.notes[0].contains("arn:aws-cn:kms:cn-north-1:111122223333:key/"),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn deploy_section_adds_the_ecs_reads() {
        let c =
            config("[[image]]\nname = \"app\"\n[deploy]\ncluster = \"prod\"\nservice = \"shop\"\n");
        let p = policy(&c, &scope("123456789012", "eu-west-1"), false);
        let sids: Vec<&str> = p.document.statement.iter().map(|s| s.sid).collect();
        assert_eq!(
            sids,
            [
                "EcrLogin",
                "EcrPush",
                "EcsDeployService",
                "EcsDeployTaskDefinition"
            ]
        );
        let service = statement(&p, "EcsDeployService").unwrap();
        assert_eq!(service.action, ["ecs:DescribeServices"]);
        assert_eq!(
            service.resource,
            Resource::One("arn:aws:ecs:eu-west-1:123456789012:service/prod/shop".into())
        );
        let task = statement(&p, "EcsDeployTaskDefinition").unwrap();
        assert_eq!(task.action, ["ecs:DescribeTaskDefinition"]);
        assert_eq!(task.resource, Resource::One("*".into()));
        // Without [deploy], no ECS action at all.
        let p = policy(
            &config("[[image]]\nname = \"app\"\n"),
            &scope("123456789012", "eu-west-1"),
            false,
        );
        assert!(!p.document.to_string().contains("ecs:"));
    }

    #[test]
    fn unknown_scope_is_a_wildcard_with_a_note() {
        let c = config("[[image]]\nname = \"app\"\n");
        let p = policy(&c, &resolve_scope(Some("127.0.0.1:5000"), env(&[])), false);
        assert_eq!(
            statement(&p, "EcrPush").unwrap().resource.as_slice(),
            ["arn:aws:ecr:*:*:repository/app"]
        );
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(
            p.notes[0].contains("account") && p.notes[0].contains("region"),
            "{:?}",
            p.notes
        );
        assert!(parsed(&p).is_object(), "notes stay out of the JSON");
    }

    #[test]
    fn source_policy_names_exactly_the_object_and_its_bucket() {
        let target = crate::source::object::Object {
            bucket: "src-bucket".into(),
            key: "app/src.zip".into(),
        };
        let p = source_policy(&target, "aws");
        let want = json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "SourceUpload",
                    "Effect": "Allow",
                    "Action": ["s3:PutObject"],
                    "Resource": "arn:aws:s3:::src-bucket/app/src.zip"
                },
                {
                    "Sid": "SourceVersioning",
                    "Effect": "Allow",
                    "Action": ["s3:GetBucketVersioning"],
                    "Resource": "arn:aws:s3:::src-bucket"
                }
            ]
        });
        assert_eq!(parsed(&p), want);
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(
            p.notes[0].contains("s3:AbortMultipartUpload"),
            "{:?}",
            p.notes
        );

        let target = crate::source::object::Object {
            bucket: "src-bucket".into(),
            key: "src-*.zip".into(),
        };
        let p = source_policy(&target, "aws-cn");
        assert_eq!(
            parsed(&p)["Statement"][0]["Resource"],
            "arn:aws-cn:s3:::src-bucket/src-*.zip"
        );
        assert!(p.notes[1].contains("wildcards"), "{:?}", p.notes);
    }
}
