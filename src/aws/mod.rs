//! The AWS edge: configuration from the default chain, ECR login, SSM parameters, the ECS
//! facts of the deploy preflight and the S3 upload of the source zip.

pub mod ecr;
pub mod ecs;
pub mod s3;
pub mod ssm;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// A failure talking to AWS, with the call, the cause and what to do.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(
        "no AWS region: set AWS_REGION (CodeBuild sets it; locally, `export AWS_REGION=ap-northeast-1`)"
    )]
    NoRegion,
    #[error("{call} failed: {cause}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Call {
        call: String,
        cause: String,
        hint: Option<&'static str>,
    },
}

/// Gives an SDK call the waiting line of [`crate::retry::speaking`]: the SDK retries on its own,
/// and a call that waits past a few seconds says what it waits for.
pub(crate) trait Speaking: std::future::Future + Sized {
    async fn speaking(self, what: &str) -> Self::Output {
        crate::retry::speaking(what, "", self).await
    }
}

impl<F: std::future::Future> Speaking for F {}

/// Loads the shared AWS configuration (environment, profile, CodeBuild's container credentials,
/// instance metadata; `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` overrides) with bounded
/// timeouts, so an unreachable endpoint is an error and never a hang.
pub async fn load() -> Result<SdkConfig, AwsError> {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(60))
        .build();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    if config.region().is_none() {
        return Err(AwsError::NoRegion);
    }
    Ok(config)
}

/// The full chain of an SDK error on one line, with a hint for the usual causes.
pub(crate) fn call_error<E>(call: &str, error: &aws_sdk_ecr::error::SdkError<E>) -> AwsError
where
    E: std::error::Error + 'static,
{
    // Each error of the chain once, without the `Debug` dump that `DisplayErrorContext` adds
    // (a thousand characters of struct fields and response headers on one line).
    let cause = crate::text::error_chain(error);
    let cause = cause.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = cause.to_ascii_lowercase();
    let hint = if lower.contains("no credentials")
        || lower.contains("credentialsnotloaded")
        || lower.contains("credentials provider")
    {
        Some(
            "no AWS credentials found: in CodeBuild the service role provides them; locally set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    } else if lower.contains("accessdenied") || lower.contains("not authorized") {
        Some("the role lacks a permission: `ecrship policy` prints the policy this config needs")
    } else if lower.contains("dispatch failure")
        || lower.contains("timeout")
        || lower.contains("connection")
    {
        Some("the AWS endpoint is unreachable: check the network and AWS_ENDPOINT_URL")
    } else {
        None
    };
    AwsError::Call {
        call: call.to_owned(),
        cause,
        hint,
    }
}
