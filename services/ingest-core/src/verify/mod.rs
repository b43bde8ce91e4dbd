//! An image is stored only if it decodes: what the header promised is
//! checked against the whole file before anything is written.
//!
//! In order, each step cheaper than the next: the header's pixel count
//! against the limit (a decompression bomb is refused before any memory is
//! spent on it); the container walked to its end marker (truncation, and
//! bytes after the image as in a polyglot); the frame count against its
//! limit; then every frame decoded, under a memory budget shared by the
//! decodes in progress. The first frame gives the perceptual hash.
//!
//! Metadata the pipeline's policy removes is removed between the walk and
//! the decode, so what is decoded is what will be stored.

mod decode;
mod layout;
mod metadata;
mod phash;
#[cfg(test)]
mod tests;

use tokio::sync::{Semaphore, SemaphorePermit};

pub use metadata::StripMetadata;
pub use phash::PerceptualHash;

use crate::{ImageInfo, ImageType};

/// Bytes of decoded pixels and encoded input the decodes in progress may
/// hold together; further uploads wait for room.
pub const DECODE_MEMORY_BYTES: u64 = 256 * 1024 * 1024;

/// Bytes a decode is charged per pixel: the widest layout a decoder hands
/// over (8-bit RGBA).
const BYTES_PER_PIXEL: u64 = 4;

/// What a pipeline accepts: DESIGN.md's `maxImagePixels` and
/// `maxImageFrames`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Pixels of all frames together (width × height × frames), as imgproxy
    /// counts an animation against its resolution limit.
    pub max_pixels: u64,
    pub max_frames: u32,
}

impl DecodeLimits {
    pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;
    pub const DEFAULT_MAX_FRAMES: u32 = 1000;

    /// Refuses an image whose header alone is over the pixel limit.
    pub fn check_header(&self, info: ImageInfo) -> Result<(), VerifyError> {
        self.check_pixels(info, 1)
    }

    fn check_pixels(&self, info: ImageInfo, frames: u32) -> Result<(), VerifyError> {
        let pixels = pixels(info).saturating_mul(u64::from(frames));
        if pixels > self.max_pixels {
            return Err(VerifyError::TooManyPixels {
                width: info.width,
                height: info.height,
                frames,
                limit: self.max_pixels,
            });
        }
        Ok(())
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: Self::DEFAULT_MAX_PIXELS,
            max_frames: Self::DEFAULT_MAX_FRAMES,
        }
    }
}

/// What a pipeline does with an image before storing it: the limits it is
/// checked against and the metadata removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageRules {
    pub limits: DecodeLimits,
    pub strip: StripMetadata,
}

fn pixels(info: ImageInfo) -> u64 {
    u64::from(info.width) * u64::from(info.height)
}

/// An image that decoded completely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub info: ImageInfo,
    pub frames: u32,
    pub phash: PerceptualHash,
}

/// Why an image is refused; the services answer 413 for the limits and 415
/// (`not_an_image` in the dead-letter topic) for the rest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the image is {width}×{height} pixels{}, over the limit of {limit} pixels (maxImagePixels)",
        if *frames > 1 { format!(" × {frames} frames") } else { String::new() }
    )]
    TooManyPixels {
        width: u32,
        height: u32,
        frames: u32,
        limit: u64,
    },
    #[error("the animation has {frames} frames, over the limit of {limit} (maxImageFrames)")]
    TooManyFrames { frames: u32, limit: u32 },
    #[error("the {image_type} image does not decode: {reason}")]
    Undecodable { image_type: ImageType, reason: String },
    #[error(
        "the {image_type} image ends {bytes} bytes before the file does; \
         send the image alone, without another file appended"
    )]
    TrailingBytes { image_type: ImageType, bytes: usize },
}

