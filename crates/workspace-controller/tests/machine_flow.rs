//! The controller against a real local cluster that serves Machines (and no NodeClaims), with
//! a stand-in provisioner that turns Machines into simulated GPU nodes.
// Test code fails loudly, helpers included.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::time::Duration;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, StatefulSet},
        batch::v1::Job,
        core::v1::{ConfigMap, Node, Pod, Service},
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use kaito_api::{Machine, NodeRequestKind, Workspace};
use kaito_testenv::SimNode;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use support::{create_workspace, ensure_namespace, env, eventually, wait_condition};

const KIND: NodeRequestKind = NodeRequestKind::Machine;

fn phi3(name: &str, app: &str) -> String {
    format!(
        "apiVersion: kaito.sh/v1alpha1\nkind: Workspace\nmetadata:\n  name: {name}\nresource:\n  \
         instanceType: Standard_NC6s_v3\n  labelSelector:\n    matchLabels:\n      apps: {app}\n\
         inference:\n  preset:\n    name: phi-3-mini-4k-instruct\n"
    )
}

async fn machines_of(client: &kube::Client, ns: &str, name: &str) -> Vec<Machine> {
    let sel = format!("kaito.sh/workspace={name},kaito.sh/workspacenamespace={ns}");
    Api::<Machine>::all(client.clone())
        .list(&ListParams::default().labels(&sel))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_phi3_inference_workspace_becomes_ready_with_its_service_and_deployment() {
    let env = env(KIND).await;
    let (ns, name) = ("phi", "workspace-phi-3-mini");
    ensure_namespace(&env.client, ns).await;
    create_workspace(&env.client, ns, &phi3(name, "phi-3")).await;

    let ws = wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;
    for ty in [
        "ResourceReady",
        "MachineReady",
        "InferenceReady",
        "WorkspaceSucceeded",
    ] {
        assert_eq!(
            support::condition(&ws, ty).map(|c| c.status.as_str()),
            Some("True"),
            "{ty}"
        );
    }
    let status = ws.status.clone().unwrap_or_default();
    assert_eq!(status.state.map(|s| s.as_str()), Some("Ready"));
    assert_eq!(status.worker_nodes.as_ref().map(Vec::len), Some(1));

    let machines = machines_of(&env.client, ns, name).await;
    assert_eq!(machines.len(), 1);
    let m = &machines[0];
    assert!(kaito_api::validation::is_dns1035_label(
        &m.metadata.name.clone().unwrap_or_default()
    ));

    let svc = Api::<Service>::namespaced(env.client.clone(), ns)
        .get(name)
        .await
        .expect("service");
    let ports: Vec<i32> = svc
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [80, 29500]);
    let dep = Api::<Deployment>::namespaced(env.client.clone(), ns)
        .get(name)
        .await
        .expect("deployment");
    assert_eq!(dep.status.and_then(|s| s.ready_replicas), Some(1));

    Api::<Workspace>::namespaced(env.client.clone(), ns)
        .delete(name, &Default::default())
        .await
        .expect("delete");
    eventually(
        "workspace and machines gone",
        Duration::from_secs(60),
        || async {
            let ws = Api::<Workspace>::namespaced(env.client.clone(), ns)
                .get_opt(name)
                .await
                .ok()?;
            (ws.is_none() && machines_of(&env.client, ns, name).await.is_empty()).then_some(())
        },
    )
    .await;
}

async fn delete_and_wait_clean(client: &kube::Client, ns: &str, name: &str) {
    Api::<Workspace>::namespaced(client.clone(), ns)
        .delete(name, &Default::default())
        .await
        .expect("delete");
    eventually(
        "workspace, machines and owned objects gone",
        Duration::from_secs(90),
        || async {
            let ws = Api::<Workspace>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .ok()?;
            let machines = machines_of(client, ns, name).await;
            let sel = ListParams::default().labels(&format!("kaito.sh/workspace={name}"));
            let deps = Api::<Deployment>::namespaced(client.clone(), ns)
                .list(&sel)
                .await
                .ok()?;
            let svcs = Api::<Service>::namespaced(client.clone(), ns)
                .list(&sel)
                .await
                .ok()?;
            let jobs = Api::<Job>::namespaced(client.clone(), ns)
                .list(&sel)
                .await
                .ok()?;
            let sts = Api::<StatefulSet>::namespaced(client.clone(), ns)
                .list(&sel)
                .await
                .ok()?;
            let clean = ws.is_none()
                && machines.is_empty()
                && deps.items.is_empty()
                && svcs.items.is_empty()
                && jobs.items.is_empty()
                && sts.items.is_empty();
            clean.then_some(())
        },
    )
    .await;
}

