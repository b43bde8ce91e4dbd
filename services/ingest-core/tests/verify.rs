//! Hostile images against the decoding check, on real images of every type:
//! what fails to decode, hides a second file, or would cost more than the
//! limits is refused; what decodes gets a perceptual hash that finds it
//! again at another size and in another format.

use ingest_core::{DecodeLimits, ImageType, StripMetadata, VerifyError, inspect, verify::verify};
use ingest_testing::{Picture, animation, image};

fn checked(bytes: &[u8], limits: &DecodeLimits) -> Result<ingest_core::Verified, String> {
    let info = inspect(bytes).map_err(|err| err.to_string())?;
    verify(bytes, info, limits, StripMetadata::None)
        .map(|(image, _)| image)
        .map_err(|err| err.to_string())
}

#[test]
fn a_real_image_of_each_type_decodes_with_its_dimensions() {
    for image_type in ImageType::ALL {
        let bytes = Picture::noise(37, 21, 5).encode(image_type);
        let verified =
            checked(&bytes, &DecodeLimits::default()).unwrap_or_else(|err| panic!("{image_type}: {err}"));
        assert_eq!(
            (verified.info.width, verified.info.height, verified.frames),
            (37, 21, 1),
            "{image_type}"
        );
        assert_eq!(
            checked(&bytes, &DecodeLimits::default()).unwrap().phash,
            verified.phash
        );
    }
}

#[test]
fn a_script_behind_a_gif_signature_is_refused() {
    let polyglot = b"GIF89a<script>alert(1)</script>";
    let refused = checked(polyglot, &DecodeLimits::default()).unwrap_err();
    assert!(refused.contains("over the limit"), "{refused}");
    let roomy = DecodeLimits {
        max_pixels: u64::MAX,
        ..DecodeLimits::default()
    };
    let refused = checked(polyglot, &roomy).unwrap_err();
    assert!(refused.contains("does not decode"), "{refused}");
}

#[test]
fn an_image_with_another_file_appended_is_refused() {
    for image_type in ImageType::ALL {
        let mut bytes = image(image_type, 1, 2000);
        bytes.extend_from_slice(b"PK\x03\x04 a zip archive");
        let refused = checked(&bytes, &DecodeLimits::default()).unwrap_err();
        assert!(
            refused.contains("ends 18 bytes before the file does"),
            "{image_type}: {refused}"
        );
    }
}

#[test]
fn every_truncation_of_a_real_image_is_refused() {
    for image_type in ImageType::ALL {
        let bytes = image(image_type, 2, 3000);
        let mut cuts = 0;
        for len in (1..bytes.len()).step_by(7).chain(bytes.len() - 8..bytes.len()) {
            assert!(
                checked(&bytes[..len], &DecodeLimits::default()).is_err(),
                "{image_type} cut to {len} of {} bytes was accepted",
                bytes.len()
            );
            cuts += 1;
        }
        assert!(cuts > 400, "{image_type}: {cuts} cuts");
    }
}

/// Flips one bit at each of `count` positions spread over the file; returns
/// how many flipped images were still accepted.
fn accepted_after_bit_flips(bytes: &[u8], count: usize) -> usize {
    (0..count)
        .filter(|n| {
            let mut flipped = bytes.to_vec();
            let at = n * bytes.len() / count;
            flipped[at] ^= 1 << (n % 8);
            checked(&flipped, &DecodeLimits::default()).is_ok_and(|v| v.info.width > 0)
        })
        .count()
}

#[test]
fn a_png_with_any_bit_flipped_is_refused_by_its_checksums() {
    let png = image(ImageType::Png, 3, 3000);
    assert_eq!(accepted_after_bit_flips(&png, 500), 0);
}

#[test]
fn bit_flips_in_formats_without_checksums_are_refused_where_the_structure_breaks() {
    // JPEG, GIF and WebP carry no checksum over their pixel data, and their
    // entropy codes resynchronise after a flipped bit: most flips decode to
    // other pixels, a valid image no decoder can tell from the original
    // (measured: 87–95 % of 200 flips spread over the file). What breaks the
    // structure is refused; the bound shows a decoder turned lenient.
    for image_type in [ImageType::Jpeg, ImageType::Gif, ImageType::Webp] {
        for (name, picture) in [
            ("noise", Picture::noise(40, 30, 4)),
            ("scene", Picture::scene(40, 30, 4)),
        ] {
            let bytes = picture.encode(image_type);
            let accepted = accepted_after_bit_flips(&bytes, 200);
            println!(
                "{image_type} {name} ({} bytes): {accepted} of 200 bit-flipped images decode",
                bytes.len()
            );
            assert!(accepted <= 195, "{image_type} {name}: {accepted} of 200 accepted");
        }
    }
}

#[test]
fn a_header_claiming_a_billion_pixels_is_refused_before_decoding() {
    let mut bomb = Picture::noise(16, 16, 1).encode(ImageType::Png);
    // IHDR's width and height (the CRC no longer matches, but nothing gets
    // that far).
    bomb[16..20].copy_from_slice(&40_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&40_000u32.to_be_bytes());
    let started = std::time::Instant::now();
    let refused = checked(&bomb, &DecodeLimits::default()).unwrap_err();
    assert_eq!(
        refused,
        "the image is 40000×40000 pixels, over the limit of 100000000 pixels (maxImagePixels)"
    );
    assert!(started.elapsed().as_millis() < 50, "{:?}", started.elapsed());
}

#[test]
fn animations_count_every_frame_against_the_limits() {
    let frames: Vec<Picture> = (0..5).map(|n| Picture::noise(20, 10, n)).collect();
    let tight = DecodeLimits {
        max_pixels: 20 * 10 * 4,
        max_frames: 10,
    };
    let few_frames = DecodeLimits {
        max_pixels: u64::MAX,
        max_frames: 4,
    };
    for image_type in [ImageType::Gif, ImageType::Png, ImageType::Webp] {
        let bytes = animation(image_type, &frames);
        let verified =
            checked(&bytes, &DecodeLimits::default()).unwrap_or_else(|err| panic!("{image_type}: {err}"));
        assert_eq!(verified.frames, 5, "{image_type}");
        assert_eq!(
            checked(&bytes, &tight).unwrap_err(),
            "the image is 20×10 pixels × 5 frames, over the limit of 800 pixels (maxImagePixels)",
            "{image_type}"
        );
        assert_eq!(
            checked(&bytes, &few_frames).unwrap_err(),
            "the animation has 5 frames, over the limit of 4 (maxImageFrames)",
            "{image_type}"
        );
    }
}

#[test]
fn the_same_scene_in_another_size_and_format_is_a_near_duplicate_and_another_scene_is_not() {
    let hash = |picture: Picture, image_type| {
        checked(&picture.encode(image_type), &DecodeLimits::default())
            .unwrap()
            .phash
    };
    let original = hash(Picture::scene(640, 480, 1), ImageType::Png);
    for image_type in ImageType::ALL {
        let smaller = hash(Picture::scene(320, 240, 1), image_type);
        assert!(
            original.distance(smaller) <= 6,
            "{image_type}: {original} vs {smaller}"
        );
    }
    let other = hash(Picture::scene(640, 480, 3), ImageType::Png);
    assert!(original.distance(other) >= 16, "{original} vs {other}");
}

#[test]
fn the_errors_say_which_limit_and_what_to_do() {
    let trailing = VerifyError::TrailingBytes {
        image_type: ImageType::Jpeg,
        bytes: 12,
    };
    assert_eq!(
        trailing.to_string(),
        "the image/jpeg image ends 12 bytes before the file does; send the image alone, without another file appended"
    );
}
