//! The user-facing example Workspaces, compiled in so the demo and tests use them as written.

/// The seed's tuning Workspace, its placeholders filled for the local set-up.
pub const TUNING_PHI_3: &str =
    include_str!("../../../examples/fine-tuning/kaito_workspace_tuning_phi_3.yaml");

/// Every inference example: (file name, YAML).
pub const INFERENCE: &[(&str, &str)] = &[
    (
        "kaito_workspace_phi_2.yaml",
        include_str!("../../../examples/inference/kaito_workspace_phi_2.yaml"),
    ),
    (
        "kaito_workspace_phi_3_mini.yaml",
        include_str!("../../../examples/inference/kaito_workspace_phi_3_mini.yaml"),
    ),
    (
        "kaito_workspace_phi_3_medium.yaml",
        include_str!("../../../examples/inference/kaito_workspace_phi_3_medium.yaml"),
    ),
    (
        "kaito_workspace_falcon_7b.yaml",
        include_str!("../../../examples/inference/kaito_workspace_falcon_7b.yaml"),
    ),
    (
        "kaito_workspace_mistral_7b.yaml",
        include_str!("../../../examples/inference/kaito_workspace_mistral_7b.yaml"),
    ),
    (
        "kaito_workspace_llama2_7b_chat.yaml",
        include_str!("../../../examples/inference/kaito_workspace_llama2_7b_chat.yaml"),
    ),
    (
        "kaito_workspace_llama2_13b_chat.yaml",
        include_str!("../../../examples/inference/kaito_workspace_llama2_13b_chat.yaml"),
    ),
    (
        "kaito_workspace_llama2_70b_chat.yaml",
        include_str!("../../../examples/inference/kaito_workspace_llama2_70b_chat.yaml"),
    ),
    (
        "kaito_workspace_phi_3_with_adapters.yaml",
        include_str!("../../../examples/inference/kaito_workspace_phi_3_with_adapters.yaml"),
    ),
    (
        "kaito_workspace_custom_template.yaml",
        include_str!("../../../examples/inference/kaito_workspace_custom_template.yaml"),
    ),
];

/// The Phi-3 inference example the demo applies beside the tuning one.
pub const PHI_3_MINI: &str =
    include_str!("../../../examples/inference/kaito_workspace_phi_3_mini.yaml");

/// The name in a Workspace document's metadata.
pub fn name_of(yaml: &str) -> String {
    let doc: serde_json::Value = yaml_serde::from_str(yaml).unwrap_or_default();
    doc.pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}
