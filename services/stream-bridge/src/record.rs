//! What a Kafka record says (DESIGN.md, "Kafka input"): the value is the
//! image, an optional `content-type` header declares its type. A record that
//! cannot be stored is poison: it goes to the dead-letter topic with an error
//! code and message, never blocking its partition.

use std::collections::BTreeSet;

use ingest_core::{ImageInfo, ImageType, InspectError, inspect};

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
}

impl Poison {
    pub fn code(&self) -> &'static str {
        match self {
            Poison::Empty => "empty",
            Poison::TooLarge { .. } => "too_large",
            Poison::NotAnImage(_) => "not_an_image",
            Poison::TypeMismatch { .. } => "type_mismatch",
            Poison::NotAllowed(_) => "not_allowed",
        }
    }
}

/// The rules every record is checked against.
#[derive(Clone, Debug)]
pub struct Admission {
    pub max_image_bytes: u64,
    pub allowed: BTreeSet<ImageType>,
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
}

#[cfg(test)]
mod tests {
    use ingest_testing::image;
    use proptest::prelude::*;

    use super::*;

    fn admission() -> Admission {
        Admission {
            max_image_bytes: 1000,
            allowed: BTreeSet::from([ImageType::Png, ImageType::Jpeg]),
        }
    }

    #[test]
    fn an_allowed_image_passes_with_or_without_a_matching_declaration() {
        let png = image(ImageType::Png, 1, 10);
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
            (a.check(Some(&image(ImageType::Png, 1, 2000)), None), "too_large"),
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
