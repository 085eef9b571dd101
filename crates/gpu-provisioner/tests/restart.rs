//! a provisioner restarted in the middle of a create resumes it without a second
//! create, finishes a deletion that came while it was down, collects an ownerless pool of
//! ours after the grace period and never touches a pool without our labels.

mod common;

use std::time::{Duration, Instant};

use aks_sim::{PoolSeed, operation};
use common::{GPU_SKU, Timings, World, create, eventually, get, node_claim, wait_ready};
use gpu_provisioner::{intent::Intent, launch::creation_label};
use k8s_openapi::jiff::Timestamp;
use kaito_api::NodeClaim;
use kube::{Api, api::DeleteParams};
use serde_json::json;

const WITHIN: Duration = Duration::from_secs(90);

fn seed(name: &str, labels: serde_json::Value) -> PoolSeed {
    let properties = json!({
        "vmSize": GPU_SKU, "count": 1, "osType": "Linux", "mode": "User", "nodeLabels": labels,
    });
    PoolSeed::new(name, properties).with_nodes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_create_resumes_without_a_second_create_and_cleans_up_what_it_owns() {
    let timings = Timings {
        gc_grace: "5s",
        ..Timings::default()
    };
    let mut world = World::new(timings).await;
    world.sim.set_create_delay(Duration::from_secs(6));
    world.start_provisioner();
    world.wait_until_ready().await;
    create(&world.client, &node_claim("resume1", Some("100Gi"))).await;
    create(&world.client, &node_claim("ws1a2b3c4d5", Some("100Gi"))).await;
    for name in ["resume1", "ws1a2b3c4d5"] {
        eventually("the create to be accepted and recorded", WITHIN, || async {
            let claim: Option<NodeClaim> = get(&world.client, name).await;
            claim
                .and_then(|c| Intent::of(&c))
                .is_some_and(|i| i.operation.is_some())
        })
        .await;
    }

    world.kill_provisioner().await;
    let claims: Api<NodeClaim> = Api::all(world.client.clone());
    claims
        .delete("ws1a2b3c4d5", &DeleteParams::default())
        .await
        .unwrap();
    let now = creation_label(Timestamp::now());
    let ours = json!({
        "kaito.sh/workspace": "gone", "kaito.sh/workspacenamespace": "default",
        "karpenter.sh/nodepool": "kaito", "kaito.sh/creation-timestamp": now,
    });
    world.sim.insert_pool(seed("orphan1", ours)).await.unwrap();
    world
        .sim
        .insert_pool(seed("userpool", json!({"team": "ml"})))
        .await
        .unwrap();
    world.start_provisioner();

    let _: NodeClaim = wait_ready(&world.client, "resume1", WITHIN).await;
    let puts = world.sim.put_bodies();
    assert_eq!(
        puts.iter().filter(|p| p.pool == "resume1").count(),
        1,
        "no second create"
    );

    let deadline = Instant::now() + WITHIN;
    while claims.get_opt("ws1a2b3c4d5").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the deleted claim was never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        world.sim.pool("ws1a2b3c4d5").is_none(),
        "its pool went before its finalizer"
    );
    assert!(
        common::pool_nodes(&world.client, "ws1a2b3c4d5")
            .await
            .is_empty()
    );
    assert_eq!(puts.iter().filter(|p| p.pool == "ws1a2b3c4d5").count(), 1);

    eventually(
        "the ownerless pool of ours to be collected",
        WITHIN,
        || async { world.sim.pool("orphan1").is_none() },
    )
    .await;
    eventually("its node to be gone", WITHIN, || async {
        common::pool_nodes(&world.client, "orphan1")
            .await
            .is_empty()
    })
    .await;
    // Several more collection rounds pass; the user's pool is still there, nodes and all.
    let lists = world.sim.requests().of(operation::POOL_LIST);
    eventually("more collection rounds", WITHIN, || async {
        world.sim.requests().of(operation::POOL_LIST) >= lists + 5
    })
    .await;
    assert!(
        world.sim.pool("userpool").is_some(),
        "a pool without our labels is never touched"
    );
    assert_eq!(common::pool_nodes(&world.client, "userpool").await.len(), 1);
    assert!(
        world
            .metrics()
            .await
            .contains("gpu_provisioner_gc_collected_pools_total 1")
    );

    world.clean_up(&["resume1"]).await;
    assert!(world.sim.remove_pool("userpool").await);
}
