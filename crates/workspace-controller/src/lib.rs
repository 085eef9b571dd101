//! The workspace controller: reconciles KAITO Workspaces into GPU node requests (Machines or
//! NodeClaims) and inference or tuning workloads, and serves the Workspace admission webhook.

pub mod config;
pub mod context;
pub mod controller;
pub mod error;
pub mod metrics;
pub mod webhook;
pub mod workspace;
