//! One declaration per AWS component, each implementing [`crate::engine::Declared`]: its resources in the order they are made.

pub mod analytics;
pub mod delivery;
pub mod kafka_broker_setup;
pub mod kafka_brokers;
pub mod metadata;
pub mod network;
pub mod storage;
pub mod upload_instance_setup;
pub mod upload_tier;

pub use analytics::Analytics;
pub use delivery::Delivery;
pub use kafka_brokers::KafkaBrokers;
pub use metadata::Metadata;
pub use network::Network;
pub use storage::Storage;
pub use upload_tier::UploadTier;
