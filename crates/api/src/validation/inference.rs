//! Rules on `inference`: preset or template, private images, adapters and runtime config.

use std::collections::BTreeSet;

use super::{
    Context, FieldErrors, data,
    names::{check_secret_name, check_secret_names, is_dns1123_label},
    resource,
};
use crate::{
    presets::{Preset, SUPPORTED_PRESETS_DOC},
    templates::INFERENCE_CONFIG_KEY,
    workspace::{AccessMode, AdapterSpec, InferenceSpec, MAX_ADAPTERS, PresetSpec, Workspace},
};

pub(super) fn check(ws: &Workspace, inf: &InferenceSpec, ctx: &Context, errs: &mut FieldErrors) {
    match (&inf.preset, &inf.template) {
        (None, None) => errs.push("inference", "Preset or Template must be specified"),
        (Some(_), Some(_)) => errs.push(
            "inference",
            "preset and template cannot be set at the same time; choose one",
        ),
        (Some(preset), None) => check_preset(ws, preset, ctx, errs),
        (None, Some(_)) => {
            resource::check_template_instance_type(&ws.spec.resource, ctx.cloud, errs);
        }
    }
    check_adapters(inf.adapters.as_deref().unwrap_or_default(), errs);
    check_adapter_names_free(ws, inf, errs);
    if let Some(name) = inf.config.as_deref().filter(|n| !n.is_empty()) {
        let preset = inf.preset.as_ref().and_then(|p| Preset::find(&p.name));
        check_config(name, preset, ws.metadata.namespace.as_deref(), ctx, errs);
    }
}

/// Looks a preset up, or reports it unsupported. No other preset rule runs without it.
pub(super) fn known_preset(
    spec: &PresetSpec,
    path: &str,
    what: &str,
    errs: &mut FieldErrors,
) -> Option<&'static Preset> {
    let found = Preset::find(&spec.name);
    if found.is_none() {
        let shown = if spec.name.trim().is_empty() {
            "(empty)"
        } else {
            spec.name.as_str()
        };
        let (which, list) = if what == "tuning" {
            ("presets that support tuning", Preset::tunable_list())
        } else {
            ("supported presets", Preset::supported_list())
        };
        errs.push(
            format!("{path}.name"),
            format!(
                "Unsupported {what} preset name {shown}: {SUPPORTED_PRESETS_DOC}; {which} are \
                 {list}"
            ),
        );
    }
    found
}

fn check_preset(ws: &Workspace, spec: &PresetSpec, ctx: &Context, errs: &mut FieldErrors) {
    let Some(preset) = known_preset(spec, "inference.preset", "inference", errs) else {
        return;
    };
    if let Some(sku) = resource::known_sku(&ws.spec.resource, ctx.cloud, errs) {
        resource::check_fit(&ws.spec.resource, sku, preset, errs);
    }
    check_access(spec, preset, "inference.preset", errs);
}

/// Rules 14, 15 and 20: private images and model access secrets.
pub(super) fn check_access(spec: &PresetSpec, preset: &Preset, path: &str, errs: &mut FieldErrors) {
    if preset.private_only() && spec.access_mode() != AccessMode::Private {
        errs.push(
            format!("{path}.accessMode"),
            format!(
                "preset {} only supports private AccessMode: set accessMode: private and \
                 presetOptions.image to your own image",
                preset.name
            ),
        );
    }
    if spec.access_mode() == AccessMode::Private && spec.image().is_none() {
        errs.push(
            format!("{path}.presetOptions.image"),
            "when AccessMode is private, an image must be provided in PresetOptions",
        );
    }
    if let Some(image) = spec.image() {
        data::check_image(
            image,
            &format!("{path}.presetOptions.image"),
            "preset",
            errs,
        );
    }
    check_secret_names(
        spec.image_pull_secrets(),
        &format!("{path}.presetOptions.imagePullSecrets"),
        errs,
    );
    let secret = spec.model_access_secret();
    if let Some(name) = secret.filter(|_| preset.needs_model_access_secret) {
        check_secret_name(
            name,
            &format!("{path}.presetOptions.modelAccessSecret"),
            errs,
        );
    }
    if preset.needs_model_access_secret && secret.is_none() {
        errs.push(
            format!("{path}.presetOptions.modelAccessSecret"),
            format!(
                "preset {} requires a modelAccessSecret naming a Secret with an HF_TOKEN key",
                preset.name
            ),
        );
    }
    if !preset.needs_model_access_secret && secret.is_some() {
        errs.push(
            format!("{path}.presetOptions.modelAccessSecret"),
            format!(
                "preset {} does not require a modelAccessSecret; remove it",
                preset.name
            ),
        );
    }
}

