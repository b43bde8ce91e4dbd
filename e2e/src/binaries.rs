use std::path::PathBuf;

use crate::HarnessError;

/// A binary of this workspace. `cargo build --workspace` builds them all, and
/// so does `cargo test --workspace`, since each package's integration tests
/// need its binaries; they land in the folder above the test executables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// `imagepipeline`: the operator's command line.
    Operator,
    /// `upload-api`.
    UploadApi,
    /// `stream-bridge`.
    StreamBridge,
}

impl Binary {
    /// The executable's file name.
    pub fn name(self) -> &'static str {
        match self {
            Binary::Operator => "imagepipeline",
            Binary::UploadApi => "upload-api",
            Binary::StreamBridge => "stream-bridge",
        }
    }

    /// The executable built beside the running one (a test in `deps/`, or
    /// `imagepipeline-demo` itself), or an error saying how to build it.
    pub fn path(self) -> Result<PathBuf, HarnessError> {
        let missing = |path: PathBuf| HarnessError::BinaryMissing {
            binary: self.name(),
            path,
        };
        let current = std::env::current_exe().map_err(|source| HarnessError::Io {
            what: "finding the running executable".into(),
            source,
        })?;
        let mut dir = current.parent().map(PathBuf::from).unwrap_or_default();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let path = dir.join(self.name());
        if path.is_file() {
            Ok(path)
        } else {
            Err(missing(path))
        }
    }
}
