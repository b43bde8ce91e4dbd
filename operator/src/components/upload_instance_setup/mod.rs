//! What an upload-api EC2 instance of the UploadTier runs and may do: its
//! configuration (the names of DESIGN.md's "Service configuration" table), the
//! first-boot user data of its launch template, and the policies of its
//! instance role. Pure: the UploadTier component makes the AWS resources.
//!
//! Authentication is never off on these instances. The API keys live in an SSM
//! SecureString parameter, `/imagepipeline/<namespace>/<name>/api-keys`, filled
//! from `spec.uploadApi.apiKeysSecretRef` or, when that is unset, from the
//! Secret `<name>-upload-api-keys` the operator generates (as the CRD documents).
//! Each boot reads the parameter into a tmpfs file with the instance role's
//! credentials, so no key is ever part of the user data.

use std::collections::BTreeMap;

use ingest_core::contract::env;
use serde_json::{Value, json};

use super::metadata::SHA256_INDEX;
use crate::api::v1alpha1::{ImageContentType, PerKeyLimits, SecretKeyRef};
use crate::engine::{ComponentError, Owner, PipelineContext};

/// The upload-api image run when `spec.uploadApi.image` is unset: the release
/// built with this operator.
pub const DEFAULT_UPLOAD_API_IMAGE: &str =
    concat!("ghcr.io/imagepipeline/upload-api:", env!("CARGO_PKG_VERSION"));

/// Address upload-api listens on in its container; the instance publishes the
/// same port, which the target group checks (`/healthz`).
pub const UPLOAD_LISTEN: &str = "0.0.0.0:8080";

/// The port instances serve the API on, for the target group and security group.
pub const UPLOAD_PORT: u16 = 8080;

/// IMDSv2 response hop limit the launch template must set: the container sits
/// one network hop behind the instance, and with the default of 1 it would get
/// no instance-role credentials.
pub const IMDS_HOP_LIMIT: i32 = 2;

/// Key prefix of image objects, the only part of the bucket the instances touch.
pub use ingest_core::contract::prefix::IMAGES as IMAGES_PREFIX;
use ingest_core::contract::prefix::STAGING as STAGING_PREFIX;
use ingest_core::contract::table::UPLOAD_KEY_PREFIX;

/// Where the API keys are inside the container (`UPLOAD_API_KEYS_FILE`).
pub const CONTAINER_API_KEYS_FILE: &str = "/run/secrets/upload-api-keys";

/// User the container runs as: the conventional `nonroot` of distroless images.
const CONTAINER_USER: &str = "65532:65532";
const ENV_FILE: &str = "/etc/imagepipeline/upload-api.env";
const ENV_FILE_START: &str = "cat > /etc/imagepipeline/upload-api.env <<'IMAGEPIPELINE_ENV'";
// Every env-file line contains '=', so none can end this heredoc early.
const ENV_FILE_END: &str = "IMAGEPIPELINE_ENV";
/// /run is a tmpfs on Amazon Linux 2023: the keys never reach a disk.
/// Where upload-api writes images above 256 KiB while they arrive once its
/// spool memory (64 MiB) is taken (`UPLOAD_SPOOL_DIR`): on the encrypted
/// root volume, not a tmpfs, so a full house of large uploads costs disk,
/// not memory.
const CONTAINER_SPOOL_DIR: &str = "/var/spool/upload-api";
const HOST_SPOOL_DIR: &str = "/var/lib/imagepipeline/spool";
const HOST_API_KEYS_DIR: &str = "/run/imagepipeline";
const HOST_API_KEYS_FILE: &str = "/run/imagepipeline/api-keys";
const FETCH_API_KEYS_SCRIPT: &str = "/usr/local/sbin/imagepipeline-fetch-api-keys";
const FETCH_API_KEYS_UNIT: &str = "imagepipeline-api-keys.service";

/// Names of what the other components made, which the API writes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadTargets {
    /// S3 bucket (Storage).
    pub bucket: String,
    /// DynamoDB table (Metadata).
    pub table: String,
    /// Firehose delivery stream (Delivery).
    pub delivery_stream: String,
}

/// Everything the upload-api process on an instance is configured with.
/// Built only by [`UploadInstanceConfig::new`], which guarantees that every
/// value can be written into the user data as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadInstanceConfig {
    image: String,
    region: String,
    targets: UploadTargets,
    retention_days: i32,
    max_image_bytes: i64,
    max_image_pixels: i64,
    max_image_frames: i32,
    strip_metadata: ingest_core::StripMetadata,
    per_key_limits: PerKeyLimits,
    allowed_content_types: String,
    api_keys_parameter: String,
}

