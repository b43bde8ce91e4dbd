//! Metadata removal on pictures written by real encoders with what phones
//! and editors add: what each `stripMetadata` policy leaves, read back with
//! an EXIF parser and the image decoders, and pixels that stay identical.

use exif::{Context, In, Reader, Tag};
use ingest_core::verify::verify;
use ingest_core::{
    Content, DecodeBudget, DecodeLimits, ImageRules, ImageType, Spool, StripMetadata, inspect, sha256_hex,
};
use ingest_testing::image_metadata::{
    CAMERA_MAKE, LATITUDE_SECONDS, LOCATION_XMP, LONGITUDE_SECONDS, icc_profile, rational_bytes,
};
use ingest_testing::{Metadata, Picture, animation, jpeg_with_a_second_picture};
use proptest::prelude::*;

const WITH_EXIF: [ImageType; 3] = [ImageType::Jpeg, ImageType::Png, ImageType::Webp];

/// What the pipeline would store for `bytes` under `policy`.
fn stored(bytes: &[u8], policy: StripMetadata) -> Vec<u8> {
    let info = inspect(bytes).expect("an image");
    let (_, stripped) =
        verify(bytes, info, &DecodeLimits::default(), policy).unwrap_or_else(|err| panic!("{policy}: {err}"));
    stripped.unwrap_or_else(|| bytes.to_vec())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The EXIF fields a reader finds, as (tag, IFD); none when there is no EXIF.
fn exif_fields(bytes: &[u8]) -> Vec<(Tag, In)> {
    match Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)) {
        Ok(exif) => exif.fields().map(|f| (f.tag, f.ifd_num)).collect(),
        Err(exif::Error::NotFound(_)) => Vec::new(),
        Err(err) => panic!("unreadable EXIF: {err}"),
    }
}

fn orientation(bytes: &[u8]) -> Option<u32> {
    let exif = Reader::new()
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .ok()?;
    exif.get_field(Tag::Orientation, In::PRIMARY)?.value.get_uint(0)
}

/// The decoded pixels (first frame) and colour profile, by the image-rs
/// decoders.
fn decoded(image_type: ImageType, bytes: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    match image_type {
        ImageType::Jpeg => {
            let mut decoder = zune_jpeg::JpegDecoder::new(zune_core::bytestream::ZCursor::new(bytes));
            let pixels = decoder.decode().expect("a JPEG");
            (pixels, decoder.icc_profile())
        }
        ImageType::Png => {
            let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
                .read_info()
                .expect("a PNG");
            let icc = reader.info().icc_profile.as_ref().map(|p| p.to_vec());
            let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
            reader.next_frame(&mut pixels).expect("PNG pixels");
            (pixels, icc)
        }
        ImageType::Webp => {
            let mut decoder = image_webp::WebPDecoder::new(std::io::Cursor::new(bytes)).expect("a WebP");
            let icc = decoder.icc_profile().expect("a readable profile");
            let mut pixels = vec![0; decoder.output_buffer_size().expect("a size")];
            decoder.read_image(&mut pixels).expect("WebP pixels");
            (pixels, icc)
        }
        ImageType::Gif => {
            let mut options = gif::DecodeOptions::new();
            options.set_color_output(gif::ColorOutput::RGBA);
            let mut decoder = options.read_info(std::io::Cursor::new(bytes)).expect("a GIF");
            let frame = decoder.read_next_frame().expect("a frame").expect("one frame");
            (frame.buffer.to_vec(), None)
        }
    }
}

fn has_location(bytes: &[u8]) -> bool {
    contains(bytes, &rational_bytes(LATITUDE_SECONDS))
        || contains(bytes, &rational_bytes(LONGITUDE_SECONDS))
        || contains(bytes, b"GPSLatitude")
        || contains(bytes, b"Paris")
}

#[test]
fn all_leaves_only_the_orientation_and_the_colour_profile_with_the_same_pixels() {
    let picture = Picture::scene(64, 48, 3);
    for image_type in WITH_EXIF {
        let sent = picture.encode_with(image_type, &Metadata::from_a_phone(6));
        assert!(
            has_location(&sent),
            "{image_type}: the test picture has a location"
        );
        let kept = stored(&sent, StripMetadata::All);
        assert!(!has_location(&kept), "{image_type}");
        assert_eq!(
            exif_fields(&kept),
            [(Tag::Orientation, In::PRIMARY)],
            "{image_type}"
        );
        assert_eq!(orientation(&kept), Some(6), "{image_type}");
        for gone in [CAMERA_MAKE.as_bytes(), b"xpacket", b"office party"] {
            assert!(!contains(&kept, gone), "{image_type}");
        }
        let (pixels, icc) = decoded(image_type, &kept);
        assert_eq!(icc, Some(icc_profile()), "{image_type}: the colour profile stays");
        assert_eq!(pixels, decoded(image_type, &sent).0, "{image_type}");
    }
}

