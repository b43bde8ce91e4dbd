//! Each format's container walked from its signature to its end marker,
//! without decoding pixels: where the image ends (bytes after it are a
//! second file riding along, as in a polyglot), how many frames it holds
//! (so an animation over the frame limit is refused before decoding), and
//! the blocks that carry metadata rather than pixels (for
//! [`super::metadata`] to remove).

use std::ops::Range;

use crate::ImageType;

/// What the walk found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Offset just past the image's end marker.
    pub end: usize,
    pub frames: u32,
    /// In file order; segments, chunks and extensions not listed here hold
    /// pixels, their geometry or their colour, and are always kept.
    pub blocks: Vec<Block>,
}

/// A whole segment, chunk or extension (header and padding included) that
/// holds metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub range: Range<usize>,
    pub kind: BlockKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BlockKind {
    /// EXIF: its TIFF structure is at `tiff`.
    Exif { tiff: Range<usize> },
    /// An XMP packet (or a JPEG's extended XMP part).
    Xmp,
    /// IPTC and Photoshop resources (a JPEG's APP13).
    Iptc,
    /// Comments, PNG text chunks and the PNG modification time.
    Text,
    /// A JPEG's multi-picture index (APP2 `MPF`), or the further images it
    /// indexes after the first one's end (depth or gain maps, previews).
    MultiPicture,
    /// What no decoder needs and no standard names as colour data: unknown
    /// application segments, private chunks, application extensions other
    /// than looping.
    Other,
}

/// Why the container is not well-formed; the message names what is wrong.
pub(crate) type LayoutError = String;

pub(crate) fn walk(image_type: ImageType, bytes: &[u8]) -> Result<Layout, LayoutError> {
    match image_type {
        ImageType::Jpeg => jpeg(bytes),
        ImageType::Png => png(bytes),
        ImageType::Gif => gif(bytes),
        ImageType::Webp => webp(bytes),
    }
}

/// Reads big- or little-endian integers with bounds checks.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], at: usize) -> Self {
        Self { bytes, at }
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], LayoutError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("the file ends inside {what} at byte {}", self.at))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u8(&mut self, what: &str) -> Result<u8, LayoutError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16_be(&mut self, what: &str) -> Result<u16, LayoutError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32_be(&mut self, what: &str) -> Result<u32, LayoutError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u32_le(&mut self, what: &str) -> Result<u32, LayoutError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The first image, then when it has a multi-picture index the images
/// that follow its end, each a complete JPEG.
fn jpeg(bytes: &[u8]) -> Result<Layout, LayoutError> {
    let mut blocks = Vec::new();
    let first_end = jpeg_image(bytes, 0, &mut blocks)?;
    let mut end = first_end;
    if blocks.iter().any(|b| b.kind == BlockKind::MultiPicture) {
        while bytes[end..].starts_with(&[0xFF, 0xD8]) {
            end = jpeg_image(bytes, end, &mut Vec::new())?;
        }
        if end > first_end {
            blocks.push(Block {
                range: first_end..end,
                kind: BlockKind::MultiPicture,
            });
        }
    }
    Ok(Layout {
        end,
        frames: 1,
        blocks,
    })
}

