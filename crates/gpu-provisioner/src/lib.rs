//! The GPU node provisioner: realises KAITO's Karpenter node requests (`Machine` v1alpha5
//! and `NodeClaim` v1) as AKS agent pools, registers their nodes, deletes them, and
//! collects orphaned pools.
#![deny(missing_docs)]

pub mod app;
pub mod arm;
pub mod auth;
pub mod config;
pub mod context;
pub mod controller;
pub mod gc;
pub mod grpc;
pub mod intent;
pub mod inventory;
pub mod launch;
pub mod metrics;
pub mod register;
pub mod request;
pub mod terminate;
