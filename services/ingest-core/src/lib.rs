//! What upload-api and stream-bridge share (../shared/DESIGN.md, "Data
//! contracts"): the image types they accept and how they are recognised, the
//! ids, the S3 key layout, the DynamoDB item, the event record, and the
//! operation that stores one image; and the names the operator must spell as
//! the services do ([`contract`]).

pub mod content;
pub mod contract;
pub mod image_type;
pub mod record;
pub mod service;
pub mod spool_file;
pub mod spool_memory;
pub mod store;
pub mod verify;

pub use content::{Content, ContentError, Spool, SpoolError};
pub use image_type::{ImageInfo, ImageType, InspectError, inspect};
pub use record::{EventRecord, ImageId, ImageItem, KafkaPosition, Source, object_key, sha256_hex};
pub use spool_file::SpoolFile;
pub use spool_memory::SpoolMemory;
pub use store::{Incoming, Store, StoreError, Stored, Targets};
pub use verify::{
    DecodeBudget, DecodeLimits, ImageRules, PerceptualHash, StripMetadata, Verified, VerifyError,
};
