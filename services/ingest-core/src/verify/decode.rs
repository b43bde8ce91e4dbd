//! Every frame of an image decoded by the image-rs decoders, as strictly as
//! they allow: zune-jpeg in strict mode (a truncated or damaged scan is an
//! error, not grey blocks), png with its CRC and Adler-32 checks on, gif
//! requiring frames inside the screen and LZW end codes, image-webp. The
//! first frame's pixels are kept for the perceptual hash.

use std::io::Cursor;

use super::phash::PixelLayout;
use crate::ImageType;

/// The first frame, decoded.
pub(crate) struct Pixels {
    /// The whole picture's width and height; a GIF frame may cover less.
    pub canvas: (usize, usize),
    pub width: usize,
    pub height: usize,
    pub layout: PixelLayout,
    pub data: Vec<u8>,
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
) -> Result<Pixels, DecodeFailure> {
    match image_type {
        ImageType::Jpeg => jpeg(bytes),
        ImageType::Png => png(bytes, memory_limit),
        ImageType::Gif => gif(bytes, memory_limit),
        ImageType::Webp => webp(bytes, frames, memory_limit),
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

fn png(bytes: &[u8], memory_limit: usize) -> Result<Pixels, DecodeFailure> {
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: memory_limit });
    decoder.ignore_checksums(false);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|err| err.to_string())?;
    let info = reader.info();
    let info_size = info.size();
    // An animated PNG's default image is its first frame, or a still image
    // shown by viewers that do not animate.
    let images = match (info.animation_control(), info.frame_control()) {
        (Some(animation), Some(_)) => animation.num_frames,
        (Some(animation), None) => animation.num_frames.saturating_add(1),
        (None, _) => 1,
    };
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
    let layout = match first.color_type {
        png::ColorType::Grayscale => PixelLayout::Luma,
        png::ColorType::GrayscaleAlpha => PixelLayout::LumaAlpha,
        png::ColorType::Rgb => PixelLayout::Rgb,
        png::ColorType::Rgba => PixelLayout::Rgba,
        png::ColorType::Indexed => return Err("the PNG's palette was not expanded".to_owned()),
    };
    data.truncate(first.buffer_size());
    Ok(Pixels {
        canvas: (info_size.0 as usize, info_size.1 as usize),
        width: first.width as usize,
        height: first.height as usize,
        layout,
        data,
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
