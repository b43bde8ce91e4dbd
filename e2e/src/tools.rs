use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use crate::HarnessError;

/// A pinned tool installed by `scripts/tools.sh` into the cache folder
/// (`$IMAGEPIPELINE_CACHE`, default `~/.cache/imagepipeline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// moto's `moto_server`, the AWS emulator, serving TLS only.
    MotoServer,
    /// The CA certificate that signed the emulator's TLS certificate: the one
    /// root its clients trust.
    MotoCertificate,
    /// tansu, the Kafka-protocol broker.
    Tansu,
    /// helm 3.
    Helm,
    /// kubernetes-validate, for manifests against Kubernetes' schemas.
    KubernetesValidate,
    /// schemathesis, the property-based fuzzer of an OpenAPI document.
    Schemathesis,
    /// promtool, Prometheus' checker of rules and their unit tests.
    Promtool,
}

impl Tool {
    fn describe(self) -> &'static str {
        match self {
            Tool::MotoServer => "the AWS emulator (moto server)",
            Tool::MotoCertificate => "the AWS emulator's CA certificate",
            Tool::Tansu => "the Kafka broker (tansu)",
            Tool::Helm => "helm",
            Tool::KubernetesValidate => "kubernetes-validate",
            Tool::Schemathesis => "the API fuzzer (schemathesis)",
            Tool::Promtool => "promtool",
        }
    }

    /// The tool's name for `scripts/tools.sh install`.
    fn install_name(self) -> &'static str {
        match self {
            Tool::MotoServer | Tool::MotoCertificate => "moto",
            Tool::Tansu => "tansu",
            Tool::Helm => "helm",
            Tool::KubernetesValidate => "validate",
            Tool::Schemathesis => "schemathesis",
            Tool::Promtool => "promtool",
        }
    }

    /// The tool's name for `scripts/tools.sh path`.
    fn lookup_name(self) -> &'static str {
        match self {
            Tool::MotoCertificate => "moto-ca",
            other => other.install_name(),
        }
    }

    /// The environment variable that overrides where the tool is.
    pub fn env_var(self) -> &'static str {
        match self {
            Tool::MotoServer => "IMAGEPIPELINE_MOTO_SERVER",
            Tool::MotoCertificate => "IMAGEPIPELINE_MOTO_CA",
            Tool::Tansu => "IMAGEPIPELINE_TANSU",
            Tool::Helm => "IMAGEPIPELINE_HELM",
            Tool::KubernetesValidate => "IMAGEPIPELINE_KUBERNETES_VALIDATE",
            Tool::Schemathesis => "IMAGEPIPELINE_SCHEMATHESIS",
            Tool::Promtool => "IMAGEPIPELINE_PROMTOOL",
        }
    }

    /// The installed tool's executable, or an error saying how to install it.
    pub fn path(self) -> Result<PathBuf, HarnessError> {
        self.path_with_override(std::env::var_os(self.env_var()))
    }

    /// Like [`Tool::path`], with the value of the override variable given.
    pub fn path_with_override(self, overridden: Option<OsString>) -> Result<PathBuf, HarnessError> {
        let path = match overridden {
            Some(path) => PathBuf::from(path),
            None => self.cache_path()?,
        };
        if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::ToolMissing {
                tool: self.describe(),
                path,
                install_name: self.install_name(),
            })
        }
    }

    /// Asks the install script, which owns the versions and the cache layout.
    fn cache_path(self) -> Result<PathBuf, HarnessError> {
        let script = repo_root().join("scripts/tools.sh");
        let lookup_failed = |detail: String| HarnessError::ToolLookup {
            tool: self.describe(),
            detail,
        };
        let output = Command::new("bash")
            .arg(&script)
            .args(["path", self.lookup_name()])
            .output()
            .map_err(|e| lookup_failed(format!("cannot run {}: {e}", script.display())))?;
        if !output.status.success() {
            return Err(lookup_failed(
                String::from_utf8_lossy(&output.stderr).into_owned(),
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
    }
}

/// The root of the repository the tests run in: the nearest folder above the
/// working directory (cargo runs tests in their package's folder) that holds
/// `scripts/tools.sh`, else the one this crate was built from. Checkouts at
/// different paths share a target folder and its compiled paths, so the
/// working directory is the one to trust.
pub fn repo_root() -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|dir| {
            dir.ancestors()
                .find(|dir| dir.join("scripts/tools.sh").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")))
}
