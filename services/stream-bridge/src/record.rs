//! What a Kafka record says (DESIGN.md, "Kafka input"): the value is the
//! image, an optional `content-type` header declares its type. A record that
//! cannot be stored is poison: it goes to the dead-letter topic with an error
//! code and message, never blocking its partition.

use std::collections::BTreeSet;
use std::sync::Arc;

use ingest_core::{
    Content, ContentError, DecodeBudget, ImageInfo, ImageRules, ImageType, InspectError, Verified,
    VerifyError, inspect,
};

/// Why a record is dead-lettered; `code` is the `error-code` header.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    #[error("the record has no value")]
    Empty,
    #[error("the value is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: u64 },
    #[error("{0}")]
    NotAnImage(String),
    #[error("the record declares {declared:?} but the value is {actual}")]
    TypeMismatch { declared: String, actual: ImageType },
    #[error("{0} images are not accepted by this pipeline")]
    NotAllowed(ImageType),
    /// The image does not decode, or is over a decoding limit.
    #[error("{0}")]
    Refused(VerifyError),
}

impl Poison {
    pub fn code(&self) -> &'static str {
        match self {
            Poison::Empty => "empty",
            Poison::TooLarge { .. } => "too_large",
            Poison::NotAnImage(_) => "not_an_image",
            Poison::TypeMismatch { .. } => "type_mismatch",
            Poison::NotAllowed(_) => "not_allowed",
            Poison::Refused(refused) => refused.code(),
        }
    }
}

/// The rules every record is checked against.
#[derive(Clone, Debug)]
pub struct Admission {
    pub max_image_bytes: u64,
    pub allowed: BTreeSet<ImageType>,
    /// Decoding limits and the metadata removed.
    pub rules: ImageRules,
    /// Memory the records being decoded share.
    pub decode_budget: Arc<DecodeBudget>,
}

impl Admission {
    /// The image in `value`, or why the record is poison. `declared` is the
    /// record's `content-type` header, if any.
    pub fn check(&self, value: Option<&[u8]>, declared: Option<&str>) -> Result<ImageInfo, Poison> {
        let value = value.filter(|v| !v.is_empty()).ok_or(Poison::Empty)?;
        if value.len() as u64 > self.max_image_bytes {
            return Err(Poison::TooLarge {
                size: value.len(),
                limit: self.max_image_bytes,
            });
        }
        let info = inspect(value).map_err(|err| match err {
            InspectError::Empty => Poison::Empty,
            other => Poison::NotAnImage(other.to_string()),
        })?;
        if let Some(declared) = declared
            && declared.parse::<ImageType>() != Ok(info.image_type)
        {
            return Err(Poison::TypeMismatch {
                declared: declared.to_owned(),
                actual: info.image_type,
            });
        }
        if !self.allowed.contains(&info.image_type) {
            return Err(Poison::NotAllowed(info.image_type));
        }
        Ok(info)
    }

    /// Decodes the image [`Admission::check`] recognised: what does not
    /// decode, or is over a decoding limit, is poison too. Returns the
    /// content to store, without the metadata the rules remove.
    pub async fn decode(&self, content: Content, info: ImageInfo) -> Result<(Content, Verified), Poison> {
        content
            .verify(info, self.rules, &self.decode_budget)
            .await
            .map_err(|err| match err {
                ContentError::Refused(refused) => Poison::Refused(refused),
                // A record is in memory: only a decoder that panicked ends here.
                ContentError::Unreadable(err) => Poison::NotAnImage(format!("the decoder failed: {err}")),
            })
    }
}

#[cfg(test)]
mod tests {
    use ingest_testing::{Picture, animation, image};
    use proptest::prelude::*;

    use super::*;
    use ingest_core::StripMetadata;

    fn admission() -> Admission {
        Admission {
            max_image_bytes: 20_000,
            allowed: BTreeSet::from([ImageType::Png, ImageType::Jpeg]),
            rules: ImageRules {
                limits: ingest_core::DecodeLimits {
                    max_pixels: 1000,
                    max_frames: 3,
                },
                ..ImageRules::default()
            },
            decode_budget: Arc::default(),
        }
    }

