//! Real images for tests, the demo and benchmarks: pictures encoded by the
//! image-rs encoders (and jpeg-encoder), so that everything a test uploads
//! decodes as the services require.

use ingest_core::ImageType;

/// Pixels, 8-bit RGB, row after row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// splitmix64: a fast, well-mixed sequence from a seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Picture {
    /// Random pixels seeded by `tag`: incompressible, and different for
    /// every tag.
    pub fn noise(width: u32, height: u32, tag: u64) -> Self {
        let len = width as usize * height as usize * 3;
        let seed = mix(tag);
        let mut rgb = Vec::with_capacity(len + 8);
        let mut n = 0u64;
        while rgb.len() < len {
            rgb.extend_from_slice(&mix(seed ^ n).to_le_bytes());
            n += 1;
        }
        rgb.truncate(len);
        Self { width, height, rgb }
    }

    /// A smooth scene of light and dark patches, the same picture at any
    /// size for the same `seed`: for perceptual hashes.
    pub fn scene(width: u32, height: u32, seed: u32) -> Self {
        let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
        let phase = f64::from(seed) * 1.7;
        for y in 0..height {
            for x in 0..width {
                let u = f64::from(x) / f64::from(width);
                let v = f64::from(y) / f64::from(height);
                let light = 128.0 + 110.0 * (u * 9.0 + phase).sin() * (v * 6.0 + phase * 0.5).cos();
                rgb.extend([light as u8, (light * 0.9) as u8, (255.0 - light * 0.5) as u8]);
            }
        }
        Self { width, height, rgb }
    }

    /// The picture in `image_type`'s format: PNG and WebP lossless, JPEG at
    /// quality 90, GIF in 256 greys.
    pub fn encode(&self, image_type: ImageType) -> Vec<u8> {
        let mut out = Vec::new();
        match image_type {
            ImageType::Png => {
                let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
                encoder.set_color(png::ColorType::Rgb);
                encoder.set_depth(png::BitDepth::Eight);
                encoder.set_compression(png::Compression::NoCompression);
                let mut writer = encoder.write_header().expect("a PNG header");
                writer.write_image_data(&self.rgb).expect("PNG pixels");
                writer.finish().expect("a PNG");
            }
            ImageType::Jpeg => {
                let encoder = jpeg_encoder::Encoder::new(&mut out, 90);
                encoder
                    .encode(
                        &self.rgb,
                        self.dimension(self.width),
                        self.dimension(self.height),
                        jpeg_encoder::ColorType::Rgb,
                    )
                    .expect("a JPEG");
            }
            ImageType::Webp => {
                image_webp::WebPEncoder::new(&mut out)
                    .encode(&self.rgb, self.width, self.height, image_webp::ColorType::Rgb8)
                    .expect("a WebP");
            }
            ImageType::Gif => return gif_of(std::slice::from_ref(self)),
        }
        out
    }

    fn dimension(&self, value: u32) -> u16 {
        u16::try_from(value).expect("JPEG and GIF pictures are at most 65535 pixels wide and high")
    }

    /// Palette indices: each pixel's luminance, in the grey palette.
    fn indices(&self) -> Vec<u8> {
        self.rgb
            .chunks_exact(3)
            .map(|p| ((299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2])) / 1000) as u8)
            .collect()
    }
}

/// The palette GIFs are drawn in: 256 greys.
fn gif_palette() -> Vec<u8> {
    (0..=255u8).flat_map(|i| [i, i, i]).collect()
}

fn gif_of(frames: &[Picture]) -> Vec<u8> {
    let first = &frames[0];
    let (width, height) = (first.dimension(first.width), first.dimension(first.height));
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, width, height, &gif_palette()).expect("a GIF header");
        if frames.len() > 1 {
            encoder.set_repeat(gif::Repeat::Infinite).expect("a GIF loop");
        }
        for frame in frames {
            let mut frame = gif::Frame::from_indexed_pixels(width, height, frame.indices(), None);
            frame.delay = 10;
            encoder.write_frame(&frame).expect("a GIF frame");
        }
    }
    out
}

