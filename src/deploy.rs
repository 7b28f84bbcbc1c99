//! The deploy preflight: does what ecrship deploys fit the ECS service it is deployed to?
//!
//! CodePipeline's deploy actions fail after the build and the push, on facts that ECS holds all
//! along. This module compares those facts (read by `aws::ecs`: `DescribeServices`, then
//! `DescribeTaskDefinition` of the service's current task definition) with the images of a run,
//! and returns what would make the deploy fail. It is pure: facts in, findings out.
//!
//! The rules, and where they come from:
//!
//! - Every `name` of `imagedefinitions.json` must be a container of the task definition. The
//!   Amazon ECS deploy action registers a new revision with the new image of each named container
//!   and fails otherwise ("The AWS ECS container ... does not exist in the task definition"; AWS
//!   CodePipeline user guide, "Image definitions file reference" and "Amazon Elastic Container
//!   Service deploy action reference").
//! - The task's `runtimePlatform.cpuArchitecture` (`X86_64` when absent) and
//!   `operatingSystemFamily` (`LINUX` when absent) must match one of the image's platforms (ECS
//!   API reference, `RuntimePlatform`): an ARM64 task cannot start an amd64-only image.
//!   Architecture names are normalized as containerd's `platforms` package does (`x86_64`,
//!   `x86-64` → `amd64`; `aarch64` → `arm64`).
//! - A service with the `CODE_DEPLOY` deployment controller takes no new task definition from
//!   `UpdateService` ("Unable to update task definition on services with a CODE_DEPLOY deployment
//!   controller"; ECS API reference, `UpdateService`), so only the Amazon ECS (Blue/Green) action
//!   deploys it, and that action reads `imageDetail.json` (`{"ImageURI": ...}`; CodePipeline user
//!   guide, "imageDetail.json file for Amazon ECS blue/green deployment actions"). Such a service
//!   needs `image_detail`; a service with the `EXTERNAL` controller is deployed by neither action.
//! - The service must be `ACTIVE`: a `DRAINING` or `INACTIVE` service is being deleted.
//! - `imagedefinitions.json` is at most 100 KB (CodePipeline user guide, "Image definitions file
//!   reference"); `ecrship verify` checks it on an existing file.

use std::fmt;

use serde::Serialize;

/// The size limit CodePipeline sets on an image definitions file.
pub const IMAGE_DEFINITIONS_MAX_BYTES: u64 = 100 * 1024;

/// What ECS says about the service and its current task definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    pub cluster: String,
    pub service: String,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    pub deployment_controller: Controller,
    pub task_definition: TaskDefinition,
}

/// The deployment controller of a service (`deploymentController.type`; `ECS` when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Controller {
    /// Rolling updates, and ECS's own blue/green: the Amazon ECS deploy action.
    Ecs,
    /// Blue/green through CodeDeploy: the Amazon ECS (Blue/Green) deploy action.
    CodeDeploy,
    /// Task sets managed by a third party.
    External,
}

impl Controller {
    /// From the API's `deploymentController.type`; `ECS` when absent, `None` when unknown.
    pub fn parse(value: Option<&str>) -> Option<Controller> {
        match value {
            None | Some("ECS") => Some(Controller::Ecs),
            Some("CODE_DEPLOY") => Some(Controller::CodeDeploy),
            Some("EXTERNAL") => Some(Controller::External),
            Some(_) => None,
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Controller::Ecs => "ECS",
            Controller::CodeDeploy => "CODE_DEPLOY",
            Controller::External => "EXTERNAL",
        })
    }
}

/// The facts of a task definition that a deploy depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskDefinition {
    pub family: String,
    pub revision: i32,
    /// The container names, in the task definition's order.
    pub containers: Vec<String>,
    /// `runtimePlatform.cpuArchitecture`: `X86_64` or `ARM64`; `None` when not set.
    pub cpu_architecture: Option<String>,
    /// `runtimePlatform.operatingSystemFamily`: `LINUX`, `WINDOWS_SERVER_2022_CORE`, ...; `None`
    /// when not set.
    pub operating_system_family: Option<String>,
}

impl TaskDefinition {
    /// `family:revision`, as ECS names a revision.
    pub fn label(&self) -> String {
        format!("{}:{}", self.family, self.revision)
    }

    /// The CPU architecture the task runs on: `X86_64` when not set.
    pub fn architecture(&self) -> &str {
        self.cpu_architecture.as_deref().unwrap_or("X86_64")
    }