const SEED: &str = include_str!("../../api/tests/data/workspace-tuning-phi-3.yaml");

fn filled_seed() -> String {
    SEED.replace(
        "ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1",
        "myacr.azurecr.io/phi3-adapter:0.0.1",
    )
    .replace("ACR_REGISTRY_SECRET_HERE", "acr-push")
}

#[tokio::test]
async fn the_seed_tuning_workspace_runs_its_job_to_success() {
    let env = env(KIND).await;
    let ns = "tuning";
    let name = "workspace-tuning-phi-3";
    ensure_namespace(&env.client, ns).await;
    create_workspace(&env.client, ns, &filled_seed()).await;

    let ws = wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;
    assert_eq!(
        support::condition(&ws, "JobStarted").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(
        ws.status.as_ref().and_then(|s| s.state).map(|s| s.as_str()),
        Some("Succeeded")
    );
    let jobs = Api::<Job>::namespaced(env.client.clone(), ns);
    let job = jobs
        .get(&format!("{name}-r1"))
        .await
        .expect("job of revision 1");
    assert_eq!(job.status.as_ref().and_then(|s| s.succeeded), Some(1));
    let pod = job.spec.and_then(|s| s.template.spec).expect("pod spec");
    let inits: Vec<String> = pod
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(inits, ["data-downloader", name]);
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), ns)
        .get(&format!("{name}-qlora-params"))
        .await
        .expect("params copy");
    assert!(cm.data.unwrap_or_default()["training_config.yaml"].contains("load_in_4bit: true"));

    delete_and_wait_clean(&env.client, ns, name).await;
}

