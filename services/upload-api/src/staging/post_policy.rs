//! A presigned S3 POST (a browser-based upload): form fields whose policy
//! lets the holder post one object, at one key, of at most a given size,
//! until the policy expires, signed with Signature Version 4
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html>).
//! The SDK presigns requests but not POST policies.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use jiff::Timestamp;
use serde_json::{Value, json};

/// What the client posts: `fields` first, in any order, then the file as
/// the form's last field, `file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresignedPost {
    pub url: String,
    pub fields: BTreeMap<String, String>,
}

/// The object one presigned POST may create.
#[derive(Clone, Debug)]
pub struct PostPolicy<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub max_bytes: u64,
    pub expires_at: Timestamp,
}

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

impl PostPolicy<'_> {
    /// The fields for `url`, signed with `credentials` for `region` at `now`.
    pub fn presign(
        &self,
        url: String,
        credentials: &Credentials,
        region: &str,
        now: Timestamp,
    ) -> PresignedPost {
        let date = now.strftime("%Y%m%d").to_string();
        let credential = format!("{}/{date}/{region}/s3/aws4_request", credentials.access_key_id());
        let mut fields = BTreeMap::from([
            ("key".to_owned(), self.key.to_owned()),
            ("x-amz-algorithm".to_owned(), ALGORITHM.to_owned()),
            ("x-amz-credential".to_owned(), credential),
            (
                "x-amz-date".to_owned(),
                now.strftime("%Y%m%dT%H%M%SZ").to_string(),
            ),
        ]);
        if let Some(token) = credentials.session_token() {
            fields.insert("x-amz-security-token".to_owned(), token.to_owned());
        }
        let mut conditions = vec![
            json!({ "bucket": self.bucket }),
            // An empty file is no image; the most is the pipeline's limit.
            json!(["content-length-range", 1, self.max_bytes]),
        ];
        conditions.extend(
            fields
                .iter()
                .map(|(name, value)| json!(["eq", format!("${name}"), value])),
        );
        let policy = json!({
            "expiration": self.expires_at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "conditions": Value::Array(conditions),
        });
        let policy = aws_smithy_types::base64::encode(policy.to_string());
        let signing_key = aws_sigv4::sign::v4::generate_signing_key(
            credentials.secret_access_key(),
            SystemTime::from(now),
            region,
            "s3",
        );
        let signature = aws_sigv4::sign::v4::calculate_signature(signing_key, policy.as_bytes());
        fields.insert("policy".to_owned(), policy);
        fields.insert("x-amz-signature".to_owned(), signature);
        PresignedPost { url, fields }
    }
}

/// Where a bucket takes POSTs: under the endpoint the SDK is pointed at
/// (path style, as emulators serve every bucket from one host), else the
/// bucket's regional virtual host.
pub fn post_url(endpoint: Option<&str>, bucket: &str, region: &str) -> String {
    match endpoint {
        Some(endpoint) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        None => {
            let domain = if region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            format!("https://{bucket}.s3.{region}.{domain}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_of(post: &PresignedPost) -> Value {
        let json = aws_smithy_types::base64::decode(&post.fields["policy"]).unwrap();
        serde_json::from_slice(&json).unwrap()
    }

    #[test]
    fn the_policy_names_the_bucket_the_key_the_size_and_every_field_and_is_signed() {
        let now: Timestamp = "2026-12-03T09:30:00Z".parse().unwrap();
        let policy = PostPolicy {
            bucket: "photos",
            key: "staging/u1/object",
            max_bytes: 20 * 1024 * 1024,
            expires_at: "2026-12-03T10:30:00Z".parse().unwrap(),
        };
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), None, "test");
        let post = policy.presign("https://s3.example/photos".into(), &credentials, "eu-west-1", now);
        assert_eq!(
            post.fields["x-amz-credential"],
            "AKIDEXAMPLE/20261203/eu-west-1/s3/aws4_request"
        );
        assert_eq!(post.fields["x-amz-date"], "20261203T093000Z");
        assert_eq!(post.fields["x-amz-security-token"], "session");
        let document = policy_of(&post);
        assert_eq!(document["expiration"], "2026-12-03T10:30:00.000Z");
        let conditions = document["conditions"].as_array().unwrap();
        assert!(conditions.contains(&json!({"bucket": "photos"})));
        assert!(conditions.contains(&json!(["content-length-range", 1, 20 * 1024 * 1024])));
        assert!(conditions.contains(&json!(["eq", "$key", "staging/u1/object"])));
        for (name, value) in &post.fields {
            if name != "policy" && name != "x-amz-signature" {
                assert!(
                    conditions.contains(&json!(["eq", format!("${name}"), value])),
                    "{name}"
                );
            }
        }
        // The signature is HMAC-SHA256 of the encoded policy under the key
        // derived from the secret, the date, the region and "s3".
        let key =
            aws_sigv4::sign::v4::generate_signing_key("secret", SystemTime::from(now), "eu-west-1", "s3");
        assert_eq!(
            post.fields["x-amz-signature"],
            aws_sigv4::sign::v4::calculate_signature(key, post.fields["policy"].as_bytes())
        );
        let other = Credentials::new("AKIDEXAMPLE", "other", None, None, "test");
        let forged = policy.presign("https://s3.example/photos".into(), &other, "eu-west-1", now);
        assert_ne!(forged.fields["x-amz-signature"], post.fields["x-amz-signature"]);
        assert!(!forged.fields.contains_key("x-amz-security-token"));
    }

    #[test]
    fn posts_go_to_the_endpoint_path_or_the_buckets_regional_host() {
        assert_eq!(
            post_url(Some("https://127.0.0.1:4566/"), "b", "eu-west-1"),
            "https://127.0.0.1:4566/b"
        );
        assert_eq!(
            post_url(None, "b", "eu-west-1"),
            "https://b.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            post_url(None, "b", "cn-north-1"),
            "https://b.s3.cn-north-1.amazonaws.com.cn"
        );
    }
}
