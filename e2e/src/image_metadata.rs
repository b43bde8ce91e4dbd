//! Pictures carrying what cameras, phones and editors write beside the
//! pixels (EXIF with GPS coordinates, XMP, comments, a colour profile),
//! written by the same encoders as [`crate::images`], so tests can show what
//! the pipeline removes and what it keeps.

use exif::{Field, In, Tag, Value};
use ingest_core::ImageType;

use crate::images::Picture;

/// Where the test pictures were "taken": 48°51'29.88"N 2°17'40.20"E. The
/// seconds are written as these rationals, so a test can look for their
/// bytes anywhere in a stored object.
pub const LATITUDE_SECONDS: (u32, u32) = (298_877, 10_000);
pub const LONGITUDE_SECONDS: (u32, u32) = (402_013, 10_000);

/// A camera's make, also looked for in what is stored.
pub const CAMERA_MAKE: &str = "Imagepipeline Test Camera";

/// An XMP packet naming the place, as photo editors write it.
pub const LOCATION_XMP: &str = "<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?>\
<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\
<rdf:Description xmlns:exif='http://ns.adobe.com/exif/1.0/' exif:GPSLatitude='48,51.498N' \
exif:GPSLongitude='2,17.670E' xmlns:photoshop='http://ns.adobe.com/photoshop/1.0/' \
photoshop:City='Paris'/></rdf:RDF></x:xmpmeta><?xpacket end='w'?>";

/// What a picture carries besides its pixels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// A TIFF structure, EXIF's payload (see [`camera_exif`]); JPEG, PNG and
    /// WebP.
    pub exif: Option<Vec<u8>>,
    pub xmp: Option<String>,
    /// JPEG, PNG and GIF.
    pub comment: Option<String>,
    /// JPEG, PNG and WebP.
    pub icc_profile: Option<Vec<u8>>,
}

impl Metadata {
    /// What a phone writes: EXIF with GPS coordinates and `orientation`,
    /// location XMP, a comment and a colour profile.
    pub fn from_a_phone(orientation: u16) -> Self {
        Self {
            exif: Some(camera_exif(orientation)),
            xmp: Some(LOCATION_XMP.to_owned()),
            comment: Some("taken at the office party".to_owned()),
            icc_profile: Some(icc_profile()),
        }
    }
}

/// EXIF as a camera writes it: make, model, time, orientation and GPS
/// coordinates.
pub fn camera_exif(orientation: u16) -> Vec<u8> {
    let field = |tag, value| Field {
        tag,
        ifd_num: In::PRIMARY,
        value,
    };
    let ascii = |text: &str| Value::Ascii(vec![text.as_bytes().to_vec()]);
    let degrees = |d: u32, m: u32, (s, per): (u32, u32)| {
        Value::Rational(vec![(d, 1).into(), (m, 1).into(), (s, per).into()])
    };
    let fields = [
        field(Tag::Make, ascii(CAMERA_MAKE)),
        field(Tag::Model, ascii("Model 7")),
        field(Tag::Orientation, Value::Short(vec![orientation])),
        field(Tag::DateTimeOriginal, ascii("2026:11:30 12:00:00")),
        field(Tag::GPSLatitudeRef, ascii("N")),
        field(Tag::GPSLatitude, degrees(48, 51, LATITUDE_SECONDS)),
        field(Tag::GPSLongitudeRef, ascii("E")),
        field(Tag::GPSLongitude, degrees(2, 17, LONGITUDE_SECONDS)),
    ];
    let mut writer = exif::experimental::Writer::new();
    for field in &fields {
        writer.push_field(field);
    }
    let mut out = std::io::Cursor::new(Vec::new());
    writer.write(&mut out, false).expect("EXIF");
    out.into_inner()
}

/// Bytes standing in for an ICC profile: decoders carry profiles without
/// reading them.
pub fn icc_profile() -> Vec<u8> {
    let mut profile = b"ICC profile stand-in: sRGB IEC61966-2.1 ".repeat(4);
    profile.truncate(128);
    profile
}

/// The big-endian bytes of a rational, as EXIF stores GPS seconds.
pub fn rational_bytes((numerator, denominator): (u32, u32)) -> [u8; 8] {
    let mut bytes = [0; 8];
    bytes[..4].copy_from_slice(&numerator.to_be_bytes());
    bytes[4..].copy_from_slice(&denominator.to_be_bytes());
    bytes
}

impl Picture {
    /// The picture in `image_type`'s format carrying `metadata`, each part
    /// where that format's writers put it (parts a format cannot hold are
    /// left out).
    pub fn encode_with(&self, image_type: ImageType, metadata: &Metadata) -> Vec<u8> {
        match image_type {
            ImageType::Jpeg => self.jpeg_with(metadata),
            ImageType::Png => self.png_with(metadata),
            ImageType::Webp => self.webp_with(metadata),
            ImageType::Gif => gif_with(self.encode(ImageType::Gif), metadata),
        }
    }

