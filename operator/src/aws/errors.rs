//! Turning SDK errors into what the engine needs to know: which AWS error it
//! was, and whether trying again can help.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;

use crate::error::{AwsAnswer, ComponentError, ErrorKind};

/// Error codes AWS uses when a caller exceeds a request rate.
const THROTTLING_CODES: [&str; 8] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// Error codes meaning the request as written can never succeed: the spec (or
/// a name in it) must change.
const TERMINAL_CODES: [&str; 10] = [
    "ValidationException",
    "ValidationError",
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "InvalidParameterCombination",
    "InvalidArgumentException",
    "InvalidBucketName",
    "BucketAlreadyExists",
    "MalformedPolicyDocument",
    // Glue's answer to a request it can never take (a name or type it refuses).
    "InvalidInputException",
];

/// Error codes meaning AWS refuses the caller, not the request: a missing
/// permission or invalid credentials. Retrying soon cannot help and, repeated
/// by many pipelines, fills CloudTrail and trips account-wide alarms.
const REFUSED_CODES: [&str; 7] = [
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthFailure",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
];

/// Error codes meaning an account quota is used up: a person raises it (in
/// Service Quotas) or frees something; the spec is not wrong.
const QUOTA_CODES: [&str; 10] = [
    "LimitExceeded",
    "LimitExceededException",
    "VpcLimitExceeded",
    "AddressLimitExceeded",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
    "TooManyLoadBalancers",
    "TooManyBuckets",
    "ClusterQuotaExceeded",
    // Glue: databases per account, tables per database.
    "ResourceNumberLimitExceededException",
];

/// What kind of thing a spec value names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    Certificate,
    Image,
    Vpc,
    InstanceType,
}

/// A value the spec names that AWS looks up: an AMI, a certificate, a VPC.
/// With it, an answer that the value does not exist names the spec field
/// instead of the call.
#[derive(Clone, Copy, Debug)]
pub struct SpecReference<'a> {
    pub lookup: Lookup,
    /// The field's path, e.g. `spec.uploadApi.certificateArn`.
    pub field: &'static str,
    pub value: &'a str,
}

impl<'a> SpecReference<'a> {
    pub fn new(lookup: Lookup, field: &'static str, value: &'a str) -> Self {
        Self { lookup, field, value }
    }
}

/// What a code says about a [`SpecReference`], and what the user does.
struct MissingReference {
    lookup: Lookup,
    codes: &'static [&'static str],
    reason: &'static str,
    what_to_do: &'static str,
}

/// Every answer meaning "what the spec names does not exist or cannot be
/// used". The README's table of terminal errors lists the same.
const MISSING_REFERENCES: [MissingReference; 4] = [
    MissingReference {
        lookup: Lookup::Certificate,
        codes: &["CertificateNotFound"],
        reason: "CertificateNotFound",
        what_to_do: "give the ARN of an issued ACM certificate in the pipeline's region and account, \
                     or remove the field to serve HTTP on port 80",
    },
    MissingReference {
        lookup: Lookup::Image,
        codes: &[
            "InvalidAMIID.NotFound",
            "InvalidAMIID.Malformed",
            "InvalidAMIID.Unavailable",
        ],
        reason: "ImageNotFound",
        what_to_do: "give an available AMI of the pipeline's region (`aws ec2 describe-images`), \
                     or remove the field to use the latest Amazon Linux 2023",
    },
    MissingReference {
        lookup: Lookup::Vpc,
        codes: &["InvalidVpcID.NotFound", "InvalidVpcID.Malformed"],
        reason: "ClusterVpcNotFound",
        what_to_do: "give the id of the Kubernetes cluster's VPC in the pipeline's region \
                     (`aws eks describe-cluster --query cluster.resourcesVpcConfig.vpcId`)",
    },
    MissingReference {
        lookup: Lookup::InstanceType,
        codes: &["Unsupported", "InvalidInstanceType"],
        reason: "InstanceTypeNotOffered",
        what_to_do: "choose an instance type offered in every zone of spec.network.availabilityZones \
                     (`aws ec2 describe-instance-type-offerings --location-type availability-zone`)",
    },
];

/// The AWS error code of a failed call, if AWS answered with one.
pub fn code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    err.code()
}

/// The error code and request id of AWS's answer, when AWS answered.
pub fn answer<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<AwsAnswer> {
    let answer = AwsAnswer {
        code: code(err).map(str::to_owned),
        // Query protocols carry it in the body (`<RequestId>`), which the
        // SDK puts in the metadata; the others in a header.
        request_id: err
            .meta()
            .request_id()
            .or_else(|| RequestId::request_id(err))
            .map(str::to_owned),
    };
    (answer != AwsAnswer::default()).then_some(answer)
}

/// The HTTP status AWS answered with, if it answered.
pub fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|response| response.status().as_u16())
}

