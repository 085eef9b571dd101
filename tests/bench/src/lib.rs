//! A benchmark anyone can rerun: both controllers (release builds) on a local control plane
//! and the AKS stand-in with no cloud delay, measured from outside their processes.
//!
//! Step times come from watch events arriving in this process; CPU and memory from `/proc`;
//! Kubernetes API requests from the API server's audit log, one identity per controller;
//! ARM requests from the stand-in's counters.

pub mod audit;
pub mod cli;
pub mod host;
pub mod metrics;
pub mod procfs;
pub mod report;
pub mod run;
pub mod stats;
pub mod timeline;