    #[test]
    fn an_allowed_image_passes_with_or_without_a_matching_declaration() {
        let png = Picture::noise(3, 2, 1).encode(ImageType::Png);
        let info = admission().check(Some(&png), None).unwrap();
        assert_eq!((info.image_type, info.width, info.height), (ImageType::Png, 3, 2));
        assert_eq!(admission().check(Some(&png), Some("image/png")), Ok(info));
    }

    #[test]
    fn each_kind_of_poison_has_its_code() {
        let a = admission();
        let png = image(ImageType::Png, 1, 10);
        let cases = [
            (a.check(None, None), "empty"),
            (a.check(Some(b""), None), "empty"),
            (
                a.check(Some(&image(ImageType::Png, 1, 25_000)), None),
                "too_large",
            ),
            (a.check(Some(b"hello"), None), "not_an_image"),
            (a.check(Some(&png[..20]), None), "not_an_image"),
            (a.check(Some(&png), Some("image/jpeg")), "type_mismatch"),
            (a.check(Some(&png), Some("text/plain")), "type_mismatch"),
            (a.check(Some(&image(ImageType::Gif, 1, 10)), None), "not_allowed"),
        ];
        for (result, code) in cases {
            assert_eq!(result.map_err(|p| p.code()), Err(code));
        }
    }

    #[tokio::test]
    async fn what_does_not_decode_or_is_over_a_decoding_limit_is_poison_with_its_code() {
        let a = admission();
        let decoded = |bytes: Vec<u8>| {
            let a = a.clone();
            async move {
                let info = a.check(Some(&bytes), None).expect("recognised");
                a.decode(Content::from_bytes(bytes), info)
                    .await
                    .map(|(_, image)| image)
                    .map_err(|p| p.code())
            }
        };
        let png = Picture::noise(10, 10, 1).encode(ImageType::Png);
        assert_eq!(decoded(png.clone()).await.map(|v| v.frames), Ok(1));
        assert_eq!(decoded(png[..png.len() - 1].to_vec()).await, Err("not_an_image"));
        assert_eq!(
            decoded([png.as_slice(), b"<?php"].concat()).await,
            Err("not_an_image")
        );
        assert_eq!(
            decoded(Picture::noise(40, 30, 1).encode(ImageType::Png)).await,
            Err("too_many_pixels")
        );
        let frames: Vec<Picture> = (0..4).map(|n| Picture::noise(2, 2, n)).collect();
        assert_eq!(
            decoded(animation(ImageType::Png, &frames)).await,
            Err("too_many_frames")
        );
    }

    #[tokio::test]
    async fn a_record_is_stored_without_the_metadata_the_rules_remove() {
        use ingest_testing::Metadata;
        let sent = Picture::scene(30, 30, 1).encode_with(ImageType::Jpeg, &Metadata::from_a_phone(1));
        let contains = |bytes: &[u8], text: &[u8]| bytes.windows(text.len()).any(|w| w == text);
        for (strip, kept) in [(StripMetadata::All, false), (StripMetadata::None, true)] {
            let a = Admission {
                max_image_bytes: 1 << 20,
                rules: ImageRules {
                    strip,
                    ..ImageRules::default()
                },
                ..admission()
            };
            let info = a.check(Some(&sent), None).unwrap();
            let (content, _) = a.decode(Content::from_bytes(sent.clone()), info).await.unwrap();
            let stored = content.to_bytes().await.unwrap();
            assert_eq!(contains(&stored, b"xpacket"), kept, "{strip}");
            assert_eq!(
                content.original_sha256(),
                Content::from_bytes(sent.clone()).sha256()
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_records_are_an_image_or_poison_never_a_panic(
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..1200)),
            declared in proptest::option::of("[ -~]{0,30}"),
        ) {
            let _ = admission().check(value.as_deref(), declared.as_deref());
        }
    }
}
