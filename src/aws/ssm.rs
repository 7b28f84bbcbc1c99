//! SSM Parameter Store: each parameter fetched once per run, SecureStrings decrypted.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use futures_util::future::try_join_all;

use super::{AwsError, Speaking};
use crate::secret::Secret;

/// Fetches every named parameter, concurrently; a failure comes with the parameter's name.
pub async fn parameters(
    config: &SdkConfig,
    names: &BTreeSet<String>,
) -> Result<BTreeMap<String, Secret>, (String, AwsError)> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let client = aws_sdk_ssm::Client::new(config);
    let fetches = names.iter().map(|name| {
        let client = &client;
        async move {
            let out = client
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .speaking(&format!("SSM GetParameter `{name}`"))
                .await
                .map_err(|e| (name.clone(), parameter_error(name, e)))?;
            let value = out.parameter().and_then(|p| p.value()).unwrap_or_default();
            Ok::<_, (String, AwsError)>((name.clone(), Secret::new(value.to_owned())))
        }
    });
    Ok(try_join_all(fetches).await?.into_iter().collect())
}

fn parameter_error(name: &str, error: aws_sdk_ssm::error::SdkError<GetParameterError>) -> AwsError {
    let call = format!("SSM GetParameter `{name}`");
    match error.as_service_error() {
        Some(GetParameterError::ParameterNotFound(_)) => AwsError::Call {
            call,
            cause: "the parameter does not exist".into(),
            hint: Some("check the name and the region; names with a path start with `/`"),
        },
        Some(e) if e.meta().code() == Some("AccessDeniedException") => AwsError::Call {
            call,
            cause: e.meta().message().unwrap_or("access denied").to_owned(),
            hint: Some(
                "the role needs ssm:GetParameter on this parameter (and kms:Decrypt for a customer-managed key)",
            ),
        },
        _ => super::call_error(&call, &error),
    }
}