/// Markers from the start-of-image at `start`, then after each start of
/// scan the entropy-coded data up to the next marker (`FF 00` is a stuffed
/// byte, `FF D0`–`FF D7` restart markers), until the end-of-image marker;
/// returns the offset past it.
fn jpeg_image(bytes: &[u8], start: usize, blocks: &mut Vec<Block>) -> Result<usize, LayoutError> {
    const SOS: u8 = 0xDA;
    const EOI: u8 = 0xD9;
    let mut cursor = Cursor::new(bytes, start + 2);
    loop {
        if cursor.u8("a marker")? != 0xFF {
            return Err(format!("a marker was expected at byte {}", cursor.at - 1));
        }
        let mut marker = cursor.u8("a marker")?;
        while marker == 0xFF {
            marker = cursor.u8("a marker")?;
        }
        match marker {
            EOI => return Ok(cursor.at),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let segment_start = cursor.at - 2;
        let len = cursor.u16_be("a segment's length")?;
        if len < 2 {
            return Err(format!("a segment at byte {} has length {len}", cursor.at - 2));
        }
        let payload_start = cursor.at;
        let payload = cursor.take(usize::from(len) - 2, "a segment")?;
        if let Some(kind) = jpeg_metadata(marker, payload, payload_start) {
            blocks.push(Block {
                range: segment_start..cursor.at,
                kind,
            });
        }
        if marker == SOS {
            cursor.at = entropy_coded_end(bytes, cursor.at)?;
        }
    }
}

/// What an application segment or comment holds, by its marker and the
/// identifier its payload starts with; `None` for what decoding needs (JFIF,
/// ICC profile, Adobe colour transform) and for non-metadata segments.
fn jpeg_metadata(marker: u8, payload: &[u8], payload_start: usize) -> Option<BlockKind> {
    const EXIF: &[u8] = b"Exif\0\0";
    let kind = match marker {
        0xE0 if payload.starts_with(b"JFIF\0") => return None,
        0xE1 if payload.starts_with(EXIF) => BlockKind::Exif {
            tiff: payload_start + EXIF.len()..payload_start + payload.len(),
        },
        0xE1 if payload.starts_with(b"http://ns.adobe.com/xap/1.0/\0")
            || payload.starts_with(b"http://ns.adobe.com/xmp/extension/\0") =>
        {
            BlockKind::Xmp
        }
        0xE2 if payload.starts_with(b"ICC_PROFILE\0") => return None,
        0xE2 if payload.starts_with(b"MPF\0") => BlockKind::MultiPicture,
        0xED => BlockKind::Iptc,
        0xEE if payload.starts_with(b"Adobe") => return None,
        0xE0..=0xEF => BlockKind::Other,
        0xFE => BlockKind::Text,
        _ => return None,
    };
    Some(kind)
}

/// The offset of the first marker after entropy-coded data starting at `at`.
fn entropy_coded_end(bytes: &[u8], mut at: usize) -> Result<usize, LayoutError> {
    loop {
        let ff = bytes[at..]
            .iter()
            .position(|&b| b == 0xFF)
            .ok_or("the file ends inside the compressed image data")?;
        at += ff;
        match bytes.get(at + 1) {
            None => return Err("the file ends inside the compressed image data".to_owned()),
            Some(0x00 | 0xD0..=0xD7 | 0xFF) => at += 1,
            Some(_) => return Ok(at),
        }
    }
}

/// Chunks (length, type, data, CRC) until `IEND`; an animated PNG counts
/// its frame controls (`fcTL`).
fn png(bytes: &[u8]) -> Result<Layout, LayoutError> {
    let mut cursor = Cursor::new(bytes, 8);
    let mut frames = 0u32;
    let mut blocks = Vec::new();
    loop {
        let chunk_start = cursor.at;
        let len = cursor.u32_be("a chunk's length")?;
        let kind = cursor.take(4, "a chunk's type")?;
        let data_start = cursor.at;
        let data = cursor.take(len as usize, "a chunk")?;
        cursor.take(4, "a chunk's CRC")?;
        match kind {
            b"fcTL" => frames = frames.saturating_add(1),
            b"IEND" => {
                return Ok(Layout {
                    end: cursor.at,
                    frames: frames.max(1),
                    blocks,
                });
            }
            _ => {}
        }
        let kind = match kind {
            b"eXIf" => BlockKind::Exif {
                tiff: data_start..cursor.at - 4,
            },
            b"iTXt" if data.starts_with(b"XML:com.adobe.xmp\0") => BlockKind::Xmp,
            b"tEXt" | b"zTXt" | b"iTXt" | b"tIME" => BlockKind::Text,
            // What decoders and colour management read.
            b"IHDR" | b"PLTE" | b"IDAT" | b"tRNS" | b"cHRM" | b"gAMA" | b"iCCP" | b"sBIT" | b"sRGB"
            | b"cICP" | b"mDCV" | b"cLLI" | b"bKGD" | b"hIST" | b"pHYs" | b"sPLT" | b"acTL" | b"fcTL"
            | b"fdAT" => continue,
            // A critical chunk the decoder will refuse if it does not know it.
            [first, ..] if first.is_ascii_uppercase() => continue,
            _ => BlockKind::Other,
        };
        blocks.push(Block {
            range: chunk_start..cursor.at,
            kind,
        });
    }
}

/// The logical screen, then extensions and images (each a chain of data
/// sub-blocks) until the trailer `;`.
fn gif(bytes: &[u8]) -> Result<Layout, LayoutError> {
    let mut cursor = Cursor::new(bytes, 10);
    let flags = cursor.u8("the logical screen descriptor")?;
    cursor.take(2, "the logical screen descriptor")?;
    skip_color_table(&mut cursor, flags)?;
    let mut frames = 0u32;
    let mut blocks = Vec::new();
    loop {
        let block_start = cursor.at;
        match cursor.u8("a block")? {
            b'!' => {
                let label = cursor.u8("an extension")?;
                let first_sub_block = cursor.at;
                skip_sub_blocks(&mut cursor)?;
                let identifier = bytes.get(first_sub_block + 1..first_sub_block + 12);
                let kind = match (label, identifier) {
                    (0xFE, _) => BlockKind::Text,
                    (0xFF, Some(b"XMP DataXMP")) => BlockKind::Xmp,
                    (0xFF, Some(b"NETSCAPE2.0" | b"ANIMEXTS1.0")) => continue,
                    (0xFF, _) => BlockKind::Other,
                    // Graphic control and plain text: part of the picture.
                    _ => continue,
                };
                blocks.push(Block {
                    range: block_start..cursor.at,
                    kind,
                });
            }
            b',' => {
                cursor.take(8, "an image descriptor")?;
                let flags = cursor.u8("an image descriptor")?;
                skip_color_table(&mut cursor, flags)?;
                cursor.u8("an image's code size")?;
                skip_sub_blocks(&mut cursor)?;
                frames = frames.saturating_add(1);
            }
            b';' if frames > 0 => {
                return Ok(Layout {
                    end: cursor.at,
                    frames,
                    blocks,
                });
            }
            b';' => return Err("the GIF holds no image".to_owned()),
            other => {
                return Err(format!(
                    "byte {} starts no GIF block (0x{other:02x})",
                    cursor.at - 1
                ));
            }
        }
    }
}

fn skip_color_table(cursor: &mut Cursor<'_>, flags: u8) -> Result<(), LayoutError> {
    if flags & 0x80 != 0 {
        cursor.take(3 << ((flags & 0x07) + 1), "a colour table")?;
    }
    Ok(())
}

fn skip_sub_blocks(cursor: &mut Cursor<'_>) -> Result<(), LayoutError> {
    loop {
        match cursor.u8("a data sub-block")? {
            0 => return Ok(()),
            len => {
                cursor.take(usize::from(len), "a data sub-block")?;
            }
        }
    }
}

/// The RIFF header's size says where the file ends; its chunks (padded to
/// even lengths) must fill it exactly. An animation counts its `ANMF`
/// chunks.
fn webp(bytes: &[u8]) -> Result<Layout, LayoutError> {
    let mut header = Cursor::new(bytes, 4);
    let size = header.u32_le("the RIFF header")? as usize;
    let end = size
        .checked_add(8)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            format!(
                "the RIFF header says {size} bytes follow, but the file is {} bytes",
                bytes.len()
            )
        })?;
    let mut cursor = Cursor::new(&bytes[..end], 12);
    let mut frames = 0u32;
    let mut blocks = Vec::new();
    while cursor.at < end {
        let chunk_start = cursor.at;
        let kind = cursor.take(4, "a chunk's type")?;
        let len = cursor.u32_le("a chunk's length")? as usize;
        let data_start = cursor.at;
        let data = cursor.take(len, "a chunk")?;
        cursor.take(len % 2, "a chunk's padding")?;
        let kind = match kind {
            b"ANMF" => {
                frames = frames.saturating_add(1);
                continue;
            }
            // Some writers keep JPEG's identifier in front of the TIFF data.
            b"EXIF" if data.starts_with(b"Exif\0\0") => BlockKind::Exif {
                tiff: data_start + 6..data_start + len,
            },
            b"EXIF" => BlockKind::Exif {
                tiff: data_start..data_start + len,
            },
            b"XMP " => BlockKind::Xmp,
            b"VP8 " | b"VP8L" | b"VP8X" | b"ALPH" | b"ANIM" | b"ICCP" => continue,
            _ => BlockKind::Other,
        };
        blocks.push(Block {
            range: chunk_start..cursor.at,
            kind,
        });
    }
    Ok(Layout {
        end,
        frames: frames.max(1),
        blocks,
    })
}
