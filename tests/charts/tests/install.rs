//! Both charts against the real local control plane: what they render passes a server-side
//! dry run, they install with Ready pods, upgrade and uninstall; bad values are refused at
//! install naming the value; and their RBAC refuses what the controllers must not do.
// Test code fails loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::{
    api::{
        admissionregistration::v1::ValidatingWebhookConfiguration,
        apps::v1::{DaemonSet, Deployment},
        authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
        coordination::v1::Lease,
        core::v1::{Namespace, Pod, Secret, ServiceAccount},
        rbac::v1::{ClusterRole, Role},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kaito_chart_tests::{Chart, Helm, PROVISIONER_REQUIRED, eventually, kubectl};
use kaito_testenv::{
    Cluster, ClusterOptions, Identity, SimNode, create_namespace, shared_cluster_with,
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// Where the RBAC test renders each chart, and the identity of its ServiceAccount there.
const RBAC_WORKSPACE: (&str, &str) = ("rbac-workspace", "rbac-workspace-sa");
const RBAC_PROVISIONER: (&str, &str) = ("rbac-provisioner", "gpu-provisioner");

/// How long an install, upgrade or uninstall may take.
const HELM_TIMEOUT: &str = "3m";
const WAIT: Duration = Duration::from_secs(120);

fn options() -> ClusterOptions {
    ClusterOptions::default()
        .identity(Identity::service_account(
            RBAC_WORKSPACE.0,
            RBAC_WORKSPACE.1,
        ))
        .identity(Identity::service_account(
            RBAC_PROVISIONER.0,
            RBAC_PROVISIONER.1,
        ))
}

static NODES: OnceCell<()> = OnceCell::const_new();

/// The shared cluster with a system node for the controllers and a GPU node (tainted as
/// KAITO taints them) for the device plugin.
async fn cluster() -> &'static Cluster {
    let cluster = shared_cluster_with(options())
        .await
        .expect("the cluster starts");
    NODES
        .get_or_init(|| async {
            cluster
                .add_node(&SimNode::new("system-0", "Standard_D4s_v3"))
                .await
                .expect("the system node");
            let gpu = SimNode::gpu("gpu-0", "Standard_NC6s_v3", 1)
                .label("accelerator", "nvidia")
                .taint("sku", "gpu", "NoSchedule");
            cluster.add_node(&gpu).await.expect("the GPU node");
        })
        .await;
    cluster
}

fn helm_args<'a>(head: &[&'a str], sets: &'a [(&'a str, &'a str)]) -> Vec<String> {
    let mut args: Vec<String> = head.iter().map(|s| (*s).to_owned()).collect();
    for (key, value) in sets {
        args.extend(["--set".to_owned(), format!("{key}={value}")]);
    }
    args
}

fn chart_dir(chart: Chart) -> String {
    chart.dir().display().to_string()
}

/// Waits until `count` pods match `selector` in `namespace` and every one is Ready.
async fn ready_pods(client: &Client, namespace: &str, selector: &str, count: usize) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    eventually(&format!("{count} Ready pods {selector}"), WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .ok()?;
        let live: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .collect();
        (live.len() == count && live.iter().all(is_ready)).then_some(live)
    })
    .await
    .expect("the pods become Ready")
}

fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|all| all.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn container_env(deployment: &Deployment, name: &str) -> Option<String> {
    let spec = deployment.spec.as_ref()?.template.spec.as_ref()?;
    let env = spec.containers.first()?.env.as_ref()?;
    env.iter()
        .find(|var| var.name == name)
        .and_then(|var| var.value.clone())
}

async fn gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} to be deleted"), WAIT, || async {
        api.get_opt(name)
            .await
            .ok()
            .and_then(|found| found.is_none().then_some(()))
    })
    .await
    .expect("deleted");
}

/// What the controller writes into the chart's objects at start: its certificate into the
/// Secret (server-side apply) and its CA into the webhook configuration (strategic merge).
async fn write_as_the_controller(client: &Client, ns: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "workspace-webhook-cert", "namespace": ns},
        "data": {"ca-cert.pem": "Q0E=", "server-cert.pem": "Q0VSVA==", "server-key.pem": "S0VZ"},
    }))
    .unwrap();
    let params = PatchParams::apply("kaito-workspace-controller").force();
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch("workspace-webhook-cert", &params, &Patch::Apply(&secret))
        .await
        .unwrap();
    let name = "validation.workspace.kaito.sh";
    let patch = json!({"webhooks": [{"name": name, "clientConfig": {"caBundle": "Q0E="}}]});
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
}

