//! The two charts, rendered or installed with the pinned helm.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Output, repo_root};

/// Values the provisioner chart cannot do without: where the managed cluster is.
pub const PROVISIONER_REQUIRED: &[(&str, &str)] = &[
    (
        "azure.subscriptionId",
        "12345678-1234-1234-1234-123456789012",
    ),
    ("azure.resourceGroup", "kaito-rg"),
    ("azure.clusterName", "kaito-aks"),
    ("azure.clientId", "5a0e2a1c-6d0b-4b0e-9c55-2f0f3c3d4e5f"),
    ("azure.tenantId", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
];

/// One of the project's charts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chart {
    /// `charts/workspace`: the workspace controller.
    Workspace,
    /// `charts/gpu-provisioner`: the AKS GPU node provisioner.
    GpuProvisioner,
}

impl Chart {
    /// The chart's directory name.
    pub fn name(self) -> &'static str {
        match self {
            Chart::Workspace => "workspace",
            Chart::GpuProvisioner => "gpu-provisioner",
        }
    }

    /// The chart's directory.
    pub fn dir(self) -> PathBuf {
        repo_root().join("charts").join(self.name())
    }

    /// The values a chart needs to render at all (none for the workspace chart).
    pub fn required_values(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Chart::Workspace => &[],
            Chart::GpuProvisioner => PROVISIONER_REQUIRED,
        }
    }
}

/// The pinned helm, optionally pointed at a cluster.
#[derive(Clone, Debug, Default)]
pub struct Helm {
    kubeconfig: Option<PathBuf>,
}

impl Helm {
    /// A helm that only renders and lints.
    pub fn offline() -> Self {
        Self::default()
    }

    /// A helm that talks to the cluster of `kubeconfig`.
    pub fn for_cluster(kubeconfig: &Path) -> Self {
        Self {
            kubeconfig: Some(kubeconfig.to_owned()),
        }
    }

    /// Runs helm with `args`; a failure to run is an error, a failed command is not.
    pub fn run<S: AsRef<str>>(&self, args: &[S]) -> Result<Output, Error> {
        let helm = kaito_testenv::tools()?.helm;
        // A private home keeps a developer's repositories and plugins out of the tests.
        let home = std::env::temp_dir().join("kaito-chart-tests-helm");
        let mut command = Command::new(helm);
        command
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .args(args.iter().map(AsRef::as_ref));
        if let Some(kubeconfig) = &self.kubeconfig {
            command.arg("--kubeconfig").arg(kubeconfig);
        }
        let what = format!(
            "helm {}",
            args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ")
        );
        let out = command.output().map_err(|source| Error::Io {
            what: what.clone(),
            source,
        })?;
        Ok(Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `helm template` of `chart` as `release` in `namespace` with the chart's required values
    /// and `sets` (each `key=value`, later ones winning).
    pub fn template(
        &self,
        chart: Chart,
        release: &str,
        namespace: &str,
        sets: &[(&str, &str)],
    ) -> Result<Rendered, Error> {
        let mut args = vec![
            "template".to_owned(),
            release.to_owned(),
            chart.dir().display().to_string(),
            "--namespace".to_owned(),
            namespace.to_owned(),
        ];
        args.extend(set_args(chart.required_values().iter().chain(sets)));
        let out = self.run(&args)?.ok("helm template")?;
        Rendered::parse(&out.stdout)
    }
}

/// `--set key=value` arguments.
pub fn set_args<'a>(sets: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> Vec<String> {
    sets.into_iter()
        .flat_map(|(key, value)| ["--set".to_owned(), format!("{key}={value}")])
        .collect()
}

/// The documents a chart rendered.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The YAML as helm printed it.
    pub yaml: String,
    /// Every non-empty document.
    pub docs: Vec<Value>,
}

impl Rendered {
    /// Parses helm's multi-document output.
    pub fn parse(yaml: &str) -> Result<Self, Error> {
        let mut docs = Vec::new();
        for document in yaml_serde::Deserializer::from_str(yaml) {
            let value = Value::deserialize(document)?;
            if !value.is_null() {
                docs.push(value);
            }
        }
        Ok(Self {
            yaml: yaml.to_owned(),
            docs,
        })
    }

    /// The documents of one kind.
    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let kind = kind.to_owned();
        self.docs
            .iter()
            .filter(move |doc| doc["kind"] == kind.as_str())
    }

    /// The document of `kind` named `name`.
    pub fn find(&self, kind: &str, name: &str) -> Result<&Value, Error> {
        self.of_kind(kind)
            .find(|doc| doc["metadata"]["name"] == name)
            .ok_or_else(|| Error::Missing(format!("{kind} {name}")))
    }

    /// The names of the documents of one kind.
    pub fn names(&self, kind: &str) -> Vec<String> {
        self.of_kind(kind)
            .filter_map(|doc| doc["metadata"]["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The documents `keep` accepts, as one multi-document YAML string.
    pub fn to_yaml(&self, keep: impl Fn(&Value) -> bool) -> Result<String, Error> {
        let mut out = String::new();
        for doc in self.docs.iter().filter(|doc| keep(doc)) {
            out.push_str("---\n");
            out.push_str(&yaml_serde::to_string(doc)?);
        }
        Ok(out)
    }

    /// The environment of the first container of Deployment `name`, with `fieldRef` values
    /// resolved the way the kubelet would for a pod `pod` in `namespace`.
    pub fn container_env(
        &self,
        deployment: &str,
        namespace: &str,
        pod: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        let doc = self.find("Deployment", deployment)?;
        let env = doc["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .ok_or_else(|| Error::Missing(format!("env of Deployment {deployment}")))?;
        let mut resolved = Vec::new();
        for var in env {
            let name = var["name"].as_str().unwrap_or_default().to_owned();
            let value = match (&var["value"], &var["valueFrom"]["fieldRef"]["fieldPath"]) {
                (Value::String(value), _) => value.clone(),
                (_, Value::String(path)) if path == "metadata.namespace" => namespace.to_owned(),
                (_, Value::String(path)) if path == "metadata.name" => pod.to_owned(),
                _ => return Err(Error::Missing(format!("a plain value of {name}"))),
            };
            resolved.push((name, value));
        }
        Ok(resolved)
    }
}
