//! Metadata removed without touching pixels: the blocks the layout walk
//! listed are dropped (or an EXIF block rewritten) and everything between
//! them copied as it is, so the compressed image data is byte for byte the
//! one that was sent.

use std::io::Cursor;

use exif::{Field, In, Reader, Tag, Value};

use super::layout::{Block, BlockKind, Layout};
use crate::ImageType;

/// What `stripMetadata` removes; DESIGN.md's service configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum StripMetadata {
    /// EXIF (all but the orientation), XMP, IPTC, comments, text chunks,
    /// further pictures and private blocks; the colour profile stays.
    #[default]
    All,
    /// What can say where a picture was taken: EXIF's GPS fields (with the
    /// EXIF thumbnail and maker note, which a rewrite cannot keep intact),
    /// XMP and IPTC, which carry places as text; the rest stays.
    Location,
    /// Nothing: the stored object is the bytes that were sent.
    None,
}

impl StripMetadata {
    /// The value in the service configuration and the CRD.
    pub fn as_str(self) -> &'static str {
        match self {
            StripMetadata::All => "all",
            StripMetadata::Location => "location",
            StripMetadata::None => "none",
        }
    }
}

impl std::fmt::Display for StripMetadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TIFF structure a JPEG APP1 segment can hold after its length and
/// identifier.
const MAX_JPEG_EXIF_BYTES: usize = u16::MAX as usize - 8;

/// What happens to one block.
#[derive(Debug, PartialEq, Eq)]
enum Edit {
    Keep,
    Drop,
    /// An EXIF block with this TIFF structure instead.
    Exif(Vec<u8>),
}

/// The image without the metadata `policy` removes, or `None` when it has
/// none to remove.
pub(crate) fn strip(
    image_type: ImageType,
    bytes: &[u8],
    layout: &Layout,
    policy: StripMetadata,
) -> Option<Vec<u8>> {
    if policy == StripMetadata::None {
        return None;
    }
    let edits: Vec<Edit> = layout
        .blocks
        .iter()
        .map(|block| match edit(block, bytes, policy) {
            Edit::Exif(tiff) if image_type == ImageType::Jpeg && tiff.len() > MAX_JPEG_EXIF_BYTES => {
                Edit::Drop
            }
            edit => edit,
        })
        .collect();
    if edits.iter().all(|e| *e == Edit::Keep) {
        return None;
    }
    let mut out = Vec::with_capacity(layout.end);
    let mut copied = 0;
    for (block, edit) in layout.blocks.iter().zip(&edits) {
        out.extend_from_slice(&bytes[copied..block.range.start]);
        match edit {
            Edit::Keep => out.extend_from_slice(&bytes[block.range.clone()]),
            Edit::Drop => {}
            Edit::Exif(tiff) => exif_block(image_type, tiff, &mut out),
        }
        copied = block.range.end;
    }
    out.extend_from_slice(&bytes[copied..layout.end]);
    if image_type == ImageType::Webp {
        let kept = |kind: fn(&BlockKind) -> bool| {
            layout
                .blocks
                .iter()
                .zip(&edits)
                .any(|(block, edit)| kind(&block.kind) && *edit != Edit::Drop)
        };
        let exif = kept(|kind| matches!(kind, BlockKind::Exif { .. }));
        let xmp = kept(|kind| *kind == BlockKind::Xmp);
        fix_webp_header(&mut out, exif, xmp);
    }
    Some(out)
}

fn edit(block: &Block, bytes: &[u8], policy: StripMetadata) -> Edit {
    let all = policy == StripMetadata::All;
    match &block.kind {
        BlockKind::Exif { tiff } => {
            let tiff = &bytes[tiff.clone()];
            if all {
                orientation_only(tiff).map_or(Edit::Drop, Edit::Exif)
            } else {
                without_location(tiff)
            }
        }
        BlockKind::Xmp | BlockKind::Iptc => Edit::Drop,
        BlockKind::Text | BlockKind::MultiPicture | BlockKind::Other if all => Edit::Drop,
        BlockKind::Text | BlockKind::MultiPicture | BlockKind::Other => Edit::Keep,
    }
}