/// An upgrade must not take the controller's certificate or CA away again.
async fn assert_controller_writes_kept(client: &Client, ns: &str) {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get("workspace-webhook-cert")
        .await
        .unwrap();
    assert_eq!(
        secret.data.map(|data| data.len()),
        Some(3),
        "the certificate is kept"
    );
    let webhook = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get("validation.workspace.kaito.sh")
        .await
        .unwrap();
    let hook = webhook.webhooks.unwrap().remove(0);
    assert_eq!(
        hook.client_config.ca_bundle.map(|ca| ca.0),
        Some(b"CA".to_vec()),
        "the CA bundle is kept"
    );
    let service = hook.client_config.service.expect("still the Service");
    assert_eq!(service.name, "kaito-workspace");
}

#[tokio::test]
async fn helm_template_output_passes_a_server_side_dry_run() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let workspace_notable: &[(&str, &str)] = &[
        ("nodeRequestAPI", "nodeclaim"),
        ("karpenterCRDs.install", "true"),
        ("replicaCount", "3"),
        ("webhook.enabled", "false"),
        ("nvidiaDevicePlugin.enabled", "false"),
        ("watchNamespace", "team-a"),
        ("featureGates.vLLM", "true"),
        ("cloudProviderName", "aws"),
        ("priorityClassName", "system-cluster-critical"),
        ("tolerations[0].key", "CriticalAddonsOnly"),
        ("tolerations[0].operator", "Exists"),
    ];
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let provisioner_notable: &[(&str, &str)] = &[
        ("azure.authMode", "client-secret"),
        ("azure.clientSecret.secretName", "provisioner-sp"),
        ("azure.caBundle.configMapName", "private-ca"),
        ("azure.armEndpoint", "https://management.usgovcloudapi.net"),
        ("azure.authorityHost", "https://login.microsoftonline.us/"),
        ("replicas", "2"),
        ("controller.image.digest", digest),
        ("additionalLabels.team", "gpu"),
        ("terminationGracePeriodSeconds", "30"),
        ("controller.env[0].name", "EXTRA"),
        ("controller.env[0].value", "enabled"),
    ];
    let cases = [
        (Chart::Workspace, "dry-run-workspace", &[][..]),
        (Chart::Workspace, "dry-run-workspace", workspace_notable),
        (Chart::GpuProvisioner, "dry-run-provisioner", &[][..]),
        (
            Chart::GpuProvisioner,
            "dry-run-provisioner",
            provisioner_notable,
        ),
    ];
    for (chart, namespace, sets) in cases {
        create_namespace(&client, namespace).await.unwrap();
        let rendered = Helm::offline()
            .template(chart, "dry-run", namespace, sets)
            .expect("the chart renders");
        let args = ["apply", "--dry-run=server", "-f", "-"];
        let out = kubectl(cluster.kubeconfig_path(), &args, Some(&rendered.yaml)).unwrap();
        assert!(out.success, "{} {sets:?}:\n{}", chart.name(), out.text());
        let applied = out.stdout.lines().count();
        assert_eq!(applied, rendered.docs.len(), "{}", out.stdout);
        assert!(out.stdout.contains("(server dry run)"), "{}", out.stdout);
    }
}

