//! Tags as each AWS SDK spells them, converted to and from [`Tags`] in one
//! place. Every SDK has its own `Tag` type with the same key and value; some
//! builders can fail (a required field), some cannot.

use aws_smithy_types::error::operation::BuildError;

use crate::engine::Tags;
use crate::error::ComponentError;
use crate::resources::sdk::built;

/// One SDK's tag type.
pub trait SdkTag: Sized {
    fn build(key: &str, value: &str) -> Result<Self, BuildError>;
    fn key_value(&self) -> (&str, &str);
}

/// `tags` as the SDK of `T` wants them.
pub fn to_sdk<T: SdkTag>(tags: &Tags) -> Result<Vec<T>, ComponentError> {
    tags.iter()
        .map(|(key, value)| built(T::build(key, value)))
        .collect()
}

/// The tags an SDK returned.
pub fn from_sdk<'a, T: SdkTag + 'a>(tags: impl IntoIterator<Item = &'a T>) -> Tags {
    tags.into_iter()
        .map(|tag| {
            let (key, value) = tag.key_value();
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// `&str` or `Option<&str>`: what an SDK's accessor returns.
trait Text<'a> {
    fn text(self) -> &'a str;
}

impl<'a> Text<'a> for &'a str {
    fn text(self) -> &'a str {
        self
    }
}

impl<'a> Text<'a> for Option<&'a str> {
    fn text(self) -> &'a str {
        self.unwrap_or_default()
    }
}

macro_rules! sdk_tag {
    ($tag:ty, fallible) => {
        impl SdkTag for $tag {
            fn build(key: &str, value: &str) -> Result<Self, BuildError> {
                <$tag>::builder().key(key).value(value).build()
            }
            fn key_value(&self) -> (&str, &str) {
                (self.key().text(), self.value().text())
            }
        }
    };
    ($tag:ty) => {
        impl SdkTag for $tag {
            fn build(key: &str, value: &str) -> Result<Self, BuildError> {
                Ok(<$tag>::builder().key(key).value(value).build())
            }
            fn key_value(&self) -> (&str, &str) {
                (self.key().text(), self.value().text())
            }
        }
    };
}

sdk_tag!(aws_sdk_ec2::types::Tag);
sdk_tag!(aws_sdk_redshift::types::Tag);
sdk_tag!(aws_sdk_elasticloadbalancingv2::types::Tag);
sdk_tag!(aws_sdk_autoscaling::types::TagDescription);
sdk_tag!(aws_sdk_iam::types::Tag, fallible);
sdk_tag!(aws_sdk_dynamodb::types::Tag, fallible);
sdk_tag!(aws_sdk_firehose::types::Tag, fallible);
sdk_tag!(aws_sdk_s3::types::Tag, fallible);
sdk_tag!(aws_sdk_ssm::types::Tag, fallible);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_go_to_each_sdk_and_back_unchanged() {
        let tags = Tags::from([
            ("imagepipeline.io/owner".to_owned(), "media/photos".to_owned()),
            ("team".to_owned(), String::new()),
        ]);
        let ec2: Vec<aws_sdk_ec2::types::Tag> = to_sdk(&tags).unwrap();
        assert_eq!(from_sdk(&ec2), tags);
        let iam: Vec<aws_sdk_iam::types::Tag> = to_sdk(&tags).unwrap();
        assert_eq!(from_sdk(&iam), tags);
        let firehose: Vec<aws_sdk_firehose::types::Tag> = to_sdk(&tags).unwrap();
        assert_eq!(from_sdk(&firehose), tags);
        let redshift: Vec<aws_sdk_redshift::types::Tag> = to_sdk(&tags).unwrap();
        assert_eq!(from_sdk(&redshift), tags);
    }
}
