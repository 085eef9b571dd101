//! A cluster of its own: starting it, and what dropping it leaves behind.

// Helpers of integration tests are not `#[test]` functions, so the lint exemption for tests
// does not reach them; failing loudly is what a test helper is for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{fs, path::Path};

use kaito_testenv::{Cluster, ClusterOptions};

#[tokio::test]
async fn a_cluster_starts_and_stopping_it_leaves_no_process_or_dir() {
    let cluster = Cluster::start(ClusterOptions::default()).await.unwrap();
    eprintln!("started in {:?}", cluster.start_duration());
    let temp_dir = cluster.temp_dir().to_path_buf();
    let log_dir = cluster.log_dir();
    let pids = children_of_this_process();
    assert_eq!(pids.len(), 5, "one process per component: {pids:?}");
    for component in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ] {
        assert!(
            log_dir.join(format!("{component}.log")).is_file(),
            "{component}"
        );
    }

    drop(cluster);

    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} survived"
        );
    }
    assert!(!temp_dir.exists());
}

/// Pids of the processes whose parent is this test process.
fn children_of_this_process() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut children = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The parent pid is the second field after the parenthesised command name.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        if after_name.split(' ').nth(1) == Some(me.as_str()) {
            children.push(pid);
        }
    }
    children
}