#[tokio::test]
async fn changing_the_tuning_input_runs_revision_two() {
    let env = env(KIND).await;
    let ns = "tuning-rev";
    let name = "workspace-tuning-phi-3";
    ensure_namespace(&env.client, ns).await;
    create_workspace(&env.client, ns, &filled_seed()).await;
    wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;

    let api = Api::<Workspace>::namespaced(env.client.clone(), ns);
    let patch =
        serde_json::json!({"tuning": {"input": {"urls": ["https://example.com/other.parquet"]}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let jobs = Api::<Job>::namespaced(env.client.clone(), ns);
    eventually(
        "revision 2 job succeeded and revision 1 gone",
        Duration::from_secs(90),
        || async {
            let second = jobs.get_opt(&format!("{name}-r2")).await.ok().flatten()?;
            let first = jobs.get_opt(&format!("{name}-r1")).await.ok()?;
            (second.status?.succeeded == Some(1) && first.is_none()).then_some(())
        },
    )
    .await;
    let ws = api.get(name).await.expect("workspace");
    assert_eq!(
        ws.annotations()
            .get("workspace.kaito.io/revision")
            .map(String::as_str),
        Some("2")
    );
    delete_and_wait_clean(&env.client, ns, name).await;
}

#[tokio::test]
async fn a_distributed_llama_runs_as_a_stateful_set_with_rendezvous_arguments() {
    let env = env(KIND).await;
    let (ns, name) = ("llama", "ws-llama-13b-chat");
    ensure_namespace(&env.client, ns).await;
    let yaml = format!(
        "apiVersion: kaito.sh/v1alpha1\nkind: Workspace\nmetadata:\n  name: {name}\nresource:\n  \
         count: 2\n  instanceType: Standard_NC12s_v3\n  labelSelector:\n    matchLabels:\n      \
         apps: llama-2-13b-chat\ninference:\n  preset:\n    name: llama-2-13b-chat\n    \
         accessMode: private\n    presetOptions:\n      \
         image: myregistry.io/llama/llama-2-13b-chat:1.0\n      imagePullSecrets: [llama-pull]\n"
    );
    create_workspace(&env.client, ns, &yaml).await;
    let ws = wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;
    assert_eq!(
        ws.status.and_then(|s| s.worker_nodes).map(|w| w.len()),
        Some(2)
    );
    assert_eq!(machines_of(&env.client, ns, name).await.len(), 2);

    let sts = Api::<StatefulSet>::namespaced(env.client.clone(), ns)
        .get(name)
        .await
        .expect("sts");
    let spec = sts.spec.clone().expect("spec");
    assert_eq!(
        spec.service_name.as_deref(),
        Some("ws-llama-13b-chat-headless")
    );
    assert_eq!(sts.status.and_then(|s| s.ready_replicas), Some(2));
    let main = &spec.template.spec.expect("pod").containers[0];
    let cmd = main.command.clone().unwrap_or_default().join(" ");
    assert!(cmd.contains("--nnodes=2 --nproc_per_node=1"), "{cmd}");
    let rendezvous = "--rdzv_endpoint=ws-llama-13b-chat-0.ws-llama-13b-chat-headless.llama.svc.\
                      cluster.local:29500";
    assert!(cmd.contains(rendezvous));
    let gpus = main
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("nvidia.com/gpu"));
    assert_eq!(
        gpus.map(|q| q.0.as_str()),
        Some("2"),
        "all GPUs of a Standard_NC12s_v3"
    );
    let headless = Api::<Service>::namespaced(env.client.clone(), ns)
        .get(&format!("{name}-headless"))
        .await
        .expect("headless service");
    assert_eq!(
        headless.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("None")
    );
    delete_and_wait_clean(&env.client, ns, name).await;
}

#[tokio::test]
async fn r10_a_template_workspace_gets_a_load_balancer_service() {
    let env = env(KIND).await;
    let (ns, name) = ("template", "ws-custom");
    ensure_namespace(&env.client, ns).await;
    let yaml = format!(
        "apiVersion: kaito.sh/v1alpha1\nkind: Workspace\nmetadata:\n  name: {name}\n  \
         annotations:\n    kaito.sh/enablelb: \"True\"\nresource:\n  \
         instanceType: Standard_NC6s_v3\n  labelSelector:\n    matchLabels:\n      \
         apps: custom\ninference:\n  template:\n    spec:\n      containers:\n      \
         - name: server\n        image: myregistry.io/server:1\n        ports:\n        \
         - containerPort: 5000\n"
    );
    create_workspace(&env.client, ns, &yaml).await;
    wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;
    let svc = Api::<Service>::namespaced(env.client.clone(), ns)
        .get(name)
        .await
        .expect("service");
    assert_eq!(
        svc.metadata.owner_references.map(|o| o[0].name.clone()),
        Some(name.to_owned())
    );
    let spec = svc.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    let http = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("http"))
        .expect("http");
    assert_eq!(
        (http.port, http.target_port),
        (80, Some(IntOrString::Int(5000)))
    );
    assert_eq!(
        spec.selector
            .unwrap_or_default()
            .get("kaito.sh/workspace")
            .map(String::as_str),
        Some(name)
    );
    delete_and_wait_clean(&env.client, ns, name).await;
}

#[tokio::test]
async fn a_workload_the_api_server_refuses_is_reported_on_the_workspace_and_in_an_event() {
    let env = env(KIND).await;
    let (ns, name) = ("refused", "ws-refused");
    ensure_namespace(&env.client, ns).await;
    // Admitted (templates are the user's own pod spec), but no valid container name.
    let yaml = format!(
        "apiVersion: kaito.sh/v1alpha1\nkind: Workspace\nmetadata:\n  name: {name}\nresource:\n  \
         instanceType: Standard_NC6s_v3\n  labelSelector:\n    matchLabels:\n      \
         apps: refused\ninference:\n  template:\n    spec:\n      containers:\n      \
         - name: Bad_Container\n        image: myregistry.io/server:1\n"
    );
    create_workspace(&env.client, ns, &yaml).await;
    let ws = eventually(
        "WorkspaceReady=False with reason WorkloadInvalid",
        Duration::from_secs(90),
        || {
            let api = Api::<Workspace>::namespaced(env.client.clone(), ns);
            async move {
                let ws = api.get_opt(name).await.ok().flatten()?;
                let ready = support::condition(&ws, "WorkspaceReady")?;
                (ready.reason == "WorkloadInvalid").then_some(ws)
            }
        },
    )
    .await;
    let ready = support::condition(&ws, "WorkspaceReady").expect("WorkspaceReady");
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("Bad_Container") && ready.message.contains("change the spec"),
        "{}",
        ready.message
    );
    // The nodes are there; only the workload is refused, and the status says so.
    let resource = support::condition(&ws, "ResourceReady").expect("ResourceReady");
    assert_eq!(resource.status, "True", "{}", resource.message);
    let events = eventually("a WorkloadInvalid event", Duration::from_secs(30), || {
        let api = Api::<k8s_openapi::api::events::v1::Event>::namespaced(env.client.clone(), ns);
        async move {
            let list = api.list(&ListParams::default()).await.ok()?;
            let found: Vec<_> = list
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("WorkloadInvalid"))
                .collect();
            (!found.is_empty()).then_some(found)
        }
    })
    .await;
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    delete_and_wait_clean(&env.client, ns, name).await;
}