/// Classifies a failed call. `action` says what the engine was doing, in words
/// a user reads in a condition message ("create S3 bucket photos").
pub fn classify<E>(action: &str, err: SdkError<E, HttpResponse>) -> ComponentError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let code = code(&err).map(str::to_owned);
    let detail = err
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| describe_chain(&err));
    let status = status(&err);
    let classified = classify_code(action, code.as_deref(), status, &detail);
    match answer(&err) {
        Some(answer) => classified.answered(answer),
        None => classified,
    }
}

/// Like [`classify`], for a call that uses values the spec names: when AWS
/// answers that one does not exist, the error is terminal and names its
/// spec field.
pub fn classify_with<E>(
    action: &str,
    references: &[SpecReference<'_>],
    err: SdkError<E, HttpResponse>,
) -> ComponentError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let found = code(&err).and_then(|code| {
        let missing = MISSING_REFERENCES.iter().find(|m| m.codes.contains(&code))?;
        let reference = references.iter().find(|r| r.lookup == missing.lookup)?;
        Some((missing, *reference))
    });
    match found {
        Some((missing, reference)) => {
            let said = err
                .message()
                .map(|message| format!("{action}: {message}"))
                .unwrap_or_default();
            let error = reference_error(missing, reference, &said);
            match answer(&err) {
                Some(answer) => error.answered(answer),
                None => error,
            }
        }
        None => classify(action, err),
    }
}

/// A terminal error for a spec value that AWS does not have, found without an
/// error (say, a describe that lists nothing).
pub fn missing(reference: SpecReference<'_>, detail: &str) -> ComponentError {
    let missing = MISSING_REFERENCES
        .iter()
        .find(|m| m.lookup == reference.lookup)
        .expect("every Lookup has a MissingReference");
    reference_error(missing, reference, detail)
}

/// `what_aws_said` goes in brackets after the field when there is any.
fn reference_error(
    missing: &MissingReference,
    reference: SpecReference<'_>,
    what_aws_said: &str,
) -> ComponentError {
    let SpecReference { field, value, .. } = reference;
    let said = if what_aws_said.is_empty() {
        String::new()
    } else {
        format!(" ({what_aws_said})")
    };
    ComponentError::terminal(
        missing.reason,
        format!(
            "{field} {value} does not exist or cannot be used{said}; {}",
            missing.what_to_do
        ),
    )
}

/// The classification itself, from what AWS answered.
fn classify_code(action: &str, code: Option<&str>, status: Option<u16>, detail: &str) -> ComponentError {
    // A "not found" about an id the operator itself just made (a VPC, an
    // AMI) is AWS's eventual consistency, so without a spec reference the
    // codes of MISSING_REFERENCES are retried like any other.
    let (kind, reason, what_to_do) = match code {
        Some(code) if THROTTLING_CODES.contains(&code) => (ErrorKind::Retryable, "Throttled", ""),
        Some(code) if TERMINAL_CODES.contains(&code) => {
            (ErrorKind::Terminal, "InvalidSpec", "; change the spec")
        }
        Some(code) if REFUSED_CODES.contains(&code) => (
            ErrorKind::Refused,
            "AccessDenied",
            "; grant this permission to the AWS identity the operator runs as",
        ),
        Some(code) if QUOTA_CODES.contains(&code) => (
            ErrorKind::Refused,
            "QuotaExceeded",
            "; raise the quota in Service Quotas, or free what uses it",
        ),
        Some(_) => (ErrorKind::Retryable, "AwsError", ""),
        None => match status {
            Some(status) if status >= 500 => (ErrorKind::Retryable, "AwsUnavailable", ""),
            Some(_) => (ErrorKind::Retryable, "AwsError", ""),
            None => (ErrorKind::Retryable, "AwsUnreachable", ""),
        },
    };
    let code_text = code.map(|code| format!("{code}: ")).unwrap_or_default();
    ComponentError::new(
        kind,
        reason,
        format!("{action} failed: {code_text}{detail}{what_to_do}"),
    )
}

