//! Rules on `tuning`: preset, method, parameters, input and output.

use super::{Context, FieldErrors, data, inference, resource, tuning_config};
use crate::{
    presets::Preset,
    templates::{TRAINING_CONFIG_KEY, default_training_config},
    workspace::{ResourceSpec, TuningMethod, TuningSpec},
};

pub(super) fn check(res: &ResourceSpec, tun: &TuningSpec, ctx: &Context, errs: &mut FieldErrors) {
    if res.count() > 1 {
        errs.push(
            "resource.count",
            "tuning does not support multinode: set count to 1",
        );
    }
    match &tun.preset {
        None => errs.push("tuning.preset", "missing field: Preset"),
        Some(spec) => {
            if let Some(preset) = inference::known_preset(spec, "tuning.preset", "tuning", errs) {
                if preset.supports_tuning() {
                    // An unknown or CPU-only size would leave the Job without a GPU for good.
                    if let Some(sku) = resource::known_sku(res, ctx.cloud, errs) {
                        resource::check_nvidia(sku, preset, errs);
                    }
                    inference::check_access(spec, preset, "tuning.preset", errs);
                } else {
                    errs.push(
                        "tuning.preset.name",
                        format!(
                            "preset {} does not support tuning; presets that support tuning are {}",
                            preset.name,
                            Preset::tunable_list()
                        ),
                    );
                }
            }
        }
    }
    let method = tun.method.as_deref().and_then(TuningMethod::parse);
    if method.is_none() {
        errs.push(
            "tuning.method",
            format!(
                "invalid value {:?}: Method must be lora or qlora",
                tun.method.as_deref().unwrap_or_default()
            ),
        );
    }
    if let Some(method) = method {
        check_config(tun, method, ctx, errs);
    }
    data::check_source(&tun.input, "tuning.input", errs);
    data::check_destination(&tun.output, "tuning.output", errs);
}

/// Rule 23: the named ConfigMap (or the method's default) passes the parameter rules.
fn check_config(tun: &TuningSpec, method: TuningMethod, ctx: &Context, errs: &mut FieldErrors) {
    let path = "tuning.config";
    let text = match tun.config.as_deref().filter(|n| !n.is_empty()) {
        None => default_training_config(method),
        Some(name) => {
            let Some(maps) = &ctx.config_maps else { return };
            let Some(data) = maps.get(name) else {
                errs.push(
                    path,
                    format!("ConfigMap '{name}' specified in 'config' not found"),
                );
                return;
            };
            let Some(text) = data.get(TRAINING_CONFIG_KEY) else {
                errs.push(
                    path,
                    format!("missing field: ConfigMap '{name}' has no key {TRAINING_CONFIG_KEY}"),
                );
                return;
            };
            text
        }
    };
    for message in tuning_config::check(text, method) {
        errs.push(path, message);
    }
}

pub(super) fn check_update(old: &TuningSpec, new: &TuningSpec, errs: &mut FieldErrors) {
    if old.input.name != new.input.name {
        errs.push(
            "tuning.input.name",
            "During tuning Name field cannot be changed once set",
        );
    }
    let name = |t: &TuningSpec| t.preset.as_ref().map(|p| p.name.clone());
    if name(old) != name(new) {
        errs.push("tuning.preset", "Preset cannot be changed");
    }
    let method = |t: &TuningSpec| t.method.as_deref().map(str::to_ascii_lowercase);
    if method(old) != method(new) {
        errs.push("tuning.method", "Method cannot be changed");
    }
}
