//! Rules on `resource`: the selector, the instance type and whether a preset fits on it.

use super::{FieldErrors, is_label_key, is_label_value};
use crate::{
    labels::RESERVED_SELECTOR_KEYS,
    presets::Preset,
    selector,
    sku::{self, Cloud, Sku},
    workspace::ResourceSpec,
};

pub(super) fn check_selector(res: &ResourceSpec, errs: &mut FieldErrors) {
    if let Some(count) = res.count
        && count < 1
    {
        errs.push(
            "resource.count",
            format!("count must be at least 1, got {count}"),
        );
    }
    let Some(map) = selector::as_map(&res.label_selector) else {
        errs.push(
            "resource.labelSelector",
            "invalid value: only matchLabels, or matchExpressions with operator In and exactly \
             one value, are supported, because the labels are copied onto new nodes",
        );
        return;
    };
    for (key, value) in &map {
        if !is_label_key(key) {
            errs.push(
                "resource.labelSelector",
                format!(
                    "invalid label key {key:?}: use an optional DNS subdomain prefix and '/', \
                     then at most 63 letters, digits, '-', '_' or '.', starting and ending with \
                     a letter or digit, because the labels are copied onto new nodes"
                ),
            );
        }
        if !is_label_value(value) {
            errs.push(
                "resource.labelSelector",
                format!(
                    "invalid value {value:?} of label {key:?}: use at most 63 letters, digits, \
                     '-', '_' or '.', starting and ending with a letter or digit, because the \
                     labels are copied onto new nodes"
                ),
            );
        }
    }
    if map
        .keys()
        .all(|k| RESERVED_SELECTOR_KEYS.contains(&k.as_str()))
    {
        errs.push(
            "resource.labelSelector.matchLabels",
            format!(
                "matchLabels must contain at least one label other than the reserved keys {}",
                RESERVED_SELECTOR_KEYS.join(", ")
            ),
        );
    }
}

/// Looks the instance type up, or reports it unsupported with the list of supported ones.
pub(super) fn known_sku(res: &ResourceSpec, cloud: Cloud, errs: &mut FieldErrors) -> Option<Sku> {
    let name = res.instance_type();
    let sku = cloud.sku(name);
    if sku.is_none() {
        errs.push(
            "resource.instanceType",
            format!(
                "Unsupported instance type {name}. Supported SKUs: {}",
                cloud.supported_list()
            ),
        );
    }
    sku
}

/// Whether the SKU has NVIDIA GPUs, which every preset runs on; reports it when not.
pub(super) fn check_nvidia(sku: Sku, preset: &Preset, errs: &mut FieldErrors) -> bool {
    if !sku.is_nvidia() {
        errs.push(
            "resource.instanceType",
            format!(
                "instance type {} has {} accelerators; preset {} needs NVIDIA GPUs",
                sku.name, sku.row.gpu_model, preset.name
            ),
        );
    }
    sku.is_nvidia()
}

/// Rules 6 to 8: the preset's GPUs and memory fit on `count` nodes of the SKU.
pub(super) fn check_fit(res: &ResourceSpec, sku: Sku, preset: &Preset, errs: &mut FieldErrors) {
    let path = "resource.instanceType";
    if !check_nvidia(sku, preset, errs) {
        return;
    }
    let count = u64::try_from(res.count().max(1)).unwrap_or(1);
    let gpus = u64::from(sku.gpu_count()) * count;
    if gpus < u64::from(preset.gpu_count) {
        errs.push(
            path,
            format!(
                "Insufficient number of GPUs: {count} x {} provides {gpus} GPUs, preset {} needs \
                 {}; use a larger instance type or raise resource.count",
                sku.name, preset.name, preset.gpu_count
            ),
        );
    }
    if sku.per_gpu_memory() < preset.per_gpu_memory {
        errs.push(
            path,
            format!(
                "Insufficient per GPU memory: {} has {} per GPU, preset {} needs {}",
                sku.name,
                sku.per_gpu_memory(),
                preset.name,
                preset.per_gpu_memory
            ),
        );
    }
    let total = sku.total_memory().times(count);
    if total < preset.total_gpu_memory {
        errs.push(
            path,
            format!(
                "Insufficient total GPU memory: {count} x {} provides {total}, preset {} needs {}",
                sku.name, preset.name, preset.total_gpu_memory
            ),
        );
    }
}

/// Template workspaces skip GPU checks; on Azure the size must still look like a GPU or
/// general-purpose VM size.
pub(super) fn check_template_instance_type(
    res: &ResourceSpec,
    cloud: Cloud,
    errs: &mut FieldErrors,
) {
    let name = res.instance_type();
    let lower = name.to_ascii_lowercase();
    let plausible = cloud.sku(name).is_some()
        || cloud == Cloud::Aws
        || lower.starts_with("standard_n")
        || lower.starts_with("standard_d");
    if !plausible {
        errs.push(
            "resource.instanceType",
            format!(
                "Unsupported instance type {name}: use an Azure N-series or D-series size. \
                 Supported GPU SKUs: {}",
                cloud.supported_list()
            ),
        );
    }
}

pub(super) fn check_update(old: &ResourceSpec, new: &ResourceSpec, errs: &mut FieldErrors) {
    if old.count() != new.count() {
        errs.push("resource.count", "field is immutable");
    }
    if !sku::same_instance_type(old.instance_type(), new.instance_type()) {
        errs.push(
            "resource.instanceType",
            "field is immutable: instanceType cannot be changed",
        );
    }
    let (o, n) = (
        selector::as_map(&old.label_selector),
        selector::as_map(&new.label_selector),
    );
    if n.is_some() && o != n {
        errs.push("resource.labelSelector", "field is immutable");
    }
}
