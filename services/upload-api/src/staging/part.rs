//! A part of a resumable upload while it fills, in a file of the spool
//! directory: 64 uploads appending at once would otherwise hold a 5 MiB
//! part each in memory. It is written in large pieces (one blocking-thread
//! hand-off per piece, not per body chunk) and sent to S3 from the file.

use std::io;
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::{ByteStream, Length};
use tempfile::TempPath;
use tokio::io::{AsyncWriteExt, BufWriter};

/// Bytes written to the file at a time.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// The bytes of one part not yet sent, deleted when dropped.
pub struct PartFile {
    file: BufWriter<tokio::fs::File>,
    path: TempPath,
    len: u64,
}

impl PartFile {
    pub async fn new(dir: &Path) -> io::Result<Self> {
        let dir: PathBuf = dir.to_owned();
        let (file, path) =
            tokio::task::spawn_blocking(move || tempfile::Builder::new().prefix("part-").tempfile_in(dir))
                .await
                .map_err(io::Error::other)??
                .into_parts();
        Ok(Self {
            file: BufWriter::with_capacity(WRITE_BUFFER_BYTES, tokio::fs::File::from_std(file)),
            path,
            len: 0,
        })
    }

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

    /// The bytes written, as a request body the SDK can send again on a
    /// retry; the file lives as long as the returned path.
    pub async fn into_body(mut self) -> io::Result<(ByteStream, TempPath)> {
        self.file.flush().await?;
        let body = ByteStream::read_from()
            .path(&self.path)
            .length(Length::Exact(self.len))
            .buffer_size(WRITE_BUFFER_BYTES)
            .build()
            .await
            .map_err(io::Error::other)?;
        Ok((body, self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_is_written_is_the_body_and_the_file_goes_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut part = PartFile::new(dir.path()).await.unwrap();
        assert!(part.is_empty());
        let bytes: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        for piece in bytes.chunks(16 * 1024 + 3) {
            part.write(piece).await.unwrap();
        }
        assert_eq!(part.len(), bytes.len() as u64);
        let (body, path) = part.into_body().await.unwrap();
        assert_eq!(body.collect().await.unwrap().into_bytes(), bytes);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(path);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
