//! What the charts render, checked without a cluster: lint, the default ConfigMaps against the
//! api crate, CRD ownership, environment, security settings, identity and RBAC.
// Test code fails loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;

use kaito_api::{crd, templates};
use kaito_chart_tests::{Chart, Helm, PROVISIONER_REQUIRED, Rendered, repo_root};
use serde_json::{Value, json};

fn render(chart: Chart, sets: &[(&str, &str)]) -> Rendered {
    let (release, namespace) = match chart {
        Chart::Workspace => ("kaito-workspace", "kaito-workspace"),
        Chart::GpuProvisioner => ("gpu-provisioner", "gpu-provisioner"),
    };
    Helm::offline()
        .template(chart, release, namespace, sets)
        .expect("the chart renders")
}

fn deployment(rendered: &Rendered) -> &Value {
    rendered.of_kind("Deployment").next().expect("a Deployment")
}

fn container(rendered: &Rendered) -> &Value {
    &deployment(rendered)["spec"]["template"]["spec"]["containers"][0]
}

/// The plain `value` of an environment variable of the controller container.
fn env(rendered: &Rendered, name: &str) -> Option<String> {
    container(rendered)["env"]
        .as_array()?
        .iter()
        .find(|var| var["name"] == name)
        .and_then(|var| var["value"].as_str().map(str::to_owned))
}

fn env_var<'a>(rendered: &'a Rendered, name: &str) -> Option<&'a Value> {
    container(rendered)["env"]
        .as_array()?
        .iter()
        .find(|var| var["name"] == name)
}

fn crd_names(rendered: &Rendered) -> BTreeSet<String> {
    rendered
        .names("CustomResourceDefinition")
        .into_iter()
        .collect()
}

#[test]
fn helm_lint_strict_passes_for_both_charts() {
    let helm = Helm::offline();
    let workspace = Chart::Workspace.dir().display().to_string();
    let out = helm
        .run(&["lint", "--strict", &workspace])
        .expect("helm runs");
    assert!(out.success, "{}", out.text());

    // The provisioner chart has no usable default for where the cluster is.
    let mut args = vec![
        "lint".to_owned(),
        "--strict".to_owned(),
        Chart::GpuProvisioner.dir().display().to_string(),
    ];
    for (key, value) in PROVISIONER_REQUIRED {
        args.extend(["--set".to_owned(), format!("{key}={value}")]);
    }
    let out = helm.run(&args).expect("helm runs");
    assert!(out.success, "{}", out.text());
}

#[test]
fn the_default_config_maps_equal_the_api_templates() {
    let rendered = render(Chart::Workspace, &[]);
    for (name, key, text) in templates::DEFAULT_CONFIG_MAPS {
        let map = rendered.find("ConfigMap", name).expect("the ConfigMap");
        assert_eq!(map["metadata"]["namespace"], "kaito-workspace");
        let data = map["data"].as_object().expect("data");
        assert_eq!(data.len(), 1, "{name} holds one key");
        assert_eq!(data[key].as_str(), Some(text), "{name}/{key}");
    }
}

#[test]
fn only_the_provisioner_chart_installs_the_karpenter_crds_by_default() {
    let workspace = crd_names(&render(Chart::Workspace, &[]));
    let provisioner = crd_names(&render(Chart::GpuProvisioner, &[]));
    assert_eq!(
        workspace,
        BTreeSet::from(["workspaces.kaito.sh".to_owned()])
    );
    assert_eq!(
        provisioner,
        BTreeSet::from([
            "machines.karpenter.sh".to_owned(),
            "nodeclaims.karpenter.sh".to_owned()
        ])
    );
}

