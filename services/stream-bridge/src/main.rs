//! stream-bridge: lands images streamed through Kafka in S3, DynamoDB and
//! Firehose (../shared/DESIGN.md, "stream-bridge"). Not built yet.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("stream-bridge is not implemented yet: this build only reserves its place in the workspace");
    ExitCode::from(2)
}