#[tokio::test]
async fn the_workspace_chart_installs_upgrades_and_uninstalls() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let helm = Helm::for_cluster(cluster.kubeconfig_path());
    let (release, ns) = ("kaito-workspace", "kaito-workspace");
    let dir = chart_dir(Chart::Workspace);
    let install = [
        "install",
        release,
        &dir,
        "--namespace",
        ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        HELM_TIMEOUT,
    ];
    helm.run(&install).unwrap().ok("helm install").unwrap();

    ready_pods(&client, ns, "app.kubernetes.io/name=workspace", 1).await;
    // The device plugin runs on the GPU node and nowhere else.
    let plugins = ready_pods(
        &client,
        ns,
        "app.kubernetes.io/name=nvidia-device-plugin",
        1,
    )
    .await;
    let node = plugins[0].spec.as_ref().and_then(|s| s.node_name.clone());
    assert_eq!(node.as_deref(), Some("gpu-0"));
    for name in [
        "lora-params-template",
        "qlora-params-template",
        "inference-params-template",
    ] {
        let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), ns);
        assert!(maps.get_opt(name).await.unwrap().is_some(), "{name}");
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    assert!(
        accounts
            .get_opt("kaito-workspace-sa")
            .await
            .unwrap()
            .is_some()
    );
    write_as_the_controller(&client, ns).await;

    let upgrade = helm_args(
        &[
            "upgrade",
            release,
            &dir,
            "--namespace",
            ns,
            "--wait",
            "--timeout",
            HELM_TIMEOUT,
        ],
        &[
            ("replicaCount", "2"),
            ("logging.level", "debug"),
            ("nvidiaDevicePlugin.enabled", "false"),
        ],
    );
    helm.run(&upgrade).unwrap().ok("helm upgrade").unwrap();
    ready_pods(&client, ns, "app.kubernetes.io/name=workspace", 2).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment = deployments.get("kaito-workspace").await.unwrap();
    assert_eq!(
        container_env(&deployment, "LEADER_ELECT").as_deref(),
        Some("true")
    );
    assert_eq!(
        container_env(&deployment, "LOG_LEVEL").as_deref(),
        Some("debug")
    );
    let roles: Api<Role> = Api::namespaced(client.clone(), ns);
    let role = roles.get("kaito-workspace").await.unwrap();
    let grants_leases = role.rules.unwrap_or_default().iter().any(|rule| {
        rule.resources
            .as_ref()
            .is_some_and(|r| r.contains(&"leases".to_owned()))
    });
    assert!(grants_leases, "two replicas elect a leader");
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    gone(&daemon_sets, "nvidia-device-plugin-daemonset").await;
    assert_controller_writes_kept(&client, ns).await;

    let uninstall = [
        "uninstall",
        release,
        "--namespace",
        ns,
        "--wait",
        "--timeout",
        HELM_TIMEOUT,
    ];
    helm.run(&uninstall).unwrap().ok("helm uninstall").unwrap();
    gone(&deployments, "kaito-workspace").await;
    gone(&Api::<ClusterRole>::all(client.clone()), "kaito-workspace").await;
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    gone(&webhooks, "validation.workspace.kaito.sh").await;
    // The CRD outlives the release, so that uninstalling never deletes users' Workspaces.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(crds.get_opt("workspaces.kaito.sh").await.unwrap().is_some());
}

