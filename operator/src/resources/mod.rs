//! One module per AWS resource kind, each with the same verbs (see
//! [`crate::engine::resource::Resource`]): find, delta, create, update,
//! delete, and its tags. Components declare them; the engine's walk drives
//! them.

pub mod auto_scaling_group;
pub mod iam_role;
pub mod instance_profile;
pub mod internet_gateway;
pub mod launch_template;
pub mod listener;
pub mod load_balancer;
pub mod peering;
pub mod route_table;
pub mod scaling_policy;
pub(crate) mod sdk;
pub mod security_group;
pub mod ssm_parameter;
pub mod subnet;
pub mod tagged_instances;
pub mod tags;
pub mod target_group;
pub mod vpc;
