//! The ImagePipeline operator: the `ImagePipeline` API, its offline admission
//! checks, and the commands of the `imagepipeline` binary.

pub mod admission;
pub mod api;
pub mod crd;
pub mod manifest;
