//! The bytes of staged uploads in S3: appended as they arrive, assembled
//! into one object, read back through the spool, removed.

use ::bytes::Bytes;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::{Stream, StreamExt};
use ingest_core::store::{Backend, StoreError};
use ingest_core::{Content, Spool, SpoolError, SpoolFile};
use jiff::Timestamp;

use super::{PART_BYTES, StagedUpload, Staging, StagingError, object_key, tail_key};

/// How an append ended.
#[derive(Debug)]
pub enum Appended {
    /// The body ended; everything in it is kept.
    Whole,
    /// The body broke off or held more than the upload's length; what came
    /// before is kept.
    Cut(AppendCut),
}

#[derive(Debug)]
pub enum AppendCut {
    Broken(axum::Error),
    /// The body went on past the upload's length.
    TooLong,
}

impl Staging {
    /// Appends `body` to `upload`, which this request has leased: every
    /// full part is uploaded and recorded as it completes (renewing the
    /// lease), and what is left when the body ends or breaks off is kept
    /// in the tail object, so a resumed upload loses nothing that arrived.
    pub async fn append<S>(&self, upload: &mut StagedUpload, mut body: S) -> Result<Appended, StagingError>
    where
        S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
    {
        let mut part = self.part_file().await?;
        if upload.tail > 0 {
            self.read_tail_into(upload, &mut part).await?;
        }
        let start = upload.offset();
        let mut received = start;
        let mut ended = Appended::Whole;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    ended = Appended::Cut(AppendCut::Broken(err));
                    break;
                }
            };
            let room = usize::try_from(upload.length - received).unwrap_or(usize::MAX);
            let fits = chunk.len().min(room);
            received += fits as u64;
            if fits < chunk.len() {
                ended = Appended::Cut(AppendCut::TooLong);
            }
            let mut rest = &chunk[..fits];
            while !rest.is_empty() {
                let space = usize::try_from(PART_BYTES - part.len()).unwrap_or(usize::MAX);
                let (now, later) = rest.split_at(rest.len().min(space));
                part.write(now).await.map_err(StagingError::Spool)?;
                rest = later;
                if part.len() == PART_BYTES {
                    let full = std::mem::replace(&mut part, self.part_file().await?);
                    let (bytes, _file) = full.into_body().await.map_err(StagingError::Spool)?;
                    self.upload_part(upload, bytes).await?;
                    upload.tail = 0;
                    self.save(upload, true, Timestamp::now()).await?;
                }
            }
            if matches!(ended, Appended::Cut(_)) {
                break;
            }
        }
        if received != start && !part.is_empty() {
            let tail = part.len();
            self.put_tail(upload, part).await?;
            upload.tail = tail;
        }
        Ok(ended)
    }

    async fn part_file(&self) -> Result<SpoolFile, StagingError> {
        SpoolFile::create(&self.spool_dir, "part-")
            .await
            .map_err(StagingError::Spool)
    }

    /// The tail object's bytes, to fill the rest of their part.
    async fn read_tail_into(&self, upload: &StagedUpload, part: &mut SpoolFile) -> Result<(), StagingError> {
        let action = "read the upload's last bytes";
        let object = self
            .store
            .s3()
            .get_object()
            .bucket(self.bucket())
            .key(tail_key(upload.id))
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::S3, action, err))?;
        let mut body = object.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|err| failure(Backend::S3, action, err.to_string()))?;
            part.write(&chunk).await.map_err(StagingError::Spool)?;
        }
        Ok(())
    }

    async fn put_tail(&self, upload: &StagedUpload, tail: SpoolFile) -> Result<(), StagingError> {
        let (bytes, _file) = tail.into_body().await.map_err(StagingError::Spool)?;
        self.store
            .s3()
            .put_object()
            .bucket(self.bucket())
            .key(tail_key(upload.id))
            .body(bytes)
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::S3, "keep the upload's last bytes", err))?;
        Ok(())
    }

    /// The multipart upload's id, started now if this is the first part.
    async fn multipart_id(&self, upload: &mut StagedUpload) -> Result<String, StagingError> {
        if let Some(id) = &upload.multipart {
            return Ok(id.clone());
        }
        let created = self
            .store
            .s3()
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(object_key(upload.id))
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::S3, "start the upload's multipart upload", err))?;
        let id = created.upload_id().unwrap_or_default().to_owned();
        upload.multipart = Some(id.clone());
        Ok(id)
    }

    fn next_part_number(upload: &StagedUpload) -> i32 {
        i32::try_from(upload.parts.len() + 1).unwrap_or(i32::MAX)
    }

    async fn upload_part(&self, upload: &mut StagedUpload, part: ByteStream) -> Result<(), StagingError> {
        let multipart = self.multipart_id(upload).await?;
        let uploaded = self
            .store
            .s3()
            .upload_part()
            .bucket(self.bucket())
            .key(object_key(upload.id))
            .upload_id(multipart)
            .part_number(Self::next_part_number(upload))
            .body(part)
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::S3, "keep a part of the upload", err))?;
        upload.parts.push(uploaded.e_tag().unwrap_or_default().to_owned());
        Ok(())
    }

    /// The tail object as the last part, copied within S3: the last part
    /// of a multipart upload may be smaller than 5 MiB.
    async fn copy_tail_as_part(&self, upload: &mut StagedUpload) -> Result<(), StagingError> {
        let multipart = self.multipart_id(upload).await?;
        let copied = self
            .store
            .s3()
            .upload_part_copy()
            .bucket(self.bucket())
            .key(object_key(upload.id))
            .upload_id(multipart)
            .part_number(Self::next_part_number(upload))
            .copy_source(format!("{}/{}", self.bucket(), tail_key(upload.id)))
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::S3, "add the upload's last bytes", err))?;
        let e_tag = copied
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .unwrap_or_default()
            .to_owned();
        upload.parts.push(e_tag);
        Ok(())
    }

    /// Makes the complete `upload` one object, and returns its key: the
    /// tail alone when no part was full, else the parts and the tail as a
    /// completed multipart upload. The caller saves `upload` afterwards.
    pub async fn assemble(&self, upload: &mut StagedUpload) -> Result<String, StagingError> {
        if upload.assembled {
            return Ok(object_key(upload.id));
        }
        let Some(multipart) = upload.multipart.clone() else {
            return Ok(tail_key(upload.id));
        };
        if upload.tail > 0 {
            self.copy_tail_as_part(upload).await?;
        }
        let parts = upload
            .parts
            .iter()
            .enumerate()
            .map(|(index, e_tag)| {
                CompletedPart::builder()
                    .part_number(i32::try_from(index + 1).unwrap_or(i32::MAX))
                    .e_tag(e_tag)
                    .build()
            })
            .collect();
        self.store
            .s3()
            .complete_multipart_upload()
            .bucket(self.bucket())
            .key(object_key(upload.id))
            .upload_id(multipart)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|err| StoreError::from_sdk(Backend::S3, "assemble the upload", err))?;
        upload.multipart = None;
        upload.parts.clear();
        upload.tail = 0;
        upload.assembled = true;
        self.delete_object(tail_key(upload.id)).await;
        Ok(object_key(upload.id))
    }

    /// The object at `key` through `spool` (which refuses it past the
    /// pipeline's size limit); [`StagingError::NotReceived`] when there is
    /// none.
    pub async fn read(
        &self,
        key: &str,
        mut spool: Spool,
    ) -> Result<Result<Content, SpoolError>, StagingError> {
        let object = match self
            .store
            .s3()
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Err(StagingError::NotReceived);
            }
            Err(err) => return Err(StoreError::from_sdk(Backend::S3, "read the staged upload", err).into()),
        };
        if let Some(len) = object.content_length().and_then(|len| u64::try_from(len).ok()) {
            spool.expect(len).await;
        }
        let mut body = object.body;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|err| failure(Backend::S3, "read the staged upload", err.to_string()))?;
            if let Err(err) = spool.push(&chunk).await {
                return Ok(Err(err));
            }
        }
        Ok(spool.finish().await)
    }

    /// Removes `upload`'s bytes: an unfinished multipart upload costs
    /// storage until aborted. What fails here the lifecycle rules remove
    /// within a day.
    pub async fn remove_bytes(&self, upload: &StagedUpload) -> Result<(), StagingError> {
        if let Some(multipart) = &upload.multipart {
            let aborted = self
                .store
                .s3()
                .abort_multipart_upload()
                .bucket(self.bucket())
                .key(object_key(upload.id))
                .upload_id(multipart)
                .send()
                .await;
            if let Err(err) = aborted
                && !err.as_service_error().is_some_and(|e| e.is_no_such_upload())
            {
                return Err(StoreError::from_sdk(Backend::S3, "abort the upload's parts", err).into());
            }
        }
        self.delete_object(tail_key(upload.id)).await;
        self.delete_object(object_key(upload.id)).await;
        Ok(())
    }

    async fn delete_object(&self, key: String) {
        let deleted = self
            .store
            .s3()
            .delete_object()
            .bucket(self.bucket())
            .key(&key)
            .send()
            .await;
        if let Err(err) = deleted {
            tracing::warn!(key, error = %aws_smithy_types::error::display::DisplayErrorContext(&err),
                "a staged object was left for the lifecycle rules to remove");
        }
    }
}

pub(super) fn failure(backend: Backend, action: &'static str, message: String) -> StagingError {
    StagingError::Backend(StoreError {
        backend,
        action,
        message,
        throttled: false,
    })
}
