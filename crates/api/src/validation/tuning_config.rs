//! Rules on a tuning parameters document (`training_config.yaml`).

use std::path::{Component, Path};

use serde_json::Value;

use crate::workspace::TuningMethod;

/// Sections a `training_config` may hold.
pub const SECTIONS: &[&str] = &[
    "ModelConfig",
    "QuantizationConfig",
    "LoraConfig",
    "TrainingArguments",
    "DatasetConfig",
    "DataCollator",
];

/// Every rule a parameters document breaks for a method, as messages.
pub fn check(text: &str, method: TuningMethod) -> Vec<String> {
    let doc: Value = match yaml_serde::from_str(text) {
        Ok(doc) => doc,
        Err(e) => return vec![format!("training_config.yaml is not valid YAML: {e}")],
    };
    let Some(cfg) = doc.get("training_config").and_then(Value::as_object) else {
        return vec!["training_config.yaml must hold a training_config map".to_owned()];
    };
    let mut out: Vec<String> = cfg
        .keys()
        .filter(|k| !SECTIONS.contains(&k.as_str()))
        .map(|k| {
            format!(
                "Unrecognized section {k:?} in training_config; known: {}",
                SECTIONS.join(", ")
            )
        })
        .collect();
    out.extend(check_quantization(cfg.get("QuantizationConfig"), method));
    out.extend(check_output_dir(cfg.get("TrainingArguments")));
    out
}

fn check_quantization(section: Option<&Value>, method: TuningMethod) -> Vec<String> {
    let flag = |key: &str| -> Result<bool, String> {
        match section.and_then(|s| s.get(key)) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!(
                "invalid value {other}: QuantizationConfig.{key} must be true or false"
            )),
        }
    };
    let (four, eight) = match (flag("load_in_4bit"), flag("load_in_8bit")) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => return [a.err(), b.err()].into_iter().flatten().collect(),
    };
    if four && eight {
        return vec!["QuantizationConfig cannot set both load_in_4bit and load_in_8bit".into()];
    }
    match method {
        TuningMethod::Lora if four || eight => {
            vec![
                "method lora does not quantize: set load_in_4bit and load_in_8bit to false, \
                 or use qlora"
                    .into(),
            ]
        }
        TuningMethod::Qlora if section.is_none() || !(four || eight) => {
            vec![
                "missing field: method qlora needs QuantizationConfig with load_in_4bit or \
                 load_in_8bit true"
                    .into(),
            ]
        }
        _ => vec![],
    }
}

fn check_output_dir(args: Option<&Value>) -> Vec<String> {
    let Some(dir) = args.and_then(|a| a.get("output_dir")) else {
        return vec![];
    };
    let Some(dir) = dir.as_str() else {
        return vec![format!(
            "invalid value {dir}: TrainingArguments.output_dir must be a string"
        )];
    };
    if resolves_below_mnt(dir) {
        vec![]
    } else {
        vec![format!(
            "Invalid output_dir {dir:?}: it must be a directory below /mnt"
        )]
    }
}

/// Whether `dir`, joined onto `/mnt`, names a directory strictly below `/mnt`.
fn resolves_below_mnt(dir: &str) -> bool {
    let rel = match dir.strip_prefix("/mnt") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
        _ if dir.starts_with('/') => return false,
        _ => dir,
    };
    let mut depth: i32 = 0;
    for comp in Path::new(rel).components() {
        match comp {
            Component::Normal(_) => depth += 1,
            Component::ParentDir if depth == 0 => return false,
            Component::ParentDir => depth -= 1,
            _ => {}
        }
    }
    depth > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::{LORA_TRAINING_CONFIG, QLORA_TRAINING_CONFIG};

    #[test]
    fn the_default_templates_pass_for_their_method() {
        assert_eq!(
            check(LORA_TRAINING_CONFIG, TuningMethod::Lora),
            Vec::<String>::new()
        );
        assert_eq!(
            check(QLORA_TRAINING_CONFIG, TuningMethod::Qlora),
            Vec::<String>::new()
        );
    }

    #[test]
    fn quantization_must_match_the_method() {
        assert_eq!(check(QLORA_TRAINING_CONFIG, TuningMethod::Lora).len(), 1);
        assert_eq!(check(LORA_TRAINING_CONFIG, TuningMethod::Qlora).len(), 1);
        let both = "training_config:\n  QuantizationConfig:\n    load_in_4bit: true\n    \
                    load_in_8bit: true\n";
        assert!(check(both, TuningMethod::Qlora)[0].contains("both"));
        let bad = "training_config:\n  QuantizationConfig:\n    load_in_4bit: \"yes\"\n";
        assert!(check(bad, TuningMethod::Qlora)[0].contains("must be true or false"));
    }

    #[test]
    fn unknown_sections_and_non_maps_are_denied() {
        let odd = "training_config:\n  Extra: {}\n  QuantizationConfig: {load_in_4bit: true}\n";
        assert!(check(odd, TuningMethod::Qlora)[0].contains("Unrecognized section"));
        assert!(check("training_config: 3", TuningMethod::Lora)[0].contains("map"));
        assert!(check(": : :", TuningMethod::Lora)[0].contains("YAML"));
    }

    #[test]
    fn output_dir_must_stay_below_mnt() {
        assert!(resolves_below_mnt("/mnt/results"));
        assert!(resolves_below_mnt("results"));
        assert!(resolves_below_mnt("/mnt/a/../b"));
        assert!(!resolves_below_mnt("/mnt"));
        assert!(!resolves_below_mnt("../etc"));
        assert!(!resolves_below_mnt("/etc/x"));
        assert!(!resolves_below_mnt("/mnt/../etc"));
        assert!(!resolves_below_mnt("/mntx/results"));
    }
}
