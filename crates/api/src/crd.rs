//! The CustomResourceDefinitions both charts ship, generated from the Rust types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Machine, NodeClaim, Workspace};

/// Annotation that keeps Helm from deleting a CRD (and every object of it) on uninstall.
pub const HELM_KEEP: (&str, &str) = ("helm.sh/resource-policy", "keep");

/// Served versions of the Workspace API, storage version first. Both share one schema, so
/// the API server converts between them by changing `apiVersion` only.
pub const WORKSPACE_VERSIONS: [&str; 2] = ["v1beta1", "v1alpha1"];

/// `workspaces.kaito.sh`, served as v1beta1 (storage) and v1alpha1.
pub fn workspace() -> CustomResourceDefinition {
    let mut crd = Workspace::crd();
    let storage = crd.spec.versions.first().cloned();
    if let Some(storage) = storage {
        let mut alpha = storage.clone();
        alpha.name = WORKSPACE_VERSIONS[1].to_owned();
        alpha.storage = false;
        crd.spec.versions.push(alpha);
    }
    crd
}

/// `machines.karpenter.sh` (v1alpha5).
pub fn machine() -> CustomResourceDefinition {
    Machine::crd()
}

/// `nodeclaims.karpenter.sh` (v1).
pub fn node_claim() -> CustomResourceDefinition {
    NodeClaim::crd()
}

/// A CRD as YAML, with the Helm keep annotation, ready for a chart.
pub fn to_chart_yaml(crd: &CustomResourceDefinition) -> Result<String, yaml_serde::Error> {
    let mut crd = crd.clone();
    crd.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(HELM_KEEP.0.to_owned(), HELM_KEEP.1.to_owned());
    yaml_serde::to_string(&crd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(crd: &CustomResourceDefinition, version: usize) -> Vec<(String, i32)> {
        crd.spec.versions[version]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.to_uppercase(), c.priority.unwrap_or(0)))
            .collect()
    }

    #[test]
    fn workspace_is_served_in_two_versions_with_one_storage() {
        let crd = workspace();
        assert_eq!(crd.metadata.name.as_deref(), Some("workspaces.kaito.sh"));
        let versions: Vec<(&str, bool, bool)> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.as_str(), v.served, v.storage))
            .collect();
        assert_eq!(
            versions,
            vec![("v1beta1", true, true), ("v1alpha1", true, false)]
        );
        assert_eq!(crd.spec.versions[0].schema, crd.spec.versions[1].schema);
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.short_names,
            Some(vec!["wk".to_owned(), "wks".to_owned()])
        );
    }

    #[test]
    fn workspace_prints_the_seed_columns_and_more_when_wide() {
        let crd = workspace();
        for v in 0..2 {
            let cols = columns(&crd, v);
            let default: Vec<&str> = cols
                .iter()
                .filter(|c| c.1 == 0)
                .map(|c| c.0.as_str())
                .collect();
            assert_eq!(
                default,
                [
                    "INSTANCE",
                    "RESOURCEREADY",
                    "INFERENCEREADY",
                    "WORKSPACEREADY",
                    "AGE"
                ]
            );
            let wide: Vec<&str> = cols
                .iter()
                .filter(|c| c.1 == 1)
                .map(|c| c.0.as_str())
                .collect();
            assert_eq!(wide, ["JOBSTARTED", "WORKSPACESUCCEEDED", "STATE"]);
        }
    }

    #[test]
    fn the_workspace_schema_has_no_spec_wrapper() {
        let crd = workspace();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        let props = schema
            .and_then(|s| s.properties.as_ref())
            .expect("properties");
        for field in ["resource", "inference", "tuning", "status"] {
            assert!(props.contains_key(field), "{field} missing");
        }
        assert!(!props.contains_key("spec"));
    }

    #[test]
    fn node_request_crds_are_cluster_scoped_karpenter_kinds() {
        let m = machine();
        let n = node_claim();
        assert_eq!(m.metadata.name.as_deref(), Some("machines.karpenter.sh"));
        assert_eq!(n.metadata.name.as_deref(), Some("nodeclaims.karpenter.sh"));
        assert_eq!(
            (m.spec.scope.as_str(), n.spec.scope.as_str()),
            ("Cluster", "Cluster")
        );
        assert_eq!(m.spec.versions[0].name, "v1alpha5");
        assert_eq!(n.spec.versions[0].name, "v1");
        let cols: Vec<String> = columns(&n, 0).into_iter().map(|c| c.0).collect();
        assert_eq!(
            cols[..6],
            ["TYPE", "CAPACITY", "ZONE", "NODE", "READY", "AGE"]
        );
        let yaml = to_chart_yaml(&n).expect("yaml");
        assert!(yaml.contains("spec is immutable"));
        assert!(yaml.contains("helm.sh/resource-policy: keep"));
    }
}
