//! Defaulting: the values a Workspace means when it leaves a field out, applied once.
//!
//! The defaulting webhook stores them, and the controller applies the same function to what
//! it reads, so a Workspace admitted without the webhook behaves the same.

use crate::workspace::{
    AccessMode, DEFAULT_ADAPTER_STRENGTH, DEFAULT_INSTANCE_TYPE, PresetSpec, TuningMethod,
    Workspace, WorkspaceSpec,
};

/// A copy of the Workspace with every default applied.
pub fn defaulted(ws: &Workspace) -> Workspace {
    let mut out = ws.clone();
    apply_to_spec(&mut out.spec);
    out
}

/// Applies every default to a spec in place. Applying it twice changes nothing more.
pub fn apply_to_spec(spec: &mut WorkspaceSpec) {
    let res = &mut spec.resource;
    res.count.get_or_insert(1);
    res.instance_type
        .get_or_insert_with(|| DEFAULT_INSTANCE_TYPE.to_owned());
    if let Some(inf) = &mut spec.inference {
        inf.preset.iter_mut().for_each(default_preset);
        for adapter in inf.adapters.iter_mut().flatten() {
            adapter
                .strength
                .get_or_insert_with(|| DEFAULT_ADAPTER_STRENGTH.to_owned());
        }
    }
    if let Some(tun) = &mut spec.tuning {
        tun.preset.iter_mut().for_each(default_preset);
        if let Some(method) = tun.method.as_deref().and_then(TuningMethod::parse) {
            tun.method = Some(method.as_str().to_owned());
        }
    }
}

fn default_preset(preset: &mut PresetSpec) {
    preset.access_mode.get_or_insert(AccessMode::Public);
}