/// An EXIF structure holding only `tiff`'s orientation, when it has one
/// other than the default (upright).
fn orientation_only(tiff: &[u8]) -> Option<Vec<u8>> {
    let exif = Reader::new().read_raw(tiff.to_vec()).ok()?;
    let orientation = exif
        .get_field(Tag::Orientation, In::PRIMARY)?
        .value
        .get_uint(0)
        .and_then(|o| u16::try_from(o).ok())
        .filter(|o| (2..=8).contains(o))?;
    let field = Field {
        tag: Tag::Orientation,
        ifd_num: In::PRIMARY,
        value: Value::Short(vec![orientation]),
    };
    write_exif(&[&field], exif.little_endian())
}

/// `tiff` kept as it is when it has no GPS field; otherwise rewritten with
/// the primary image's other fields. Unreadable EXIF is dropped: what it
/// holds cannot be known.
fn without_location(tiff: &[u8]) -> Edit {
    let Ok(exif) = Reader::new().read_raw(tiff.to_vec()) else {
        return Edit::Drop;
    };
    let is_location = |field: &Field| field.tag.context() == exif::Context::Gps;
    if !exif.fields().any(is_location) {
        return Edit::Keep;
    }
    let kept: Vec<&Field> = exif
        .fields()
        .filter(|f| f.ifd_num == In::PRIMARY && !is_location(f) && f.tag != Tag::MakerNote)
        .collect();
    write_exif(&kept, exif.little_endian()).map_or(Edit::Drop, Edit::Exif)
}

fn write_exif(fields: &[&Field], little_endian: bool) -> Option<Vec<u8>> {
    let mut writer = exif::experimental::Writer::new();
    for field in fields {
        writer.push_field(field);
    }
    let mut out = Cursor::new(Vec::new());
    writer.write(&mut out, little_endian).ok()?;
    Some(out.into_inner())
}

/// `tiff` as the format's EXIF block: a JPEG APP1 segment, a PNG `eXIf`
/// chunk, a WebP `EXIF` chunk.
fn exif_block(image_type: ImageType, tiff: &[u8], out: &mut Vec<u8>) {
    match image_type {
        ImageType::Jpeg => {
            const IDENTIFIER: &[u8] = b"Exif\0\0";
            // `strip` drops what is longer than MAX_JPEG_EXIF_BYTES.
            let len = u16::try_from(2 + IDENTIFIER.len() + tiff.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&[0xFF, 0xE1]);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(IDENTIFIER);
            out.extend_from_slice(tiff);
        }
        ImageType::Png => {
            let start = out.len();
            out.extend_from_slice(&(tiff.len() as u32).to_be_bytes());
            out.extend_from_slice(b"eXIf");
            out.extend_from_slice(tiff);
            let crc = crc32fast::hash(&out[start + 4..]);
            out.extend_from_slice(&crc.to_be_bytes());
        }
        ImageType::Webp => {
            out.extend_from_slice(b"EXIF");
            out.extend_from_slice(&(tiff.len() as u32).to_le_bytes());
            out.extend_from_slice(tiff);
            if tiff.len() % 2 == 1 {
                out.push(0);
            }
        }
        // GIF has no EXIF.
        ImageType::Gif => {}
    }
}

/// The RIFF size after blocks were removed, and the extended header's flags
/// saying which metadata chunks remain.
fn fix_webp_header(out: &mut [u8], exif: bool, xmp: bool) {
    const EXIF_FLAG: u8 = 0x08;
    const XMP_FLAG: u8 = 0x04;
    let riff_size = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff_size.to_le_bytes());
    if out.get(12..16) == Some(b"VP8X") {
        let flags = &mut out[20];
        *flags &= !(EXIF_FLAG | XMP_FLAG);
        if exif {
            *flags |= EXIF_FLAG;
        }
        if xmp {
            *flags |= XMP_FLAG;
        }
    }
}
