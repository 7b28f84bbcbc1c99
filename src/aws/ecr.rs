//! ECR login: `GetAuthorizationToken` gives the registry host and the docker password.

use aws_config::SdkConfig;
use base64::Engine;

use super::{AwsError, Speaking, call_error};
use crate::docker::Credentials;

/// A registry login from ECR. `Debug` hides the password (see [`Credentials`]).
#[derive(Debug, Clone)]
pub struct Login {
    /// The registry host, from the token's `proxyEndpoint` without its scheme.
    pub host: String,
    pub credentials: Credentials,
}

/// Asks ECR for a login token. The token opens every registry the caller may use; the host is
/// the caller's own (the token's `proxyEndpoint`), so no account id is needed.
pub async fn login(config: &SdkConfig) -> Result<Login, AwsError> {
    let client = aws_sdk_ecr::Client::new(config);
    let out = client
        .get_authorization_token()
        .send()
        .speaking("ECR GetAuthorizationToken")
        .await
        .map_err(|e| call_error("ECR GetAuthorizationToken", &e))?;
    let data = out
        .authorization_data()
        .first()
        .ok_or_else(|| bad_token("no authorization data"))?;
    let token = data
        .authorization_token()
        .ok_or_else(|| bad_token("no token"))?;
    let endpoint = data
        .proxy_endpoint()
        .ok_or_else(|| bad_token("no proxyEndpoint"))?;
    let (username, password) = decode_token(token)?;
    crate::secret::register(&password);
    crate::secret::register(token);
    let host = host_of(endpoint);
    Ok(Login {
        credentials: Credentials {
            username,
            password,
            server: host.clone(),
        },
        host,
    })
}

/// Creates the repositories that do not exist yet (`--create-repositories`).
pub async fn create_repositories(config: &SdkConfig, names: &[&str]) -> Result<(), AwsError> {
    use aws_sdk_ecr::operation::create_repository::CreateRepositoryError;
    let client = aws_sdk_ecr::Client::new(config);
    for name in names {
        match client
            .create_repository()
            .repository_name(*name)
            .send()
            .speaking(&format!("ECR CreateRepository `{name}`"))
            .await
        {
            Ok(_) => tracing::info!("created ECR repository {name}"),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateRepositoryError::RepositoryAlreadyExistsException(_))
                ) => {}
            Err(e) => return Err(call_error(&format!("ECR CreateRepository `{name}`"), &e)),
        }
    }
    Ok(())
}

/// The image a tag names in an ECR repository: the manifest's digest and its config digest
/// (which equals the local image id of the image that was pushed). `None` when the tag is absent.
/// `registry_id` is the registry's account when it is not the caller's.
pub async fn tagged_image(
    config: &SdkConfig,
    registry_id: Option<&str>,
    repository: &str,
    tag: &str,
) -> Result<Option<TaggedImage>, AwsError> {
    use aws_sdk_ecr::types::ImageIdentifier;
    let client = aws_sdk_ecr::Client::new(config);
    let out = client
        .batch_get_image()
        .set_registry_id(registry_id.map(str::to_owned))
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
        .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
        .send()
        .speaking(&format!("ECR BatchGetImage `{repository}:{tag}`"))
        .await
        .map_err(|e| call_error(&format!("ECR BatchGetImage `{repository}:{tag}`"), &e))?;
    let Some(image) = out.images().first() else {
        return Ok(None);
    };
    let digest = image
        .image_id()
        .and_then(|id| id.image_digest())
        .unwrap_or_default()
        .to_owned();
    let config_digest = image.image_manifest().and_then(manifest_config_digest);
    Ok(Some(TaggedImage {
        digest,
        config_digest,
    }))
}

/// What [`tagged_image`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedImage {
    pub digest: String,
    pub config_digest: Option<String>,
}

/// `config.digest` of an image manifest.
fn manifest_config_digest(manifest: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(manifest).ok()?;
    value
        .get("config")?
        .get("digest")?
        .as_str()
        .map(str::to_owned)
}

fn bad_token(what: &str) -> AwsError {
    AwsError::Call {
        call: "ECR GetAuthorizationToken".into(),
        cause: format!("the answer is not a usable token: {what}"),
        hint: None,
    }
}

/// The token is base64 of `user:password` (the user is `AWS`).
fn decode_token(token: &str) -> Result<(String, String), AwsError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| bad_token("not base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| bad_token("not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| bad_token("no `user:password` inside"))?;
    Ok((user.to_owned(), password.to_owned()))
}

/// `https://123.dkr.ecr.us-east-1.amazonaws.com/` → `123.dkr.ecr.us-east-1.amazonaws.com`.
fn host_of(endpoint: &str) -> String {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    rest.trim_end_matches('/').to_owned()
}

/// The repository prefixes of the registry's pull-through cache rules
/// (`DescribePullThroughCacheRules`), each with the upstream it copies. `registry_id` is the
/// registry's account when it is not the caller's.
pub async fn pull_through_rules(
    config: &SdkConfig,
    registry_id: Option<&str>,
) -> Result<Vec<(String, String)>, AwsError> {
    let client = aws_sdk_ecr::Client::new(config);
    let call = "ECR DescribePullThroughCacheRules";
    let mut rules = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let out = client
            .describe_pull_through_cache_rules()
            .set_registry_id(registry_id.map(str::to_owned))
            .set_next_token(next.take())
            .send()
            .speaking(call)
            .await
            .map_err(|e| call_error(call, &e))?;
        for rule in out.pull_through_cache_rules() {
            rules.push((
                rule.ecr_repository_prefix().unwrap_or_default().to_owned(),
                rule.upstream_registry_url().unwrap_or_default().to_owned(),
            ));
        }
        match out.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => return Ok(rules),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_and_endpoint() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:pa:ss");
        assert_eq!(
            decode_token(&token).unwrap(),
            ("AWS".to_owned(), "pa:ss".to_owned())
        );
        assert!(decode_token("!!!").is_err());
        let no_colon = base64::engine::general_purpose::STANDARD.encode("nocolon");
        assert!(decode_token(&no_colon).is_err());
        assert_eq!(
            host_of("https://1.dkr.ecr.us-east-1.amazonaws.com"),
            "1.dkr.ecr.us-east-1.amazonaws.com"
        );
        assert_eq!(host_of("https://h:5000/"), "h:5000");
    }

    #[test]
    fn config_digest_of_a_manifest() {
        let manifest = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1,"digest":"sha256:abc"},"layers":[]}"#;
        assert_eq!(
            manifest_config_digest(manifest).as_deref(),
            Some("sha256:abc")
        );
        assert_eq!(manifest_config_digest("{}"), None);
        assert_eq!(manifest_config_digest("not json"), None);
    }
}
