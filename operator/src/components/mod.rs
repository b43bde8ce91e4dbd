//! One module per AWS component, each implementing [`crate::engine::Component`].

pub mod analytics;
pub mod delivery;
pub(crate) mod instance_offering;
pub mod kafka_broker_setup;
pub mod kafka_brokers;
pub(crate) mod machine_image;
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

use aws_smithy_types::error::operation::BuildError;

use crate::engine::ComponentError;

/// SDK builders fail only when a required field is missing, which is a bug
/// in the operator, not something the user can fix; reported as such.
pub(crate) fn built<T>(result: Result<T, BuildError>) -> Result<T, ComponentError> {
    result.map_err(|err| {
        ComponentError::terminal(
            "InternalError",
            format!("the operator built an invalid AWS request: {err}"),
        )
    })
}

/// Ownership by tags: a resource is ours when it carries our owner tag, and
/// adopted when it carries none (a crash between creating and tagging it).
pub(crate) mod ownership {
    use std::collections::BTreeMap;

    use crate::engine::{OWNER_TAG, RETAINED_TAG};

    pub use crate::engine::resource::check_owner as check;

    pub fn is_ours(tags: &BTreeMap<String, String>, owner: &str) -> bool {
        tags.get(OWNER_TAG).is_some_and(|tag| tag == owner)
    }

    /// The tags a resource that `deletionPolicy: Retain` leaves behind must
    /// carry, when it does not carry them yet.
    pub fn missing_retained_tags(
        observed: &BTreeMap<String, String>,
        desired: &BTreeMap<String, String>,
    ) -> Option<BTreeMap<String, String>> {
        let mut retained = desired.clone();
        retained.insert(RETAINED_TAG.to_owned(), "true".to_owned());
        (*observed != retained).then_some(retained)
    }
}