#[tokio::test]
async fn a_spec_that_already_ran_keeps_running_when_rules_grow_and_a_new_one_is_held() {
    let env = env(KIND).await;
    let ns = "grown-rules";
    ensure_namespace(&env.client, ns).await;
    // Admitted without the webhook: a Secret name today's rules refuse.
    let with_bad_secret = |name: &str| {
        phi3(name, name) + "    presetOptions:\n      imagePullSecrets: [\"Old_Style_Name\"]\n"
    };
    create_workspace(&env.client, ns, &with_bad_secret("ws-new")).await;

    // The same spec, stamped with the hash a controller writes once it has run it.
    let mut ran: Workspace = yaml_serde::from_str(&with_bad_secret("ws-ran")).unwrap();
    let hash = workspace_controller::workspace::revision::spec_hash(
        &kaito_api::defaults::defaulted(&ran).spec,
    )
    .unwrap();
    ran.annotations_mut()
        .insert(kaito_api::labels::ANNOTATION_HASH.into(), hash);
    ran.metadata.namespace = Some(ns.into());
    Api::<Workspace>::namespaced(env.client.clone(), ns)
        .create(&Default::default(), &ran)
        .await
        .unwrap();

    wait_condition(&env.client, ns, "ws-ran", "WorkspaceReady", "True").await;
    let held = wait_condition(&env.client, ns, "ws-new", "WorkspaceReady", "False").await;
    let ready = support::condition(&held, "WorkspaceReady").unwrap();
    assert_eq!(ready.reason, "InvalidSpec", "{}", ready.message);
    assert!(
        ready
            .message
            .contains("inference.preset.presetOptions.imagePullSecrets[0]"),
        "{}",
        ready.message
    );
    let state = held.status.as_ref().and_then(|s| s.state);
    assert_eq!(state, Some(kaito_api::workspace::WorkspaceState::Pending));
    assert!(machines_of(&env.client, ns, "ws-new").await.is_empty());
    delete_and_wait_clean(&env.client, ns, "ws-new").await;
    delete_and_wait_clean(&env.client, ns, "ws-ran").await;
}

#[tokio::test]
async fn r04_a_quota_failure_shows_on_the_workspace_and_clears_when_the_quota_is_raised() {
    let env = env(KIND).await;
    let (ns, name) = ("quota", "ws-big");
    let sku = "Standard_NC48ads_A100_v4";
    support::provisioner::fail_launches_of(sku);
    ensure_namespace(&env.client, ns).await;
    let yaml = format!(
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: {name}\nresource:\n  \
         instanceType: {sku}\n  labelSelector:\n    matchLabels:\n      apps: big\ninference:\n  \
         preset:\n    name: phi-3-medium-4k-instruct\n"
    );
    create_workspace(&env.client, ns, &yaml).await;
    let ws = wait_condition(&env.client, ns, name, "MachineReady", "False").await;
    let res = support::condition(&ws, "ResourceReady").expect("ResourceReady");
    assert_eq!(res.status, "False");
    assert!(res.message.contains("quota"), "{}", res.message);
    assert_eq!(machines_of(&env.client, ns, name).await.len(), 1);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            machines_of(&env.client, ns, name).await.len(),
            1,
            "never more than one"
        );
    }
    support::provisioner::heal(sku);
    wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;
    assert_eq!(machines_of(&env.client, ns, name).await.len(), 1);
    delete_and_wait_clean(&env.client, ns, name).await;
}