    fn jpeg_with(&self, metadata: &Metadata) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
        if let Some(exif) = &metadata.exif {
            encoder
                .add_app_segment(1, &[b"Exif\0\0".as_slice(), exif].concat())
                .expect("an EXIF segment");
        }
        if let Some(xmp) = &metadata.xmp {
            let segment = [b"http://ns.adobe.com/xap/1.0/\0".as_slice(), xmp.as_bytes()].concat();
            encoder.add_app_segment(1, &segment).expect("an XMP segment");
        }
        if let Some(icc) = &metadata.icc_profile {
            encoder.add_icc_profile(icc).expect("an ICC profile");
        }
        let (width, height) = (self.width as u16, self.height as u16);
        encoder
            .encode(&self.rgb, width, height, jpeg_encoder::ColorType::Rgb)
            .expect("a JPEG");
        if let Some(comment) = &metadata.comment {
            // jpeg-encoder writes no comment: a COM segment right after SOI.
            let len = u16::try_from(comment.len() + 2).expect("a short comment");
            let segment = [&[0xFF, 0xFE][..], &len.to_be_bytes(), comment.as_bytes()].concat();
            out.splice(2..2, segment);
        }
        out
    }

    fn png_with(&self, metadata: &Metadata) -> Vec<u8> {
        let mut out = Vec::new();
        let mut info = png::Info::with_size(self.width, self.height);
        info.color_type = png::ColorType::Rgb;
        info.bit_depth = png::BitDepth::Eight;
        info.exif_metadata = metadata.exif.clone().map(Into::into);
        info.icc_profile = metadata.icc_profile.clone().map(Into::into);
        let mut encoder = png::Encoder::with_info(&mut out, info).expect("a PNG encoder");
        if let Some(comment) = &metadata.comment {
            encoder
                .add_text_chunk("Comment".to_owned(), comment.clone())
                .expect("a tEXt chunk");
        }
        if let Some(xmp) = &metadata.xmp {
            encoder
                .add_itxt_chunk("XML:com.adobe.xmp".to_owned(), xmp.clone())
                .expect("an iTXt chunk");
        }
        let mut writer = encoder.write_header().expect("a PNG header");
        writer.write_image_data(&self.rgb).expect("PNG pixels");
        writer.finish().expect("a PNG");
        out
    }

    fn webp_with(&self, metadata: &Metadata) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = image_webp::WebPEncoder::new(&mut out);
        if let Some(exif) = &metadata.exif {
            encoder.set_exif_metadata(exif.clone());
        }
        if let Some(xmp) = &metadata.xmp {
            encoder.set_xmp_metadata(xmp.as_bytes().to_vec());
        }
        if let Some(icc) = &metadata.icc_profile {
            encoder.set_icc_profile(icc.clone());
        }
        encoder
            .encode(&self.rgb, self.width, self.height, image_webp::ColorType::Rgb8)
            .expect("a WebP");
        out
    }
}

/// A comment extension and an XMP application extension inserted before
/// the first image of `gif`, where GIF writers put them.
pub fn gif_with(gif: Vec<u8>, metadata: &Metadata) -> Vec<u8> {
    let mut extensions = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut extensions, 1, 1, &[]).expect("a GIF writer");
        if let Some(comment) = &metadata.comment {
            encoder
                .write_raw_extension(gif::AnyExtension(0xFE), &[comment.as_bytes()])
                .expect("a comment");
        }
        if let Some(xmp) = &metadata.xmp {
            encoder
                .write_raw_extension(gif::AnyExtension(0xFF), &[b"XMP DataXMP", xmp.as_bytes()])
                .expect("an XMP extension");
        }
    }
    // After the scratch writer's header, screen and colour table, before its
    // trailer.
    let extensions = &extensions[first_block(&extensions)..extensions.len() - 1];
    let first_block = first_block(&gif);
    let mut out = gif[..first_block].to_vec();
    out.extend_from_slice(extensions);
    out.extend_from_slice(&gif[first_block..]);
    out
}

/// Where a GIF's blocks start: after the header, the logical screen and its
/// colour table.
fn first_block(gif: &[u8]) -> usize {
    let flags = gif[10];
    13 + if flags & 0x80 != 0 {
        3 << ((flags & 0x07) + 1)
    } else {
        0
    }
}

/// A JPEG as phones write one with a depth or gain map: the picture, with a
/// multi-picture index (APP2 `MPF`), followed by a second, smaller JPEG.
pub fn jpeg_with_a_second_picture(picture: &Picture, second: &Picture) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 90);
    // "MPF", a big-endian TIFF header and an empty index: enough for the
    // structure, which is what readers check first.
    encoder
        .add_app_segment(2, b"MPF\0MM\0\x2a\0\0\0\x08\0\0\0\0\0\0")
        .expect("an MPF segment");
    encoder
        .encode(
            &picture.rgb,
            picture.width as u16,
            picture.height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("a JPEG");
    out.extend(second.encode(ImageType::Jpeg));
    out
}
