//! Test support for every crate of the workspace: the real services tests
//! talk to, started on free loopback ports and always stopped.
//!
//! - [`AwsEmulator`]: a moto server, reset before each test that leases it.
//! - [`KafkaBroker`]: a tansu broker with its own sqlite store.
//! - [`Tool`]: the pinned tools `scripts/tools.sh` installs into the cache.
//!
//! Every process is tied to the test process by a pipe on its stdin: when the
//! test process ends, however it ends, the pipe closes and the process exits,
//! so no emulator or broker outlives the tests.

mod aws;
mod error;
mod kafka;
mod process;
mod tools;

pub use aws::{AwsEmulator, REGION};
pub use error::HarnessError;
pub use kafka::KafkaBroker;
pub use tools::{Tool, repo_root};
