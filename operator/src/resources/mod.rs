//! One module per AWS resource kind, each with the same verbs (see
//! [`crate::engine::resource::Resource`]): find, delta, create, update,
//! delete, and its tags. Components declare them; the engine's walk drives
//! them.

pub mod broker_instance;
pub mod delivery_stream;
pub mod iam_role;
pub mod internet_gateway;
pub mod peering;
pub mod route_table;
pub(crate) mod sdk;
pub mod security_group;
pub mod subnet;
pub mod tags;
pub mod vpc;
