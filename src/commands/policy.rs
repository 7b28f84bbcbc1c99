//! `ecrship policy`: the least-privilege IAM policy of this config's build and push, or, with
//! `--source`, of the uploader of the source zip. Notes that the document cannot carry (a
//! customer-managed KMS key) go to stderr.

use crate::cli::{Global, SourceObject};
use crate::config::Config;
use crate::error::Error;
use crate::policy::{self, PolicyDocument};

pub fn run(
    global: &Global,
    source: bool,
    object: &SourceObject,
    create_repositories: bool,
) -> Result<PolicyDocument, Error> {
    let root = global.directory.as_path();
    let mut config = Config::load(root, global.config.as_deref())?;
    config.mirrors = super::mirrors(global, std::mem::take(&mut config.mirrors))?;
    let policy = if source {
        let (bucket, key) = crate::source::object::resolve(
            object.bucket.as_deref(),
            object.key.as_deref(),
            &config.source,
            super::env,
        )?;
        let object = crate::source::object::require(bucket, key, &config.origin)?;
        let scope = policy::resolve_scope(None, super::env);
        policy::source_policy(&object, scope.partition)
    } else {
        let registry = global.registry.as_deref().or(config.registry.as_deref());
        let scope = policy::resolve_scope(registry, super::env);
        policy::policy(&config, &scope, create_repositories)
    };
    for note in &policy.notes {
        tracing::warn!("{note}");
    }
    Ok(policy.document)
}
