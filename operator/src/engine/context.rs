//! Who a pipeline's AWS resources belong to and what they are called. Pure:
//! everything here is computed from the spec, the owner and the account.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::api::v1alpha1::ImagePipelineSpec;
use crate::engine::ComponentKind;

/// Tag naming the pipeline (`<namespace>/<name>`) a resource belongs to.
pub const OWNER_TAG: &str = "imagepipeline.io/owner";
/// Tag naming the component (`storage`, `metadata`, …) a resource belongs to.
pub const COMPONENT_TAG: &str = "imagepipeline.io/component";
/// Tag put on what `deletionPolicy: Retain` leaves behind.
pub const RETAINED_TAG: &str = "imagepipeline.io/retained";

/// The Kubernetes identity of a pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
}

impl Owner {
    pub fn tag_value(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The Redshift admin user read from `spec.analytics.masterUserSecretRef`.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterUser {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for MasterUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A secret value that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How every name [`PipelineContext::resource_name`] makes begins; lists of
/// load balancers and target groups are narrowed to the pipelines' by it.
pub const NAME_PREFIX: &str = "ipl-";

/// Everything the desired state of a pipeline depends on.
#[derive(Clone, Debug)]
pub struct PipelineContext {
    pub owner: Owner,
    pub account_id: String,
    pub partition: String,
    pub spec: ImagePipelineSpec,
    /// Resolved from the Secret that `spec.analytics.masterUserSecretRef`
    /// names, by whoever can read it (the controller); `None` otherwise.
    pub master_user: Option<MasterUser>,
    /// The upload API keys (one a line) read from the Secret of
    /// `spec.uploadApi.apiKeysSecretRef` or the one the controller generates;
    /// `None` where no Secret can be read (the CLI).
    pub upload_api_keys: Option<SecretText>,
}

impl PipelineContext {
    pub fn new(owner: Owner, account_id: String, spec: ImagePipelineSpec) -> Self {
        let partition = partition_of(&spec.region).to_owned();
        Self {
            owner,
            account_id,
            partition,
            spec,
            master_user: None,
            upload_api_keys: None,
        }
    }

    pub fn region(&self) -> &str {
        &self.spec.region
    }

    /// The tags of every resource of `component`: the user's tags, then ours,
    /// which the CRD forbids users to set.
    pub fn tags(&self, component: ComponentKind) -> BTreeMap<String, String> {
        let mut tags = self.spec.tags.clone();
        tags.insert(OWNER_TAG.to_owned(), self.owner.tag_value());
        tags.insert(COMPONENT_TAG.to_owned(), component.tag_value().to_owned());
        tags
    }

    /// A name unique to this pipeline in this account and region:
    /// `ipl-<namespace>-<name>[-<suffix>]-<hash>`, lower case letters, digits
    /// and single hyphens, at most `max_len` characters. The hash keeps names
    /// of two pipelines apart even when truncation makes their prefixes equal.
    pub fn resource_name(&self, suffix: &str, max_len: usize) -> String {
        let hash = self.identity_hash();
        let tail = if suffix.is_empty() {
            format!("-{hash}")
        } else {
            format!("-{suffix}-{hash}")
        };
        let base = sanitize(&format!(
            "{NAME_PREFIX}{}-{}",
            self.owner.namespace, self.owner.name
        ));
        let room = max_len.saturating_sub(tail.len());
        let base = base[..base.len().min(room)].trim_end_matches('-');
        format!("{base}{tail}")
    }

    fn identity_hash(&self) -> String {
        let digest = Sha256::digest(format!(
            "{}/{}/{}/{}",
            self.account_id,
            self.region(),
            self.owner.namespace,
            self.owner.name
        ));
        hex::encode(&digest[..4])
    }

    pub fn bucket_name(&self) -> String {
        self.spec
            .storage
            .bucket_name
            .clone()
            .unwrap_or_else(|| self.resource_name("", 63))
    }

    pub fn bucket_arn(&self) -> String {
        format!("arn:{}:s3:::{}", self.partition, self.bucket_name())
    }

    pub fn table_name(&self) -> String {
        self.spec
            .metadata
            .table_name
            .clone()
            .unwrap_or_else(|| self.resource_name("images", 255))
    }

    pub fn table_arn(&self) -> String {
        self.arn("dynamodb", &format!("table/{}", self.table_name()))
    }

    /// An ARN of a regional service in this pipeline's account.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition,
            self.region(),
            self.account_id
        )
    }

    /// An ARN of a global service (IAM) in this pipeline's account.
    pub fn global_arn(&self, service: &str, resource: &str) -> String {
        format!("arn:{}:{service}::{}:{resource}", self.partition, self.account_id)
    }
}

/// The context of the one ImagePipeline in `yaml`, a full manifest admitted
/// as `kubectl apply` would (schema defaults included), in account
/// `123456789012`.
#[cfg(test)]
pub(crate) fn context_from_yaml(yaml: &str) -> PipelineContext {
    let mut pipelines =
        crate::manifest::parse(std::path::Path::new("test.yaml"), yaml).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(pipelines.len(), 1, "the manifest holds one ImagePipeline");
    let pipeline = pipelines.remove(0);
    let owner = Owner {
        namespace: pipeline.metadata.namespace.expect("parse defaults the namespace"),
        name: pipeline.metadata.name.expect("admission requires a name"),
    };
    PipelineContext::new(owner, "123456789012".into(), pipeline.spec)
}

/// Lower case letters, digits and single hyphens: the common subset of S3,
/// Redshift, IAM, DynamoDB and Firehose naming rules.
fn sanitize(raw: &str) -> String {
    let mut name = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            '-'
        };
        if !(c == '-' && name.ends_with('-')) {
            name.push(c);
        }
    }
    name
}

fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(namespace: &str, name: &str) -> PipelineContext {
        let spec: ImagePipelineSpec = serde_json::from_value(serde_json::json!({
            "region": "eu-west-1",
            "network": { "availabilityZones": ["eu-west-1a", "eu-west-1b"] },
            "tags": { "team": "media" }
        }))
        .expect("a valid spec");
        let owner = Owner {
            namespace: namespace.into(),
            name: name.into(),
        };
        PipelineContext::new(owner, "123456789012".into(), spec)
    }

    #[test]
    fn names_are_valid_for_every_service_and_fit_their_limits() {
        let long = "a-very-long-pipeline-name-that-goes-on-and-on-and-on-past-every-limit";
        for ctx in [
            context("media", "photos"),
            context("Team_X", long),
            context(long, long),
        ] {
            for (suffix, max_len) in [("", 63), ("warehouse", 63), ("firehose", 64), ("images", 255)] {
                let name = ctx.resource_name(suffix, max_len);
                assert!(name.len() <= max_len, "{name} is longer than {max_len}");
                assert!(name.starts_with("ipl-"), "{name}");
                assert!(!name.contains("--") && !name.ends_with('-'), "{name}");
                assert!(
                    name.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                );
            }
        }
        assert_eq!(
            context("media", "photos").bucket_name().len(),
            "ipl-media-photos-".len() + 8
        );
    }

    #[test]
    fn names_differ_between_pipelines_whose_names_truncate_alike() {
        let long = "x".repeat(80);
        let first = context("media", &format!("{long}-one")).resource_name("", 63);
        let second = context("media", &format!("{long}-two")).resource_name("", 63);
        assert_ne!(first, second);
    }

    #[test]
    fn user_tags_are_kept_and_ownership_tags_added() {
        let tags = context("media", "photos").tags(ComponentKind::Storage);
        assert_eq!(tags["team"], "media");
        assert_eq!(tags[OWNER_TAG], "media/photos");
        assert_eq!(tags[COMPONENT_TAG], "storage");
    }

    #[test]
    fn arns_follow_the_partition_of_the_region() {
        let ctx = context("media", "photos");
        assert_eq!(
            ctx.table_arn(),
            format!(
                "arn:aws:dynamodb:eu-west-1:123456789012:table/{}",
                ctx.table_name()
            )
        );
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
    }
}
