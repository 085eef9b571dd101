//! Swapping the provisioner: the workspace chart in `nodeclaim` mode, with no gpu-provisioner
//! chart installed, works with any Karpenter-compatible provisioner. Here a minimal stand-in
//! that knows only karpenter.sh/v1 NodeClaims fulfils them, while the workspace controller runs
//! as a process with the chart's environment and the identity of the chart's ServiceAccount.
// Test code fails loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{collections::BTreeMap, process::Command, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::{
        admissionregistration::v1::ValidatingWebhookConfiguration, coordination::v1::Lease,
        core::v1::Node,
    },
    jiff::Timestamp,
};
use kaito_api::Workspace;
use kaito_chart_tests::{
    Chart, Helm, apply_and_establish, controller_binary, eventually, free_port, http_status,
};
use kaito_testenv::{
    Cluster, ClusterOptions, Identity, SimNode, Supervisor, add_node, create_namespace,
};
use kube::{
    Api, Client, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
        PostParams,
    },
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};

/// Where the chart is installed, and its ServiceAccount there.
const RELEASE: &str = "kaito-workspace";
const NAMESPACE: &str = "kaito-swap";
const SERVICE_ACCOUNT: &str = "kaito-workspace-sa";

/// The values that swap the provisioner: node requests as karpenter.sh/v1 NodeClaims, and
/// the Karpenter CRDs from this chart because no provisioner chart brings them here.
const SWAP_VALUES: &[(&str, &str)] = &[
    ("nodeRequestAPI", "nodeclaim"),
    ("karpenterCRDs.install", "true"),
    // Also exercise the Lease grant, and keep the log readable.
    ("leaderElection.enabled", "true"),
    ("logging.format", "text"),
    ("logging.level", "debug"),
    ("nvidiaDevicePlugin.enabled", "false"),
];

const WAIT: Duration = Duration::from_secs(180);

mod stand_in {
    //! A Karpenter-compatible provisioner in miniature. It knows the karpenter.sh/v1 NodeClaim
    //! API and nothing of KAITO: each claim gets a finalizer, a simulated node carrying the
    //! claim's labels and taints, and the Launched, Registered, Initialized and Ready
    //! conditions; a deleted claim loses its node, then its finalizer.

    use super::*;

    const FINALIZER: &str = "karpenter.sh/termination";
    const INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";

    /// GPUs of the instance types the test asks for (a real provider knows its catalogue).
    fn gpus(instance_type: &str) -> u32 {
        match instance_type {
            "Standard_NC12s_v3" => 2,
            "Standard_NC24s_v3" => 4,
            _ => 1,
        }
    }

