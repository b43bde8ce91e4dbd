//! Test support for every crate of the workspace: the real services tests
//! talk to, started on free loopback ports and always stopped.
//!
//! - [`AwsEmulator`]: a moto server, reset before each test that leases it.
//! - [`KafkaBroker`]: a tansu broker with its own sqlite store.
//! - [`Tool`]: the pinned tools `scripts/tools.sh` installs into the cache.
//! - [`Binary`]: the workspace's own binaries, as `cargo build` left them.
//! - [`LocalPipeline`]: one ImagePipeline applied to the emulator by the
//!   `imagepipeline` binary, with upload-api and stream-bridge running
//!   against it; [`Samples`] and [`SampleRun`] send images through it, and
//!   [`Report`] is what `make demo` prints of them.
//! - [`LocalWarehouse`]: the warehouse's views, translated to SQLite and
//!   evaluated over the events that landed (the emulator has no Redshift).
//!
//! Every process is tied to the test process by a pipe on its stdin: when the
//! test process ends, however it ends, the pipe closes and the process exits,
//! so no emulator or broker outlives the tests.

mod aws;
mod binaries;
pub mod brokers;
mod error;
pub mod image_metadata;
pub mod images;
mod inventory;
mod kafka;
pub mod local;
pub mod monitoring;
mod probes;
mod process;
mod report;
mod samples;
mod tools;
pub mod warehouse;

pub use aws::{AwsEmulator, REGION, sdk_config_trusting};
pub use binaries::Binary;
pub use error::HarnessError;
pub use inventory::OWNER_TAG;
pub use kafka::KafkaBroker;
pub use local::LocalPipeline;
pub use probes::{form_data, free_loopback_address, http_client, metric, metrics_text};
pub use report::Report;
pub use samples::{SOURCE_HEADER, Sample, SampleRun, Samples, sha256_hex};
pub use tools::{Tool, repo_root};
pub use warehouse::LocalWarehouse;
