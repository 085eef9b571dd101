//! A small stand-in provisioner for the controller's tests: every node request labelled with
//! a workspace gets a simulated GPU node and Ready conditions; requests for instance types
//! marked failing get a False launch with a quota message instead. It polls, which is fine
//! for test code.

use std::{collections::BTreeSet, sync::Mutex, time::Duration};

use k8s_openapi::api::core::v1::Node;
use kaito_api::{Cloud, Machine, NodeClaim, NodeRequest, NodeRequestKind, labels as l};
use kaito_testenv::{SimNode, add_node};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};

/// Label on simulated nodes naming the request they were made for.
pub const REQUEST_LABEL: &str = "fake.kaito.sh/request";

static FAILING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Makes launches of an instance type fail (until [`heal`]) with a quota message.
pub fn fail_launches_of(instance_type: &str) {
    FAILING
        .lock()
        .expect("lock")
        .insert(instance_type.to_ascii_lowercase());
}

/// Lets launches of an instance type succeed again.
pub fn heal(instance_type: &str) {
    FAILING
        .lock()
        .expect("lock")
        .remove(&instance_type.to_ascii_lowercase());
}

fn failing(instance_type: &str) -> bool {
    FAILING
        .lock()
        .map(|f| f.contains(&instance_type.to_ascii_lowercase()))
        .unwrap_or(false)
}

/// Quota message the stand-in reports, shaped like the cloud's.
pub const QUOTA_MESSAGE: &str = "all requested instance types were unavailable during launch: \
    OperationNotAllowed: Operation could not be completed as it results in exceeding approved \
    standardNCADSA100v4Family Cores quota. Current limit: 0, requested: 24";

fn conditions(kind: NodeRequestKind, ok: bool) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let types = kind.step_conditions();
    let mut out: Vec<serde_json::Value> = Vec::new();
    if ok {
        for t in types.iter().chain(["Ready"].iter()) {
            out.push(serde_json::json!({
                "type": t,
                "status": "True",
                "reason": "",
                "message": "",
                "lastTransitionTime": now
            }));
        }
    } else {
        out.push(serde_json::json!({
            "type": types[0],
            "status": "False",
            "reason": "InsufficientCapacity",
            "message": QUOTA_MESSAGE,
            "lastTransitionTime": now
        }));
        out.push(serde_json::json!({
            "type": "Ready",
            "status": "False",
            "reason": "InsufficientCapacity",
            "message": QUOTA_MESSAGE,
            "lastTransitionTime": now
        }));
    }
    serde_json::Value::Array(out)
}

async fn provision<R>(client: &Client, api: &Api<R>, req: &R) -> Result<(), kube::Error>
where
    R: NodeRequest + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = req.name_any();
    let sku = req.instance_type().unwrap_or("unknown").to_owned();
    if failing(&sku) {
        if req.launch_failed().is_none() {
            let status = serde_json::json!({"status": {"conditions": conditions(R::KIND, false)}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
        }
        return Ok(());
    }
    if req.is_ready() {
        return Ok(());
    }
    let gpus = Cloud::Azure.sku(&sku).map_or(1, |s| s.gpu_count());
    let node_name = format!("fake-{name}");
    let mut node = SimNode::gpu(&node_name, &sku, gpus).label(REQUEST_LABEL, &name);
    for (k, v) in req.labels() {
        node = node.label(k, v);
    }
    node = node.taint(l::TAINT_SKU_KEY, l::TAINT_SKU_VALUE, "NoSchedule");
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(&node_name).await?.is_none() {
        add_node(client, &node)
            .await
            .map_err(|e| kube::Error::Service(e.to_string().into()))?;
    }
    let status = serde_json::json!({"status": {
        "nodeName": node_name,
        "providerID": format!("kwok://{node_name}"),
        "conditions": conditions(R::KIND, true),
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

async fn round<R>(client: &Client) -> Result<(), kube::Error>
where
    R: NodeRequest + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<R> = Api::all(client.clone());
    let requests = api
        .list(&ListParams::default().labels(l::LABEL_WORKSPACE))
        .await?;
    let live: BTreeSet<String> = requests.items.iter().map(|r| r.name_any()).collect();
    for req in requests
        .items
        .iter()
        .filter(|r| r.meta().deletion_timestamp.is_none())
    {
        if let Err(e) = provision(client, &api, req).await {
            eprintln!("stand-in provisioner: {}: {e}", req.name_any());
        }
    }
    let nodes: Api<Node> = Api::all(client.clone());
    for node in nodes
        .list(&ListParams::default().labels(REQUEST_LABEL))
        .await?
        .items
    {
        let owner = node
            .labels()
            .get(REQUEST_LABEL)
            .cloned()
            .unwrap_or_default();
        if !live.contains(&owner) {
            let _ = nodes
                .delete(&node.name_any(), &DeleteParams::default())
                .await;
        }
    }
    Ok(())
}

/// Runs the stand-in forever.
pub async fn run(client: Client, kind: NodeRequestKind) {
    loop {
        let result = match kind {
            NodeRequestKind::Machine => round::<Machine>(&client).await,
            NodeRequestKind::NodeClaim => round::<NodeClaim>(&client).await,
        };
        if let Err(e) = result {
            eprintln!("stand-in provisioner round failed: {e}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
