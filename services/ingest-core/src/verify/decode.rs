//! Every frame of an image decoded by the image-rs decoders, as strictly as
//! they allow: zune-jpeg in strict mode (a truncated or damaged scan is an
//! error, not grey blocks), png with its CRC and Adler-32 checks on, gif
//! requiring frames inside the screen and LZW end codes, image-webp. The
//! first frame gives the perceptual hash: a still PNG line by line as it is
//! decoded (no buffer of the whole picture), the others from their first
//! frame's pixels.

use std::io::Cursor;

use super::phash::{LineHasher, PerceptualHash, PixelLayout, difference_hash};
use crate::ImageType;

/// What decoding found.
pub(crate) struct Decoded {
    /// The whole picture's width and height; a GIF frame may cover less.
    pub canvas: (usize, usize),
    /// The first frame's difference hash.
    pub phash: PerceptualHash,
}

/// The first frame, decoded.
struct Pixels {
    canvas: (usize, usize),
    width: usize,
    height: usize,
    layout: PixelLayout,
    data: Vec<u8>,
}

impl Pixels {
    fn hashed(self) -> Decoded {
        Decoded {
            canvas: self.canvas,
            phash: difference_hash(self.width, self.height, self.layout, &self.data),
        }
    }
}

/// What the decoder said was wrong.
pub(crate) type DecodeFailure = String;

/// Decodes all `frames` of `bytes`; a decoder allocates at most
/// `memory_limit` bytes.
pub(crate) fn decode(
    image_type: ImageType,
    bytes: &[u8],
    frames: u32,
    memory_limit: usize,
) -> Result<Decoded, DecodeFailure> {
    match image_type {
        ImageType::Jpeg => jpeg(bytes).map(Pixels::hashed),
        ImageType::Png => png(bytes, memory_limit),
        ImageType::Gif => gif(bytes, memory_limit).map(Pixels::hashed),
        ImageType::Webp => webp(bytes, frames, memory_limit).map(Pixels::hashed),
    }
}

fn jpeg(bytes: &[u8]) -> Result<Pixels, DecodeFailure> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX))
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let data = decoder.decode().map_err(|err| err.to_string())?;
    let (width, height) = decoder.dimensions().ok_or("the JPEG has no frame header")?;
    Ok(Pixels {
        canvas: (width, height),
        width,
        height,
        layout: PixelLayout::Luma,
        data,
    })
}

type PngReader<'a> = png::Reader<Cursor<&'a [u8]>>;

fn png(bytes: &[u8], memory_limit: usize) -> Result<Decoded, DecodeFailure> {
    let reader = png_reader(bytes, memory_limit)?;
    let info = reader.info();
    // A still image whose lines come in order is hashed as they come; an
    // interlaced one arrives in passes, an animation's frame may be smaller
    // than the canvas, so those are decoded whole.
    if png_images(info) == 1 && !info.interlaced {
        png_by_lines(reader)
    } else {
        png_whole(reader)
    }
}

fn png_reader(bytes: &[u8], memory_limit: usize) -> Result<PngReader<'_>, DecodeFailure> {
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: memory_limit });
    decoder.ignore_checksums(false);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    decoder.read_info().map_err(|err| err.to_string())
}

/// The images a PNG holds: an animated PNG's default image is its first
/// frame, or a still image shown by viewers that do not animate.
fn png_images(info: &png::Info) -> u32 {
    match (info.animation_control(), info.frame_control()) {
        (Some(animation), Some(_)) => animation.num_frames,
        (Some(animation), None) => animation.num_frames.saturating_add(1),
        (None, _) => 1,
    }
}

fn png_canvas(reader: &PngReader<'_>) -> (usize, usize) {
    let (width, height) = reader.info().size();
    (width as usize, height as usize)
}

