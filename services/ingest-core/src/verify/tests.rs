use super::layout::{Block, BlockKind, Layout, walk};
use super::*;

#[test]
fn a_jpeg_ends_at_its_end_of_image_marker_past_stuffed_bytes_and_restarts() {
    // SOI, a comment, SOS with entropy data holding FF 00 and a restart
    // marker, fill bytes, EOI, then a byte of something else.
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, 0x04, b'h', b'i'];
    jpeg.extend([
        0xFF, 0xDA, 0x00, 0x03, 0x01, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56,
    ]);
    jpeg.extend([0xFF, 0xFF, 0xD9]);
    let end = jpeg.len();
    jpeg.push(b'!');
    assert_eq!(
        walk(ImageType::Jpeg, &jpeg),
        Ok(Layout {
            end,
            frames: 1,
            blocks: vec![Block {
                range: 2..8,
                kind: BlockKind::Text
            }]
        })
    );
    let cut = walk(ImageType::Jpeg, &jpeg[..end - 1]).unwrap_err();
    assert!(cut.contains("ends inside"), "{cut}");
}

#[test]
fn a_gif_counts_its_images_and_needs_its_trailer() {
    // Screen 1×1 with a 2-colour table, a comment, two 1×1 images, trailer.
    let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00".to_vec();
    gif.extend([0, 0, 0, 255, 255, 255]);
    gif.extend(b"!\xFE\x02hi\x00");
    for _ in 0..2 {
        gif.extend(b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
    }
    gif.push(b';');
    assert_eq!(
        walk(ImageType::Gif, &gif),
        Ok(Layout {
            end: gif.len(),
            frames: 2,
            blocks: vec![Block {
                range: 19..25,
                kind: BlockKind::Text
            }]
        })
    );
    let missing = walk(ImageType::Gif, &gif[..gif.len() - 1]).unwrap_err();
    assert!(missing.contains("ends inside a block"), "{missing}");
    let script = walk(ImageType::Gif, b"GIF89a<script>alert(1)</script>").unwrap_err();
    assert!(script.contains("starts no GIF block"), "{script}");
}

#[test]
fn a_webp_ends_where_its_riff_header_says_and_counts_animation_frames() {
    let mut webp = b"RIFF\x00\x00\x00\x00WEBP".to_vec();
    for kind in [b"VP8X", b"ANIM", b"ANMF", b"ANMF"] {
        webp.extend_from_slice(kind);
        webp.extend_from_slice(&3u32.to_le_bytes());
        webp.extend_from_slice(&[1, 2, 3, 0]);
    }
    let size = (webp.len() - 8) as u32;
    webp[4..8].copy_from_slice(&size.to_le_bytes());
    assert_eq!(
        walk(ImageType::Webp, &webp),
        Ok(Layout {
            end: webp.len(),
            frames: 2,
            blocks: vec![]
        })
    );
    webp.extend_from_slice(b"PK\x03\x04");
    assert_eq!(walk(ImageType::Webp, &webp).map(|l| l.end), Ok(webp.len() - 4));
    let short = walk(ImageType::Webp, &webp[..20]).unwrap_err();
    assert!(short.contains("RIFF header says"), "{short}");
}

#[test]
fn an_image_over_the_pixel_limit_is_refused_from_its_header() {
    let limits = DecodeLimits {
        max_pixels: 1000,
        max_frames: 10,
    };
    let info = ImageInfo {
        image_type: ImageType::Png,
        width: 100,
        height: 11,
    };
    let refused = limits.check_header(info).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the image is 100×11 pixels, over the limit of 1000 pixels (maxImagePixels)"
    );
    assert!(limits.check_header(ImageInfo { height: 10, ..info }).is_ok());
}

#[tokio::test]
async fn decodes_share_the_budget_and_one_larger_than_it_runs_alone() {
    let budget = DecodeBudget::new(10 * 1024);
    let first = budget.reserve(4 * 1024).await;
    let second = budget.reserve(4 * 1024).await;
    assert_eq!(budget.available(), 2 * 1024);
    let third = budget.reserve(4 * 1024);
    tokio::pin!(third);
    assert!(
        futures_poll_once(third.as_mut()).await.is_none(),
        "waits for room"
    );
    drop(first);
    let third = third.await;
    drop((second, third));
    let whole = budget.reserve(u64::MAX).await;
    assert_eq!(
        budget.available(),
        0,
        "a decode larger than the budget takes all of it"
    );
    drop(whole);
    assert_eq!(budget.available(), 10 * 1024);
}

/// Polls `future` once: `None` if it is still pending.
async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