    /// The operating system family the task runs on: `LINUX` when not set.
    pub fn os_family(&self) -> &str {
        self.operating_system_family.as_deref().unwrap_or("LINUX")
    }
}

/// One image to deploy: its name (the container it replaces) and the platforms it is built for;
/// `None` when they are not known (an `imagedefinitions.json` entry the config does not describe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub platforms: Option<Vec<String>>,
}

/// The platforms of an image: the configured one, else the default ([`crate::reference::DEFAULT_PLATFORM`]).
pub fn platforms_of(
    platform: Option<&crate::reference::Platform>,
    platforms: &[crate::reference::Platform],
) -> Vec<String> {
    if platforms.is_empty() {
        vec![platform.cloned().unwrap_or_default().to_string()]
    } else {
        platforms.iter().map(ToString::to_string).collect()
    }
}

/// What would make the deploy fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    NotAContainer {
        image: String,
        task_definition: String,
        service: String,
        cluster: String,
        containers: Vec<String>,
    },
    Platform {
        image: String,
        task_definition: String,
        /// What the task runs on, e.g. `linux/arm64`.
        wanted: String,
        /// `runtimePlatform` as ECS states it, e.g. `ARM64` or `WINDOWS_SERVER_2022_CORE`.
        runtime: String,
        platforms: Vec<String>,
    },
    CodeDeployNeedsImageDetail {
        service: String,
        cluster: String,
    },
    ExternalController {
        service: String,
        cluster: String,
    },
    ServiceNotActive {
        service: String,
        cluster: String,
        status: String,
    },
    TooLarge {
        file: String,
        bytes: u64,
    },
    Empty {
        file: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::NotAContainer {
                image,
                task_definition,
                service,
                cluster,
                containers,
            } => write!(
                f,
                "image `{image}` is not a container of task definition `{task_definition}` of service `{service}` \
                 in cluster `{cluster}`; its containers are {}",
                containers.join(", ")
            ),
            Finding::Platform {
                image,
                task_definition,
                wanted,
                runtime,
                platforms,
            } => write!(
                f,
                "task definition `{task_definition}` runs on {runtime} ({wanted}), but image `{image}` is built for {} \
                 only: set `platform = \"{wanted}\"` for it, or change the task's runtimePlatform",
                platforms.join(", ")
            ),
            Finding::CodeDeployNeedsImageDetail { service, cluster } => write!(
                f,
                "service `{service}` in cluster `{cluster}` uses the CODE_DEPLOY deployment controller, which takes no \
                 new task definition from the Amazon ECS deploy action: deploy it with the Amazon ECS (Blue/Green) action \
                 and set `image_detail` in [artifacts] to write its imageDetail.json"
            ),
            Finding::ExternalController { service, cluster } => write!(
                f,
                "service `{service}` in cluster `{cluster}` uses the EXTERNAL deployment controller, which neither \
                 CodePipeline ECS deploy action can deploy to"
            ),
            Finding::ServiceNotActive {
                service,
                cluster,
                status,
            } => write!(
                f,
                "service `{service}` in cluster `{cluster}` is {status}, not ACTIVE: it is being deleted"
            ),
            Finding::TooLarge { file, bytes } => write!(
                f,
                "`{file}` is {bytes} bytes; CodePipeline reads image definitions files of at most {IMAGE_DEFINITIONS_MAX_BYTES} bytes"
            ),
            Finding::Empty { file } => write!(f, "`{file}` names no image"),
        }
    }
}