#[test]
fn an_upright_picture_keeps_no_exif_and_dedupes_with_the_same_picture_sent_bare() {
    let picture = Picture::scene(64, 48, 4);
    let bare = Metadata {
        icc_profile: Some(icc_profile()),
        ..Metadata::default()
    };
    for image_type in WITH_EXIF {
        let kept = stored(
            &picture.encode_with(image_type, &Metadata::from_a_phone(1)),
            StripMetadata::All,
        );
        assert_eq!(exif_fields(&kept), [], "{image_type}");
        assert_eq!(
            kept,
            picture.encode_with(image_type, &bare),
            "{image_type}: byte for byte what the encoder writes without metadata"
        );
    }
}

#[test]
fn location_removes_gps_xmp_and_keeps_the_camera_the_orientation_and_the_comment() {
    let picture = Picture::scene(64, 48, 5);
    for image_type in WITH_EXIF {
        let sent = picture.encode_with(image_type, &Metadata::from_a_phone(8));
        let kept = stored(&sent, StripMetadata::Location);
        assert!(!has_location(&kept), "{image_type}");
        let fields = exif_fields(&kept);
        assert!(
            fields.iter().all(|(tag, _)| tag.context() != Context::Gps),
            "{fields:?}"
        );
        for tag in [Tag::Make, Tag::Model, Tag::Orientation, Tag::DateTimeOriginal] {
            assert!(fields.contains(&(tag, In::PRIMARY)), "{image_type}: {tag}");
        }
        assert_eq!(orientation(&kept), Some(8));
        assert!(!contains(&kept, b"xpacket"), "{image_type}");
        if image_type != ImageType::Webp {
            assert!(
                contains(&kept, b"office party"),
                "{image_type}: the comment stays"
            );
        }
        assert_eq!(
            decoded(image_type, &kept),
            decoded(image_type, &sent),
            "{image_type}"
        );
    }
}

#[test]
fn none_stores_the_bytes_sent() {
    for image_type in ImageType::ALL {
        let sent = Picture::scene(32, 32, 1).encode_with(image_type, &Metadata::from_a_phone(6));
        let info = inspect(&sent).unwrap();
        let (_, stripped) = verify(&sent, info, &DecodeLimits::default(), StripMetadata::None).unwrap();
        assert_eq!(stripped, None, "{image_type}");
    }
}

#[test]
fn a_picture_without_metadata_is_stored_as_sent() {
    for image_type in ImageType::ALL {
        let sent = Picture::noise(20, 10, 2).encode(image_type);
        let info = inspect(&sent).unwrap();
        let (_, stripped) = verify(&sent, info, &DecodeLimits::default(), StripMetadata::All).unwrap();
        assert_eq!(stripped, None, "{image_type}");
    }
}

