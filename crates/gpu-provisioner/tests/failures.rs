//! Cloud failures: quota, throttling storms and other transient faults, and deletes
//! during a create or after a permanent failure — the real binary against the stand-in.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use aks_sim::{FaultRule, QuotaCode, operation};
use common::{GPU_SKU, World, create, eventually, get, node_claim, wait_ready};
use kaito_api::{NodeClaim, NodeRequest, conditions::karpenter as k};
use kube::{Api, api::DeleteParams};

const WITHIN: Duration = Duration::from_secs(90);

/// Records whether the claim's launch condition was ever False while the task runs.
fn watch_for_launch_failure(world: &World, name: &str) -> Arc<AtomicBool> {
    let failed = Arc::new(AtomicBool::new(false));
    let (client, name, seen) = (world.client.clone(), name.to_owned(), failed.clone());
    tokio::spawn(async move {
        loop {
            let claim: Option<NodeClaim> = get(&client, &name).await;
            if claim.as_ref().and_then(|c| c.launch_failed()).is_some() {
                seen.store(true, Ordering::SeqCst);
            }
            if claim.is_some_and(|c| c.is_ready()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_refusal_fails_the_launch_and_a_raised_quota_provisions_without_user_action() {
    let world = World::started(Default::default()).await;
    world.sim.set_quota_code(QuotaCode::OperationNotAllowed);
    world.sim.set_quota_limit(Some(0));
    let started = Instant::now();
    create(&world.client, &node_claim("quota1", Some("100Gi"))).await;

    eventually(
        "Launched=False with the cloud's quota message",
        WITHIN,
        || async {
            let claim: Option<NodeClaim> = get(&world.client, "quota1").await;
            claim.and_then(|c| c.launch_failed()).is_some_and(|c| {
                c.reason == k::REASON_INSUFFICIENT_CAPACITY
                    && c.message.contains(k::UNAVAILABLE_PHRASE)
                    && c.message.contains("OperationNotAllowed")
                    && c.message.contains("quota")
            })
        },
    )
    .await;
    let claim: NodeClaim = get(&world.client, "quota1").await.unwrap();
    let ready = claim.condition(k::READY).unwrap();
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("quota"));
    // The slow re-check runs: a second refused create comes on its timer.
    eventually("a second, timed create attempt", WITHIN, || async {
        world.sim.requests().with_status(operation::POOL_PUT, 409) >= 2
    })
    .await;

    world.sim.set_quota_limit(None);
    let _: NodeClaim = wait_ready(&world.client, "quota1", WITHIN).await;

    let elapsed = started.elapsed();
    let counts = world.sim.requests();
    assert_eq!(
        counts.with_status(operation::POOL_PUT, 201),
        1,
        "one pool created"
    );
    let attempts = counts.of(operation::POOL_PUT);
    let bound = 2 + elapsed.as_secs() / 3;
    assert!(
        attempts <= bound,
        "{attempts} creates in {elapsed:?}: no storm (bound {bound})"
    );
    assert_eq!(
        world
            .sim
            .pools()
            .iter()
            .filter(|p| p["name"] == "quota1")
            .count(),
        1
    );
    let claims: Api<NodeClaim> = Api::all(world.client.clone());
    assert!(
        claims.get_opt("quota1").await.unwrap().is_some(),
        "the claim was never deleted"
    );

    world.clean_up(&["quota1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_ridden_out_without_losing_or_duplicating_a_pool() {
    let world = World::started(Default::default()).await;
    world.sim.add_fault(
        FaultRule::throttle(6)
            .on(operation::POOL_PUT)
            .retry_after(1),
    );
    world.sim.add_fault(
        FaultRule::throttle(6)
            .on(operation::POOL_GET)
            .retry_after(1),
    );
    world.sim.reset_requests();
    let failed = watch_for_launch_failure(&world, "storm1");
    create(&world.client, &node_claim("storm1", Some("100Gi"))).await;

    let _: NodeClaim = wait_ready(&world.client, "storm1", WITHIN).await;

    assert!(
        !failed.load(Ordering::SeqCst),
        "throttling never became a launch failure"
    );
    let counts = world.sim.requests();
    assert_eq!(
        counts.with_status(operation::POOL_PUT, 201),
        1,
        "exactly one pool created"
    );
    assert_eq!(
        world
            .sim
            .pools()
            .iter()
            .filter(|p| p["name"] == "storm1")
            .count(),
        1
    );
    let pool_requests = counts.of(operation::POOL_PUT)
        + counts.of(operation::POOL_GET)
        + counts.of(operation::OPERATION_GET);
    eprintln!("MEASURED: ARM pool requests for one node through a 429 storm: {pool_requests}");
    assert!(
        pool_requests <= 20,
        "{pool_requests} requests: {:?}",
        counts.entries()
    );

    world.clean_up(&["storm1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_hangs_and_conflicts_are_retried_and_never_fail_the_launch() {
    let world = World::started(Default::default()).await;
    world
        .sim
        .add_fault(FaultRule::in_progress(2).on(operation::POOL_PUT));
    world
        .sim
        .add_fault(FaultRule::status(500, 2).on(operation::POOL_PUT));
    world
        .sim
        .add_fault(FaultRule::status(503, 2).on(operation::POOL_GET));
    world
        .sim
        .add_fault(FaultRule::hang(Duration::from_secs(2), 1).on(operation::POOL_GET));
    let failed = watch_for_launch_failure(&world, "flaky1");
    create(&world.client, &node_claim("flaky1", Some("100Gi"))).await;

    let _: NodeClaim = wait_ready(&world.client, "flaky1", WITHIN).await;

    assert!(
        !failed.load(Ordering::SeqCst),
        "transient faults never became a launch failure"
    );
    assert_eq!(
        world.sim.requests().with_status(operation::POOL_PUT, 201),
        1
    );
    world.clean_up(&["flaky1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_deleted_mid_create_keeps_its_finalizer_until_pool_and_node_are_gone() {
    let world = World::started(Default::default()).await;
    world.sim.set_create_delay(Duration::from_secs(4));
    create(&world.client, &node_claim("midcreate1", Some("100Gi"))).await;
    eventually("the pool to be Creating", WITHIN, || async {
        world
            .sim
            .pool("midcreate1")
            .is_some_and(|p| p["properties"]["provisioningState"] == "Creating")
    })
    .await;

    let claims: Api<NodeClaim> = Api::all(world.client.clone());
    claims
        .delete("midcreate1", &DeleteParams::default())
        .await
        .unwrap();

    let deadline = Instant::now() + WITHIN;
    loop {
        if claims.get_opt("midcreate1").await.unwrap().is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "the claim was never released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        world.sim.pool("midcreate1").is_none(),
        "the pool went before the finalizer"
    );
    let nodes = common::pool_nodes(&world.client, "midcreate1").await;
    assert!(
        nodes.is_empty(),
        "no node left without an owner: {:?}",
        common::names(&nodes)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_vm_size_is_not_allowed_is_deleted_promptly_with_one_delete_at_most() {
    let world = World::started(Default::default()).await;
    world.sim.set_not_allowed_vm_sizes([GPU_SKU]);
    create(&world.client, &node_claim("notallowed1", Some("100Gi"))).await;
    eventually("the launch to fail for good", WITHIN, || async {
        let claim: Option<NodeClaim> = get(&world.client, "notallowed1").await;
        claim.and_then(|c| c.launch_failed()).is_some_and(|c| {
            c.message
                .contains("is not allowed in your subscription in location")
        })
    })
    .await;
    world.sim.reset_requests();

    world.clean_up(&["notallowed1"]).await;

    let counts = world.sim.requests();
    assert!(
        counts.of(operation::POOL_DELETE) <= 1,
        "{:?}",
        counts.entries()
    );
}