impl UploadInstanceConfig {
    /// The configuration of `ctx`'s upload-api instances writing to `targets`.
    ///
    /// Fails (terminal) when the image is not a plain image reference or a
    /// value holds a control character: docker's `--env-file` takes each line
    /// verbatim, without quotes or escapes, so a newline could not be written.
    pub fn new(ctx: &PipelineContext, targets: UploadTargets) -> Result<Self, ComponentError> {
        let spec = &ctx.spec.upload_api;
        let image = spec
            .image
            .clone()
            .unwrap_or_else(|| DEFAULT_UPLOAD_API_IMAGE.to_owned());
        check_image_reference(&image)?;
        // Sorted, so reordering the list in the spec does not roll the instances.
        let mut content_types = spec.allowed_content_types.clone();
        content_types.sort();
        content_types.dedup();
        let allowed_content_types = content_types
            .into_iter()
            .map(mime_type)
            .collect::<Result<Vec<_>, _>>()?
            .join(",");
        let config = Self {
            image,
            region: ctx.region().to_owned(),
            targets,
            retention_days: ctx.spec.storage.retention_days,
            max_image_bytes: spec.max_image_bytes,
            max_image_pixels: spec.max_image_pixels,
            max_image_frames: spec.max_image_frames,
            strip_metadata: spec.strip_metadata.into(),
            per_key_limits: spec.per_key_limits.clone().unwrap_or_default(),
            allowed_content_types,
            api_keys_parameter: api_keys_parameter_name(&ctx.owner),
        };
        for (name, value) in config.environment() {
            if value.chars().any(char::is_control) {
                return Err(ComponentError::terminal(
                    "InvalidUploadApiSetting",
                    format!("{name} must not contain control characters such as newlines: {value:?}"),
                ));
            }
        }
        Ok(config)
    }

    /// The container image the instances run.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Bucket, table and delivery stream the API writes to.
    pub fn targets(&self) -> &UploadTargets {
        &self.targets
    }

    /// Name of the SSM SecureString parameter holding the API keys, one a line.
    pub fn api_keys_parameter(&self) -> &str {
        &self.api_keys_parameter
    }

    /// The per-key limits' settings, those that are set: the instances and
    /// the in-cluster pods both take them.
    pub fn key_limit_environment(&self) -> Vec<(&'static str, String)> {
        let limits = &self.per_key_limits;
        [
            (
                env::upload_api::KEY_REQUESTS_PER_SECOND,
                limits.requests_per_second.map(|n| n.to_string()),
            ),
            (
                env::upload_api::KEY_BYTES_PER_SECOND,
                limits.bytes_per_second.map(|n| n.to_string()),
            ),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
    }

    /// The upload-api environment, by the names of DESIGN.md's table.
    pub fn environment(&self) -> BTreeMap<&'static str, String> {
        let targets = &self.targets;
        let mut environment = BTreeMap::from([
            (env::upload_api::LISTEN, UPLOAD_LISTEN.to_owned()),
            (env::BUCKET, targets.bucket.clone()),
            (env::TABLE, targets.table.clone()),
            (env::DELIVERY_STREAM, targets.delivery_stream.clone()),
            (env::RETENTION_DAYS, self.retention_days.to_string()),
            (env::MAX_IMAGE_BYTES, self.max_image_bytes.to_string()),
            (env::MAX_IMAGE_PIXELS, self.max_image_pixels.to_string()),
            (env::MAX_IMAGE_FRAMES, self.max_image_frames.to_string()),
            (env::STRIP_METADATA, self.strip_metadata.to_string()),
            (env::ALLOWED_CONTENT_TYPES, self.allowed_content_types.clone()),
            (env::upload_api::API_KEYS_FILE, CONTAINER_API_KEYS_FILE.to_owned()),
            (env::upload_api::SPOOL_DIR, CONTAINER_SPOOL_DIR.to_owned()),
            ("AWS_REGION", self.region.clone()),
        ]);
        environment.extend(self.key_limit_environment());
        environment
    }
}

/// The SSM parameter that holds the API keys of `owner`'s pipeline.
pub fn api_keys_parameter_name(owner: &Owner) -> String {
    format!("/imagepipeline/{}/{}/api-keys", owner.namespace, owner.name)
}