#[tokio::test]
async fn r06_a_stale_cache_never_creates_extra_machines() {
    let env = env(KIND).await;
    let (ns, name) = ("stale", "ws-stale");
    ensure_namespace(&env.client, ns).await;
    let yaml = "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: ws-stale\n\
                resource:\n  count: 2\n  instanceType: Standard_NC6s_v3\n  labelSelector:\n    \
                matchLabels:\n      apps: stale\ninference:\n  preset:\n    \
                name: phi-3-mini-4k-instruct\n";
    // The running controller reconciles this workspace as usual; on top of that, contexts
    // whose caches never fill (a view that lags for the whole test) reconcile it 20 times,
    // once with one process's memory of what it created and once as 20 fresh processes.
    let created = create_workspace(&env.client, ns, yaml).await;
    for fresh_process in [false, true] {
        let ctx = support::stale_context(env.client.clone(), KIND);
        for _ in 0..20 {
            let ctx = if fresh_process {
                support::stale_context(env.client.clone(), KIND)
            } else {
                ctx.clone()
            };
            workspace_controller::workspace::ensure_node_requests(&created, &ctx)
                .await
                .expect("reconcile");
        }
    }
    assert_eq!(machines_of(&env.client, ns, name).await.len(), 2);
    wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;

    // The replacement may reuse the deleted request's name (its slot is free again), so
    // tell them apart by UID.
    let victim = machines_of(&env.client, ns, name).await[0].clone();
    let victim_uid = victim.uid().unwrap_or_default();
    Api::<Machine>::all(env.client.clone())
        .delete(&victim.name_any(), &Default::default())
        .await
        .expect("delete");
    let names = eventually("one replacement", Duration::from_secs(60), || async {
        let live: Vec<Machine> = machines_of(&env.client, ns, name)
            .await
            .into_iter()
            .filter(|m| m.metadata.deletion_timestamp.is_none())
            .collect();
        let replaced = live
            .iter()
            .all(|m| m.uid().as_deref() != Some(victim_uid.as_str()));
        let names: Vec<String> = live.iter().map(|m| m.name_any()).collect();
        (live.len() == 2 && replaced).then_some(names)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        machines_of(&env.client, ns, name).await.len(),
        2,
        "exactly one replacement: {names:?}"
    );
    delete_and_wait_clean(&env.client, ns, name).await;
}

#[tokio::test]
async fn r09_tuning_pods_go_only_to_nodes_with_the_selected_label() {
    let env = env(KIND).await;
    let (ns, name) = ("selector", "ws-tune-selector");
    ensure_namespace(&env.client, ns).await;
    let labelled = SimNode::gpu("r09-labelled", "Standard_NC6s_v3", 1).label("apps", "tune-gpu");
    let other = SimNode::gpu("r09-other", "Standard_NC6s_v3", 1).label("apps", "other");
    for node in [&labelled, &other] {
        env.cluster.add_node(node).await.expect("node");
    }
    let yaml = filled_seed()
        .replace("name: workspace-tuning-phi-3", &format!("name: {name}"))
        .replace("app: tuning-phi-3", "apps: tune-gpu");
    create_workspace(&env.client, ns, &yaml).await;
    let ws = wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;
    assert_eq!(
        ws.status.and_then(|s| s.worker_nodes),
        Some(vec!["r09-labelled".to_owned()])
    );
    assert!(
        machines_of(&env.client, ns, name).await.is_empty(),
        "an existing node was used"
    );
    let pods = Api::<Pod>::namespaced(env.client.clone(), ns)
        .list(&ListParams::default().labels(&format!("kaito.sh/workspace={name}")))
        .await
        .expect("pods");
    assert!(!pods.items.is_empty());
    for pod in pods.items {
        assert_eq!(
            pod.spec.and_then(|s| s.node_name).as_deref(),
            Some("r09-labelled")
        );
    }
    let node = Api::<Node>::all(env.client.clone())
        .get("r09-labelled")
        .await
        .expect("node");
    assert_eq!(
        node.labels().get("accelerator").map(String::as_str),
        Some("nvidia")
    );
    delete_and_wait_clean(&env.client, ns, name).await;
    for node in ["r09-labelled", "r09-other"] {
        let _ = Api::<Node>::all(env.client.clone())
            .delete(node, &Default::default())
            .await;
    }
}

#[tokio::test]
async fn r07_inference_ready_follows_the_pod_through_oom_and_crash_loops() {
    let env = env(KIND).await;
    let (ns, name) = ("crashy", "ws-crashy");
    ensure_namespace(&env.client, ns).await;
    create_workspace(&env.client, ns, &phi3(name, "crashy")).await;
    wait_condition(&env.client, ns, name, "InferenceReady", "True").await;
    let pods = Api::<Pod>::namespaced(env.client.clone(), ns);
    let pod = pods
        .list(&ListParams::default().labels(&format!("kaito.sh/workspace={name}")))
        .await
        .expect("pods")
        .items
        .remove(0);
    let pod_name = pod.name_any();
    let set_status = |ready: bool, state: serde_json::Value, last: serde_json::Value| {
        let pods = pods.clone();
        let pod_name = pod_name.clone();
        async move {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let flag = if ready { "True" } else { "False" };
            let patch = serde_json::json!({"status": {
                "conditions": [
                    {"type": "Ready", "status": flag, "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": flag, "lastTransitionTime": now}
                ],
                "containerStatuses": [{
                    "name": name, "image": "img", "imageID": "img", "ready": ready,
                    "restartCount": 1, "state": state, "lastState": last
                }]
            }});
            pods.patch_status(&pod_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("patch pod status");
        }
    };
    let oom = serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}});
    set_status(false, oom.clone(), serde_json::json!({})).await;
    let ws = wait_condition(&env.client, ns, name, "InferenceReady", "False").await;
    assert_eq!(
        support::condition(&ws, "InferenceReady").map(|c| c.reason.as_str()),
        Some("ContainerOOMKilled")
    );
    assert_eq!(
        support::condition(&ws, "WorkspaceReady").map(|c| c.status.as_str()),
        Some("False")
    );

    let looping = serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}});
    set_status(false, looping, oom.clone()).await;
    eventually("crash loop reason", Duration::from_secs(60), || async {
        let ws = Api::<Workspace>::namespaced(env.client.clone(), ns)
            .get(name)
            .await
            .ok()?;
        let c = support::condition(&ws, "InferenceReady")?;
        (c.reason == "ContainerCrashLoopBackOff").then_some(())
    })
    .await;
    let ws = Api::<Workspace>::namespaced(env.client.clone(), ns)
        .get(name)
        .await
        .expect("ws");
    assert_eq!(
        ws.status.and_then(|s| s.state).map(|s| s.as_str()),
        Some("NotReady")
    );

    let started_at = k8s_openapi::jiff::Timestamp::now().to_string();
    let running = serde_json::json!({"running": {"startedAt": started_at}});
    set_status(true, running, oom).await;
    wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;
    delete_and_wait_clean(&env.client, ns, name).await;
}

