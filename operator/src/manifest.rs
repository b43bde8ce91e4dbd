//! Reading ImagePipeline manifests from files, as `kubectl apply -f` would.

use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use crate::{
    admission::{Admission, AdmissionError},
    api::ImagePipeline,
};

/// Namespace of a manifest that names none, as with kubectl's default context.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why a manifest file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("{} is not valid YAML: {source}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parse failure, with its line and column.
        source: Box<serde_saphyr::Error>,
    },
    /// A document the apiserver would refuse.
    #[error("{}: document {document}: {source}", path.display())]
    Rejected {
        /// The file.
        path: PathBuf,
        /// 1-based index of the YAML document in the file.
        document: usize,
        /// What is wrong with it.
        source: AdmissionError,
    },
    /// A Secret document that is not a valid Secret.
    #[error("{}: document {document}: not a valid v1 Secret: {source}", path.display())]
    InvalidSecret {
        /// The file.
        path: PathBuf,
        /// 1-based index of the YAML document in the file.
        document: usize,
        /// What is wrong with it.
        source: serde_json::Error,
    },
    /// Nothing in the file.
    #[error("{} holds no ImagePipeline", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// What a manifest file holds: ImagePipelines, and the Secrets they name
/// (`kubectl apply -f` of the same file would make both).
#[derive(Debug, Default)]
pub struct Manifest {
    pub pipelines: Vec<ImagePipeline>,
    /// With `stringData` folded into `data`, as the apiserver does.
    pub secrets: Vec<Secret>,
}

/// Reads every ImagePipeline in `path` (YAML, several documents allowed),
/// checked as the apiserver would check them on create, with defaults applied.
pub fn load(path: &Path) -> Result<Vec<ImagePipeline>, ManifestError> {
    Ok(load_manifest(path)?.pipelines)
}

/// Like [`load`], keeping the Secrets of the file too.
pub fn load_manifest(path: &Path) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_manifest(path, &text)
}

/// Like [`load`], for text already in memory; `path` only names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<ImagePipeline>, ManifestError> {
    Ok(parse_manifest(path, text)?.pipelines)
}

/// Like [`load_manifest`], for text already in memory.
pub fn parse_manifest(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|source| ManifestError::Yaml {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    let admission = Admission::new();
    let mut manifest = Manifest::default();
    for (index, mut document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        default_namespace(&mut document);
        if is_secret(&document) {
            let secret = secret(document).map_err(|source| ManifestError::InvalidSecret {
                path: path.to_owned(),
                document: index + 1,
                source,
            })?;
            manifest.secrets.push(secret);
            continue;
        }
        let pipeline = admission
            .admit(&document, None)
            .map_err(|source| ManifestError::Rejected {
                path: path.to_owned(),
                document: index + 1,
                source,
            })?;
        manifest.pipelines.push(pipeline);
    }
    if manifest.pipelines.is_empty() {
        return Err(ManifestError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(manifest)
}

fn is_secret(document: &Value) -> bool {
    document.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && document.get("kind").and_then(Value::as_str) == Some("Secret")
}

fn secret(document: Value) -> Result<Secret, serde_json::Error> {
    let mut secret: Secret = serde_json::from_value(document)?;
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (key, value) in strings {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
    Ok(secret)
}

fn default_namespace(document: &mut Value) {
    if let Some(metadata) = document.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata
            .entry("namespace")
            .or_insert_with(|| Value::String(DEFAULT_NAMESPACE.into()));
    }
}