fn describe_chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::run_instances::RunInstancesError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn answer(code: &str) -> SdkError<RunInstancesError, HttpResponse> {
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("as AWS says it")
            .build();
        SdkError::service_error(
            RunInstancesError::generic(meta),
            HttpResponse::new(400u16.try_into().expect("a status"), SdkBody::empty()),
        )
    }

    const REFERENCES: [SpecReference<'static>; 2] = [
        SpecReference {
            lookup: Lookup::Image,
            field: "spec.kafka.amiId",
            value: "ami-1",
        },
        SpecReference {
            lookup: Lookup::InstanceType,
            field: "spec.kafka.instanceType",
            value: "m7i.large",
        },
    ];

    /// Every row of the README's table of errors that need a person.
    #[test]
    fn each_aws_answer_gets_its_kind_reason_and_the_field_to_change() {
        let cases = [
            (
                "InvalidAMIID.NotFound",
                ErrorKind::Terminal,
                "ImageNotFound",
                "spec.kafka.amiId ami-1",
            ),
            (
                "InvalidAMIID.Malformed",
                ErrorKind::Terminal,
                "ImageNotFound",
                "spec.kafka.amiId ami-1",
            ),
            (
                "Unsupported",
                ErrorKind::Terminal,
                "InstanceTypeNotOffered",
                "spec.kafka.instanceType m7i.large",
            ),
            (
                "InvalidParameterValue",
                ErrorKind::Terminal,
                "InvalidSpec",
                "change the spec",
            ),
            (
                "AccessDenied",
                ErrorKind::Refused,
                "AccessDenied",
                "grant this permission",
            ),
            (
                "UnauthorizedOperation",
                ErrorKind::Refused,
                "AccessDenied",
                "grant this permission",
            ),
            (
                "AuthFailure",
                ErrorKind::Refused,
                "AccessDenied",
                "grant this permission",
            ),
            (
                "VcpuLimitExceeded",
                ErrorKind::Refused,
                "QuotaExceeded",
                "Service Quotas",
            ),
            (
                "ResourceNumberLimitExceededException",
                ErrorKind::Refused,
                "QuotaExceeded",
                "Service Quotas",
            ),
            (
                "InvalidInputException",
                ErrorKind::Terminal,
                "InvalidSpec",
                "change the spec",
            ),
            (
                "RequestLimitExceeded",
                ErrorKind::Retryable,
                "Throttled",
                "RequestLimitExceeded",
            ),
            (
                "InsufficientInstanceCapacity",
                ErrorKind::Retryable,
                "AwsError",
                "InsufficientInstanceCapacity",
            ),
            // Not about a value of the spec: AWS may not have caught up yet.
            (
                "CertificateNotFound",
                ErrorKind::Retryable,
                "AwsError",
                "CertificateNotFound",
            ),
        ];
        for (code, kind, reason, says) in cases {
            let err = classify_with("launch Kafka broker 1", &REFERENCES, answer(code));
            assert_eq!((err.kind, err.reason.as_str()), (kind, reason), "{code}: {err}");
            assert!(err.message.contains(says), "{code}: {}", err.message);
        }
    }

    #[test]
    fn a_missing_certificate_names_its_field_value_and_what_to_do() {
        let arn = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b";
        let reference = SpecReference::new(Lookup::Certificate, "spec.uploadApi.certificateArn", arn);
        let err = classify_with(
            "create HTTPS listener",
            &[reference],
            answer("CertificateNotFound"),
        );
        assert!(err.is_terminal());
        assert_eq!(err.reason, "CertificateNotFound");
        assert!(
            err.message
                .starts_with(&format!("spec.uploadApi.certificateArn {arn} does not exist"))
                && err.message.contains("issued ACM certificate"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_code_and_request_id_of_the_answer_are_kept_from_a_header_or_the_body() {
        let in_body = ErrorMetadata::builder()
            .code("UnauthorizedOperation")
            .custom("aws_request_id", "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE")
            .build();
        let err = classify(
            "launch Kafka broker 1",
            SdkError::service_error(
                RunInstancesError::generic(in_body),
                HttpResponse::new(403u16.try_into().expect("a status"), SdkBody::empty()),
            ),
        );
        assert_eq!(
            err.aws.as_deref(),
            Some(&AwsAnswer {
                code: Some("UnauthorizedOperation".into()),
                request_id: Some("7a62c49f-347e-4fc4-9331-6e8eEXAMPLE".into()),
            })
        );

        let mut response = HttpResponse::new(503u16.try_into().expect("a status"), SdkBody::empty());
        response
            .headers_mut()
            .insert("x-amzn-RequestId", "c6104cbe-af31-11e0-8154-cbc7ccf896c7");
        let err = classify(
            "launch Kafka broker 1",
            SdkError::service_error(
                RunInstancesError::generic(ErrorMetadata::builder().build()),
                response,
            ),
        );
        assert_eq!(err.reason, "AwsUnavailable");
        assert_eq!(
            err.aws.as_deref(),
            Some(&AwsAnswer {
                code: None,
                request_id: Some("c6104cbe-af31-11e0-8154-cbc7ccf896c7".into()),
            })
        );

        let arn = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b";
        let reference = SpecReference::new(Lookup::Certificate, "spec.uploadApi.certificateArn", arn);
        let err = classify_with(
            "create HTTPS listener",
            &[reference],
            answer("CertificateNotFound"),
        );
        assert_eq!(
            err.aws.and_then(|aws| aws.code).as_deref(),
            Some("CertificateNotFound"),
            "a terminal error about the spec keeps AWS's code too"
        );
    }
}
