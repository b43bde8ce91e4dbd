//! Which image a byte string is, decided by its content, never by what the
//! client declares, and its dimensions read from the header alone.

use std::fmt;
use std::str::FromStr;

/// The image types the pipeline accepts. A new type is one variant, its
/// signature in [`ImageType::SIGNATURES`], a MIME type and an extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageType {
    Jpeg,
    Png,
    Webp,
    Gif,
}

/// A magic-number test: the bytes expected at an offset of the content.
struct Signature {
    image_type: ImageType,
    parts: &'static [(usize, &'static [u8])],
}

impl ImageType {
    pub const ALL: [ImageType; 4] = [ImageType::Jpeg, ImageType::Png, ImageType::Webp, ImageType::Gif];

    const SIGNATURES: &'static [Signature] = &[
        Signature {
            image_type: ImageType::Jpeg,
            parts: &[(0, &[0xFF, 0xD8, 0xFF])],
        },
        Signature {
            image_type: ImageType::Png,
            parts: &[(0, b"\x89PNG\r\n\x1a\n")],
        },
        Signature {
            image_type: ImageType::Gif,
            parts: &[(0, b"GIF87a")],
        },
        Signature {
            image_type: ImageType::Gif,
            parts: &[(0, b"GIF89a")],
        },
        // RIFF container, 4 bytes of length, then the WEBP form type.
        Signature {
            image_type: ImageType::Webp,
            parts: &[(0, b"RIFF"), (8, b"WEBP")],
        },
    ];

    /// The type whose signature `content` starts with.
    pub fn detect(content: &[u8]) -> Option<ImageType> {
        Self::SIGNATURES
            .iter()
            .find(|signature| {
                signature
                    .parts
                    .iter()
                    .all(|(offset, magic)| content.get(*offset..offset + magic.len()) == Some(*magic))
            })
            .map(|signature| signature.image_type)
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Webp => "image/webp",
            ImageType::Gif => "image/gif",
        }
    }

    /// File extension of the S3 object.
    pub fn extension(self) -> &'static str {
        match self {
            ImageType::Jpeg => "jpg",
            ImageType::Png => "png",
            ImageType::Webp => "webp",
            ImageType::Gif => "gif",
        }
    }
}

impl fmt::Display for ImageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime_type())
    }
}

/// A content type that names no accepted image type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an image type the pipeline accepts (image/jpeg, image/png, image/webp, image/gif)")]
pub struct UnknownImageType(pub String);

impl FromStr for ImageType {
    type Err = UnknownImageType;

    /// Parses a MIME type as clients send it: case-insensitive, parameters
    /// (`; charset=…`) ignored, `image/jpg` taken for `image/jpeg`.
    fn from_str(content_type: &str) -> Result<Self, Self::Err> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/jpg" => Ok(ImageType::Jpeg),
            "image/png" => Ok(ImageType::Png),
            "image/webp" => Ok(ImageType::Webp),
            "image/gif" => Ok(ImageType::Gif),
            _ => Err(UnknownImageType(content_type.to_owned())),
        }
    }
}

/// What the header of an image says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub image_type: ImageType,
    pub width: u32,
    pub height: u32,
}

/// Why bytes are not an image the pipeline takes, in the words of the error
/// codes the services answer with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error("the content is empty")]
    Empty,
    #[error("the content is not a JPEG, PNG, WebP or GIF image")]
    NotAnImage,
    #[error("the {0} header is truncated or malformed, so its dimensions cannot be read")]
    BadHeader(ImageType),
}

/// Recognises the image in `content` (a prefix is enough when it holds the
/// whole header) and reads its width and height without decoding pixels.
pub fn inspect(content: &[u8]) -> Result<ImageInfo, InspectError> {
    if content.is_empty() {
        return Err(InspectError::Empty);
    }
    let image_type = ImageType::detect(content).ok_or(InspectError::NotAnImage)?;
    let size = imagesize::blob_size(content).map_err(|_| InspectError::BadHeader(image_type))?;
    dimensions(image_type, size)
}

