//! The `imagepipeline.io` API group.

pub mod v1alpha1;

pub use v1alpha1::{ImagePipeline, ImagePipelineSpec, ImagePipelineStatus};
