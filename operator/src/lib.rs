//! The ImagePipeline operator: the `ImagePipeline` API, its offline admission
//! checks, the reconcile engine with one module per AWS component, and the
//! commands of the `imagepipeline` binary.

pub mod admission;
pub mod api;
pub mod aws;
pub mod backoff;
pub mod cli;
pub mod components;
pub mod controller;
pub mod cost;
pub mod crd;
pub mod engine;
pub mod error;
pub mod kubectl_ipl;
pub mod manifest;
pub mod pipeline;
pub mod resources;
pub mod warehouse_cli;
