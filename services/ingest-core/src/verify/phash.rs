//! The perceptual hash of an image: a 64-bit difference hash (dHash). The
//! image is reduced to 9×8 cells of average luminance; each bit says whether
//! a cell is brighter than its right-hand neighbour. Re-encoding, resizing or
//! recompressing an image flips few bits, so near-duplicates are found by a
//! small Hamming distance.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const COLUMNS: usize = 9;
const ROWS: usize = 8;

/// A difference hash; written as 16 lowercase hex digits (`phash`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PerceptualHash(pub u64);

impl PerceptualHash {
    /// Bits that differ: 0 for the same picture, up to about 10 for the
    /// same picture re-encoded or resized, around 32 for unrelated ones.
    pub fn distance(self, other: PerceptualHash) -> u32 {
        (self.0 ^ other.0).count_ones()
    }
}

impl fmt::Display for PerceptualHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for PerceptualHash {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(text, 16).map(Self)
    }
}

impl Serialize for PerceptualHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PerceptualHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The layouts decoders hand pixels over in, 8 bits a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PixelLayout {
    Luma,
    LumaAlpha,
    Rgb,
    Rgba,
}

impl PixelLayout {
    pub(crate) fn channels(self) -> usize {
        match self {
            PixelLayout::Luma => 1,
            PixelLayout::LumaAlpha => 2,
            PixelLayout::Rgb => 3,
            PixelLayout::Rgba => 4,
        }
    }

    /// Rec. 601 luminance, transparent pixels seen against white (as a
    /// browser page shows them).
    fn luma(self, pixel: &[u8]) -> u32 {
        let (value, alpha) = match self {
            PixelLayout::Luma => (u32::from(pixel[0]), 255),
            PixelLayout::LumaAlpha => (u32::from(pixel[0]), u32::from(pixel[1])),
            PixelLayout::Rgb | PixelLayout::Rgba => {
                let [r, g, b] = [pixel[0], pixel[1], pixel[2]].map(u32::from);
                let alpha = if self == PixelLayout::Rgba {
                    u32::from(pixel[3])
                } else {
                    255
                };
                ((299 * r + 587 * g + 114 * b) / 1000, alpha)
            }
        };
        (value * alpha + 255 * (255 - alpha)) / 255
    }
}

/// The hash of `width`×`height` pixels laid out row after row.
pub(crate) fn difference_hash(
    width: usize,
    height: usize,
    layout: PixelLayout,
    pixels: &[u8],
) -> PerceptualHash {
    let channels = layout.channels();
    let columns = cells_of(width, COLUMNS);
    let rows = cells_of(height, ROWS);
    let mut sums = [[0u64; COLUMNS]; ROWS];
    let mut counts = [[0u64; COLUMNS]; ROWS];
    for (row, line) in rows.iter().zip(pixels.chunks_exact(width * channels)) {
        for (column, pixel) in columns.iter().zip(line.chunks_exact(channels)) {
            let luma = u64::from(layout.luma(pixel));
            for cell_row in row.clone() {
                for cell in column.clone() {
                    sums[cell_row][cell] += luma;
                    counts[cell_row][cell] += 1;
                }
            }
        }
    }
    let mut bits = 0u64;
    for (sums, counts) in sums.iter().zip(&counts) {
        let averages: [u64; COLUMNS] = std::array::from_fn(|c| sums[c] * 16 / counts[c].max(1));
        for pair in averages.windows(2) {
            bits = bits << 1 | u64::from(pair[0] > pair[1]);
        }
    }
    PerceptualHash(bits)
}

/// The cells each of `len` pixels falls in when a line is cut into `cells`:
/// one each for a long line; a line shorter than `cells` lends each pixel to
/// several, so no cell is empty.
fn cells_of(len: usize, cells: usize) -> Vec<std::ops::Range<usize>> {
    // (first, last) cell of each pixel; none yet is (MAX, 0).
    let mut bounds = vec![(usize::MAX, 0); len];
    for cell in 0..cells {
        let start = cell * len / cells;
        let end = ((cell + 1) * len / cells).max(start + 1);
        for (first, last) in &mut bounds[start..end.min(len)] {
            *first = (*first).min(cell);
            *last = (*last).max(cell + 1);
        }
    }
    bounds.into_iter().map(|(first, last)| first..last).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth picture of light and dark patches.
    fn scene(width: usize, height: usize, seed: u32) -> Vec<u8> {
        let mut pixels = Vec::with_capacity(width * height * 3);
        let phase = f64::from(seed) * 1.7;
        for y in 0..height {
            for x in 0..width {
                let u = x as f64 / width as f64;
                let v = y as f64 / height as f64;
                let light = (128.0 + 110.0 * (u * 9.0 + phase).sin() * (v * 6.0 + phase * 0.5).cos()) as u8;
                pixels.extend([light, light, light]);
            }
        }
        pixels
    }

    #[test]
    fn the_same_picture_at_another_size_hashes_alike_and_another_picture_does_not() {
        let original = difference_hash(640, 480, PixelLayout::Rgb, &scene(640, 480, 1));
        let smaller = difference_hash(320, 240, PixelLayout::Rgb, &scene(320, 240, 1));
        let other = difference_hash(640, 480, PixelLayout::Rgb, &scene(640, 480, 4));
        assert!(original.distance(smaller) <= 4, "{original} vs {smaller}");
        assert!(original.distance(other) >= 16, "{original} vs {other}");
    }

    #[test]
    fn a_gradient_hashes_to_its_direction() {
        let falling: Vec<u8> = (0..64u8)
            .flat_map(|y| (0..90u8).map(move |x| 255 - x * 2 - y))
            .collect();
        assert_eq!(
            difference_hash(90, 64, PixelLayout::Luma, &falling),
            PerceptualHash(u64::MAX)
        );
        let rising: Vec<u8> = (0..64u8).flat_map(|_| (0..90u8).map(|x| x * 2)).collect();
        assert_eq!(
            difference_hash(90, 64, PixelLayout::Luma, &rising),
            PerceptualHash(0)
        );
    }

    #[test]
    fn transparency_counts_as_white_and_tiny_pictures_hash() {
        let clear = [0u8, 0, 0, 0].repeat(18 * 8);
        let white = [255u8; 18 * 8];
        assert_eq!(
            difference_hash(18, 8, PixelLayout::Rgba, &clear),
            difference_hash(18, 8, PixelLayout::Luma, &white)
        );
        assert_eq!(difference_hash(1, 1, PixelLayout::Luma, &[9]), PerceptualHash(0));
        // Two pixels, bright then dark: one step down in each of the 8 rows.
        assert_eq!(
            difference_hash(2, 1, PixelLayout::Luma, &[200, 10])
                .0
                .count_ones(),
            8
        );
    }

    #[test]
    fn the_hash_is_written_as_sixteen_hex_digits() {
        let hash = PerceptualHash(0x00f0_0000_0000_0abc);
        assert_eq!(hash.to_string(), "00f0000000000abc");
        assert_eq!("00f0000000000abc".parse(), Ok(hash));
        assert_eq!(serde_json::to_string(&hash).unwrap(), "\"00f0000000000abc\"");
    }
}