/// The Secret key whose content the API-keys parameter mirrors: the user's
/// `spec.uploadApi.apiKeysSecretRef`, or the key the operator generates.
pub fn api_keys_secret(ctx: &PipelineContext) -> SecretKeyRef {
    ctx.spec
        .upload_api
        .api_keys_secret_ref
        .clone()
        .unwrap_or_else(|| SecretKeyRef {
            name: format!("{}-upload-api-keys", ctx.owner.name),
            key: "api-keys".to_owned(),
        })
}

/// The first-boot script (cloud-init, as root) of an Amazon Linux 2023
/// instance: installs docker, writes the environment to a 0600 env file,
/// installs a unit that reads the API keys from SSM into tmpfs at every boot
/// (a reboot empties /run, and docker restarts the container after it), then
/// starts upload-api locked down. The instance reaches AWS with its instance
/// profile; the script holds no credential and no key.
pub fn render_user_data(config: &UploadInstanceConfig) -> String {
    let env_lines: String = config
        .environment()
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    let region = shell_quote(&config.region);
    let parameter = shell_quote(&config.api_keys_parameter);
    let image = shell_quote(&config.image);
    let spool_owner = CONTAINER_USER.split(':').next().unwrap_or(CONTAINER_USER);
    format!(
        r#"#!/bin/bash
# upload-api instance of an ImagePipeline, written by the imagepipeline operator.
set -euo pipefail

dnf install -y docker
systemctl enable --now docker

install -d -m 0700 /etc/imagepipeline
install -m 0600 /dev/null {ENV_FILE}
{ENV_FILE_START}
{env_lines}{ENV_FILE_END}

cat > {FETCH_API_KEYS_SCRIPT} <<'IMAGEPIPELINE_FETCH'
#!/bin/bash
set -euo pipefail
install -d -m 0700 {HOST_API_KEYS_DIR}
umask 077
keys=$(mktemp {HOST_API_KEYS_DIR}/api-keys.XXXXXX)
trap 'rm -f "$keys"' EXIT
for attempt in 1 2 3 4 5; do
  aws ssm get-parameter --region {region} --with-decryption --name {parameter} --query Parameter.Value --output text > "$keys" && break
  [ "$attempt" -lt 5 ] || exit 1
  sleep $((attempt * 5))
done
chown {CONTAINER_USER} "$keys"
chmod 0400 "$keys"
mv -f "$keys" {HOST_API_KEYS_FILE}
IMAGEPIPELINE_FETCH
chmod 0755 {FETCH_API_KEYS_SCRIPT}

cat > /etc/systemd/system/{FETCH_API_KEYS_UNIT} <<'IMAGEPIPELINE_UNIT'
[Unit]
Description=Read the upload-api keys from SSM Parameter Store into {HOST_API_KEYS_DIR}
Wants=network-online.target
After=network-online.target
Before=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={FETCH_API_KEYS_SCRIPT}

[Install]
WantedBy=multi-user.target
IMAGEPIPELINE_UNIT
systemctl daemon-reload
systemctl enable --now {FETCH_API_KEYS_UNIT}

install -d -m 0700 -o {spool_owner} -g {spool_owner} {HOST_SPOOL_DIR}
docker rm -f upload-api >/dev/null 2>&1 || true
docker run -d --restart=always --name upload-api \
  -p {UPLOAD_PORT}:{UPLOAD_PORT} \
  --read-only --tmpfs /tmp:rw,noexec,nosuid,size=64m \
  --mount type=bind,src={HOST_SPOOL_DIR},dst={CONTAINER_SPOOL_DIR} \
  --cap-drop ALL --security-opt no-new-privileges --user {CONTAINER_USER} \
  --env-file {ENV_FILE} \
  --mount type=bind,src={HOST_API_KEYS_FILE},dst={CONTAINER_API_KEYS_FILE},readonly \
  {image}
"#
    )
}

/// [`render_user_data`] encoded as the launch template's `UserData` expects.
pub fn user_data_base64(config: &UploadInstanceConfig) -> String {
    aws_smithy_types::base64::encode(render_user_data(config))
}

/// The environment written into `script` by [`render_user_data`], or `None`
/// when the script holds no well-formed env file.
pub fn environment_from_user_data(script: &str) -> Option<BTreeMap<String, String>> {
    let mut lines = script.lines().skip_while(|line| *line != ENV_FILE_START).skip(1);
    let mut environment = BTreeMap::new();
    loop {
        let line = lines.next()?;
        if line == ENV_FILE_END {
            return Some(environment);
        }
        let (name, value) = line.split_once('=')?;
        environment.insert(name.to_owned(), value.to_owned());
    }
}

