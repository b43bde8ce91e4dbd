//! An image's bytes as the store reads them: in memory when small or when
//! the [`SpoolMemory`] shared by the images arriving at once has room,
//! otherwise in a temporary file, so the memory uploads hold is bounded
//! whatever their number and size. The SHA-256 is computed while the bytes
//! arrive, and again over what is stored when metadata is removed.

use std::io::{self, BufReader, Read, Seek, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tempfile::TempPath;

use crate::image_type::{ImageInfo, ImageType, InspectError, dimensions, inspect};
use crate::spool_file::{SpoolFile, file_body};
use crate::spool_memory::{Lent, SpoolMemory};
use crate::verify::{self, DecodeBudget, ImageRules, Verified, VerifyError};

/// Bytes an image may hold in memory while it arrives without a share of
/// the [`SpoolMemory`]; beyond this it needs one or is written to the spool
/// directory.
pub const IN_MEMORY_BYTES: usize = 256 * 1024;

/// The steps in which an arriving image borrows more memory.
const LEND_STEP_BYTES: u64 = 1024 * 1024;

/// Bytes an image type's signature needs, read from a spooled file.
const SIGNATURE_BYTES: usize = 16;

/// An image's complete bytes, their length and SHA-256.
#[derive(Debug)]
pub struct Content {
    sha256: [u8; 32],
    /// The SHA-256 of the bytes as they were received, before metadata was
    /// removed.
    original_sha256: [u8; 32],
    len: u64,
    storage: Storage,
    /// The share of [`SpoolMemory`] the bytes in memory hold.
    lent: Option<Lent>,
}

#[derive(Debug)]
enum Storage {
    Memory(Bytes),
    /// Deleted when the content is dropped.
    File(TempPath),
}

impl Content {
    /// Bytes already in memory (a Kafka record).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        let sha256 = Sha256::digest(&bytes).into();
        Self {
            sha256,
            original_sha256: sha256,
            len: bytes.len() as u64,
            storage: Storage::Memory(bytes),
            lent: None,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The SHA-256 of the bytes received, which differs from
    /// [`Content::sha256`] once [`Content::verify`] removed metadata.
    pub fn original_sha256(&self) -> &[u8; 32] {
        &self.original_sha256
    }

    /// Whether the bytes were written to a file rather than held in memory.
    pub fn is_spooled(&self) -> bool {
        matches!(self.storage, Storage::File(_))
    }

    /// Recognises the image and reads its dimensions from the header; a
    /// spooled image's header is read from its file, never the whole image.
    pub async fn inspect(&self) -> Result<ImageInfo, InspectError> {
        match &self.storage {
            Storage::Memory(bytes) => inspect(bytes),
            Storage::File(path) => {
                let path = path.to_path_buf();
                tokio::task::spawn_blocking(move || inspect_file(&path))
                    .await
                    .unwrap_or(Err(InspectError::NotAnImage))
            }
        }
    }

    /// Decodes the image `inspect` recognised, once the header is within
    /// the limits of `rules` and `budget` has room for the decode (see
    /// [`crate::verify`]), and returns the content to store: these bytes, or
    /// a copy without the metadata `rules` removes (spooled like the
    /// original when large).
    pub async fn verify(
        self,
        info: ImageInfo,
        rules: ImageRules,
        budget: &DecodeBudget,
    ) -> Result<(Content, Verified), ContentError> {
        let ImageRules { limits, strip } = rules;
        limits.check_header(info)?;
        let _room = budget.reserve(verify::memory_cost(self.len, info)).await;
        let bytes = self.to_bytes().await.map_err(ContentError::Unreadable)?;
        tokio::task::spawn_blocking(move || {
            let (image, stripped) = verify::verify(&bytes, info, &limits, strip)?;
            drop(bytes);
            let content = match stripped {
                None => self,
                Some(stripped) => self.replaced_by(stripped).map_err(ContentError::Unreadable)?,
            };
            Ok((content, image))
        })
        .await
        .map_err(|err| ContentError::Unreadable(io::Error::other(err)))?
    }

    /// `bytes` (fewer than these) in place of these, kept in memory if these
    /// were (in their share) or if they are small, otherwise in a new file
    /// beside this one's.
    fn replaced_by(self, bytes: Vec<u8>) -> io::Result<Content> {
        let sha256 = Sha256::digest(&bytes).into();
        let len = bytes.len() as u64;
        let storage = match &self.storage {
            Storage::File(path) if bytes.len() > IN_MEMORY_BYTES => {
                let dir = path.parent().unwrap_or(Path::new("."));
                let mut file = tempfile::Builder::new().prefix("image-").tempfile_in(dir)?;
                file.write_all(&bytes)?;
                Storage::File(file.into_temp_path())
            }
            _ => Storage::Memory(Bytes::from(bytes)),
        };
        Ok(Content {
            sha256,
            original_sha256: self.original_sha256,
            len,
            storage,
            lent: self.lent,
        })
    }

    /// The bytes in `range`, as a request body the SDK can send again on a
    /// retry (a spooled range is reopened rather than held).
    pub(crate) async fn body(&self, range: Range<u64>) -> io::Result<ByteStream> {
        match &self.storage {
            Storage::Memory(bytes) => {
                let start = usize::try_from(range.start).unwrap_or(usize::MAX);
                let end = usize::try_from(range.end).unwrap_or(usize::MAX);
                Ok(ByteStream::from(bytes.slice(start..end)))
            }
            Storage::File(path) => file_body(path, range).await,
        }
    }

    /// All the bytes, for callers that hold small images anyway (tests).
    pub async fn to_bytes(&self) -> io::Result<Bytes> {
        match &self.storage {
            Storage::Memory(bytes) => Ok(bytes.clone()),
            Storage::File(path) => tokio::fs::read(path).await.map(Bytes::from),
        }
    }
}

fn inspect_file(path: &Path) -> Result<ImageInfo, InspectError> {
    let unreadable = |_| InspectError::NotAnImage;
    let mut file = BufReader::new(std::fs::File::open(path).map_err(unreadable)?);
    let mut signature = Vec::with_capacity(SIGNATURE_BYTES);
    file.by_ref()
        .take(SIGNATURE_BYTES as u64)
        .read_to_end(&mut signature)
        .map_err(unreadable)?;
    if signature.is_empty() {
        return Err(InspectError::Empty);
    }
    let image_type = ImageType::detect(&signature).ok_or(InspectError::NotAnImage)?;
    file.rewind().map_err(unreadable)?;
    let size = imagesize::reader_size(file).map_err(|_| InspectError::BadHeader(image_type))?;
    dimensions(image_type, size)
}

/// Why a received image is not stored.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error(transparent)]
    Refused(#[from] VerifyError),
    /// The service's own disk failed.
    #[error("the received image could not be read back: {0}")]
    Unreadable(io::Error),
}

/// Why an image could not be received.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the image is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the image could not be written to the spool directory {dir}: {source}", dir = .dir.display())]
    Io { dir: PathBuf, source: io::Error },
}

/// Receives an image chunk by chunk: refuses the first byte over the limit,
/// hashes as it goes, and moves to a file once the image outgrows
/// [`IN_MEMORY_BYTES`] and the share of [`SpoolMemory`] it can get.
pub struct Spool {
    dir: PathBuf,
    limit: u64,
    len: u64,
    hasher: Sha256,
    memory: BytesMut,
    file: Option<SpoolFile>,
    shared: Option<SpoolMemory>,
    lent: Option<Lent>,
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>, limit: u64) -> Self {
        Self {
            dir: dir.into(),
            limit,
            len: 0,
            hasher: Sha256::new(),
            memory: BytesMut::new(),
            file: None,
            shared: None,
            lent: None,
        }
    }

    /// Holds the image in memory beyond [`IN_MEMORY_BYTES`] while `shared`
    /// has room.
    pub fn with_memory(self, shared: &SpoolMemory) -> Self {
        Self {
            shared: Some(shared.clone()),
            ..self
        }
    }

    /// The most bytes it takes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Makes room at once for the `len` bytes an image declared, so that
    /// they are not copied as the buffer grows. Beyond [`IN_MEMORY_BYTES`]
    /// the room is a share of the [`SpoolMemory`], waited for while images
    /// return theirs (see [`SpoolMemory::wait_for`]); an image that gets
    /// none is written to a file as it arrives.
    pub async fn expect(&mut self, len: u64) {
        if !self.memory.is_empty() || self.file.is_some() || len > self.limit {
            return;
        }
        let beyond = len.saturating_sub(IN_MEMORY_BYTES as u64);
        if beyond > 0 {
            let Some(shared) = &self.shared else { return };
            match shared.wait_for(beyond).await {
                Some(lent) => self.lent = Some(lent),
                None => return,
            }
        }
        self.memory.reserve(usize::try_from(len).unwrap_or(0));
    }

    /// Whether `more` bytes fit in memory, borrowing from the share if they
    /// need to.
    fn room_in_memory(&mut self, more: usize) -> bool {
        let needed = (self.memory.len() + more) as u64;
        let held = IN_MEMORY_BYTES as u64 + self.lent.as_ref().map_or(0, Lent::bytes);
        if needed <= held {
            return true;
        }
        let beyond = (needed - IN_MEMORY_BYTES as u64).next_multiple_of(LEND_STEP_BYTES);
        self.shared
            .as_ref()
            .is_some_and(|shared| shared.grow(&mut self.lent, beyond))
    }

    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), SpoolError> {
        if self.len + chunk.len() as u64 > self.limit {
            return Err(SpoolError::TooLarge(self.limit));
        }
        self.len += chunk.len() as u64;
        self.hasher.update(chunk);
        if self.file.is_none() && self.room_in_memory(chunk.len()) {
            self.memory.extend_from_slice(chunk);
            return Ok(());
        }
        let io = |source| SpoolError::Io {
            dir: self.dir.clone(),
            source,
        };
        if self.file.is_none() {
            let mut file = SpoolFile::create(&self.dir, "image-").await.map_err(io)?;
            file.write(&self.memory).await.map_err(io)?;
            self.memory = BytesMut::new();
            self.lent = None;
            self.file = Some(file);
        }
        if let Some(file) = &mut self.file {
            file.write(chunk).await.map_err(io)?;
        }
        Ok(())
    }

    pub async fn finish(self) -> Result<Content, SpoolError> {
        let storage = match self.file {
            None => Storage::Memory(self.memory.freeze()),
            Some(file) => Storage::File(file.finish().await.map_err(|source| SpoolError::Io {
                dir: self.dir.clone(),
                source,
            })?),
        };
        let sha256 = self.hasher.finalize().into();
        Ok(Content {
            sha256,
            original_sha256: sha256,
            len: self.len,
            storage,
            lent: self.lent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_type::tests::sample;

    async fn spooled(content: &[u8], chunk: usize, limit: u64) -> Result<Content, SpoolError> {
        let dir = std::env::temp_dir();
        let mut spool = Spool::new(dir, limit);
        for piece in content.chunks(chunk) {
            spool.push(piece).await?;
        }
        spool.finish().await
    }

    fn padded_png(len: usize) -> Vec<u8> {
        let mut png = sample(ImageType::Png);
        png.resize(len, 7);
        png
    }

    #[tokio::test]
    async fn a_small_image_stays_in_memory_and_a_large_one_goes_to_a_file_with_the_same_answers() {
        for len in [
            1000,
            IN_MEMORY_BYTES,
            IN_MEMORY_BYTES + 1,
            3 * IN_MEMORY_BYTES + 17,
        ] {
            let png = padded_png(len);
            let content = spooled(&png, 10_000, u64::MAX).await.unwrap();
            assert_eq!(content.is_spooled(), len > IN_MEMORY_BYTES, "{len} bytes");
            assert_eq!(content.len(), len as u64);
            assert_eq!(content.sha256(), &<[u8; 32]>::from(Sha256::digest(&png)));
            assert_eq!(content.inspect().await, inspect(&png));
            assert_eq!(content.to_bytes().await.unwrap(), png);
            let tail = content.body(len as u64 - 10..len as u64).await.unwrap();
            assert_eq!(tail.collect().await.unwrap().into_bytes(), png[len - 10..]);
        }
    }

    #[tokio::test]
    async fn a_large_image_stays_in_memory_while_the_shared_memory_has_room_and_returns_it_once_stored() {
        const MIB: usize = 1024 * 1024;
        let shared = SpoolMemory::new(3 * MIB as u64);
        let receive = |png: Vec<u8>, declared: Option<u64>| {
            let shared = shared.clone();
            async move {
                let mut spool = Spool::new(std::env::temp_dir(), u64::MAX).with_memory(&shared);
                if let Some(len) = declared {
                    spool.expect(len).await;
                }
                for piece in png.chunks(16 * 1024) {
                    spool.push(piece).await.unwrap();
                }
                let content = spool.finish().await.unwrap();
                assert_eq!(content.to_bytes().await.unwrap(), png);
                assert_eq!(content.sha256(), &<[u8; 32]>::from(Sha256::digest(&png)));
                content
            }
        };
        // Declared: 1 MiB beyond the first 256 KiB is borrowed at once.
        let first = receive(
            padded_png(MIB + IN_MEMORY_BYTES),
            Some((MIB + IN_MEMORY_BYTES) as u64),
        )
        .await;
        assert!(!first.is_spooled());
        assert_eq!(shared.available(), 2 * MIB as u64);
        // Undeclared: borrowed as it arrives, in whole MiB.
        let second = receive(padded_png(MIB + IN_MEMORY_BYTES + 1), None).await;
        assert!(!second.is_spooled());
        assert_eq!(shared.available(), 0);
        // No room left: to a file, and what it had borrowed is returned.
        let third = receive(padded_png(2 * MIB), None).await;
        assert!(third.is_spooled());
        assert_eq!(shared.available(), 0);
        let small = receive(padded_png(1000), None).await;
        assert!(!small.is_spooled(), "the first 256 KiB need no share");
        drop(first);
        assert_eq!(shared.available(), MIB as u64);
        drop(second);
        assert_eq!(shared.available(), 3 * MIB as u64);
        // A declared length that does not fit is read as it comes.
        let fourth = receive(padded_png(5 * MIB), Some(5 * MIB as u64)).await;
        assert!(fourth.is_spooled());
        assert_eq!(shared.available(), 3 * MIB as u64);
    }

    #[tokio::test]
    async fn the_first_byte_over_the_limit_is_refused() {
        let png = padded_png(IN_MEMORY_BYTES * 2);
        let limit = png.len() as u64 - 1;
        assert!(matches!(
            spooled(&png, 4096, limit).await,
            Err(SpoolError::TooLarge(l)) if l == limit
        ));
        assert!(spooled(&png, 4096, limit + 1).await.is_ok());
    }

    #[tokio::test]
    async fn a_spooled_file_is_removed_with_its_content() {
        let content = spooled(&padded_png(IN_MEMORY_BYTES * 2), 65536, u64::MAX)
            .await
            .unwrap();
        let Storage::File(path) = &content.storage else {
            panic!("spooled");
        };
        let path = path.to_path_buf();
        assert!(path.exists());
        drop(content);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_spooled_file_that_is_not_an_image_is_recognised_as_such() {
        let text = vec![b'x'; IN_MEMORY_BYTES * 2];
        let content = spooled(&text, 65536, u64::MAX).await.unwrap();
        assert_eq!(content.inspect().await, Err(InspectError::NotAnImage));
        // A GIF header claiming 0×0 pixels.
        let mut gif = b"GIF89a\x00\x00\x00\x00".to_vec();
        gif.resize(IN_MEMORY_BYTES * 2, 0);
        let content = spooled(&gif, 65536, u64::MAX).await.unwrap();
        assert!(content.is_spooled());
        assert_eq!(
            content.inspect().await,
            Err(InspectError::BadHeader(ImageType::Gif))
        );
    }
}