/// A still PNG's lines hashed as they are decoded, with no buffer of the
/// whole picture.
fn png_by_lines(mut reader: PngReader<'_>) -> Result<Decoded, DecodeFailure> {
    let canvas = png_canvas(&reader);
    let layout = png_layout(reader.output_color_type().0)?;
    let mut hasher = LineHasher::new(canvas.0, canvas.1, layout);
    let mut lines = 0;
    while let Some(row) = reader.next_row().map_err(|err| err.to_string())? {
        if row.data().len() != hasher.line_bytes() {
            return Err(format!(
                "a line of {} bytes where {} were expected",
                row.data().len(),
                hasher.line_bytes()
            ));
        }
        hasher.push(row.data());
        lines += 1;
    }
    if lines != canvas.1 {
        return Err(format!("{lines} lines of the {} the header says", canvas.1));
    }
    reader.finish().map_err(|err| err.to_string())?;
    Ok(Decoded {
        canvas,
        phash: hasher.finish(),
    })
}

/// Every image of a PNG decoded whole, the first kept for its hash.
fn png_whole(mut reader: PngReader<'_>) -> Result<Decoded, DecodeFailure> {
    let canvas = png_canvas(&reader);
    let images = png_images(reader.info());
    let size = reader
        .output_buffer_size()
        .ok_or("the PNG is too large to decode")?;
    let mut data = vec![0; size];
    let first = reader.next_frame(&mut data).map_err(|err| err.to_string())?;
    if images > 1 {
        let mut frame = vec![0; size];
        for _ in 1..images {
            reader.next_frame(&mut frame).map_err(|err| err.to_string())?;
        }
    }
    reader.finish().map_err(|err| err.to_string())?;
    data.truncate(first.buffer_size());
    Ok(Pixels {
        canvas,
        width: first.width as usize,
        height: first.height as usize,
        layout: png_layout(first.color_type)?,
        data,
    }
    .hashed())
}

fn png_layout(color_type: png::ColorType) -> Result<PixelLayout, DecodeFailure> {
    Ok(match color_type {
        png::ColorType::Grayscale => PixelLayout::Luma,
        png::ColorType::GrayscaleAlpha => PixelLayout::LumaAlpha,
        png::ColorType::Rgb => PixelLayout::Rgb,
        png::ColorType::Rgba => PixelLayout::Rgba,
        png::ColorType::Indexed => return Err("the PNG's palette was not expanded".to_owned()),
    })
}

fn gif(bytes: &[u8], memory_limit: usize) -> Result<Pixels, DecodeFailure> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    options.check_frame_consistency(true);
    options.set_memory_limit(gif::MemoryLimit::Bytes(
        std::num::NonZeroU64::new(memory_limit as u64).unwrap_or(std::num::NonZeroU64::MIN),
    ));
    let mut decoder = options.read_info(bytes).map_err(|err| err.to_string())?;
    let global = decoder.global_palette().map(<[u8]>::to_vec);
    let canvas = (usize::from(decoder.width()), usize::from(decoder.height()));
    let mut first = None;
    while let Some(frame) = decoder.read_next_frame().map_err(|err| err.to_string())? {
        if first.is_none() {
            let palette = frame
                .palette
                .as_deref()
                .or(global.as_deref())
                .ok_or("the GIF's first frame has no colour table")?;
            first = Some(indexed_to_rgba(frame, palette, canvas)?);
        }
    }
    first.ok_or_else(|| "the GIF holds no frame".to_owned())
}

fn indexed_to_rgba(
    frame: &gif::Frame<'_>,
    palette: &[u8],
    canvas: (usize, usize),
) -> Result<Pixels, DecodeFailure> {
    let mut data = Vec::with_capacity(frame.buffer.len() * 4);
    for &index in frame.buffer.iter() {
        let at = usize::from(index) * 3;
        let rgb = palette
            .get(at..at + 3)
            .ok_or_else(|| format!("a pixel uses colour {index}, past the colour table's end"))?;
        let alpha = if frame.transparent == Some(index) { 0 } else { 255 };
        data.extend_from_slice(rgb);
        data.push(alpha);
    }
    Ok(Pixels {
        canvas,
        width: usize::from(frame.width),
        height: usize::from(frame.height),
        layout: PixelLayout::Rgba,
        data,
    })
}

