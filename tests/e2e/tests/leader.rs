//! Two workspace controller replicas elect one leader: only it acts, and when it dies the
//! other takes over.
// Test code fails loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use kaito_api::{Workspace, conditions};
use kaito_e2e::{ClusterRef, Options, System, cluster_options, examples, system::controller_name};
use kaito_testenv::Cluster;
use kube::Api;

const ACQUIRED: &str = "Acquired leadership";
const CREATED: &str = "Created node request";

fn log(system: &System, replica: usize) -> String {
    let path = system
        .log_dir()
        .join(format!("{}.log", controller_name(replica)));
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn ready(system: &System, ns: &str, doc: &str) {
    let (ok, out) = system.kubectl(&["create", "namespace", ns], None).unwrap();
    assert!(ok, "{out}");
    // Right after the webhook configurations go, the API server may still call them briefly.
    let start = Instant::now();
    loop {
        let (ok, out) = system
            .kubectl(&["apply", "-n", ns, "-f", "-"], Some(doc))
            .unwrap();
        if ok {
            break;
        }
        assert!(out.contains("failed calling webhook"), "{out}");
        assert!(start.elapsed() < Duration::from_secs(30), "{out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let api: Api<Workspace> = Api::namespaced(system.client().unwrap(), ns);
    let name = examples::name_of(doc);
    let start = Instant::now();
    loop {
        let ws = api.get(&name).await.unwrap();
        let conds = ws.status.and_then(|s| s.conditions).unwrap_or_default();
        if conditions::is_true(&conds, conditions::types::WORKSPACE_READY) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{ns}/{name} not ready"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn only_the_leader_acts_and_the_standby_takes_over_when_it_dies() {
    let cluster = Cluster::start(cluster_options()).await.expect("cluster");
    let options = Options {
        workspace_replicas: 2,
        ..Options::default()
    };
    let system = System::start(ClusterRef::Owned(Box::new(cluster)), options)
        .await
        .expect("system");

    ready(&system, "leader-first", examples::PHI_3_MINI).await;
    let logs = [log(&system, 0), log(&system, 1)];
    let leaders: Vec<usize> = (0..2).filter(|i| logs[*i].contains(ACQUIRED)).collect();
    assert_eq!(leaders.len(), 1, "exactly one leader");
    let (leader, standby) = (leaders[0], 1 - leaders[0]);
    eprintln!("replica {leader} leads");
    assert!(
        logs[leader].contains(CREATED),
        "the leader created the node request"
    );
    assert!(!logs[standby].contains(CREATED), "the standby did nothing");

    system
        .kill(&controller_name(leader))
        .expect("kill the leader");
    if leader == 0 {
        // The first replica also served the webhook, which no other process here can take
        // over (in a cluster the Service would route to a surviving pod): drop its
        // registration so the next Workspace is admitted without it.
        let (ok, out) = system
            .kubectl(
                &[
                    "delete",
                    "validatingwebhookconfiguration,mutatingwebhookconfiguration",
                    "--all",
                ],
                None,
            )
            .unwrap();
        assert!(ok, "{out}");
    }
    ready(
        &system,
        "leader-second",
        include_str!("../../../examples/inference/kaito_workspace_phi_2.yaml"),
    )
    .await;
    let after = log(&system, standby);
    assert!(after.contains(ACQUIRED), "the standby took over");
    assert!(after.contains(CREATED), "and acted");
}