/// The outcome of a check: findings fail the deploy, notes are said and let pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// Compares the images of a run with the service they are deployed to.
///
/// `image_detail` is the image whose `imageDetail.json` the run writes, when it writes one.
pub fn check(deployed: &Deployed, images: &[Candidate], image_detail: Option<&str>) -> Outcome {
    let mut outcome = Outcome::default();
    let service = || deployed.service.clone();
    let cluster = || deployed.cluster.clone();
    if deployed.status != "ACTIVE" {
        outcome.findings.push(Finding::ServiceNotActive {
            service: service(),
            cluster: cluster(),
            status: deployed.status.clone(),
        });
    }
    match (&deployed.deployment_controller, image_detail) {
        (Controller::Ecs, Some(image)) => outcome.notes.push(format!(
            "service `{}` uses the ECS deployment controller: the Amazon ECS deploy action deploys it from \
             imagedefinitions.json, and the imageDetail.json of `{image}` is for CodeDeploy blue/green only",
            deployed.service
        )),
        (Controller::CodeDeploy, None) => {
            outcome.findings.push(Finding::CodeDeployNeedsImageDetail {
                service: service(),
                cluster: cluster(),
            })
        }
        (Controller::External, _) => outcome.findings.push(Finding::ExternalController {
            service: service(),
            cluster: cluster(),
        }),
        _ => {}
    }

    let task = &deployed.task_definition;
    let wanted = task_platform(task);
    for image in images {
        if !task.containers.contains(&image.name) {
            outcome.findings.push(Finding::NotAContainer {
                image: image.name.clone(),
                task_definition: task.label(),
                service: service(),
                cluster: cluster(),
                containers: task.containers.clone(),
            });
            continue;
        }
        let Some(platforms) = &image.platforms else {
            outcome.notes.push(format!(
                "image `{}` is not in the config: its platform is not known and was not checked",
                image.name
            ));
            continue;
        };
        match &wanted {
            Some(wanted) => {
                if !platforms.iter().any(|p| runs_on(p, wanted)) {
                    outcome.findings.push(Finding::Platform {
                        image: image.name.clone(),
                        task_definition: task.label(),
                        wanted: wanted.to_string(),
                        runtime: runtime_label(task),
                        platforms: platforms.clone(),
                    });
                }
            }
            None => outcome.notes.push(format!(
                "task definition `{}` states a runtime platform ecrship does not know ({}); the platform of `{}` was not checked",
                task.label(),
                runtime_label(task),
                image.name
            )),
        }
    }
    outcome
}

/// The size and emptiness rules of an existing `imagedefinitions.json`.
pub fn check_file(file: &str, bytes: u64, entries: usize) -> Vec<Finding> {
    let mut findings = Vec::new();
    if bytes > IMAGE_DEFINITIONS_MAX_BYTES {
        findings.push(Finding::TooLarge {
            file: file.to_owned(),
            bytes,
        });
    }
    if entries == 0 {
        findings.push(Finding::Empty {
            file: file.to_owned(),
        });
    }
    findings
}

/// An OCI platform reduced to what ECS can ask for: OS and architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Platform {
    os: String,
    /// `None` when the platform names an OS only.
    arch: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.arch {
            Some(arch) => write!(f, "{}/{arch}", self.os),
            None => f.write_str(&self.os),
        }
    }
}

/// What a task definition runs on, as an OCI platform; `None` for values ECS may add later.
fn task_platform(task: &TaskDefinition) -> Option<Platform> {
    let os = match task.os_family() {
        "LINUX" => "linux",
        family if family.starts_with("WINDOWS_SERVER_") => "windows",
        _ => return None,
    };
    let arch = match task.architecture() {
        "X86_64" => "amd64",
        "ARM64" => "arm64",
        _ => return None,
    };
    Some(Platform {
        os: os.into(),
        arch: Some(arch.into()),
    })
}

/// `ARM64`, or `ARM64, WINDOWS_SERVER_2022_CORE` when the OS is not Linux.
fn runtime_label(task: &TaskDefinition) -> String {
    match task.os_family() {
        "LINUX" => task.architecture().to_owned(),
        os => format!("{}, {os}", task.architecture()),
    }
}

/// Whether an image built for `platform` (`os[/arch[/variant]]`) runs on `wanted`. A platform
/// without an architecture is matched on its OS alone.
fn runs_on(platform: &str, wanted: &Platform) -> bool {
    let parsed = parse_platform(platform);
    parsed.os == wanted.os && (parsed.arch.is_none() || parsed.arch == wanted.arch)
}

/// `linux/x86_64` → linux, amd64 (containerd `platforms.Normalize`: lowercase, `x86_64` and
/// `x86-64` are `amd64`, `aarch64` is `arm64`; the variant does not matter to ECS).
fn parse_platform(platform: &str) -> Platform {
    let lower = platform.trim().to_ascii_lowercase();
    let mut parts = lower.split('/');
    let os = parts.next().unwrap_or_default().to_owned();
    let arch = parts.next().map(|arch| {
        match arch {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
        .to_owned()
    });
    Platform { os, arch }
}

/// A deploy that would fail, or a preflight that could not run.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The images do not fit the service: exit 1.
    #[error("the deploy would fail: {}", join(.0))]
    Mismatch(Vec<Finding>),
    /// `ecrship verify` without a `[deploy]` section: exit 2.
    #[error(
        "no [deploy] section in {origin}: add `[deploy]` with `cluster` and `service` to say which ECS service to check"
    )]
    NotConfigured { origin: String },
    /// An artifact that cannot be read or is not what CodePipeline reads: exit 2.
    #[error("{0}")]
    Artifact(String),
}

