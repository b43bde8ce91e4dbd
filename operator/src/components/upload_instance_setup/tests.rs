//! The upload instances' boot script, rendered and read back.

use super::*;
use crate::engine::context_from_yaml;

const SECRET_VALUE: &str = "k3y-that-must-never-leak";

/// Pipeline media/photos with `upload_api` as its `spec.uploadApi` (a YAML
/// flow mapping) and non-default storage and limits.
fn context(upload_api: &str) -> PipelineContext {
    context_from_yaml(&format!(
        "
apiVersion: imagepipeline.io/v1alpha1
kind: ImagePipeline
metadata: {{name: photos, namespace: media}}
spec:
  region: eu-west-1
  network: {{availabilityZones: [eu-west-1a, eu-west-1b]}}
  storage: {{retentionDays: 30}}
  uploadApi: {upload_api}
"
    ))
}

fn targets() -> UploadTargets {
    UploadTargets {
        bucket: "photos-bucket".into(),
        table: "photos-table".into(),
        delivery_stream: "photos-events".into(),
    }
}

fn config(upload_api: &str) -> UploadInstanceConfig {
    UploadInstanceConfig::new(&context(upload_api), targets()).expect("a valid config")
}

const CUSTOM: &str = "{maxImageBytes: 5242880, maxImagePixels: 24000000, maxImageFrames: 50, \
                      stripMetadata: location, perKeyLimits: {requestsPerSecond: 20}, \
                      allowedContentTypes: [image/png, image/gif], apiKeysSecretRef: {name: photo-keys}}";

#[test]
fn environment_uses_the_design_names_and_the_spec_values() {
    let env = config(CUSTOM).environment();
    let expected = BTreeMap::from([
        ("UPLOAD_LISTEN", "0.0.0.0:8080"),
        ("PIPELINE_BUCKET", "photos-bucket"),
        ("PIPELINE_TABLE", "photos-table"),
        ("PIPELINE_DELIVERY_STREAM", "photos-events"),
        ("PIPELINE_RETENTION_DAYS", "30"),
        ("PIPELINE_MAX_IMAGE_BYTES", "5242880"),
        ("PIPELINE_MAX_IMAGE_PIXELS", "24000000"),
        ("PIPELINE_MAX_IMAGE_FRAMES", "50"),
        ("PIPELINE_STRIP_METADATA", "location"),
        ("UPLOAD_KEY_REQUESTS_PER_SECOND", "20"),
        ("PIPELINE_ALLOWED_CONTENT_TYPES", "image/png,image/gif"),
        ("UPLOAD_API_KEYS_FILE", "/run/secrets/upload-api-keys"),
        ("UPLOAD_SPOOL_DIR", "/var/spool/upload-api"),
        ("AWS_REGION", "eu-west-1"),
    ]);
    assert_eq!(
        env,
        expected.into_iter().map(|(k, v)| (k, v.to_owned())).collect()
    );
}

#[test]
fn image_defaults_to_the_release_of_this_operator() {
    assert_eq!(config("{}").image(), "ghcr.io/imagepipeline/upload-api:0.1.0");
    assert_eq!(
        config("{image: 'reg.example/up:2@sha256:ab'}").image(),
        "reg.example/up:2@sha256:ab"
    );
}

#[test]
fn images_that_are_not_plain_references_are_rejected() {
    for image in ["-v /:/host", "up:1; rm -rf /", "up:1'", "up\n:1"] {
        let ctx = context(&format!("{{image: {image:?}}}"));
        let err = UploadInstanceConfig::new(&ctx, targets()).expect_err(image);
        assert_eq!(err.reason, "InvalidUploadApiImage");
    }
}

#[test]
fn values_with_newlines_are_rejected_as_the_env_file_cannot_hold_them() {
    let mut bad = targets();
    bad.table = "photos\nAWS_REGION=us-east-1".into();
    let err = UploadInstanceConfig::new(&context("{}"), bad).expect_err("a newline");
    assert_eq!(err.reason, "InvalidUploadApiSetting");
}

#[test]
fn user_data_round_trips_the_environment() {
    for upload_api in ["{}", CUSTOM] {
        let config = config(upload_api);
        let env = environment_from_user_data(&render_user_data(&config)).expect("an env file");
        let expected: BTreeMap<String, String> = config
            .environment()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(env, expected);
    }
}

#[test]
fn user_data_base64_decodes_to_the_script() {
    let config = config(CUSTOM);
    let decoded = aws_smithy_types::base64::decode(user_data_base64(&config)).expect("base64");
    assert_eq!(
        String::from_utf8(decoded).expect("utf-8"),
        render_user_data(&config)
    );
}

#[test]
fn user_data_fetches_keys_at_boot_and_never_runs_without_auth() {
    for upload_api in ["{}", CUSTOM] {
        let script = render_user_data(&config(upload_api));
        assert!(script.starts_with("#!/bin/bash\n") && script.contains("\nset -euo pipefail\n"));
        assert!(script.contains(
            "aws ssm get-parameter --region 'eu-west-1' --with-decryption \
             --name '/imagepipeline/media/photos/api-keys' --query Parameter.Value --output text"
        ));
        assert!(script.contains("systemctl enable --now imagepipeline-api-keys.service"));
        assert!(script.contains(
            "--mount type=bind,src=/run/imagepipeline/api-keys,dst=/run/secrets/upload-api-keys,readonly"
        ));
        assert!(!script.contains("--no-auth"), "{script}");
    }
}