#[tokio::test]
async fn the_gpu_provisioner_chart_installs_upgrades_and_uninstalls() {
    let cluster = cluster().await;
    let client = cluster.client().unwrap();
    let helm = Helm::for_cluster(cluster.kubeconfig_path());
    let (release, ns) = ("gpu-provisioner", "gpu-provisioner");
    let dir = chart_dir(Chart::GpuProvisioner);
    let install = helm_args(
        &[
            "install",
            release,
            &dir,
            "--namespace",
            ns,
            "--create-namespace",
            "--wait",
            "--timeout",
            HELM_TIMEOUT,
        ],
        PROVISIONER_REQUIRED,
    );
    helm.run(&install).unwrap().ok("helm install").unwrap();
    let selector = "app.kubernetes.io/name=gpu-provisioner";
    let pods = ready_pods(&client, ns, selector, 1).await;
    assert_eq!(
        pods[0]
            .labels()
            .get("azure.workload.identity/use")
            .map(String::as_str),
        Some("true")
    );
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let account = accounts.get("gpu-provisioner").await.unwrap();
    assert!(
        account
            .annotations()
            .contains_key("azure.workload.identity/client-id")
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ["machines.karpenter.sh", "nodeclaims.karpenter.sh"] {
        assert!(crds.get_opt(crd).await.unwrap().is_some(), "{crd}");
    }

    let mut upgrade_sets = PROVISIONER_REQUIRED.to_vec();
    upgrade_sets.extend([
        ("replicas", "2"),
        ("logLevel", "debug"),
        ("azure.authMode", "managed-identity"),
    ]);
    let upgrade = helm_args(
        &[
            "upgrade",
            release,
            &dir,
            "--namespace",
            ns,
            "--wait",
            "--timeout",
            HELM_TIMEOUT,
        ],
        &upgrade_sets,
    );
    helm.run(&upgrade).unwrap().ok("helm upgrade").unwrap();
    let pods = ready_pods(&client, ns, selector, 2).await;
    assert!(
        pods.iter()
            .all(|pod| !pod.labels().contains_key("azure.workload.identity/use")),
        "managed identity needs no projected token"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment = deployments.get("gpu-provisioner").await.unwrap();
    assert_eq!(
        container_env(&deployment, "AZURE_AUTH_MODE").as_deref(),
        Some("managed-identity")
    );
    assert_eq!(
        container_env(&deployment, "AZURE_CLIENT_ID").as_deref(),
        Some("5a0e2a1c-6d0b-4b0e-9c55-2f0f3c3d4e5f")
    );

    let uninstall = [
        "uninstall",
        release,
        "--namespace",
        ns,
        "--wait",
        "--timeout",
        HELM_TIMEOUT,
    ];
    helm.run(&uninstall).unwrap().ok("helm uninstall").unwrap();
    gone(&deployments, "gpu-provisioner").await;
    gone(
        &Api::<Role>::namespaced(client.clone(), ns),
        "gpu-provisioner",
    )
    .await;
    for crd in ["machines.karpenter.sh", "nodeclaims.karpenter.sh"] {
        assert!(crds.get_opt(crd).await.unwrap().is_some(), "{crd} is kept");
    }
}

#[tokio::test]
async fn bad_values_fail_helm_install_with_a_message_naming_the_value() {
    let cluster = cluster().await;
    let helm = Helm::for_cluster(cluster.kubeconfig_path());
    let mut without_subscription: Vec<(&str, &str)> = PROVISIONER_REQUIRED
        .iter()
        .copied()
        .filter(|(key, _)| *key != "azure.subscriptionId")
        .collect();
    without_subscription.push(("azure.location", "eastus"));
    let provisioner = |extra: &[(&'static str, &'static str)]| {
        let mut sets = PROVISIONER_REQUIRED.to_vec();
        sets.extend_from_slice(extra);
        sets
    };
    let cases: Vec<BadValues> = vec![
        (
            Chart::Workspace,
            vec![("nodeRequestAPI", "karpenter")],
            "/nodeRequestAPI",
        ),
        (
            Chart::Workspace,
            vec![("replicaCount", "-1")],
            "/replicaCount",
        ),
        (
            Chart::Workspace,
            vec![("logging.format", "xml")],
            "/logging/format",
        ),
        (
            Chart::Workspace,
            vec![("featureGates.Warp", "true")],
            "Warp",
        ),
        (
            Chart::Workspace,
            vec![("cloudProviderName", "gcp")],
            "/cloudProviderName",
        ),
        (
            Chart::Workspace,
            vec![("resources.limits.memory", "null")],
            "memory",
        ),
        (
            Chart::GpuProvisioner,
            without_subscription,
            "/azure/subscriptionId",
        ),
        (
            Chart::GpuProvisioner,
            provisioner(&[("replicas", "-3")]),
            "/replicas",
        ),
        (
            Chart::GpuProvisioner,
            provisioner(&[("logFormat", "yaml")]),
            "/logFormat",
        ),
        (
            Chart::GpuProvisioner,
            provisioner(&[("azure.authMode", "password")]),
            "/azure/authMode",
        ),
        (
            Chart::GpuProvisioner,
            provisioner(&[("azure.authMode", "client-secret")]),
            "/azure/clientSecret/secretName",
        ),
        (
            Chart::GpuProvisioner,
            provisioner(&[("controller.settings.gcInterval", "soon")]),
            "/controller/settings/gcInterval",
        ),
        (
            Chart::GpuProvisioner,
            provisioner(&[
                ("controller.env[0].name", "X"),
                ("controller.env[0].value", "1"),
            ]),
            "/controller/env/0/value",
        ),
    ];
    let dirs = [
        (Chart::Workspace, chart_dir(Chart::Workspace)),
        (Chart::GpuProvisioner, chart_dir(Chart::GpuProvisioner)),
    ];
    for (chart, sets, named) in &cases {
        let dir = &dirs.iter().find(|(c, _)| c == chart).unwrap().1;
        let args = helm_args(
            &["install", "bad-values", dir, "--namespace", "default"],
            sets,
        );
        let out = helm.run(&args).unwrap();
        assert!(!out.success, "{sets:?} was accepted");
        assert!(
            out.stderr.contains(named),
            "{sets:?}: the message does not name {named}:\n{}",
            out.stderr
        );
    }
    let list = helm.run(&["list", "--all-namespaces", "--all"]).unwrap();
    assert!(!list.stdout.contains("bad-values"), "{}", list.stdout);
}

/// A chart, values it must refuse, and the value path its message must name.
type BadValues = (Chart, Vec<(&'static str, &'static str)>, &'static str);

/// Asks the apiserver whether `identity` may do `verb` on `resource`.
async fn allowed(client: &Client, identity: &Identity, attributes: Value) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(identity.name.clone()),
            groups: Some(identity.groups.clone()),
            resource_attributes: Some(
                serde_json::from_value::<ResourceAttributes>(attributes).unwrap(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await.unwrap();
    answer.status.is_some_and(|status| status.allowed)
}

fn assert_forbidden<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

/// Applies only the identity and RBAC objects of a rendered chart.
fn apply_rbac(cluster: &Cluster, chart: Chart, namespace: &str, sets: &[(&str, &str)]) {
    let rendered = Helm::offline()
        .template(chart, "rbac", namespace, sets)
        .unwrap();
    let kinds = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    let yaml = rendered
        .to_yaml(|doc| kinds.iter().any(|kind| doc["kind"] == *kind))
        .unwrap();
    let out = kubectl(
        cluster.kubeconfig_path(),
        &["apply", "-f", "-"],
        Some(&yaml),
    )
    .unwrap();
    assert!(out.success, "{}", out.text());
}

#[tokio::test]
async fn the_chart_identities_are_refused_what_the_controllers_must_not_do() {
    let cluster = cluster().await;
    let admin = cluster.client().unwrap();
    for ns in [RBAC_WORKSPACE.0, RBAC_PROVISIONER.0] {
        create_namespace(&admin, ns).await.unwrap();
    }
    apply_rbac(
        cluster,
        Chart::Workspace,
        RBAC_WORKSPACE.0,
        &[("leaderElection.enabled", "true")],
    );
    apply_rbac(cluster, Chart::GpuProvisioner, RBAC_PROVISIONER.0, &[]);
    let workspace = Identity::service_account(RBAC_WORKSPACE.0, RBAC_WORKSPACE.1);
    let provisioner = Identity::service_account(RBAC_PROVISIONER.0, RBAC_PROVISIONER.1);
    let (ws_ns, gp_ns) = (RBAC_WORKSPACE.0, RBAC_PROVISIONER.0);

    // Real requests as the workspace controller's ServiceAccount.
    let as_workspace = cluster.client_as(&workspace.name).unwrap();
    assert_forbidden(
        "workspace: list Secrets in all namespaces",
        Api::<Secret>::all(as_workspace.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "workspace: read another Secret of its namespace",
        Api::<Secret>::namespaced(as_workspace.clone(), ws_ns)
            .get("someone-elses-secret")
            .await,
    );
    assert_forbidden(
        "workspace: delete a Namespace",
        Api::<Namespace>::all(as_workspace.clone())
            .delete("default", &DeleteParams::default())
            .await,
    );
    assert_forbidden(
        "workspace: read another Lease",
        Api::<Lease>::namespaced(as_workspace.clone(), ws_ns)
            .get("kube-scheduler")
            .await,
    );
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "intruder"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    assert_forbidden(
        "workspace: create a Pod",
        Api::<Pod>::namespaced(as_workspace.clone(), "default")
            .create(&PostParams::default(), &pod)
            .await,
    );
    // Its own certificate Secret is allowed: not there yet, so 404 rather than 403.
    let own = Api::<Secret>::namespaced(as_workspace, ws_ns)
        .get("workspace-webhook-cert")
        .await;
    assert!(
        matches!(&own, Err(kube::Error::Api(status)) if status.code == 404),
        "{own:?}"
    );

    // Real requests as the provisioner's ServiceAccount.
    let as_provisioner = cluster.client_as(&provisioner.name).unwrap();
    assert_forbidden(
        "provisioner: list Secrets in all namespaces",
        Api::<Secret>::all(as_provisioner.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "provisioner: list Pods",
        Api::<Pod>::all(as_provisioner.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_forbidden(
        "provisioner: delete a Namespace",
        Api::<Namespace>::all(as_provisioner)
            .delete("default", &DeleteParams::default())
            .await,
    );

    // The whole matrix, answered by the authorizer.
    let denied = [
        (
            &workspace,
            json!({"verb": "delete", "resource": "namespaces"}),
        ),
        (&workspace, json!({"verb": "list", "resource": "secrets"})),
        (
            &workspace,
            json!({"verb": "update", "resource": "secrets", "namespace": ws_ns,
                   "name": "workspace-webhook-cert"}),
        ),
        (
            &workspace,
            json!({"verb": "create", "resource": "pods", "namespace": "default"}),
        ),
        (&workspace, json!({"verb": "delete", "resource": "nodes"})),
        (
            &workspace,
            json!({"verb": "delete", "group": "kaito.sh", "resource": "workspaces",
                   "namespace": "default"}),
        ),
        (
            &workspace,
            json!({"verb": "patch", "group": "admissionregistration.k8s.io",
                   "resource": "validatingwebhookconfigurations", "name": "someone-else"}),
        ),
        (
            &workspace,
            json!({"verb": "create", "group": "rbac.authorization.k8s.io",
                   "resource": "clusterrolebindings"}),
        ),
        (
            &workspace,
            json!({"verb": "patch", "group": "coordination.k8s.io", "resource": "leases",
                   "namespace": ws_ns, "name": "kube-controller-manager"}),
        ),
        (
            &provisioner,
            json!({"verb": "create", "group": "karpenter.sh", "resource": "nodeclaims"}),
        ),
        (
            &provisioner,
            json!({"verb": "get", "resource": "secrets", "namespace": gp_ns}),
        ),
        (&provisioner, json!({"verb": "create", "resource": "nodes"})),
        (
            &provisioner,
            json!({"verb": "patch", "group": "kaito.sh", "resource": "workspaces",
                   "namespace": "default"}),
        ),
        (
            &provisioner,
            json!({"verb": "patch", "group": "coordination.k8s.io", "resource": "leases",
                   "namespace": gp_ns, "name": "another-lease"}),
        ),
    ];
    for (identity, attributes) in &denied {
        assert!(
            !allowed(&admin, identity, attributes.clone()).await,
            "{} may {attributes}",
            identity.name
        );
    }
    let granted = [
        (
            &workspace,
            json!({"verb": "watch", "group": "kaito.sh", "resource": "workspaces"}),
        ),
        (
            &workspace,
            json!({"verb": "patch", "group": "kaito.sh", "resource": "workspaces",
                   "subresource": "status", "namespace": "team-a"}),
        ),
        (
            &workspace,
            json!({"verb": "create", "group": "karpenter.sh", "resource": "nodeclaims"}),
        ),
        (
            &workspace,
            json!({"verb": "patch", "resource": "secrets", "namespace": ws_ns,
                   "name": "workspace-webhook-cert"}),
        ),
        (
            &workspace,
            json!({"verb": "patch", "group": "coordination.k8s.io", "resource": "leases",
                   "namespace": ws_ns, "name": "ef60f9b0.io"}),
        ),
        (
            &provisioner,
            json!({"verb": "patch", "group": "karpenter.sh", "resource": "nodeclaims",
                   "subresource": "status"}),
        ),
        (&provisioner, json!({"verb": "delete", "resource": "nodes"})),
        (
            &provisioner,
            json!({"verb": "patch", "group": "coordination.k8s.io", "resource": "leases",
                   "namespace": gp_ns, "name": "gpu-provisioner-leader-election"}),
        ),
    ];
    for (identity, attributes) in &granted {
        assert!(
            allowed(&admin, identity, attributes.clone()).await,
            "{} may not {attributes}",
            identity.name
        );
    }
}
