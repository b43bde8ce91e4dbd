//! A file of the spool directory: where bytes too many to hold in memory
//! wait (an image as it arrives, a part of a resumable upload as it fills).
//! Every write or read of a file is a hand-off to a blocking thread, so the
//! bytes go in pieces of [`FILE_BUFFER_BYTES`], not one per body chunk
//! (typically 16 KiB).

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::{ByteStream, Length};
use tempfile::TempPath;
use tokio::io::{AsyncWriteExt, BufWriter};

/// Bytes a spool file is written and read in.
pub const FILE_BUFFER_BYTES: usize = 256 * 1024;

/// A spool file being written, deleted when dropped (or, once finished,
/// when its path is).
pub struct SpoolFile {
    file: BufWriter<tokio::fs::File>,
    path: TempPath,
    len: u64,
}

impl SpoolFile {
    /// A new empty file in `dir`, its name starting with `prefix`.
    pub async fn create(dir: &Path, prefix: &'static str) -> io::Result<Self> {
        let dir: PathBuf = dir.to_owned();
        let (file, path) =
            tokio::task::spawn_blocking(move || tempfile::Builder::new().prefix(prefix).tempfile_in(dir))
                .await
                .map_err(io::Error::other)??
                .into_parts();
        Ok(Self {
            file: BufWriter::with_capacity(FILE_BUFFER_BYTES, tokio::fs::File::from_std(file)),
            path,
            len: 0,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes).await?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Everything written, on disk; the file lives as long as the path.
    pub async fn finish(mut self) -> io::Result<TempPath> {
        self.file.flush().await?;
        Ok(self.path)
    }

    /// Everything written, as a request body the SDK can send again on a
    /// retry; the file lives as long as the returned path.
    pub async fn into_body(self) -> io::Result<(ByteStream, TempPath)> {
        let len = self.len;
        let path = self.finish().await?;
        Ok((file_body(&path, 0..len).await?, path))
    }
}

/// The bytes of `path` in `range`, as a request body the SDK can send again
/// on a retry (the file is reopened, not held in memory).
pub async fn file_body(path: &Path, range: Range<u64>) -> io::Result<ByteStream> {
    ByteStream::read_from()
        .path(path)
        .offset(range.start)
        .length(Length::Exact(range.end - range.start))
        .buffer_size(FILE_BUFFER_BYTES)
        .build()
        .await
        .map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_is_written_is_the_body_and_the_file_goes_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = SpoolFile::create(dir.path(), "part-").await.unwrap();
        assert!(file.is_empty());
        let bytes: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        for piece in bytes.chunks(16 * 1024 + 3) {
            file.write(piece).await.unwrap();
        }
        assert_eq!(file.len(), bytes.len() as u64);
        let (body, path) = file.into_body().await.unwrap();
        assert_eq!(body.collect().await.unwrap().into_bytes(), bytes);
        let middle = file_body(&path, 1000..2000).await.unwrap();
        assert_eq!(middle.collect().await.unwrap().into_bytes(), bytes[1000..2000]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(path);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
