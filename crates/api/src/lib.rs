//! Shared vocabulary of kaito-rs: the Workspace, Machine and NodeClaim types, the model
//! preset and GPU SKU catalogs, labels, conditions, defaulting and validation.
#![deny(missing_docs)]

pub mod conditions;
pub mod crd;
pub mod defaults;
pub mod karpenter;
pub mod labels;
pub mod presets;
pub mod quantity;
pub mod schema;
pub mod selector;
pub mod sku;
pub mod templates;
pub mod validation;
pub mod workspace;

pub use karpenter::{Machine, NodeClaim, NodeRequest, NodeRequestKind};
pub use presets::Preset;
pub use sku::Cloud;
pub use workspace::{Workspace, WorkspaceSpec, WorkspaceStatus};