#[test]
fn user_data_holds_no_secret_or_credential() {
    let mut ctx = context(CUSTOM);
    ctx.master_user = Some(crate::engine::MasterUser {
        username: "admin".into(),
        password: SECRET_VALUE.into(),
    });
    let script = render_user_data(&UploadInstanceConfig::new(&ctx, targets()).expect("config"));
    for forbidden in [
        SECRET_VALUE,
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        assert!(!script.contains(forbidden), "user data contains {forbidden}");
    }
}

#[test]
fn container_runs_read_only_unprivileged_and_restarts() {
    let script = render_user_data(&config("{}"));
    for flag in [
        "dnf install -y docker",
        "systemctl enable --now docker",
        "install -m 0600 /dev/null /etc/imagepipeline/upload-api.env",
        "docker run -d --restart=always --name upload-api",
        "-p 8080:8080",
        "--read-only",
        "install -d -m 0700 -o 65532 -g 65532 /var/lib/imagepipeline/spool",
        "--mount type=bind,src=/var/lib/imagepipeline/spool,dst=/var/spool/upload-api \\\n",
        "--cap-drop ALL --security-opt no-new-privileges --user 65532:65532",
        "--env-file /etc/imagepipeline/upload-api.env",
        "'ghcr.io/imagepipeline/upload-api:0.1.0'\n",
    ] {
        assert!(script.contains(flag), "missing {flag}");
    }
}

#[test]
fn api_keys_come_from_the_users_secret_or_the_generated_one() {
    assert_eq!(api_keys_secret(&context(CUSTOM)).name, "photo-keys");
    let generated = api_keys_secret(&context("{}"));
    assert_eq!(
        (generated.name.as_str(), generated.key.as_str()),
        ("photos-upload-api-keys", "api-keys")
    );
}

#[test]
fn permissions_name_specific_arns_the_images_and_staging_prefixes_and_only_upload_items_to_change() {
    let ctx = context(CUSTOM);
    let policy = instance_permissions_policy(&ctx, &config(CUSTOM));
    let statements = policy["Statement"].as_array().expect("statements");
    let mut granted = BTreeMap::new();
    for statement in statements {
        assert_eq!(statement["Effect"], "Allow");
        for resource in statement["Resource"].as_array().expect("a resource list") {
            let resource = resource.as_str().expect("an ARN");
            assert!(resource.starts_with("arn:aws:") && resource != "*", "{resource}");
            for action in statement["Action"].as_array().expect("an action list") {
                let action = action.as_str().expect("an action").to_owned();
                granted
                    .entry(action)
                    .or_insert_with(Vec::new)
                    .push(resource.to_owned());
            }
        }
    }
    let table = "arn:aws:dynamodb:eu-west-1:123456789012:table/photos-table";
    let (images, staging) = (
        "arn:aws:s3:::photos-bucket/images/*".to_owned(),
        "arn:aws:s3:::photos-bucket/staging/*".to_owned(),
    );
    // Items are updated and deleted only when their key is an upload's.
    let tracking = statements
        .iter()
        .find(|s| {
            s["Action"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "dynamodb:DeleteItem")
        })
        .expect("a statement that deletes items");
    assert_eq!(
        tracking["Condition"],
        serde_json::json!({"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["upload#*"]}})
    );
    assert!(
        statements.iter().filter(|s| s.get("Condition").is_some()).count() == 1,
        "only the upload items' statement is conditional"
    );
    let expected: BTreeMap<&str, Vec<String>> = BTreeMap::from([
        ("s3:AbortMultipartUpload", vec![staging.clone()]),
        ("s3:DeleteObject", vec![staging.clone()]),
        ("s3:GetObject", vec![images.clone(), staging.clone()]),
        ("s3:PutObject", vec![images.clone(), staging.clone()]),
        ("dynamodb:DeleteItem", vec![table.to_owned()]),
        ("dynamodb:UpdateItem", vec![table.to_owned()]),
        ("dynamodb:GetItem", vec![table.to_owned()]),
        ("dynamodb:PutItem", vec![table.to_owned()]),
        (
            "dynamodb:Query",
            vec![table.to_owned(), format!("{table}/index/bySha256")],
        ),
        (
            "firehose:PutRecord",
            vec!["arn:aws:firehose:eu-west-1:123456789012:deliverystream/photos-events".to_owned()],
        ),
        (
            "firehose:PutRecordBatch",
            vec!["arn:aws:firehose:eu-west-1:123456789012:deliverystream/photos-events".to_owned()],
        ),
        (
            "ssm:GetParameter",
            vec![
                "arn:aws:ssm:eu-west-1:123456789012:parameter/imagepipeline/media/photos/api-keys".to_owned(),
            ],
        ),
    ]);
    assert_eq!(
        granted,
        expected.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    );
}

#[test]
fn only_ec2_may_assume_the_instance_role() {
    let trust = instance_trust_policy();
    let statements = trust["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 1);
    assert_eq!(
        statements[0]["Principal"],
        json!({"Service": "ec2.amazonaws.com"})
    );
    assert_eq!(statements[0]["Action"], "sts:AssumeRole");
}