#[test]
fn the_workspace_chart_can_install_karpenter_crds_equal_to_the_generated_ones() {
    let rendered = render(Chart::Workspace, &[("karpenterCRDs.install", "true")]);
    let generated = [
        ("machines.karpenter.sh", crd::machine()),
        ("nodeclaims.karpenter.sh", crd::node_claim()),
    ];
    for (name, crd) in generated {
        let shipped = rendered
            .find("CustomResourceDefinition", name)
            .expect("the CRD is rendered");
        let yaml = crd::to_chart_yaml(&crd).expect("renders");
        let expected = Rendered::parse(&yaml).unwrap().docs.remove(0);
        assert!(
            *shipped == expected,
            "{name} differs from the generated CRD"
        );
    }

    // The copies differ from the generator's output only in their opening comment.
    for (file, crd) in [
        ("karpenter.sh_machines.yaml", crd::machine()),
        ("karpenter.sh_nodeclaims.yaml", crd::node_claim()),
    ] {
        let path = repo_root().join("charts/workspace/files/crds").join(file);
        let text = std::fs::read_to_string(&path).expect("the copy exists");
        let body: String = text
            .lines()
            .skip_while(|line| line.starts_with('#'))
            .map(|line| format!("{line}\n"))
            .collect();
        let expected = crd::to_chart_yaml(&crd).expect("renders");
        assert_eq!(
            body, expected,
            "{file} is stale: copy it from the gpu-provisioner chart"
        );
    }
}

#[test]
fn feature_gates_are_joined_with_commas_and_the_karpenter_gate_selects_node_claims() {
    let defaults = render(Chart::Workspace, &[]);
    assert_eq!(
        env(&defaults, "NODE_REQUEST_API").as_deref(),
        Some("machine")
    );
    assert_eq!(
        env(&defaults, "FEATURE_GATES").as_deref(),
        Some("Karpenter=false")
    );

    let gated = render(
        Chart::Workspace,
        &[
            ("featureGates.Karpenter", "true"),
            ("featureGates.vLLM", "true"),
        ],
    );
    assert_eq!(
        env(&gated, "FEATURE_GATES").as_deref(),
        Some("Karpenter=true,vLLM=true")
    );
    assert_eq!(
        env(&gated, "NODE_REQUEST_API").as_deref(),
        Some("nodeclaim")
    );

    let direct = render(Chart::Workspace, &[("nodeRequestAPI", "nodeclaim")]);
    assert_eq!(
        env(&direct, "NODE_REQUEST_API").as_deref(),
        Some("nodeclaim")
    );
}

#[test]
fn the_workspace_environment_follows_the_values() {
    let rendered = render(
        Chart::Workspace,
        &[
            ("cloudProviderName", "aws"),
            ("clusterName", "prod"),
            ("presetRegistryName", "registry.example.com/kaito"),
            (
                "dataTool.image.repository",
                "registry.example.com/kaito-data",
            ),
            ("dataTool.image.tag", "1.2.3"),
            ("logging.format", "text"),
            ("logging.level", "debug"),
            ("webhook.port", "9555"),
        ],
    );
    let expected = [
        ("CLOUD_PROVIDER", "aws"),
        ("CLUSTER_NAME", "prod"),
        ("PRESET_REGISTRY_NAME", "registry.example.com/kaito"),
        ("DATA_TOOL_IMAGE", "registry.example.com/kaito-data:1.2.3"),
        ("LOG_FORMAT", "text"),
        ("LOG_LEVEL", "debug"),
        ("WEBHOOK_PORT", "9555"),
        ("WEBHOOK_SERVICE", "kaito-workspace"),
        ("METRICS_BIND_ADDRESS", "0.0.0.0:8080"),
        ("HEALTH_PROBE_BIND_ADDRESS", "0.0.0.0:8081"),
    ];
    for (name, value) in expected {
        assert_eq!(env(&rendered, name).as_deref(), Some(value), "{name}");
    }
    let service = rendered
        .find("Service", "kaito-workspace")
        .expect("the Service");
    assert_eq!(service["spec"]["ports"][1]["port"], 9555);
    let webhook = rendered
        .find(
            "ValidatingWebhookConfiguration",
            "validation.workspace.kaito.sh",
        )
        .expect("the validating webhook");
    let client = &webhook["webhooks"][0]["clientConfig"];
    assert_eq!(
        client["service"],
        json!({
            "name": "kaito-workspace",
            "namespace": "kaito-workspace",
            "port": 9555,
            "path": "/validate/workspace.kaito.sh",
        })
    );
    assert!(
        client.get("caBundle").is_none(),
        "the controller injects it"
    );
}