/// Width and height a header gave; zero or beyond `u32` is a bad header.
pub(crate) fn dimensions(
    image_type: ImageType,
    size: imagesize::ImageSize,
) -> Result<ImageInfo, InspectError> {
    let dimension = |value: usize| u32::try_from(value).ok().filter(|&v| v > 0);
    match (dimension(size.width), dimension(size.height)) {
        (Some(width), Some(height)) => Ok(ImageInfo {
            image_type,
            width,
            height,
        }),
        _ => Err(InspectError::BadHeader(image_type)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The smallest well-formed images of each type, 3×2 pixels.
    pub(crate) fn sample(image_type: ImageType) -> Vec<u8> {
        match image_type {
            ImageType::Png => {
                let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
                png.extend_from_slice(&3u32.to_be_bytes());
                png.extend_from_slice(&2u32.to_be_bytes());
                png.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
                png
            }
            ImageType::Gif => {
                let mut gif = b"GIF89a".to_vec();
                gif.extend_from_slice(&3u16.to_le_bytes());
                gif.extend_from_slice(&2u16.to_le_bytes());
                gif.extend_from_slice(&[0, 0, 0, b';']);
                gif
            }
            ImageType::Webp => {
                // VP8X chunk: canvas width and height minus one, 24 bits each.
                let mut webp = b"RIFF\x16\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00".to_vec();
                webp.extend_from_slice(&[2, 0, 0, 1, 0, 0]);
                webp
            }
            ImageType::Jpeg => {
                // SOI, then a baseline SOF0 segment: precision, height, width.
                let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
                jpeg.extend_from_slice(&2u16.to_be_bytes());
                jpeg.extend_from_slice(&3u16.to_be_bytes());
                jpeg.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9]);
                jpeg
            }
        }
    }

    #[test]
    fn each_type_is_recognised_by_its_content_with_its_dimensions() {
        for image_type in ImageType::ALL {
            assert_eq!(
                inspect(&sample(image_type)),
                Ok(ImageInfo {
                    image_type,
                    width: 3,
                    height: 2
                }),
                "{image_type}"
            );
        }
    }

    #[test]
    fn what_is_not_one_of_the_types_is_refused() {
        assert_eq!(inspect(b""), Err(InspectError::Empty));
        assert_eq!(inspect(b"hello, world"), Err(InspectError::NotAnImage));
        assert_eq!(inspect(b"%PDF-1.7\n"), Err(InspectError::NotAnImage));
        assert_eq!(
            inspect(b"RIFF\x00\x00\x00\x00WAVEfmt "),
            Err(InspectError::NotAnImage)
        );
        assert_eq!(inspect(b"GIF88a"), Err(InspectError::NotAnImage));
    }

    #[test]
    fn a_truncated_header_is_a_bad_header_of_its_type() {
        for image_type in ImageType::ALL {
            let sample = sample(image_type);
            // Just the signature: recognisable, but no dimensions yet.
            let signature = (1..=sample.len())
                .find(|&n| ImageType::detect(&sample[..n]) == Some(image_type))
                .unwrap();
            let cut = &sample[..signature];
            assert_eq!(
                inspect(cut),
                Err(InspectError::BadHeader(image_type)),
                "{image_type}"
            );
        }
    }

    #[test]
    fn content_types_parse_as_clients_send_them() {
        assert_eq!("IMAGE/JPEG".parse(), Ok(ImageType::Jpeg));
        assert_eq!("image/jpg".parse(), Ok(ImageType::Jpeg));
        assert_eq!("image/png; charset=binary".parse(), Ok(ImageType::Png));
        assert!("image/svg+xml".parse::<ImageType>().is_err());
        for image_type in ImageType::ALL {
            assert_eq!(image_type.mime_type().parse(), Ok(image_type));
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(content in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = inspect(&content);
        }

        #[test]
        fn a_real_signature_with_arbitrary_bytes_after_it_never_panics(
            index in 0usize..4,
            cut in 0usize..40,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
        ) {
            let image_type = ImageType::ALL[index];
            let sample = sample(image_type);
            let mut content = sample[..cut.min(sample.len())].to_vec();
            content.extend(tail);
            if let Ok(info) = inspect(&content) {
                proptest::prop_assert_eq!(info.image_type, image_type);
            }
        }
    }
}
