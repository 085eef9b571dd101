//! Admission rules for Workspaces, as pure functions over (old, new) objects.
//!
//! Every denial names the field path and says what to do. The webhook and the controller
//! call the same functions, so an object the webhook would deny never reaches a workload.

mod data;
mod inference;
mod names;
mod resource;
mod tuning;
pub mod tuning_config;

use std::{collections::BTreeMap, fmt};

pub use data::{check_data_ip, check_data_url, url_basename};
pub use names::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_label_key, is_label_value,
};

use crate::{
    sku::Cloud,
    workspace::{Workspace, WorkspaceSpec},
};

/// Longest Workspace name: `<name>-headless` must still be a valid Service name, and the
/// `controller-revision-hash` label of a StatefulSet's pods, `<name>-<hash of up to 10
/// characters>`, a valid label value (63 characters).
pub const MAX_WORKSPACE_NAME_LEN: usize = 52;

/// One rule a Workspace breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field, for example `tuning.output.image`.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl FieldError {
    /// An error on a field.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "validation failed: {}: {}", self.message, self.path)
    }
}

/// Every rule a Workspace breaks.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct FieldErrors(pub Vec<FieldError>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

impl FieldErrors {
    /// Whether no rule is broken.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds an error.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    /// Whether some error is on this path.
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }

    fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

/// What validation needs beyond the object: the cloud and the ConfigMaps it refers to.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Cloud whose SKU catalog applies.
    pub cloud: Cloud,
    /// ConfigMaps of the Workspace namespace named by `inference.config` or `tuning.config`,
    /// by name, with their data; a name missing here does not exist. `None` skips the
    /// ConfigMap rules (the controller, which does not look ConfigMaps up, uses that).
    pub config_maps: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

impl Context {
    /// A context for a cloud with no ConfigMaps.
    pub fn new(cloud: Cloud) -> Self {
        Context {
            cloud,
            config_maps: Some(BTreeMap::new()),
        }
    }
}

/// Names of the ConfigMaps (in the Workspace namespace) validation must be given.
pub fn referenced_config_maps(ws: &Workspace) -> Vec<String> {
    let inference = ws.spec.inference.as_ref().and_then(|i| i.config.clone());
    let tuning = ws.spec.tuning.as_ref().and_then(|t| t.config.clone());
    inference
        .into_iter()
        .chain(tuning)
        .filter(|n| !n.is_empty())
        .collect()
}

/// Rules for a new Workspace.
pub fn validate_create(ws: &Workspace, ctx: &Context) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    names::check_workspace_name(ws, &mut errs);
    check_spec(ws, ctx, &mut errs);
    errs.into_result()
}

/// Rules for a changed Workspace. Metadata-only changes and objects being deleted always
/// pass, so finalizers and labels can be edited whatever the spec says.
pub fn validate_update(old: &Workspace, new: &Workspace, ctx: &Context) -> Result<(), FieldErrors> {
    if new.metadata.deletion_timestamp.is_some() || spec_unchanged(&old.spec, &new.spec) {
        return Ok(());
    }
    let mut errs = FieldErrors::default();
    check_spec(new, ctx, &mut errs);
    resource::check_update(&old.spec.resource, &new.spec.resource, &mut errs);
    check_toggles(&old.spec, &new.spec, &mut errs);
    if let (Some(o), Some(n)) = (&old.spec.inference, &new.spec.inference) {
        inference::check_update(o, n, &mut errs);
    }
    if let (Some(o), Some(n)) = (&old.spec.tuning, &new.spec.tuning) {
        tuning::check_update(o, n, &mut errs);
    }
    errs.into_result()
}

/// Whether two specs are the same once defaults are applied.
fn spec_unchanged(old: &WorkspaceSpec, new: &WorkspaceSpec) -> bool {
    let mut o = old.clone();
    let mut n = new.clone();
    crate::defaults::apply_to_spec(&mut o);
    crate::defaults::apply_to_spec(&mut n);
    o == n
}

fn check_spec(ws: &Workspace, ctx: &Context, errs: &mut FieldErrors) {
    match (&ws.spec.inference, &ws.spec.tuning) {
        (None, None) => errs.push(
            "inference",
            "either inference or tuning must be specified, not neither",
        ),
        (Some(_), Some(_)) => errs.push(
            "inference",
            "either inference or tuning must be specified, not both",
        ),
        (Some(inf), None) => {
            resource::check_selector(&ws.spec.resource, errs);
            inference::check(ws, inf, ctx, errs);
        }
        (None, Some(tun)) => {
            resource::check_selector(&ws.spec.resource, errs);
            tuning::check(&ws.spec.resource, tun, ctx, errs);
        }
    }
}

fn check_toggles(old: &WorkspaceSpec, new: &WorkspaceSpec, errs: &mut FieldErrors) {
    if old.inference.is_some() != new.inference.is_some() {
        errs.push("inference", "field cannot be toggled once set");
    }
    if old.tuning.is_some() != new.tuning.is_some() {
        errs.push("tuning", "field cannot be toggled once set");
    }
}

#[cfg(test)]
mod tests;