#[test]
fn a_gif_loses_its_comment_and_xmp_and_an_animation_keeps_its_loop() {
    let metadata = Metadata {
        xmp: Some(LOCATION_XMP.to_owned()),
        comment: Some("made in the office".to_owned()),
        ..Metadata::default()
    };
    let frames: Vec<Picture> = (0..3).map(|n| Picture::noise(8, 8, n)).collect();
    let animated = animation(ImageType::Gif, &frames);
    for sent in [
        Picture::scene(40, 30, 2).encode_with(ImageType::Gif, &metadata),
        ingest_testing::image_metadata::gif_with(animated, &metadata),
    ] {
        assert!(has_location(&sent));
        let all = stored(&sent, StripMetadata::All);
        assert!(!has_location(&all) && !contains(&all, b"office"));
        let location = stored(&sent, StripMetadata::Location);
        assert!(!has_location(&location) && contains(&location, b"made in the office"));
        assert_eq!(contains(&all, b"NETSCAPE2.0"), contains(&sent, b"NETSCAPE2.0"));
        let frames_of = |bytes: &[u8]| {
            let mut decoder = gif::DecodeOptions::new().read_info(bytes).unwrap();
            std::iter::from_fn(|| decoder.read_next_frame().unwrap().map(|f| f.buffer.to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!(frames_of(&all), frames_of(&sent));
    }
}

#[test]
fn a_phone_jpeg_with_a_second_picture_is_accepted_and_stored_without_it() {
    let picture = Picture::scene(64, 48, 6);
    let sent = jpeg_with_a_second_picture(&picture, &Picture::noise(16, 12, 1));
    let kept = stored(&sent, StripMetadata::All);
    assert!(kept.len() < sent.len());
    assert!(!contains(&kept, b"MPF\0"));
    assert_eq!(stored(&kept, StripMetadata::None), kept, "a single JPEG now");
    assert_eq!(
        decoded(ImageType::Jpeg, &kept).0,
        decoded(ImageType::Jpeg, &sent).0
    );
    assert_eq!(stored(&sent, StripMetadata::None), sent);
    assert_eq!(
        stored(&sent, StripMetadata::Location),
        sent,
        "the second picture holds no location"
    );
    // Without the index, a second JPEG after the first is a file riding along.
    let appended = [
        picture.encode(ImageType::Jpeg),
        Picture::noise(8, 8, 1).encode(ImageType::Jpeg),
    ]
    .concat();
    let info = inspect(&appended).unwrap();
    let refused = verify(&appended, info, &DecodeLimits::default(), StripMetadata::All).unwrap_err();
    assert_eq!(refused.code(), "not_an_image", "{refused}");
}

async fn spooled(bytes: &[u8]) -> Content {
    let mut spool = Spool::new(std::env::temp_dir(), u64::MAX);
    for chunk in bytes.chunks(65536) {
        spool.push(chunk).await.unwrap();
    }
    spool.finish().await.unwrap()
}

#[tokio::test]
async fn a_large_image_without_its_metadata_is_spooled_again_and_remembers_what_was_sent() {
    let picture = Picture::noise(340, 340, 9);
    let sent = picture.encode_with(ImageType::Png, &Metadata::from_a_phone(3));
    let content = spooled(&sent).await;
    assert!(content.is_spooled());
    let info = content.inspect().await.unwrap();
    let (stored, image) = content
        .verify(info, ImageRules::default(), &DecodeBudget::default())
        .await
        .unwrap();
    assert_eq!((image.info.width, image.info.height), (340, 340));
    assert!(stored.is_spooled());
    assert_eq!(hex(stored.original_sha256()), sha256_hex(&sent));
    let bytes = stored.to_bytes().await.unwrap();
    assert!(bytes.len() < sent.len() && !has_location(&bytes));
    assert_eq!(stored.len(), bytes.len() as u64);
    assert_eq!(hex(stored.sha256()), sha256_hex(&bytes));

    // Nothing to remove: the content as it came.
    let bare = picture.encode(ImageType::Png);
    let (stored, _) = spooled(&bare)
        .await
        .verify(info, ImageRules::default(), &DecodeBudget::default())
        .await
        .unwrap();
    assert_eq!(hex(stored.sha256()), sha256_hex(&bare));
    assert_eq!(stored.sha256(), stored.original_sha256());
}

fn hex(sha256: &[u8; 32]) -> String {
    sha256.iter().map(|b| format!("{b:02x}")).collect()
}

fn metadata() -> impl Strategy<Value = Metadata> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        1u16..=8,
    )
        .prop_map(|(exif, xmp, comment, icc, orientation)| Metadata {
            exif: exif.then(|| ingest_testing::image_metadata::camera_exif(orientation)),
            xmp: xmp.then(|| LOCATION_XMP.to_owned()),
            comment: comment.then(|| "a comment".to_owned()),
            icc_profile: icc.then(icc_profile),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever a picture carries, what is stored decodes to the same pixels,
    /// is a well-formed image on its own, and holds no location unless the
    /// policy keeps everything.
    #[test]
    fn what_is_stored_is_the_same_picture_well_formed(
        type_index in 0usize..4,
        policy in prop_oneof![Just(StripMetadata::All), Just(StripMetadata::Location), Just(StripMetadata::None)],
        metadata in metadata(),
        seed in 0u32..1000,
    ) {
        let image_type = ImageType::ALL[type_index];
        let sent = Picture::scene(24, 16, seed).encode_with(image_type, &metadata);
        let kept = stored(&sent, policy);
        prop_assert_eq!(stored(&kept, StripMetadata::None), kept.clone());
        prop_assert_eq!(decoded(image_type, &kept).0, decoded(image_type, &sent).0);
        if policy != StripMetadata::None {
            prop_assert!(!has_location(&kept));
            prop_assert_eq!(stored(&kept, policy), kept.clone(), "stripping twice changes nothing");
        }
    }
}
