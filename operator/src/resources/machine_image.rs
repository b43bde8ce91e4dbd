//! Which AMI instances boot from, shared by the UploadTier and KafkaBrokers
//! components: the one the spec names, or the latest Amazon Linux 2023 image
//! AWS publishes in Parameter Store.

use aws_sdk_ec2::types::{Filter, ImageState};

use crate::aws::AwsClients;
use crate::aws::errors::{Lookup, SpecReference, classify, code, missing};
use crate::engine::ComponentError;

/// AWS's public parameter holding the id of the newest Amazon Linux 2023 AMI
/// (x86_64, kernel 6.1) in each region.
pub const LATEST_AL2023_PARAMETER: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64";

/// Root device of every Amazon Linux 2023 AMI, used when the image cannot be
/// described (AWS publishes the parameter before the image is visible
/// everywhere).
const AL2023_ROOT_DEVICE: &str = "/dev/xvda";

/// Where the AMI id comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// Given in the spec at `field`.
    Spec { id: String, field: &'static str },
    /// The latest Amazon Linux 2023: a new release rolls the instances at
    /// the next reconcile, which is how they get security fixes.
    LatestAmazonLinux,
}

impl ImageSource {
    pub fn new(spec: Option<&String>, field: &'static str) -> Self {
        match spec {
            Some(id) => ImageSource::Spec {
                id: id.clone(),
                field,
            },
            None => ImageSource::LatestAmazonLinux,
        }
    }
}

/// An AMI and the device name of its root volume, which a block device
/// mapping must use to set the root volume's size and encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    pub id: String,
    pub root_device: String,
}

/// Finds the AMI `source` names. A spec'd AMI that does not exist (or is not
/// available) is terminal and names the field. Pipelines naming the same
/// source share the answer.
pub async fn resolve(aws: &AwsClients, source: &ImageSource) -> Result<ResolvedImage, ComponentError> {
    let resolved = aws
        .facts
        .get(&format!("ec2:image:{source:?}"), || read(aws, source))
        .await?;
    Ok(ResolvedImage::clone(&resolved))
}

async fn read(aws: &AwsClients, source: &ImageSource) -> Result<ResolvedImage, ComponentError> {
    let id = match source {
        ImageSource::Spec { id, .. } => id.clone(),
        ImageSource::LatestAmazonLinux => latest_amazon_linux(aws).await?,
    };
    let images = aws
        .ec2
        .describe_images()
        .image_ids(&id)
        .filters(
            Filter::builder()
                .name("state")
                .values(ImageState::Available.as_str())
                .build(),
        )
        .send()
        .await;
    let root_device = match images {
        Ok(out) => out
            .images()
            .first()
            .and_then(|image| image.root_device_name())
            .map(str::to_owned),
        Err(err) if code(&err).is_some_and(|c| c.starts_with("InvalidAMIID")) => None,
        Err(err) => return Err(classify(&format!("look up AMI {id}"), err)),
    };
    match (root_device, source) {
        (Some(root_device), _) => Ok(ResolvedImage { id, root_device }),
        (None, ImageSource::LatestAmazonLinux) => Ok(ResolvedImage {
            id,
            root_device: AL2023_ROOT_DEVICE.to_owned(),
        }),
        (None, ImageSource::Spec { field, .. }) => Err(missing(
            SpecReference::new(Lookup::Image, field, &id),
            "no available image of that id in this region and account",
        )),
    }
}

async fn latest_amazon_linux(aws: &AwsClients) -> Result<String, ComponentError> {
    let out = aws
        .ssm
        .get_parameter()
        .name(LATEST_AL2023_PARAMETER)
        .send()
        .await
        .map_err(|err| {
            classify(
                &format!(
                    "read the latest Amazon Linux 2023 AMI id (SSM parameter {LATEST_AL2023_PARAMETER})"
                ),
                err,
            )
        })?;
    out.parameter()
        .and_then(|p| p.value())
        .map(str::to_owned)
        .ok_or_else(|| {
            ComponentError::retryable(
                "ImageNotFound",
                format!("SSM parameter {LATEST_AL2023_PARAMETER} has no value"),
            )
        })
}
