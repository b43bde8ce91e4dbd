//! Reading ImagePipeline manifests from files, as `kubectl apply -f` would.

use std::path::{Path, PathBuf};

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
    /// Nothing in the file.
    #[error("{} holds no ImagePipeline", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// Reads every ImagePipeline in `path` (YAML, several documents allowed),
/// checked as the apiserver would check them on create, with defaults applied.
pub fn load(path: &Path) -> Result<Vec<ImagePipeline>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Like [`load`], for text already in memory; `path` only names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<ImagePipeline>, ManifestError> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|source| ManifestError::Yaml {
        path: path.to_owned(),
        source: Box::new(source),
    })?;
    let admission = Admission::new();
    let pipelines = documents
        .into_iter()
        .enumerate()
        .filter(|(_, document)| !document.is_null())
        .map(|(index, mut document)| {
            default_namespace(&mut document);
            admission
                .admit(&document, None)
                .map_err(|source| ManifestError::Rejected {
                    path: path.to_owned(),
                    document: index + 1,
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if pipelines.is_empty() {
        return Err(ManifestError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(pipelines)
}

fn default_namespace(document: &mut Value) {
    if let Some(metadata) = document.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata
            .entry("namespace")
            .or_insert_with(|| Value::String(DEFAULT_NAMESPACE.into()));
    }
}
