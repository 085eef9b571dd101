//! Node requests becoming Ready, bad input refused without a cloud call, others' requests
//! left alone, and the gRPC API and health — the real binary against the stand-in.

mod common;

use std::time::{Duration, Instant};

use aks_sim::{Outage, operation};
use common::{GPU_SKU, World, create, eventually, get, machine, node_claim, wait_ready};
use gpu_provisioner::grpc::proto::{
    GetCountersRequest, ListInstancesRequest, provisioner_client::ProvisionerClient,
};
use kaito_api::{
    Machine, NodeClaim, NodeRequest,
    conditions::karpenter as k,
    karpenter::NodeClassRef,
    labels::{self, TERMINATION_FINALIZER},
};
use kube::ResourceExt;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const READY_WITHIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_claim_becomes_ready_with_its_node_status_and_put_body() {
    let world = World::started(Default::default()).await;
    create(&world.client, &node_claim("ncready1", Some("300Gi"))).await;

    let claim: NodeClaim = wait_ready(&world.client, "ncready1", READY_WITHIN).await;
    // The TYPE column of `kubectl get nodeclaims`.
    assert_eq!(claim.labels()[labels::LABEL_INSTANCE_TYPE], GPU_SKU);

    let nodes = common::pool_nodes(&world.client, "ncready1").await;
    assert_eq!(nodes.len(), 1, "one node: {:?}", common::names(&nodes));
    let node = &nodes[0];
    let status = claim.status.clone().unwrap();
    assert_eq!(status.node_name.as_deref(), Some(node.name_any().as_str()));
    assert_eq!(status.provider_id, node.spec.as_ref().unwrap().provider_id);
    assert!(
        status
            .provider_id
            .as_deref()
            .unwrap()
            .starts_with("azure:///subscriptions/")
    );
    assert_eq!(status.capacity.as_ref().unwrap()["nvidia.com/gpu"].0, "1");
    assert_eq!(
        status.allocatable.as_ref().unwrap()["nvidia.com/gpu"].0,
        "1"
    );
    assert!(
        status
            .image_id
            .as_deref()
            .is_some_and(|i| i.contains("AKSUbuntu"))
    );
    for type_ in [k::LAUNCHED, k::REGISTERED, k::INITIALIZED, k::READY] {
        let condition = claim.condition(type_).unwrap();
        assert_eq!(condition.status, "True", "{type_}: {condition:?}");
    }
    assert!(
        claim
            .finalizers()
            .contains(&TERMINATION_FINALIZER.to_owned())
    );

    assert_eq!(node.labels()[labels::LABEL_REGISTERED], "true");
    assert_eq!(node.labels()[labels::LABEL_INITIALIZED], "true");
    assert_eq!(node.labels()[labels::LABEL_WORKSPACE], "ncready1");
    assert_eq!(node.labels()[labels::LABEL_INSTANCE_TYPE], GPU_SKU);
    assert!(
        node.finalizers()
            .contains(&TERMINATION_FINALIZER.to_owned())
    );
    assert_eq!(node.owner_references()[0].kind, "NodeClaim");

    let puts = world.sim.put_bodies();
    assert_eq!(puts.len(), 1, "exactly one create: {puts:?}");
    let put = &puts[0];
    assert_eq!(put.pool, "ncready1");
    assert_eq!(put.if_none_match.as_deref(), Some("*"));
    let p = &put.body["properties"];
    assert_eq!(p["vmSize"], GPU_SKU);
    assert_eq!(p["count"], 1);
    assert_eq!(p["osType"], "Linux");
    assert_eq!(p["osSKU"], "Ubuntu");
    assert_eq!(p["osDiskSizeGB"], 300);
    assert_eq!(p["mode"], "User");
    assert_eq!(p["nodeLabels"]["karpenter.sh/nodepool"], "kaito");
    assert_eq!(p["nodeLabels"]["kaito.sh/machine-type"], "gpu");
    assert!(
        p["nodeLabels"]["kaito.sh/creation-timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(p["nodeTaints"][0], "sku=gpu:NoSchedule");
    assert_eq!(p["tags"]["kaito.sh_workspace"], "ncready1");

    world.clean_up(&["ncready1"]).await;
    assert!(
        world.sim.pool("ncready1").is_none(),
        "the pool went with the claim"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_becomes_ready_with_machine_conditions_and_its_node() {
    let world = World::started(Default::default()).await;
    create(&world.client, &machine("mready1", Some("0"))).await;

    let ready: Machine = wait_ready(&world.client, "mready1", READY_WITHIN).await;
    assert_eq!(ready.labels()[labels::LABEL_INSTANCE_TYPE], GPU_SKU);

    let nodes = common::pool_nodes(&world.client, "mready1").await;
    assert_eq!(nodes.len(), 1);
    let status = ready.status.clone().unwrap();
    assert_eq!(
        status.node_name.as_deref(),
        Some(nodes[0].name_any().as_str())
    );
    assert_eq!(
        status.provider_id,
        nodes[0].spec.as_ref().unwrap().provider_id
    );
    assert!(
        status
            .allocatable
            .as_ref()
            .unwrap()
            .contains_key("nvidia.com/gpu")
    );
    for type_ in [
        k::MACHINE_LAUNCHED,
        k::MACHINE_REGISTERED,
        k::MACHINE_INITIALIZED,
        k::READY,
    ] {
        assert_eq!(ready.condition(type_).unwrap().status, "True", "{type_}");
    }
    let put = &world.sim.put_bodies()[0];
    assert_eq!(
        put.body["properties"]["nodeLabels"]["karpenter.sh/provisioner-name"],
        "default"
    );
    assert!(
        put.body["properties"].get("osDiskSizeGB").is_none(),
        "0 means the AKS default"
    );
    assert_eq!(nodes[0].owner_references()[0].kind, "Machine");

    world.clean_up(&["mready1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_sizes_reach_the_cloud_in_whole_gibibytes_and_missing_storage_makes_no_call() {
    let world = World::started(Default::default()).await;
    for (name, disk) in [
        ("disk300", Some("300Gi")),
        ("disk250", Some("250G")),
        ("disknone", None),
        ("diskzero", Some("0")),
    ] {
        create(&world.client, &node_claim(name, disk)).await;
    }

    for name in ["disknone", "diskzero"] {
        eventually("a launch error", READY_WITHIN, || async {
            let claim: Option<NodeClaim> = get(&world.client, name).await;
            claim.and_then(|c| c.launch_failed()).is_some_and(|c| {
                c.reason == k::REASON_INVALID_REQUEST
                    && c.message
                        == format!("storage request of nodeclaim({name}) should be more than 0")
            })
        })
        .await;
    }
    let _: NodeClaim = wait_ready(&world.client, "disk300", READY_WITHIN).await;
    let _: NodeClaim = wait_ready(&world.client, "disk250", READY_WITHIN).await;

    let disk_of = |pool: &str| {
        let puts = world.sim.put_bodies();
        let mine: Vec<_> = puts.iter().filter(|p| p.pool == pool).collect();
        assert_eq!(mine.len(), 1, "one create for {pool}");
        mine[0].body["properties"]["osDiskSizeGB"].clone()
    };
    assert_eq!(disk_of("disk300"), 300);
    assert_eq!(disk_of("disk250"), 233);
    assert!(
        world
            .sim
            .put_bodies()
            .iter()
            .all(|p| p.pool != "disknone" && p.pool != "diskzero")
    );

    world
        .clean_up(&["disk300", "disk250", "disknone", "diskzero"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_the_cloud_refuses_get_a_launch_error_and_no_call() {
    let world = World::started(Default::default()).await;
    let refused = ["ws-a1b2c3", "wsa1b2c3d4e5f6"];
    let mut claims: Vec<NodeClaim> = refused
        .iter()
        .map(|n| node_claim(n, Some("100Gi")))
        .collect();
    claims.push(node_claim("ws1a2b3c4d5", Some("100Gi")));
    for claim in &claims {
        create(&world.client, claim).await;
    }
    // `Wsabc` cannot even be stored: object names are lowercase. The provisioner's own check
    // refuses it too (unit-tested), should it arrive by another way.
    let api: kube::Api<NodeClaim> = kube::Api::all(world.client.clone());
    let upper = api
        .create(&Default::default(), &node_claim("Wsabc", Some("100Gi")))
        .await;
    assert!(upper.is_err(), "the API server refuses an uppercase name");
    assert!(!gpu_provisioner::launch::valid_pool_name("Wsabc"));

    for name in &refused {
        eventually("the name to be refused", READY_WITHIN, || async {
            let claim: Option<NodeClaim> = get(&world.client, name).await;
            claim.and_then(|c| c.launch_failed()).is_some_and(|c| {
                c.message
                    == format!(
                        "agentpool name({name}) is invalid, must match regex pattern: \
                         ^[a-z][a-z0-9]{{0,11}}$"
                    )
            })
        })
        .await;
    }
    let _: NodeClaim = wait_ready(&world.client, "ws1a2b3c4d5", READY_WITHIN).await;
    let pools: Vec<String> = world
        .sim
        .put_bodies()
        .iter()
        .map(|p| p.pool.clone())
        .collect();
    assert_eq!(
        pools,
        ["ws1a2b3c4d5"],
        "only the valid name reached the cloud"
    );

    world
        .clean_up(&["ws-a1b2c3", "wsa1b2c3d4e5f6", "ws1a2b3c4d5"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_requests_that_are_not_ours_are_left_alone() {
    let world = World::started(Default::default()).await;
    let mut foreign = node_claim("foreign1", Some("100Gi"));
    foreign.metadata.labels = Some(Default::default());
    foreign.spec.node_class_ref = NodeClassRef {
        group: "karpenter.azure.com".into(),
        kind: "AKSNodeClass".into(),
        name: "default".into(),
    };
    create(&world.client, &foreign).await;
    let mut machine = machine("foreign2", Some("100Gi"));
    machine.metadata.labels = Some(Default::default());
    create(&world.client, &machine).await;
    // A request of ours created after them proves the provisioner has looked at all three.
    create(&world.client, &node_claim("oursafter", Some("100Gi"))).await;
    let _: NodeClaim = wait_ready(&world.client, "oursafter", READY_WITHIN).await;

    let foreign: NodeClaim = get(&world.client, "foreign1").await.unwrap();
    assert!(foreign.finalizers().is_empty());
    assert!(foreign.status.is_none());
    let machine: Machine = get(&world.client, "foreign2").await.unwrap();
    assert!(machine.finalizers().is_empty());
    assert!(machine.status.is_none());
    let pools: Vec<String> = world
        .sim
        .put_bodies()
        .iter()
        .map(|p| p.pool.clone())
        .collect();
    assert_eq!(pools, ["oursafter"]);

    world.clean_up(&["foreign1", "foreign2", "oursafter"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_is_serving_then_not_serving_when_the_cloud_is_down() {
    let world = World::started(Default::default()).await;
    create(&world.client, &node_claim("grpc1", Some("100Gi"))).await;
    let _: NodeClaim = wait_ready(&world.client, "grpc1", READY_WITHIN).await;
    let endpoint = format!("http://127.0.0.1:{}", world.grpc_port);
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone()).unwrap();
    let mut health = HealthClient::new(channel.connect_lazy());
    let status = |service: &str| HealthCheckRequest {
        service: service.into(),
    };

    eventually("SERVING", READY_WITHIN, || {
        let mut health = health.clone();
        async move {
            let answer = health
                .check(status(""))
                .await
                .map(|r| r.into_inner().status);
            answer.is_ok_and(|s| s == ServingStatus::Serving as i32)
        }
    })
    .await;
    let mut api = ProvisionerClient::connect(endpoint).await.unwrap();
    let counters = api
        .get_counters(GetCountersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counters.creates, 1);
    assert!(
        counters
            .arm_calls
            .iter()
            .any(|c| c.operation == "PutAgentPool" && c.code == "201")
    );
    eventually(
        "the instance to be listed with its node",
        READY_WITHIN,
        || {
            let mut api = api.clone();
            async move {
                let list = api
                    .list_instances(ListInstancesRequest {})
                    .await
                    .unwrap()
                    .into_inner();
                list.instances.iter().any(|i| {
                    i.pool == "grpc1"
                        && i.node_request == "grpc1"
                        && i.node_request_kind == "NodeClaim"
                        && !i.node.is_empty()
                        && i.provisioning_state == "Succeeded"
                })
            }
        },
    )
    .await;
    let metrics = world.metrics().await;
    assert!(
        metrics.contains(
            "gpu_provisioner_arm_requests_total{operation=\"PutAgentPool\",code=\"201\"} 1"
        )
    );
    assert!(metrics.contains("gpu_provisioner_agent_pools{state=\"Succeeded\"} 1"));

    world.sim.set_outage(Outage::Refuse).await.unwrap();
    eventually("NOT_SERVING", READY_WITHIN, || {
        let mut health = health.clone();
        async move {
            let answer = health
                .check(status("kaito.provisioner.v1.Provisioner"))
                .await;
            answer.is_ok_and(|r| r.into_inner().status == ServingStatus::NotServing as i32)
        }
    })
    .await;
    world.sim.set_outage(Outage::None).await.unwrap();
    eventually("SERVING again", READY_WITHIN, || {
        let mut health = health.clone();
        async move {
            let answer = health
                .check(status(""))
                .await
                .map(|r| r.into_inner().status);
            answer.is_ok_and(|s| s == ServingStatus::Serving as i32)
        }
    })
    .await;
    let _ = health.check(status("")).await;

    world.clean_up(&["grpc1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_with_zero_cloud_delay_is_measured() {
    let world = World::started(Default::default()).await;
    world.sim.set_create_delay(Duration::ZERO);
    let mut took = Vec::new();
    let mut requests = Vec::new();
    for i in 0..5 {
        let name = format!("speed{i}");
        world.sim.reset_requests();
        let started = Instant::now();
        create(&world.client, &node_claim(&name, Some("100Gi"))).await;
        let _: NodeClaim = wait_ready(&world.client, &name, READY_WITHIN).await;
        took.push(started.elapsed());
        let counts = world.sim.requests();
        let per_pool = [
            operation::POOL_PUT,
            operation::POOL_GET,
            operation::OPERATION_GET,
        ]
        .iter()
        .map(|op| counts.of(op))
        .sum::<u64>();
        requests.push(per_pool);
        world.clean_up(&[&name]).await;
    }
    took.sort();
    eprintln!(
        "MEASURED: time to Ready with zero cloud delay, median {:?} (all: {took:?}); \
         ARM pool requests per provisioned node: {requests:?}",
        took[took.len() / 2]
    );
    assert!(requests.iter().all(|n| *n >= 1));
}
