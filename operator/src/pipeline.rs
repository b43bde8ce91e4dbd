//! The composition root: the components an ImagePipeline is made of, in the
//! order they are created. The engine runs whatever list it is handed; this
//! is the one place that names them all.

use std::sync::Arc;

use crate::aws::AwsClients;
use crate::components::{Analytics, Delivery, KafkaBrokers, Metadata, Network, Storage, UploadTier};
use crate::engine::{Engine, RunComponent, declared};

/// Every component, dependencies first.
pub fn components() -> Vec<Arc<dyn RunComponent>> {
    vec![
        declared::<Network>(),
        declared::<Storage>(),
        declared::<Metadata>(),
        declared::<Delivery>(),
        declared::<UploadTier>(),
        declared::<KafkaBrokers>(),
        declared::<Analytics>(),
    ]
}

/// The engine that reconciles a whole pipeline with `aws`.
pub fn engine(aws: AwsClients) -> Engine {
    Engine::new(aws, components())
}
