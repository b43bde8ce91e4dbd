//! The sample images of `e2e/samples/` sent through a local pipeline, by
//! the API and by Kafka, with one bad upload and one poison record, and what
//! each became.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::local::{Landed, LocalPipeline, Produced, Upload};
use crate::{HarnessError, repo_root};

/// How long the bridge gets to store the Kafka samples.
const BRIDGE_TIMEOUT: Duration = Duration::from_secs(60);

/// A file of `e2e/samples/`.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub bytes: Vec<u8>,
    /// The MIME type its extension names.
    pub content_type: &'static str,
}

impl Sample {
    fn read(path: &Path) -> Result<Self, HarnessError> {
        let bytes = std::fs::read(path).map_err(|source| HarnessError::Io {
            what: format!("reading the sample {}", path.display()),
            source,
        })?;
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let content_type = match extension {
            "jpg" | "jpeg" => "image/jpeg",
            "png" => "image/png",
            "webp" => "image/webp",
            "gif" => "image/gif",
            _ => "application/octet-stream",
        };
        Ok(Self {
            name: path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            bytes,
            content_type,
        })
    }

    /// The pipeline's content identity of the bytes.
    pub fn sha256(&self) -> String {
        sha256_hex(&self.bytes)
    }
}

/// SHA-256 in lowercase hex: the `sha256` of items, events and objects.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The samples, by the path they take.
#[derive(Clone, Debug)]
pub struct Samples {
    /// Sent through upload-api.
    pub upload: Vec<Sample>,
    /// Produced to the topic.
    pub kafka: Vec<Sample>,
    /// Text named like a PNG: the API must refuse it.
    pub bad_upload: Sample,
    /// Not an image: the bridge must dead-letter it.
    pub poison: Sample,
}

impl Samples {
    /// `e2e/samples/` of this repository.
    pub fn load() -> Result<Self, HarnessError> {
        let dir = repo_root().join("e2e/samples");
        Ok(Self {
            upload: read_dir(&dir.join("upload"))?,
            kafka: read_dir(&dir.join("kafka"))?,
            bad_upload: Sample::read(&dir.join("bad/not-an-image.png"))?,
            poison: Sample::read(&dir.join("bad/poison-record.txt"))?,
        })
    }
}

fn read_dir(dir: &Path) -> Result<Vec<Sample>, HarnessError> {
    let entries = std::fs::read_dir(dir).map_err(|source| HarnessError::Io {
        what: format!("listing {}", dir.display()),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    paths.iter().map(|p| Sample::read(p)).collect()
}

/// What sending the samples did.
#[derive(Clone, Debug)]
pub struct SampleRun {
    pub uploads: Vec<(Sample, Upload)>,
    pub bad_upload: (Sample, Upload),
    pub produced: Vec<(Sample, Produced)>,
    pub poison: (Sample, Produced),
    /// Read back once the bridge caught up.
    pub landed: Landed,
    /// From the first upload until everything had landed.
    pub took: Duration,
}

/// The header every sample record carries besides its content type.
pub const SOURCE_HEADER: (&str, &str) = ("source", "imagepipeline-demo");

impl SampleRun {
    /// Uploads and produces every sample, waits until the bridge has caught
    /// up, and reads back what landed. Needs both services running.
    pub async fn send(pipeline: &LocalPipeline, samples: &Samples) -> Result<Self, HarnessError> {
        let started = Instant::now();
        let mut uploads = Vec::new();
        for sample in &samples.upload {
            let upload = pipeline.upload(sample.bytes.clone(), sample.content_type).await?;
            uploads.push((sample.clone(), upload));
        }
        let bad = &samples.bad_upload;
        let bad_upload = (
            bad.clone(),
            pipeline.upload(bad.bytes.clone(), bad.content_type).await?,
        );
        let mut produced = Vec::new();
        for sample in &samples.kafka {
            let headers = [("content-type", sample.content_type), SOURCE_HEADER];
            produced.push((sample.clone(), pipeline.produce(&sample.bytes, &headers).await?));
        }
        let poison = (
            samples.poison.clone(),
            pipeline.produce(&samples.poison.bytes, &[SOURCE_HEADER]).await?,
        );
        pipeline
            .wait_until_stored(produced.len(), 1, BRIDGE_TIMEOUT)
            .await?;
        Ok(Self {
            uploads,
            bad_upload,
            produced,
            poison,
            landed: pipeline.landed().await?,
            took: started.elapsed(),
        })
    }
}
