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
    #[inline(always)]
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
    let mut hasher = LineHasher::new(width, height, layout);
    for line in pixels.chunks_exact(hasher.line_bytes().max(1)).take(height) {
        hasher.push(line);
    }
    hasher.finish()
}

/// A difference hash taken line by line, so that a decoder that hands
/// lines over one at a time needs no buffer of the whole picture.
///
/// Every cell's luminance is summed over runs of whole lines and columns
/// (the pixel ranges [`cell_ranges`] gives), so the work per pixel is one
/// luminance and one addition; the loop is compiled once per layout.
pub(crate) struct LineHasher {
    layout: PixelLayout,
    width: usize,
    columns: [std::ops::Range<usize>; COLUMNS],
    rows: [std::ops::Range<usize>; COLUMNS],
    sums: [[u64; COLUMNS]; ROWS],
    /// The next line's number.
    y: usize,
}

impl LineHasher {
    pub(crate) fn new(width: usize, height: usize, layout: PixelLayout) -> Self {
        Self {
            layout,
            width,
            columns: cell_ranges(width, COLUMNS),
            rows: cell_ranges(height, ROWS),
            sums: [[0; COLUMNS]; ROWS],
            y: 0,
        }
    }

    /// Bytes of one line.
    pub(crate) fn line_bytes(&self) -> usize {
        self.width * self.layout.channels()
    }

    /// Adds the next line, of [`LineHasher::line_bytes`].
    pub(crate) fn push(&mut self, line: &[u8]) {
        let columns = &self.columns;
        let line_sums = match self.layout {
            PixelLayout::Luma => line_sums::<1>(line, columns, |p| PixelLayout::Luma.luma(p)),
            PixelLayout::LumaAlpha => line_sums::<2>(line, columns, |p| PixelLayout::LumaAlpha.luma(p)),
            PixelLayout::Rgb => line_sums::<3>(line, columns, |p| PixelLayout::Rgb.luma(p)),
            PixelLayout::Rgba => line_sums::<4>(line, columns, |p| PixelLayout::Rgba.luma(p)),
        };
        for (cell_row, lines) in self.sums.iter_mut().zip(&self.rows) {
            if lines.contains(&self.y) {
                for (sum, line_sum) in cell_row.iter_mut().zip(line_sums) {
                    *sum += line_sum;
                }
            }
        }
        self.y += 1;
    }

    pub(crate) fn finish(self) -> PerceptualHash {
        let mut bits = 0u64;
        for (sums, lines) in self.sums.iter().zip(&self.rows) {
            let averages: [u64; COLUMNS] = std::array::from_fn(|c| {
                let count = (lines.len() * self.columns[c].len()) as u64;
                sums[c] * 16 / count.max(1)
            });
            for pair in averages.windows(2) {
                bits = bits << 1 | u64::from(pair[0] > pair[1]);
            }
        }
        PerceptualHash(bits)
    }
}

/// The luminance of one line summed over each column of cells.
fn line_sums<const CHANNELS: usize>(
    line: &[u8],
    columns: &[std::ops::Range<usize>; COLUMNS],
    luma: impl Fn(&[u8]) -> u32,
) -> [u64; COLUMNS] {
    std::array::from_fn(|c| {
        let cell = &line[columns[c].start * CHANNELS..columns[c].end * CHANNELS];
        cell.chunks_exact(CHANNELS)
            .map(|pixel| u64::from(luma(pixel)))
            .sum()
    })
}

/// The pixels of a line of `len` that each of `cells` covers: an equal share
/// each for a long line; in a line shorter than `cells`, a pixel is lent to
/// several cells so that none is empty.
/// (The array is as long as the longer of the two lines of cells.)
fn cell_ranges(len: usize, cells: usize) -> [std::ops::Range<usize>; COLUMNS] {
    std::array::from_fn(|cell| {
        if cell >= cells || len == 0 {
            return 0..0;
        }
        let start = cell * len / cells;
        let end = ((cell + 1) * len / cells).max(start + 1).min(len);
        start..end
    })
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

    /// The hash computed pixel by pixel, cell by cell, as first written:
    /// the summed runs must give exactly its bits.
    fn reference_hash(width: usize, height: usize, layout: PixelLayout, pixels: &[u8]) -> PerceptualHash {
        let pixel_cells = |len: usize, cells: usize| -> Vec<Vec<usize>> {
            (0..len)
                .map(|p| {
                    (0..cells)
                        .filter(|&c| {
                            let start = c * len / cells;
                            let end = ((c + 1) * len / cells).max(start + 1);
                            (start..end).contains(&p)
                        })
                        .collect()
                })
                .collect()
        };
        let (columns, rows) = (pixel_cells(width, COLUMNS), pixel_cells(height, ROWS));
        let channels = layout.channels();
        let mut sums = [[0u64; COLUMNS]; ROWS];
        let mut counts = [[0u64; COLUMNS]; ROWS];
        for (y, line) in pixels.chunks_exact(width * channels).enumerate() {
            for (x, pixel) in line.chunks_exact(channels).enumerate() {
                for &r in &rows[y] {
                    for &c in &columns[x] {
                        sums[r][c] += u64::from(layout.luma(pixel));
                        counts[r][c] += 1;
                    }
                }
            }
        }
        let mut bits = 0u64;
        for r in 0..ROWS {
            for c in 0..COLUMNS - 1 {
                let left = sums[r][c] * 16 / counts[r][c].max(1);
                let right = sums[r][c + 1] * 16 / counts[r][c + 1].max(1);
                bits = bits << 1 | u64::from(left > right);
            }
        }
        PerceptualHash(bits)
    }

    #[test]
    fn summed_runs_give_the_bits_of_the_pixel_by_pixel_hash_for_every_layout_and_size() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect()
        };
        let sizes = [
            (1, 1),
            (2, 1),
            (1, 9),
            (8, 8),
            (9, 8),
            (10, 7),
            (17, 33),
            (100, 3),
            (641, 479),
            (640, 480),
        ];
        for layout in [
            PixelLayout::Luma,
            PixelLayout::LumaAlpha,
            PixelLayout::Rgb,
            PixelLayout::Rgba,
        ] {
            for (width, height) in sizes {
                let pixels = noise(width * height * layout.channels());
                assert_eq!(
                    difference_hash(width, height, layout, &pixels),
                    reference_hash(width, height, layout, &pixels),
                    "{layout:?} {width}x{height}"
                );
            }
        }
    }

    #[test]
    fn the_hash_is_written_as_sixteen_hex_digits() {
        let hash = PerceptualHash(0x00f0_0000_0000_0abc);
        assert_eq!(hash.to_string(), "00f0000000000abc");
        assert_eq!("00f0000000000abc".parse(), Ok(hash));
        assert_eq!(serde_json::to_string(&hash).unwrap(), "\"00f0000000000abc\"");
    }
}
