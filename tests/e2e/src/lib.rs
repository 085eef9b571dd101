//! The whole kaito-rs system on one machine, for the demo, the end-to-end suite and the
//! benchmarks: a real local control plane, the AKS stand-in and both controllers.

pub mod examples;
pub mod system;

pub use system::{ClusterRef, Options, System, cluster_options, kubectl};