fn webp(bytes: &[u8], frames: u32, memory_limit: usize) -> Result<Pixels, DecodeFailure> {
    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(|err| err.to_string())?;
    decoder.set_memory_limit(memory_limit);
    let (width, height) = decoder.dimensions();
    let layout = if decoder.has_alpha() {
        PixelLayout::Rgba
    } else {
        PixelLayout::Rgb
    };
    let size = decoder
        .output_buffer_size()
        .ok_or("the WebP is too large to decode")?;
    let mut data = vec![0; size];
    if decoder.is_animated() {
        if decoder.num_frames() != frames {
            return Err(format!(
                "the animation header says {} frames but the file holds {frames}",
                decoder.num_frames()
            ));
        }
        decoder.read_frame(&mut data).map_err(|err| err.to_string())?;
        let mut frame = vec![0; size];
        for _ in 1..frames {
            decoder.read_frame(&mut frame).map_err(|err| err.to_string())?;
        }
    } else {
        decoder.read_image(&mut data).map_err(|err| err.to_string())?;
    }
    Ok(Pixels {
        canvas: (width as usize, height as usize),
        width: width as usize,
        height: height as usize,
        layout,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `width`×`height` PNG of `color` at `depth` bits, its samples a
    /// pattern that differs across the picture.
    fn encoded(width: u32, height: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if color == png::ColorType::Indexed {
            encoder.set_palette((0..=255u8).flat_map(|i| [i, 255 - i, i / 2]).collect::<Vec<_>>());
        }
        let samples = match color {
            png::ColorType::Grayscale | png::ColorType::Indexed => 1,
            png::ColorType::GrayscaleAlpha => 2,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
        };
        let bits = samples * depth as usize;
        let line = (width as usize * bits).div_ceil(8);
        let data: Vec<u8> = (0..line * height as usize)
            .map(|i| ((i % line) * 7 + (i / line) * 13) as u8)
            .collect();
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&data).unwrap();
        writer.finish().unwrap();
        bytes
    }

    #[test]
    fn a_png_hashed_line_by_line_hashes_as_when_decoded_whole() {
        use png::{BitDepth, ColorType};
        for (color, depth) in [
            (ColorType::Grayscale, BitDepth::One),
            (ColorType::Grayscale, BitDepth::Eight),
            (ColorType::Grayscale, BitDepth::Sixteen),
            (ColorType::GrayscaleAlpha, BitDepth::Eight),
            (ColorType::Rgb, BitDepth::Eight),
            (ColorType::Rgb, BitDepth::Sixteen),
            (ColorType::Rgba, BitDepth::Eight),
            (ColorType::Indexed, BitDepth::Eight),
        ] {
            for (width, height) in [(1, 1), (5, 3), (97, 61)] {
                let png = encoded(width, height, color, depth);
                let by_lines = png_by_lines(png_reader(&png, usize::MAX).unwrap()).unwrap();
                let whole = png_whole(png_reader(&png, usize::MAX).unwrap()).unwrap();
                assert_eq!(by_lines.canvas, whole.canvas);
                assert_eq!(
                    by_lines.phash, whole.phash,
                    "{color:?} at {depth:?} bits, {width}×{height}"
                );
            }
        }
    }

    #[test]
    fn a_png_cut_short_fails_line_by_line_as_whole() {
        let png = encoded(97, 61, png::ColorType::Rgb, png::BitDepth::Eight);
        let cut = &png[..png.len() - 30];
        let decoded = |by_lines: bool| {
            let reader = png_reader(cut, usize::MAX)?;
            if by_lines {
                png_by_lines(reader)
            } else {
                png_whole(reader)
            }
        };
        assert!(decoded(true).is_err());
        assert!(decoded(false).is_err());
    }
}