/// Rules 16 to 18 and 46 to 49, on create and update alike.
pub(super) fn check_adapters(adapters: &[AdapterSpec], errs: &mut FieldErrors) {
    if adapters.len() > MAX_ADAPTERS {
        errs.push(
            "inference.adapters",
            format!("Number of Adapters exceeds the maximum limit of {MAX_ADAPTERS}"),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, adapter) in adapters.iter().enumerate() {
        let path = format!("inference.adapters[{i}]");
        check_adapter(adapter, &path, errs);
        let name = adapter.name();
        if !name.is_empty() && !seen.insert(name) {
            errs.push(
                format!("{path}.source.name"),
                format!("Duplicate adapter source name found: {name}"),
            );
        }
    }
}

/// Adapters become init containers beside the model server, which takes the Workspace's
/// name, so an adapter may not take that name too.
fn check_adapter_names_free(ws: &Workspace, inf: &InferenceSpec, errs: &mut FieldErrors) {
    let Some(workspace) = ws.metadata.name.as_deref() else {
        return;
    };
    for (i, adapter) in inf.adapters.iter().flatten().enumerate() {
        if adapter.name() == workspace {
            errs.push(
                format!("inference.adapters[{i}].source.name"),
                format!(
                    "adapter name {workspace:?} is the Workspace's own name, which the model \
                     server's container uses; choose another name"
                ),
            );
        }
    }
}

fn check_adapter(adapter: &AdapterSpec, path: &str, errs: &mut FieldErrors) {
    let Some(source) = &adapter.source else {
        errs.push(format!("{path}.source"), "missing field: Source");
        return;
    };
    let name = source.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errs.push(format!("{path}.source.name"), "missing field: Name");
    } else if !is_dns1123_label(name) {
        errs.push(
            format!("{path}.source.name"),
            format!(
                "adapter name {name:?} must be a valid DNS label: lowercase letters, \
                 digits and '-', starting and ending with a letter or digit, at most 63 \
                 characters (it becomes a container name)"
            ),
        );
    }
    match source.image.as_deref().filter(|i| !i.is_empty()) {
        None => errs.push(
            format!("{path}.source.image"),
            "Image of Adapter field must be specified",
        ),
        Some(image) => data::check_image(image, &format!("{path}.source.image"), "adapter", errs),
    }
    check_secret_names(
        source.image_pull_secrets.as_deref().unwrap_or_default(),
        &format!("{path}.source.imagePullSecrets"),
        errs,
    );
    if source.urls.is_some() || source.volume_source.is_some() {
        errs.push(
            format!("{path}.source"),
            "adapters take an image only, not urls or volumeSource",
        );
    }
    check_strength(adapter, name, path, errs);
}

fn check_strength(adapter: &AdapterSpec, name: &str, path: &str, errs: &mut FieldErrors) {
    let Some(text) = adapter.strength.as_deref() else {
        return;
    };
    let at = format!("{path}.strength");
    match text.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => {}
        Ok(_) => errs.push(
            at,
            format!("Strength value for Adapter '{name}' must be between 0 and 1"),
        ),
        Err(_) => errs.push(
            at,
            format!("invalid value {text:?}: strength must be a decimal number"),
        ),
    }
}

/// Rule 19: the inference ConfigMap exists, holds the key and parses.
fn check_config(
    name: &str,
    preset: Option<&Preset>,
    namespace: Option<&str>,
    ctx: &Context,
    errs: &mut FieldErrors,
) {
    let path = "inference.config";
    let ns = namespace.unwrap_or("default");
    let Some(maps) = &ctx.config_maps else { return };
    let Some(data) = maps.get(name) else {
        errs.push(
            path,
            format!("ConfigMap '{name}' specified in 'config' not found in namespace '{ns}'"),
        );
        return;
    };
    let Some(text) = data.get(INFERENCE_CONFIG_KEY) else {
        errs.push(
            path,
            format!("missing field: ConfigMap '{name}' has no key {INFERENCE_CONFIG_KEY}"),
        );
        return;
    };
    let doc: serde_json::Value = match yaml_serde::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            errs.push(path, format!("Failed to parse {INFERENCE_CONFIG_KEY}: {e}"));
            return;
        }
    };
    let Some(len) = doc.get("vllm").and_then(|v| v.get("max-model-len")) else {
        return;
    };
    let limit = preset.and_then(|p| p.context_length);
    match len.as_u64() {
        None => errs.push(
            format!("{path}.vllm.max-model-len"),
            "invalid value: max-model-len must be an integer",
        ),
        Some(n) if limit.is_some_and(|l| n > u64::from(l)) => errs.push(
            format!("{path}.vllm.max-model-len"),
            format!(
                "invalid value: max-model-len {n} is above the model's context length {}",
                limit.unwrap_or_default()
            ),
        ),
        Some(_) => {}
    }
}

pub(super) fn check_update(old: &InferenceSpec, new: &InferenceSpec, errs: &mut FieldErrors) {
    let normalise = |p: &Option<PresetSpec>| {
        p.clone().map(|mut p| {
            p.access_mode = Some(p.access_mode());
            p
        })
    };
    if normalise(&old.preset) != normalise(&new.preset) {
        errs.push("inference.preset", "field is immutable");
    }
    if old.template.is_some() != new.template.is_some() {
        errs.push("inference.template", "field cannot be toggled once set");
    }
}