#[test]
fn more_than_one_replica_turns_leader_election_on_with_a_grant_for_its_lease() {
    let single = render(Chart::Workspace, &[]);
    assert_eq!(env(&single, "LEADER_ELECT").as_deref(), Some("false"));

    let workspace = render(Chart::Workspace, &[("replicaCount", "2")]);
    assert_eq!(env(&workspace, "LEADER_ELECT").as_deref(), Some("true"));
    let role = workspace.find("Role", "kaito-workspace").expect("the Role");
    let rules = role["rules"].as_array().expect("rules");
    assert!(
        rules
            .iter()
            .any(|rule| rule["resources"] == json!(["leases"])
                && rule["resourceNames"] == json!(["ef60f9b0.io"])),
        "{rules:?}"
    );

    let provisioner = render(
        Chart::GpuProvisioner,
        &[("replicas", "3"), ("leaderElection.enabled", "false")],
    );
    assert_eq!(env(&provisioner, "LEADER_ELECT").as_deref(), Some("true"));
    assert!(provisioner.find("Role", "gpu-provisioner").is_ok_and(
        |role| role["rules"][1]["resourceNames"] == json!(["gpu-provisioner-leader-election"])
    ));

    let alone = render(
        Chart::GpuProvisioner,
        &[("leaderElection.enabled", "false")],
    );
    assert_eq!(env(&alone, "LEADER_ELECT").as_deref(), Some("false"));
    assert!(alone.names("Role").is_empty(), "no lease, no Role");
}

#[test]
fn a_workspace_rollout_never_runs_a_second_controller_beside_the_first() {
    let rendered = render(Chart::Workspace, &[]);
    let strategy = &deployment(&rendered)["spec"]["strategy"];
    assert_eq!(strategy["rollingUpdate"]["maxSurge"], 0);
    assert_eq!(strategy["rollingUpdate"]["maxUnavailable"], 1);
}