/// An animation of `frames` (all the size of the first): GIF, APNG, or an
/// animated WebP of lossless frames. JPEG has no animation.
pub fn animation(image_type: ImageType, frames: &[Picture]) -> Vec<u8> {
    match image_type {
        ImageType::Gif => gif_of(frames),
        ImageType::Png => apng_of(frames),
        ImageType::Webp => animated_webp_of(frames),
        ImageType::Jpeg => panic!("JPEG has no animation"),
    }
}

fn apng_of(frames: &[Picture]) -> Vec<u8> {
    let first = &frames[0];
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, first.width, first.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .set_animated(u32::try_from(frames.len()).expect("frames"), 0)
        .expect("an APNG");
    let mut writer = encoder.write_header().expect("a PNG header");
    for frame in frames {
        writer.write_image_data(&frame.rgb).expect("an APNG frame");
    }
    writer.finish().expect("an APNG");
    out
}

/// A WebP's RIFF chunk: four-character type, little-endian length, data
/// padded to an even length.
fn riff_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = kind.to_vec();
    chunk.extend_from_slice(&u32::try_from(data.len()).expect("chunk").to_le_bytes());
    chunk.extend_from_slice(data);
    if data.len() % 2 == 1 {
        chunk.push(0);
    }
    chunk
}

fn u24(value: u32) -> [u8; 3] {
    let [a, b, c, _] = value.to_le_bytes();
    [a, b, c]
}

/// VP8X (animation flag) and ANIM, then one ANMF per frame holding the
/// frame's lossless bitstream, as the WebP container specification lays
/// an animation out.
fn animated_webp_of(frames: &[Picture]) -> Vec<u8> {
    let first = &frames[0];
    let mut vp8x = vec![0x02, 0, 0, 0];
    vp8x.extend(u24(first.width - 1));
    vp8x.extend(u24(first.height - 1));
    let mut body = b"WEBP".to_vec();
    body.extend(riff_chunk(b"VP8X", &vp8x));
    // Background colour, then loop count 0 (forever).
    body.extend(riff_chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]));
    for frame in frames {
        let simple = frame.encode(ImageType::Webp);
        // RIFF header (12 bytes), then the VP8L chunk.
        let bitstream = &simple[12..];
        let mut anmf = Vec::new();
        anmf.extend(u24(0));
        anmf.extend(u24(0));
        anmf.extend(u24(frame.width - 1));
        anmf.extend(u24(frame.height - 1));
        anmf.extend(u24(100));
        anmf.push(0);
        anmf.extend_from_slice(bitstream);
        body.extend(riff_chunk(b"ANMF", &anmf));
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&u32::try_from(body.len()).expect("RIFF").to_le_bytes());
    out.extend(body);
    out
}

/// Encoded bytes a noise pixel costs in each format, roughly.
fn bytes_per_pixel(image_type: ImageType) -> f64 {
    match image_type {
        ImageType::Png | ImageType::Webp => 3.0,
        ImageType::Jpeg => 2.0,
        ImageType::Gif => 1.4,
    }
}

/// A real image of `image_type`, different for every `tag`, of about `len`
/// bytes (at least a 16×16 picture); a PNG's is at most `len` from 2 KiB on.
pub fn image(image_type: ImageType, tag: u64, len: usize) -> Vec<u8> {
    let pixels = (len as f64 / bytes_per_pixel(image_type)).max(256.0);
    let width = (pixels.sqrt() * 4.0 / 3.0).round().max(16.0) as u32;
    let height = match image_type {
        // Rows of a filter byte and three bytes a pixel, in stored deflate
        // blocks (5 bytes of 64 KiB), after 100-odd bytes of chunks.
        ImageType::Png => (len as f64 * 0.999 - 200.0) / (3.0 * f64::from(width) + 1.0),
        _ => pixels / f64::from(width),
    };
    Picture::noise(width, (height.floor() as u32).max(16), tag).encode(image_type)
}