    fn claims(client: &Client) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim");
        Api::all_with(
            client.clone(),
            &ApiResource::from_gvk_with_plural(&gvk, "nodeclaims"),
        )
    }

    fn node_name(claim: &DynamicObject) -> String {
        format!("standin-{}", claim.name_any())
    }

    /// Watches NodeClaims and reconciles all of them on every change (and every second, so a
    /// failed step is retried).
    pub async fn run(client: Client) {
        let api = claims(&client);
        let mut changes = watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        loop {
            if let Ok(list) = api.list(&ListParams::default()).await {
                for claim in list.items {
                    if let Err(error) = reconcile(&client, &api, &claim).await {
                        eprintln!("stand-in: {}: {error}", claim.name_any());
                    }
                }
            }
            tokio::select! {
                _ = changes.next() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn reconcile(
        client: &Client,
        api: &Api<DynamicObject>,
        claim: &DynamicObject,
    ) -> Result<(), kube::Error> {
        let name = claim.name_any();
        let ours = claim.finalizers().iter().any(|f| f == FINALIZER);
        if claim.metadata.deletion_timestamp.is_some() {
            return terminate(client, api, claim, ours).await;
        }
        if !ours {
            let mut finalizers = claim.finalizers().to_vec();
            finalizers.push(FINALIZER.to_owned());
            let patch = json!({"metadata": {"finalizers": finalizers}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            return Ok(());
        }
        if claim.data["status"]["nodeName"].is_string() {
            return Ok(());
        }
        let node = launch(client, claim).await?;
        let now = Timestamp::now().to_string();
        let conditions: Vec<Value> = ["Launched", "Registered", "Initialized", "Ready"]
            .iter()
            .map(|kind| {
                json!({"type": kind, "status": "True", "reason": kind, "message": "",
                       "lastTransitionTime": now})
            })
            .collect();
        let status = json!({"status": {
            "nodeName": node,
            "providerID": format!("kwok://{node}"),
            "conditions": conditions,
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }

    /// Creates the claim's node (labels from the claim and its single-valued `In`
    /// requirements, taints from the claim), as a cloud instance joining would.
    async fn launch(client: &Client, claim: &DynamicObject) -> Result<String, kube::Error> {
        let name = node_name(claim);
        let spec = &claim.data["spec"];
        let mut labels: BTreeMap<String, String> = claim.labels().clone();
        for requirement in spec["requirements"].as_array().into_iter().flatten() {
            let values = requirement["values"].as_array();
            if requirement["operator"] == "In"
                && let (Some(key), Some([Value::String(value)])) =
                    (requirement["key"].as_str(), values.map(Vec::as_slice))
            {
                labels.insert(key.to_owned(), value.clone());
            }
        }
        let instance_type = labels.get(INSTANCE_TYPE).cloned().unwrap_or_default();
        let mut node = SimNode::gpu(&name, &instance_type, gpus(&instance_type))
            .labels(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .label("karpenter.sh/registered", "true")
            .label("karpenter.sh/initialized", "true");
        for taint in spec["taints"].as_array().into_iter().flatten() {
            node = node.taint(
                taint["key"].as_str().unwrap_or_default(),
                taint["value"].as_str().unwrap_or_default(),
                taint["effect"].as_str().unwrap_or("NoSchedule"),
            );
        }
        let nodes: Api<Node> = Api::all(client.clone());
        if nodes.get_opt(&name).await?.is_none() {
            add_node(client, &node)
                .await
                .map_err(|e| kube::Error::Service(e.to_string().into()))?;
        }
        Ok(name)
    }

    async fn terminate(
        client: &Client,
        api: &Api<DynamicObject>,
        claim: &DynamicObject,
        ours: bool,
    ) -> Result<(), kube::Error> {
        if !ours {
            return Ok(());
        }
        let nodes: Api<Node> = Api::all(client.clone());
        match nodes
            .delete(&node_name(claim), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error),
        }
        let rest: Vec<&String> = claim
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .collect();
        let patch = json!({"metadata": {"finalizers": rest}});
        api.patch(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        Ok(())
    }

    /// Every NodeClaim in the cluster.
    pub async fn all(client: &Client) -> Vec<DynamicObject> {
        claims(client)
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .unwrap_or_default()
    }
}

/// Applies what the chart renders, except the controller's Deployment (the controller runs
/// as a process here). The webhook configurations are pointed at that process by URL.
fn apply_chart(cluster: &Cluster, rendered: &kaito_chart_tests::Rendered, webhook_url: &str) {
    let mut docs = rendered.clone();
    docs.docs.retain(|doc| doc["kind"] != "Deployment");
    for doc in &mut docs.docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if kind.ends_with("WebhookConfiguration") {
            for webhook in doc["webhooks"].as_array_mut().unwrap() {
                let path = webhook["clientConfig"]["service"]["path"].clone();
                let path = path.as_str().unwrap();
                webhook["clientConfig"] = json!({"url": format!("{webhook_url}{path}")});
            }
        }
    }
    let yaml = docs.to_yaml(|_| true).unwrap();
    let kubeconfig = cluster.kubeconfig_path();
    apply_and_establish(
        kubeconfig,
        &yaml,
        &["crd/workspaces.kaito.sh", "crd/nodeclaims.karpenter.sh"],
    )
    .unwrap();
}

/// The chart's environment for the controller, with what differs for a process on this
/// machine: local ports, the webhook by URL, and the ServiceAccount's kubeconfig.
fn controller_env(
    rendered: &kaito_chart_tests::Rendered,
    local: &[(&str, String)],
) -> Vec<(String, String)> {
    let mut env = rendered
        .container_env(RELEASE, NAMESPACE, "kaito-workspace-0")
        .unwrap();
    for (name, value) in local {
        env.retain(|(existing, _)| existing != name);
        env.push(((*name).to_owned(), value.clone()));
    }
    env
}

async fn workspace_condition(client: &Client, ns: &str, name: &str, kind: &str) -> Option<String> {
    let ws = Api::<Workspace>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()??;
    let conditions = ws.status?.conditions?;
    conditions
        .into_iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status)
}

fn inference_workspace() -> Value {
    json!({
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "workspace-phi-3-mini"},
        "resource": {
            "instanceType": "Standard_NC6s_v3",
            "labelSelector": {"matchLabels": {"apps": "phi-3"}},
        },
        "inference": {"preset": {"name": "phi-3-mini-4k-instruct"}},
    })
}

fn tuning_workspace() -> Value {
    let seed = include_str!("../../../crates/api/tests/data/workspace-tuning-phi-3.yaml")
        .replace(
            "ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1",
            "myacr.azurecr.io/phi3-adapter:0.0.1",
        )
        .replace("ACR_REGISTRY_SECRET_HERE", "acr-push");
    yaml_serde::from_str(&seed).unwrap()
}

#[tokio::test]
async fn any_karpenter_provisioner_fulfils_the_node_claims_of_the_chart_in_nodeclaim_mode() {
    let identity = Identity::service_account(NAMESPACE, SERVICE_ACCOUNT);
    let cluster = Cluster::start(ClusterOptions::default().identity(identity.clone()))
        .await
        .expect("the cluster starts");
    let admin = cluster.client().unwrap();
    create_namespace(&admin, NAMESPACE).await.unwrap();

    let rendered = Helm::offline()
        .template(Chart::Workspace, RELEASE, NAMESPACE, SWAP_VALUES)
        .expect("the chart renders");
    let (webhook_port, metrics_port, health_port) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let webhook_url = format!("https://127.0.0.1:{webhook_port}");
    apply_chart(&cluster, &rendered, &webhook_url);

    tokio::spawn(stand_in::run(admin.clone()));

    let kubeconfig = cluster.kubeconfig_for(&identity.name).unwrap();
    let env = controller_env(
        &rendered,
        &[
            ("METRICS_BIND_ADDRESS", format!("127.0.0.1:{metrics_port}")),
            (
                "HEALTH_PROBE_BIND_ADDRESS",
                format!("127.0.0.1:{health_port}"),
            ),
            ("WEBHOOK_PORT", webhook_port.to_string()),
            ("WEBHOOK_BIND_ADDRESS", "127.0.0.1".to_owned()),
            ("WEBHOOK_URL", webhook_url.clone()),
            ("KUBECONFIG_PATH", kubeconfig.display().to_string()),
        ],
    );
    assert!(env.contains(&("NODE_REQUEST_API".to_owned(), "nodeclaim".to_owned())));
    let mut command = Command::new(controller_binary("workspace-controller").unwrap());
    command.env_clear().envs(env);
    let mut supervisor = Supervisor::new(&cluster.log_dir()).unwrap();
    supervisor.spawn("workspace-controller", command).unwrap();
    let log = supervisor.log_of("workspace-controller");
    eprintln!("controller log: {}", log.display());

    let readyz = format!("http://127.0.0.1:{health_port}/readyz");
    eventually("the controller to be ready", WAIT, || async {
        (http_status(&readyz).await == Some(200)).then_some(())
    })
    .await
    .unwrap();
    // The controller holds the chart's Lease and has put its CA into the chart's webhook.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
    assert!(leases.get_opt("ef60f9b0.io").await.unwrap().is_some());
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(admin.clone());
    eventually("the CA bundle in the webhook", WAIT, || async {
        let config = webhooks
            .get_opt("validation.workspace.kaito.sh")
            .await
            .ok()??;
        let hook = config.webhooks?.into_iter().next()?;
        hook.client_config
            .ca_bundle
            .filter(|ca| !ca.0.is_empty())
            .map(|_| ())
    })
    .await
    .unwrap();

    let cases = [
        ("swap-inference", inference_workspace()),
        ("swap-tuning", tuning_workspace()),
    ];
    for (ns, doc) in &cases {
        create_namespace(&admin, ns).await.unwrap();
        let api: Api<Workspace> = Api::namespaced(admin.clone(), ns);
        let workspace: Workspace = serde_json::from_value(doc.clone()).unwrap();
        api.create(&PostParams::default(), &workspace)
            .await
            .expect("the webhook admits the Workspace");
    }
    for (ns, doc) in &cases {
        let name = doc["metadata"]["name"].as_str().unwrap();
        let ready = eventually(&format!("{ns}/{name} to be Ready"), WAIT, || async {
            let status = workspace_condition(&admin, ns, name, "WorkspaceReady").await;
            (status.as_deref() == Some("True")).then_some(())
        })
        .await;
        if ready.is_err() {
            supervisor.check_running().unwrap();
        }
        ready.unwrap();
        let ready = workspace_condition(&admin, ns, name, "NodeClaimReady").await;
        assert_eq!(ready.as_deref(), Some("True"), "{ns}/{name}");
    }
    let claims = stand_in::all(&admin).await;
    assert_eq!(claims.len(), 2, "one NodeClaim per Workspace");
    let nodes: Api<Node> = Api::all(admin.clone());
    for claim in &claims {
        let node = claim.data["status"]["nodeName"].as_str().unwrap();
        let node = nodes.get(node).await.unwrap();
        assert!(node.labels().contains_key("kaito.sh/workspace"));
    }

    for (ns, doc) in &cases {
        let name = doc["metadata"]["name"].as_str().unwrap();
        Api::<Workspace>::namespaced(admin.clone(), ns)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually(
        "the Workspaces, claims and nodes to be gone",
        WAIT,
        || async {
            let mut workspaces = 0;
            for (ns, _) in &cases {
                let api: Api<Workspace> = Api::namespaced(admin.clone(), ns);
                workspaces += api.list(&ListParams::default()).await.ok()?.items.len();
            }
            let claims = stand_in::all(&admin).await.len();
            let standins = nodes
                .list(&ListParams::default().labels("karpenter.sh/registered=true"))
                .await
                .ok()?
                .items
                .len();
            (workspaces + claims + standins == 0).then_some(())
        },
    )
    .await
    .unwrap();

    // Every call of the whole run was one the chart's RBAC allows.
    supervisor.check_running().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let denied: Vec<&str> = text
        .lines()
        .filter(|line| line.to_ascii_lowercase().contains("forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "the controller was refused:\n{}",
        denied.join("\n")
    );
}
