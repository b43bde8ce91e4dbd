//! The Secrets a pipeline's spec points at: the Redshift admin user of
//! `spec.analytics.masterUserSecretRef` and the upload API keys of
//! `spec.uploadApi.apiKeysSecretRef`, or the keys Secret the operator
//! generates when that field is unset. Values never reach a log or a status.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use rand::RngCore;

use super::Error;
use super::services::{INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, owner_reference};
use crate::api::v1alpha1::ImagePipeline;
use crate::components::upload_instance_setup::api_keys_secret;
use crate::engine::{MasterUser, PipelineContext, SecretText};

/// What may be done about a Secret that is not there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretUse {
    /// Converging: the generated keys Secret is made when missing.
    Apply,
    /// Paused: read what exists, make nothing.
    Observe,
    /// Tearing down: nothing needs the values any more, so a Secret the user
    /// already removed must not keep the pipeline from being deleted.
    Delete,
}

/// Where Secrets are read: the cluster (the controller) or the manifest file
/// (the CLI).
pub trait SecretSource {
    /// The Secret `name` of the pipeline's namespace, if there is one.
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Secret>, Error>> + Send;
    /// Makes the generated keys Secret; only [`SecretUse::Apply`] asks.
    fn create(&self, secret: &Secret) -> impl Future<Output = Result<(), Error>> + Send;
    /// How a missing Secret is described: where it was looked for.
    fn absent(&self) -> &'static str;
}

impl SecretSource for Api<Secret> {
    async fn get(&self, name: &str) -> Result<Option<Secret>, Error> {
        self.get_opt(name)
            .await
            .map_err(|source| Error::kube(format!("read Secret {name}"), source))
    }

    async fn create(&self, secret: &Secret) -> Result<(), Error> {
        let name = secret.name_any();
        Api::create(self, &PostParams::default(), secret)
            .await
            .map(drop)
            .map_err(|source| Error::kube(format!("create Secret {name}"), source))
    }

    fn absent(&self) -> &'static str {
        "does not exist"
    }
}

/// Fills the context's master user and API keys from their Secrets.
pub async fn resolve(
    secrets: &impl SecretSource,
    pipeline: &ImagePipeline,
    ctx: &mut PipelineContext,
    usage: SecretUse,
) -> Result<(), Error> {
    let namespace = pipeline.namespace().unwrap_or_default();
    let analytics = &ctx.spec.analytics;
    if let (true, Some(reference)) = (analytics.enabled, &analytics.master_user_secret_ref) {
        let field = "spec.analytics.masterUserSecretRef";
        ctx.master_user = match secrets.get(&reference.name).await {
            Err(err) => return Err(err),
            Ok(None) if usage == SecretUse::Delete => Some(placeholder_user()),
            Ok(None) => {
                return Err(Error::missing_secret(
                    field,
                    &namespace,
                    &reference.name,
                    secrets.absent(),
                ));
            }
            Ok(Some(secret)) => {
                let username = value(&secret, "username");
                let password = value(&secret, "password");
                match (username, password) {
                    (Some(username), Some(password)) => Some(MasterUser { username, password }),
                    _ if usage == SecretUse::Delete => Some(placeholder_user()),
                    _ => {
                        return Err(Error::missing_secret(
                            field,
                            &namespace,
                            &reference.name,
                            "lacks the keys `username` and `password`",
                        ));
                    }
                }
            }
        };
    }

    let keys = api_keys_secret(ctx);
    let user_given = ctx.spec.upload_api.api_keys_secret_ref.is_some();
    let found = secrets.get(&keys.name).await?;
    ctx.upload_api_keys = match (found, usage) {
        (Some(secret), _) => match value(&secret, &keys.key) {
            Some(text) if !text.trim().is_empty() => Some(SecretText::new(text)),
            _ if usage == SecretUse::Delete => Some(SecretText::new("")),
            _ => {
                return Err(Error::missing_secret(
                    "spec.uploadApi.apiKeysSecretRef",
                    &namespace,
                    &keys.name,
                    &format!("has no non-empty key `{}`", keys.key),
                ));
            }
        },
        (None, SecretUse::Delete) => Some(SecretText::new("")),
        (None, _) if user_given => {
            return Err(Error::missing_secret(
                "spec.uploadApi.apiKeysSecretRef",
                &namespace,
                &keys.name,
                secrets.absent(),
            ));
        }
        (None, SecretUse::Observe) => None,
        (None, SecretUse::Apply) => {
            let generated = generated_keys_secret(pipeline, &keys.name, &keys.key);
            let text = value(&generated, &keys.key);
            secrets.create(&generated).await?;
            text.map(SecretText::new)
        }
    };
    Ok(())
}

/// A Secret holding one random API key, owned by the pipeline so that it
/// goes with it.
pub fn generated_keys_secret(pipeline: &ImagePipeline, name: &str, key: &str) -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: pipeline.namespace(),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
                (INSTANCE_LABEL.to_owned(), pipeline.name_any()),
            ])),
            owner_references: Some(vec![owner_reference(pipeline)]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            key.to_owned(),
            ByteString(format!("{}\n", hex::encode(bytes)).into_bytes()),
        )])),
        ..Secret::default()
    }
}

fn value(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn placeholder_user() -> MasterUser {
    MasterUser {
        username: String::new(),
        password: String::new(),
    }
}