impl VerifyError {
    /// The error code upload-api answers with and stream-bridge writes in
    /// the dead-letter `error-code` header.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::TooManyPixels { .. } => "too_many_pixels",
            VerifyError::TooManyFrames { .. } => "too_many_frames",
            VerifyError::Undecodable { .. } | VerifyError::TrailingBytes { .. } => "not_an_image",
        }
    }

    /// Whether the image is refused for its size (413) rather than its
    /// content (415).
    pub fn is_over_a_limit(&self) -> bool {
        matches!(
            self,
            VerifyError::TooManyPixels { .. } | VerifyError::TooManyFrames { .. }
        )
    }
}

/// Checks `bytes`, recognised as `info` by their header, against `limits`,
/// removes the metadata `strip` names and decodes every frame of what is
/// left. Returns the image and, when metadata was removed, the bytes to
/// store instead of `bytes`. CPU-bound: call it off the async threads.
pub fn verify(
    bytes: &[u8],
    info: ImageInfo,
    limits: &DecodeLimits,
    strip: StripMetadata,
) -> Result<(Verified, Option<Vec<u8>>), VerifyError> {
    let image_type = info.image_type;
    let undecodable = |reason: String| VerifyError::Undecodable { image_type, reason };
    limits.check_header(info)?;
    let layout = layout::walk(image_type, bytes).map_err(undecodable)?;
    if layout.end < bytes.len() {
        return Err(VerifyError::TrailingBytes {
            image_type,
            bytes: bytes.len() - layout.end,
        });
    }
    if layout.frames > limits.max_frames {
        return Err(VerifyError::TooManyFrames {
            frames: layout.frames,
            limit: limits.max_frames,
        });
    }
    limits.check_pixels(info, layout.frames)?;
    let stripped = metadata::strip(image_type, bytes, &layout, strip);
    let stored = stripped.as_deref().unwrap_or(&bytes[..layout.end]);
    let memory_limit = usize::try_from(memory_cost(0, info)).unwrap_or(usize::MAX);
    let decoded = decode::decode(image_type, stored, layout.frames, memory_limit).map_err(undecodable)?;
    let header = (info.width as usize, info.height as usize);
    if decoded.canvas != header {
        return Err(undecodable(format!(
            "the header says {}×{} pixels but the image data is {}×{}",
            header.0, header.1, decoded.canvas.0, decoded.canvas.1
        )));
    }
    let verified = Verified {
        info,
        frames: layout.frames,
        phash: decoded.phash,
    };
    Ok((verified, stripped))
}

/// Bytes a decode of an `encoded`-byte image like `info` may hold: the input,
/// its copy without metadata, and one frame of pixels (a decoder allocates a
/// second frame for animations, bounded by its own limit).
pub fn memory_cost(encoded: u64, info: ImageInfo) -> u64 {
    encoded
        .saturating_mul(2)
        .saturating_add(pixels(info).saturating_mul(BYTES_PER_PIXEL))
}

/// The memory the decodes in progress share. A decode waits until its cost
/// is free; one costing more than the whole budget waits for all of it, so
/// it runs alone.
#[derive(Debug)]
pub struct DecodeBudget {
    permits: Semaphore,
    kib: u32,
}

impl DecodeBudget {
    pub fn new(bytes: u64) -> Self {
        let kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1);
        Self {
            permits: Semaphore::new(kib as usize),
            kib,
        }
    }

    /// Waits until `bytes` (at most the whole budget) are free and holds
    /// them until the permit drops.
    pub async fn reserve(&self, bytes: u64) -> SemaphorePermit<'_> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.kib);
        // The semaphore is never closed.
        self.permits
            .acquire_many(kib)
            .await
            .expect("the decode budget is never closed")
    }

    /// Bytes free now.
    pub fn available(&self) -> u64 {
        self.permits.available_permits() as u64 * 1024
    }
}

impl Default for DecodeBudget {
    fn default() -> Self {
        Self::new(DECODE_MEMORY_BYTES)
    }
}
