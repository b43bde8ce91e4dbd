//! One module per AWS resource kind, each with the same verbs (see
//! [`crate::engine::resource::Resource`]): find, delta, create, update,
//! delete, and its tags. Components declare them; the engine's walk drives
//! them.

pub mod auto_scaling_group;
pub mod broker_instance;
pub mod bucket;
pub mod delivery_stream;
pub mod dynamodb_table;
pub mod final_snapshot;
pub mod glue_database;
pub mod glue_table;
pub mod iam_role;
pub(crate) mod instance_offering;
pub mod instance_profile;
pub mod internet_gateway;
pub mod kafka_distribution;
pub mod launch_template;
pub mod listener;
pub mod load_balancer;
pub mod machine_image;
pub mod peering;
pub mod redshift_cluster;
pub mod redshift_subnet_group;
pub mod route;
pub mod route_table;
pub mod s3_gateway_endpoint;
pub mod scaling_policy;
pub(crate) mod sdk;
pub mod security_group;
pub mod shared_lists;
pub mod ssm_parameter;
pub mod subnet;
pub mod tagged_instances;
pub mod tags;
pub mod tags_of;
pub mod target_group;
pub mod vpc;
pub mod warehouse_check;
pub mod warehouse_schema;
