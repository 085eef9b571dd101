//! The kwok Stage definitions that play the kubelet's part for simulated nodes and their pods.

use std::{fs, path::Path};

use crate::{Error, io_error};

/// Every stage kwok runs, as (file name, YAML document).
const STAGES: [(&str, &str); 4] = [
    ("node-ready.yaml", include_str!("../stages/node-ready.yaml")),
    (
        "pod-running.yaml",
        include_str!("../stages/pod-running.yaml"),
    ),
    (
        "job-pod-succeeded.yaml",
        include_str!("../stages/job-pod-succeeded.yaml"),
    ),
    (
        "pod-removed.yaml",
        include_str!("../stages/pod-removed.yaml"),
    ),
];

/// Writes all stages into one multi-document file for kwok's `--config`.
pub(crate) fn write_config(path: &Path) -> Result<(), Error> {
    let documents: Vec<&str> = STAGES.iter().map(|(_, yaml)| *yaml).collect();
    fs::write(path, documents.join("\n---\n"))
        .map_err(io_error(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_is_a_named_kwok_stage_with_a_selector() {
        for (file, yaml) in STAGES {
            let stage: serde_json::Value = yaml_serde::from_str(yaml).unwrap();
            assert_eq!(stage["apiVersion"], "kwok.x-k8s.io/v1alpha1", "{file}");
            assert_eq!(stage["kind"], "Stage", "{file}");
            assert!(
                stage["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("kaito-testenv-")
            );
            // kwok silently ignores a stage without a selector.
            assert!(stage["spec"]["selector"].is_object(), "{file}");
            assert!(stage["spec"]["steps"].is_array(), "{file}");
        }
    }
}