/// What the instances may do: store and serve images under `images/`, stage
/// resumable and direct uploads under `staging/` (and sign the forms that
/// post there), read and write metadata items, update and delete only the
/// items of uploads in progress, send events, and read the API-keys
/// parameter.
///
/// No `kms:Decrypt`: the bucket uses S3-managed keys, and the table and the
/// parameter AWS-managed keys (`aws/dynamodb`, `aws/ssm`), whose key policies
/// already let every principal of the account decrypt through the service.
/// A customer-managed key on the parameter would need a grant here.
pub fn instance_permissions_policy(ctx: &PipelineContext, config: &UploadInstanceConfig) -> Value {
    let targets = &config.targets;
    let table_arn = ctx.arn("dynamodb", &format!("table/{}", targets.table));
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StoreAndServeImages",
                "Effect": "Allow",
                // Each image is one PutObject, never a multipart upload.
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": [format!("arn:{}:s3:::{}/{IMAGES_PREFIX}*", ctx.partition, targets.bucket)]
            },
            {
                "Sid": "StageUploads",
                "Effect": "Allow",
                // Resumable and direct uploads wait under staging/ until
                // they are checked; their parts are aborted when given up.
                "Action": [
                    "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"
                ],
                "Resource": [format!("arn:{}:s3:::{}/{STAGING_PREFIX}*", ctx.partition, targets.bucket)]
            },
            {
                "Sid": "TrackUploads",
                "Effect": "Allow",
                // Only the items of uploads in progress, never an image's.
                "Action": ["dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                "Resource": [table_arn.clone()],
                "Condition": {
                    "ForAllValues:StringLike": {
                        "dynamodb:LeadingKeys": [format!("{UPLOAD_KEY_PREFIX}*")]
                    }
                }
            },
            {
                "Sid": "ReadAndWriteImageItems",
                "Effect": "Allow",
                "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
                "Resource": [table_arn.clone()]
            },
            {
                "Sid": "FindImagesByContent",
                "Effect": "Allow",
                "Action": ["dynamodb:Query"],
                "Resource": [format!("{table_arn}/index/{SHA256_INDEX}")]
            },
            {
                "Sid": "SendImageEvents",
                "Effect": "Allow",
                "Action": ["firehose:PutRecord", "firehose:PutRecordBatch"],
                "Resource": [ctx.arn("firehose", &format!("deliverystream/{}", targets.delivery_stream))]
            },
            {
                "Sid": "ReadApiKeys",
                "Effect": "Allow",
                "Action": ["ssm:GetParameter"],
                // A hierarchical name starts with '/', which the ARN does not repeat.
                "Resource": [ctx.arn("ssm", &format!("parameter{}", config.api_keys_parameter))]
            }
        ]
    })
}

/// Who may assume the instance role: EC2, for instances given the instance
/// profile. Unlike `iam_role::DesiredRole::for_service` it has no `aws:SourceAccount`
/// condition: EC2 is not documented to send that key when it fetches instance
/// credentials (a condition on a missing key denies), and the guard adds
/// nothing here, as only a principal of this account allowed `iam:PassRole`
/// can attach the profile, and only to its own instances. The UploadTier
/// builds its `DesiredRole` from this and [`instance_permissions_policy`].
pub fn instance_trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "ec2.amazonaws.com" },
            "Action": "sts:AssumeRole"
        }]
    })
}

/// The MIME type `ImageContentType` stands for, as the spec spells it.
fn mime_type(content_type: ImageContentType) -> Result<String, ComponentError> {
    match serde_json::to_value(content_type) {
        Ok(Value::String(mime)) => Ok(mime),
        other => Err(ComponentError::terminal(
            "InternalError",
            format!("{content_type:?} does not serialize to a MIME type: {other:?}"),
        )),
    }
}

/// Image references use a small alphabet; anything outside it (spaces, quotes,
/// a leading '-' docker would read as an option) is a typo or an injection.
fn check_image_reference(image: &str) -> Result<(), ComponentError> {
    let plain = image
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if image.is_empty() || image.starts_with('-') || !plain {
        return Err(ComponentError::terminal(
            "InvalidUploadApiImage",
            format!(
                "spec.uploadApi.image {image:?} is not an image reference such as \
                 registry.example.com/team/upload-api:1.2.3 or …@sha256:<digest>"
            ),
        ));
    }
    Ok(())
}

/// `value` as one bash word, whatever it holds.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests;