impl crate::exit::Exit for DeployError {
    fn exit(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match self {
            DeployError::Mismatch(_) => ExitCode::Failed,
            DeployError::NotConfigured { .. } | DeployError::Artifact(_) => ExitCode::BadInput,
        }
    }
}

fn join(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `ecrship verify`'s result: the service, its task definition and what was checked.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub cluster: String,
    pub service: String,
    pub deployment_controller: Controller,
    pub task_definition: String,
    pub cpu_architecture: String,
    pub operating_system_family: String,
    pub containers: Vec<String>,
    /// The images of the artifact, all of them containers of the task definition.
    pub images: Vec<String>,
    pub artifact: String,
    pub notes: Vec<String>,
}

impl VerifyReport {
    pub fn new(
        deployed: &Deployed,
        images: &[Candidate],
        artifact: &str,
        notes: Vec<String>,
    ) -> VerifyReport {
        let task = &deployed.task_definition;
        VerifyReport {
            cluster: deployed.cluster.clone(),
            service: deployed.service.clone(),
            deployment_controller: deployed.deployment_controller.clone(),
            task_definition: task.label(),
            cpu_architecture: task.architecture().to_owned(),
            operating_system_family: task.os_family().to_owned(),
            containers: task.containers.clone(),
            images: images.iter().map(|i| i.name.clone()).collect(),
            artifact: artifact.to_owned(),
            notes,
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} fits service `{}` in cluster `{}` (deployment controller {})",
            self.artifact, self.service, self.cluster, self.deployment_controller
        )?;
        writeln!(
            f,
            "  task definition  {} ({}, {})",
            self.task_definition, self.cpu_architecture, self.operating_system_family
        )?;
        writeln!(f, "  containers       {}", self.containers.join(", "))?;
        writeln!(f, "  images           {}", self.images.join(", "))?;
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::DEFAULT_PLATFORM;

    fn deployed(containers: &[&str], arch: Option<&str>, os: Option<&str>) -> Deployed {
        Deployed {
            cluster: "c".into(),
            service: "svc".into(),
            status: "ACTIVE".into(),
            deployment_controller: Controller::Ecs,
            task_definition: TaskDefinition {
                family: "family".into(),
                revision: 3,
                containers: containers.iter().map(|c| c.to_string()).collect(),
                cpu_architecture: arch.map(str::to_owned),
                operating_system_family: os.map(str::to_owned),
            },
        }
    }

    fn image(name: &str, platforms: &[&str]) -> Candidate {
        Candidate {
            name: name.into(),
            platforms: Some(platforms.iter().map(|p| p.to_string()).collect()),
        }
    }

    #[test]
    fn names_must_be_containers() {
        let d = deployed(&["app", "web", "log"], None, None);
        let ok = check(
            &d,
            &[
                image("app", &[DEFAULT_PLATFORM]),
                image("web", &[DEFAULT_PLATFORM]),
                image("log", &[DEFAULT_PLATFORM]),
            ],
            None,
        );
        assert_eq!(ok, Outcome::default());

        let bad = check(&d, &[image("application", &[DEFAULT_PLATFORM])], None);
        assert_eq!(bad.findings.len(), 1);
        assert_eq!(
            bad.findings[0].to_string(),
            "image `application` is not a container of task definition `family:3` of service `svc` in cluster `c`; \
             its containers are app, web, log"
        );
    }

    #[test]
    fn platforms_against_the_runtime_platform() {
        // (task architecture, task OS, image platforms, passes)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a [&'a str], bool);
        let cases: &[Case] = &[
            (None, None, &["linux/amd64"], true),
            (Some("X86_64"), None, &["linux/amd64"], true),
            (Some("X86_64"), Some("LINUX"), &["linux/x86_64"], true),
            (Some("ARM64"), None, &["linux/amd64"], false),
            (Some("ARM64"), None, &["linux/arm64"], true),
            (Some("ARM64"), None, &["linux/arm64/v8"], true),
            (Some("ARM64"), None, &["linux/aarch64"], true),
            (Some("ARM64"), None, &["Linux/ARM64"], true),
            (Some("ARM64"), None, &["linux/amd64", "linux/arm64"], true),
            (None, None, &["linux/arm64"], false),
            (None, None, &["linux/arm/v7"], false),
            (None, None, &["linux"], true),
            (
                None,
                Some("WINDOWS_SERVER_2022_CORE"),
                &["linux/amd64"],
                false,
            ),
            (
                None,
                Some("WINDOWS_SERVER_2022_CORE"),
                &["windows/amd64"],
                true,
            ),
        ];
        for (arch, os, platforms, passes) in cases {
            let d = deployed(&["app"], *arch, *os);
            let outcome = check(&d, &[image("app", platforms)], None);
            assert_eq!(
                outcome.findings.is_empty(),
                *passes,
                "{arch:?} {os:?} {platforms:?}: {outcome:?}"
            );
        }
        let d = deployed(&["app"], Some("ARM64"), None);
        let outcome = check(&d, &[image("app", &["linux/amd64"])], None);
        assert_eq!(
            outcome.findings[0].to_string(),
            "task definition `family:3` runs on ARM64 (linux/arm64), but image `app` is built for linux/amd64 only: \
             set `platform = \"linux/arm64\"` for it, or change the task's runtimePlatform"
        );
    }

