//! The `imagepipeline` binary run as a user runs it, for the tests of the
//! command line. Each test binary that includes this uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use imagepipeline_e2e::AwsEmulator;

/// A file of this checkout (not `env!("CARGO_MANIFEST_DIR")`: checkouts
/// share a target folder, so a test binary may come from another checkout).
pub fn repo_path(relative: &str) -> PathBuf {
    imagepipeline_e2e::repo_root().join(relative)
}

/// Runs `imagepipeline` in the checkout, without AWS settings.
pub fn imagepipeline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagepipeline"))
        .args(args)
        .current_dir(repo_path(""))
        .output()
        .expect("run imagepipeline")
}

/// Runs `imagepipeline` against an AWS emulator through the SDK's standard
/// variables, as a user would against LocalStack or moto.
pub fn imagepipeline_on(emulator: &AwsEmulator, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imagepipeline"))
        .args(args)
        .current_dir(repo_path(""))
        .envs(emulator.env())
        .output()
        .expect("run imagepipeline")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