#[test]
fn the_controller_pods_are_locked_down() {
    for chart in [Chart::Workspace, Chart::GpuProvisioner] {
        let rendered = render(chart, &[]);
        let pod = &deployment(&rendered)["spec"]["template"]["spec"];
        let container = container(&rendered);
        let name = chart.name();
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(security["capabilities"]["drop"], json!(["ALL"]), "{name}");
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    container["resources"][kind][resource].is_string(),
                    "{name}: {kind}.{resource}"
                );
            }
        }
        let health_port = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|port| port["containerPort"] == 8081)
            .expect("the health port")["name"]
            .clone();
        for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{name}");
            assert_eq!(container[probe]["httpGet"]["port"], health_port, "{name}");
        }
        let pod_name = env_var(&rendered, "POD_NAME").expect("POD_NAME");
        assert_eq!(
            pod_name["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.name"
        );
        let namespace = env_var(&rendered, "SYSTEM_NAMESPACE").expect("SYSTEM_NAMESPACE");
        assert_eq!(
            namespace["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
    }
}

#[test]
fn the_provisioner_signs_in_as_its_workload_identity() {
    let rendered = render(Chart::GpuProvisioner, &[]);
    let account = rendered
        .find("ServiceAccount", "gpu-provisioner")
        .expect("the ServiceAccount");
    let annotations = &account["metadata"]["annotations"];
    assert_eq!(
        annotations["azure.workload.identity/client-id"],
        "5a0e2a1c-6d0b-4b0e-9c55-2f0f3c3d4e5f"
    );
    assert_eq!(
        annotations["azure.workload.identity/tenant-id"],
        "72f988bf-86f1-41af-91ab-2d7cd011db47"
    );
    let labels = &deployment(&rendered)["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["azure.workload.identity/use"], "true");
    assert_eq!(
        env(&rendered, "AZURE_AUTH_MODE").as_deref(),
        Some("workload-identity")
    );
    // The workload identity webhook injects the ids; the chart must not shadow them.
    assert!(env(&rendered, "AZURE_CLIENT_ID").is_none());
    let expected = [
        (
            "ARM_SUBSCRIPTION_ID",
            "12345678-1234-1234-1234-123456789012",
        ),
        ("ARM_RESOURCE_GROUP", "kaito-rg"),
        ("AZURE_CLUSTER_NAME", "kaito-aks"),
        ("LEADER_ELECTION_NAME", "gpu-provisioner-leader-election"),
    ];
    for (name, value) in expected {
        assert_eq!(env(&rendered, name).as_deref(), Some(value), "{name}");
    }
}

#[test]
fn a_client_secret_comes_from_a_secret_and_drops_the_workload_identity_label() {
    let rendered = render(
        Chart::GpuProvisioner,
        &[
            ("azure.authMode", "client-secret"),
            ("azure.clientSecret.secretName", "provisioner-sp"),
        ],
    );
    let labels = &deployment(&rendered)["spec"]["template"]["metadata"]["labels"];
    assert!(labels.get("azure.workload.identity/use").is_none());
    assert_eq!(
        env(&rendered, "AZURE_CLIENT_ID").as_deref(),
        Some("5a0e2a1c-6d0b-4b0e-9c55-2f0f3c3d4e5f")
    );
    let secret = env_var(&rendered, "AZURE_CLIENT_SECRET").expect("the secret variable");
    assert_eq!(
        secret["valueFrom"]["secretKeyRef"],
        json!({"name": "provisioner-sp", "key": "clientSecret"})
    );
    let account = rendered.find("ServiceAccount", "gpu-provisioner").unwrap();
    assert!(account["metadata"].get("annotations").is_none());
}

#[test]
fn private_cloud_settings_reach_the_provisioner_environment() {
    let rendered = render(
        Chart::GpuProvisioner,
        &[
            ("azure.armEndpoint", "https://management.usgovcloudapi.net"),
            ("azure.armAudience", "https://management.usgovcloudapi.net/"),
            ("azure.authorityHost", "https://login.microsoftonline.us/"),
            ("azure.caBundle.configMapName", "private-ca"),
        ],
    );
    let expected = [
        ("ARM_ENDPOINT", "https://management.usgovcloudapi.net"),
        ("ARM_AUDIENCE", "https://management.usgovcloudapi.net/"),
        ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
        ("AZURE_CA_BUNDLE", "/etc/gpu-provisioner/ca/ca.pem"),
    ];
    for (name, value) in expected {
        assert_eq!(env(&rendered, name).as_deref(), Some(value), "{name}");
    }
    let pod = &deployment(&rendered)["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "azure-ca", "configMap": {"name": "private-ca"}}))
    );
}

#[test]
fn upstream_provisioner_values_files_are_accepted() {
    // The shape upstream's installation scripts write: settings in controller.env.
    let values = r#"
controller:
  env:
    - name: ARM_SUBSCRIPTION_ID
      value: 12345678-1234-1234-1234-123456789012
    - name: ARM_RESOURCE_GROUP
      value: kaito-rg
    - name: LOCATION
      value: eastus
workloadIdentity:
  clientId: 11111111-2222-3333-4444-555555555555
  tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47
settings:
  azure:
    clusterName: kaito-aks
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upstream-values.yaml");
    std::fs::write(&file, values).unwrap();
    let out = Helm::offline()
        .run(&[
            "template".to_owned(),
            "gpu-provisioner".to_owned(),
            Chart::GpuProvisioner.dir().display().to_string(),
            "--values".to_owned(),
            file.display().to_string(),
        ])
        .unwrap();
    assert!(out.success, "{}", out.text());
    let rendered = Rendered::parse(&out.stdout).unwrap();
    assert_eq!(
        env(&rendered, "AZURE_CLUSTER_NAME").as_deref(),
        Some("kaito-aks")
    );
    // The upstream entries come last, so they are what the process sees.
    let vars = container(&rendered)["env"].as_array().unwrap();
    let last = vars
        .iter()
        .rposition(|var| var["name"] == "LOCATION")
        .unwrap();
    assert_eq!(vars[last]["value"], "eastus");
    let account = rendered.find("ServiceAccount", "gpu-provisioner").unwrap();
    assert_eq!(
        account["metadata"]["annotations"]["azure.workload.identity/client-id"],
        "11111111-2222-3333-4444-555555555555"
    );
}

#[test]
fn the_device_plugin_runs_only_on_gpu_nodes_and_can_be_left_out() {
    let rendered = render(Chart::Workspace, &[]);
    let plugin = rendered
        .find("DaemonSet", "nvidia-device-plugin-daemonset")
        .expect("the device plugin");
    let terms = plugin["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .as_array()
        .expect("node selector terms");
    assert!(!terms.is_empty());
    let gpu_keys = [
        "accelerator",
        "kubernetes.azure.com/accelerator",
        "nvidia.com/gpu.present",
    ];
    for term in terms {
        let expressions = term["matchExpressions"].as_array().unwrap();
        assert!(
            expressions.iter().any(|e| e["operator"] == "In"
                && gpu_keys.contains(&e["key"].as_str().unwrap_or_default())),
            "every term requires a GPU label: {term}"
        );
    }

    let without = render(Chart::Workspace, &[("nvidiaDevicePlugin.enabled", "false")]);
    assert!(without.names("DaemonSet").is_empty());
}

/// The rules of a rendered role as (apiGroup, resource, resourceNames, verbs) rows.
fn rules(role: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut rows = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let join = |key: &str| {
            rule[key]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                rows.insert((
                    group.as_str().unwrap().to_owned(),
                    resource.as_str().unwrap().to_owned(),
                    join("resourceNames"),
                    join("verbs"),
                ));
            }
        }
    }
    rows
}

fn rows(expected: &[(&str, &str, &str, &str)]) -> BTreeSet<(String, String, String, String)> {
    expected
        .iter()
        .map(|(g, r, n, v)| ((*g).into(), (*r).into(), (*n).into(), (*v).into()))
        .collect()
}

#[test]
fn the_rbac_grants_exactly_the_verbs_the_controllers_use() {
    let workspace = render(Chart::Workspace, &[("leaderElection.enabled", "true")]);
    let cluster_role = workspace.find("ClusterRole", "kaito-workspace").unwrap();
    let webhook_names = "validation.workspace.kaito.sh";
    assert_eq!(
        rules(cluster_role),
        rows(&[
            ("kaito.sh", "workspaces", "", "list,watch,patch"),
            ("kaito.sh", "workspaces/status", "", "patch"),
            ("kaito.sh", "workspaces/finalizers", "", "update"),
            ("", "nodes", "", "list,watch,patch"),
            ("", "pods", "", "list,watch"),
            ("", "services", "", "list,watch,create,patch"),
            ("", "configmaps", "", "get,create,patch"),
            ("apps", "deployments", "", "list,watch,create,patch"),
            ("apps", "statefulsets", "", "list,watch,create,patch"),
            (
                "apps",
                "controllerrevisions",
                "",
                "get,list,watch,create,patch,delete"
            ),
            ("batch", "jobs", "", "list,watch,create,patch,delete"),
            ("karpenter.sh", "machines", "", "list,watch,create,delete"),
            ("karpenter.sh", "nodeclaims", "", "list,watch,create,delete"),
            ("events.k8s.io", "events", "", "create,patch"),
            (
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
                webhook_names,
                "get,patch"
            ),
            (
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                "mutation.workspace.kaito.sh",
                "get,patch"
            ),
        ])
    );
    let role = workspace.find("Role", "kaito-workspace").unwrap();
    assert_eq!(
        rules(role),
        rows(&[
            ("", "secrets", "workspace-webhook-cert", "get,patch"),
            ("coordination.k8s.io", "leases", "", "create"),
            (
                "coordination.k8s.io",
                "leases",
                "ef60f9b0.io",
                "get,patch,update"
            ),
        ])
    );

    let provisioner = render(Chart::GpuProvisioner, &[]);
    let cluster_role = provisioner.find("ClusterRole", "gpu-provisioner").unwrap();
    assert_eq!(
        rules(cluster_role),
        rows(&[
            ("karpenter.sh", "machines", "", "list,watch,patch,delete"),
            ("karpenter.sh", "nodeclaims", "", "list,watch,patch,delete"),
            ("karpenter.sh", "machines/status", "", "patch"),
            ("karpenter.sh", "nodeclaims/status", "", "patch"),
            ("", "nodes", "", "list,watch,patch,delete"),
            ("events.k8s.io", "events", "", "create,patch"),
        ])
    );
    let role = provisioner.find("Role", "gpu-provisioner").unwrap();
    assert_eq!(
        rules(role),
        rows(&[
            ("coordination.k8s.io", "leases", "", "create"),
            (
                "coordination.k8s.io",
                "leases",
                "gpu-provisioner-leader-election",
                "get,patch,update"
            ),
        ])
    );
}
