//! ECS, read only: the service a `[deploy]` section names and its current task definition, as
//! the facts the deploy preflight (`deploy.rs`) checks.

use aws_config::SdkConfig;
use aws_sdk_ecs::operation::describe_services::DescribeServicesError;

use super::{AwsError, Speaking, call_error};
use crate::config::DeployConfig;
use crate::deploy::{Controller, Deployed, TaskDefinition};

/// `DescribeServices` for the service, then `DescribeTaskDefinition` for the task definition it
/// runs now (`service.taskDefinition`, an ARN naming one revision).
pub async fn deployed(config: &SdkConfig, target: &DeployConfig) -> Result<Deployed, AwsError> {
    let client = aws_sdk_ecs::Client::new(config);
    let call = format!(
        "ECS DescribeServices `{}` in cluster `{}`",
        target.service, target.cluster
    );
    let out = client
        .describe_services()
        .cluster(&target.cluster)
        .services(&target.service)
        .send()
        .speaking(&call)
        .await
        .map_err(|e| match e.as_service_error() {
            Some(DescribeServicesError::ClusterNotFoundException(_)) => AwsError::Call {
                call: call.clone(),
                cause: "the cluster does not exist".into(),
                hint: Some("check `cluster` in [deploy] and the region (AWS_REGION)"),
            },
            _ => call_error(&call, &e),
        })?;
    let Some(service) = out.services().first() else {
        // A service that does not exist comes back as a failure with the reason `MISSING`.
        let reason = out
            .failures()
            .first()
            .and_then(|f| f.reason())
            .unwrap_or("no service in the answer");
        return Err(AwsError::Call {
            call,
            cause: format!("the service does not exist ({reason})"),
            hint: Some("check `service` and `cluster` in [deploy] and the region (AWS_REGION)"),
        });
    };
    let controller_type = service
        .deployment_controller()
        .map(|c| c.r#type().as_str().to_owned());
    let deployment_controller =
        Controller::parse(controller_type.as_deref()).unwrap_or_else(|| {
            tracing::warn!(
                "service `{}` has a deployment controller ecrship does not know ({}); checked as ECS",
                target.service,
                controller_type.as_deref().unwrap_or_default()
            );
            Controller::Ecs
        });
    let arn = service.task_definition().ok_or_else(|| AwsError::Call {
        call: call.clone(),
        cause: "the service names no task definition".into(),
        hint: None,
    })?;

    let call = format!("ECS DescribeTaskDefinition `{arn}`");
    let out = client
        .describe_task_definition()
        .task_definition(arn)
        .send()
        .speaking(&call)
        .await
        .map_err(|e| call_error(&call, &e))?;
    let task = out.task_definition().ok_or_else(|| AwsError::Call {
        call: call.clone(),
        cause: "no task definition in the answer".into(),
        hint: None,
    })?;
    let runtime = task.runtime_platform();
    Ok(Deployed {
        cluster: target.cluster.clone(),
        service: target.service.clone(),
        status: service.status().unwrap_or("ACTIVE").to_owned(),
        deployment_controller,
        task_definition: TaskDefinition {
            family: task.family().unwrap_or_default().to_owned(),
            revision: task.revision(),
            containers: task
                .container_definitions()
                .iter()
                .filter_map(|c| c.name().map(str::to_owned))
                .collect(),
            cpu_architecture: runtime
                .and_then(|r| r.cpu_architecture())
                .map(|a| a.as_str().to_owned()),
            operating_system_family: runtime
                .and_then(|r| r.operating_system_family())
                .map(|o| o.as_str().to_owned()),
        },
    })
}