#[tokio::test]
async fn adding_an_adapter_rolls_the_deployment() {
    let env = env(KIND).await;
    let (ns, name) = ("adapters", "ws-adapted");
    ensure_namespace(&env.client, ns).await;
    create_workspace(&env.client, ns, &phi3(name, "adapted")).await;
    wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;
    let deps = Api::<Deployment>::namespaced(env.client.clone(), ns);
    let before = deps
        .get(name)
        .await
        .expect("deployment")
        .metadata
        .generation;

    let patch = serde_json::json!({"inference": {"adapters": [
        {
            "source": {"name": "chat-style", "image": "myregistry.io/adapters/chat-style:1"},
            "strength": "0.5"
        }
    ]}});
    Api::<Workspace>::namespaced(env.client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let dep = eventually(
        "deployment with the adapter",
        Duration::from_secs(60),
        || async {
            let d = deps.get(name).await.ok()?;
            let inits = d
                .spec
                .as_ref()?
                .template
                .spec
                .as_ref()?
                .init_containers
                .clone()?;
            (inits.iter().any(|c| c.name == "chat-style") && d.metadata.generation > before)
                .then_some(d)
        },
    )
    .await;
    let rev = dep
        .annotations()
        .get("workspace.kaito.io/revision")
        .cloned();
    assert_eq!(rev.as_deref(), Some("2"));
    wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;
    delete_and_wait_clean(&env.client, ns, name).await;
}
