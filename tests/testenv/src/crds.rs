//! Installing CustomResourceDefinitions from YAML and waiting until they are served.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::wait::{await_condition, conditions::is_crd_established},
};
use serde::Deserialize;

use crate::Error;

/// The field manager of everything the test environment applies.
pub(crate) const FIELD_MANAGER: &str = "kaito-testenv";

/// Parses the CRDs in a multi-document YAML string, skipping empty documents.
pub fn parse_crds(yaml: &str) -> Result<Vec<CustomResourceDefinition>, Error> {
    let mut crds = Vec::new();
    for document in yaml_serde::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().unwrap_or_default();
        if kind != "CustomResourceDefinition" {
            return Err(Error::NotACrd(kind.to_owned()));
        }
        crds.push(serde_json::from_value(value)?);
    }
    Ok(crds)
}

/// Server-side applies every CRD in the YAML documents, then waits until each is Established.
pub async fn apply_crds(
    client: &Client,
    documents: &[String],
    timeout: Duration,
) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    let parsed: Vec<Vec<CustomResourceDefinition>> = documents
        .iter()
        .map(|yaml| parse_crds(yaml))
        .collect::<Result<_, _>>()?;
    for crd in parsed.into_iter().flatten() {
        let name = crd
            .metadata
            .name
            .clone()
            .ok_or(Error::NotACrd("unnamed".into()))?;
        api.patch(&name, &params, &Patch::Apply(&crd)).await?;
        names.push(name);
    }
    for name in names {
        let established = await_condition(api.clone(), &name, is_crd_established());
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(Error::Wait(error.to_string())),
            Err(_) => {
                return Err(Error::Timeout(format!("CRD {name} to be Established")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CRDS: &str = r#"
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: []
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  names: {kind: Gadget, plural: gadgets}
  scope: Cluster
  versions: []
"#;

    #[test]
    fn every_document_of_a_multi_document_string_is_a_crd() {
        let crds = parse_crds(TWO_CRDS).unwrap();
        let names: Vec<_> = crds
            .iter()
            .map(|crd| crd.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["widgets.example.com", "gadgets.example.com"]);
    }

    #[test]
    fn a_document_of_another_kind_is_refused() {
        let error = parse_crds("apiVersion: v1\nkind: ConfigMap\n").unwrap_err();
        assert!(error.to_string().contains("ConfigMap"), "{error}");
    }
}