    #[test]
    fn unknown_values_are_notes_not_failures() {
        let d = deployed(&["app"], Some("RISCV64"), None);
        let outcome = check(&d, &[image("app", &["linux/amd64"])], None);
        assert!(outcome.findings.is_empty());
        assert!(outcome.notes[0].contains("RISCV64"), "{outcome:?}");

        let d = deployed(&["app"], None, None);
        let unknown = Candidate {
            name: "app".into(),
            platforms: None,
        };
        let outcome = check(&d, &[unknown], None);
        assert!(outcome.findings.is_empty());
        assert!(
            outcome.notes[0].contains("not in the config"),
            "{outcome:?}"
        );
    }

    #[test]
    fn deployment_controllers() {
        // (controller, image_detail, finding kinds)
        let cases: &[(Controller, Option<&str>, &[&str])] = &[
            (Controller::Ecs, None, &[]),
            (Controller::Ecs, Some("app"), &[]),
            (Controller::CodeDeploy, Some("app"), &[]),
            (
                Controller::CodeDeploy,
                None,
                &["code_deploy_needs_image_detail"],
            ),
            (Controller::External, None, &["external_controller"]),
            (Controller::External, Some("app"), &["external_controller"]),
        ];
        for (controller, detail, kinds) in cases {
            let mut d = deployed(&["app"], None, None);
            d.deployment_controller = controller.clone();
            let outcome = check(&d, &[image("app", &[DEFAULT_PLATFORM])], *detail);
            let got: Vec<String> = outcome
                .findings
                .iter()
                .map(|f| {
                    serde_json::to_value(f).unwrap()["kind"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            assert_eq!(got, *kinds, "{controller:?} {detail:?}");
        }
        // imageDetail.json for a rolling service is said, not failed.
        let d = deployed(&["app"], None, None);
        let outcome = check(&d, &[image("app", &[DEFAULT_PLATFORM])], Some("app"));
        assert!(outcome.notes[0].contains("imageDetail.json"), "{outcome:?}");
        assert_eq!(Controller::parse(None), Some(Controller::Ecs));
        assert_eq!(
            Controller::parse(Some("CODE_DEPLOY")),
            Some(Controller::CodeDeploy)
        );
        assert_eq!(Controller::parse(Some("NEW")), None);
    }

    #[test]
    fn an_inactive_service_fails() {
        let mut d = deployed(&["app"], None, None);
        d.status = "DRAINING".into();
        let outcome = check(&d, &[image("app", &[DEFAULT_PLATFORM])], None);
        assert_eq!(
            outcome.findings[0].to_string(),
            "service `svc` in cluster `c` is DRAINING, not ACTIVE: it is being deleted"
        );
    }

    #[test]
    fn file_limits() {
        assert!(check_file("i.json", 100 * 1024, 1).is_empty());
        let findings = check_file("i.json", 100 * 1024 + 1, 0);
        assert_eq!(findings.len(), 2);
        assert!(findings[0].to_string().contains("102401 bytes"));
        assert_eq!(findings[1].to_string(), "`i.json` names no image");
    }

    #[test]
    fn mismatch_is_one_line_with_every_finding() {
        let d = deployed(&["app", "web"], Some("ARM64"), None);
        let outcome = check(
            &d,
            &[
                image("application", &["linux/amd64"]),
                image("web", &["linux/amd64"]),
            ],
            None,
        );
        let error = DeployError::Mismatch(outcome.findings);
        let text = error.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.contains("`application`") && text.contains("`web` is built for"),
            "{text}"
        );
        assert_eq!(crate::exit::Exit::exit(&error).code(), 1);
    }
}
