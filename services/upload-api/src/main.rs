//! upload-api: the HTTP service that takes images in (../shared/DESIGN.md,
//! "upload-api"). Not built yet.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("upload-api is not implemented yet: this build only reserves its place in the workspace");
    ExitCode::from(2)
}
