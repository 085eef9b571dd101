//! Command lines of etcd, the Kubernetes control plane and kwok, all on 127.0.0.1.

use std::{path::PathBuf, process::Command};

use crate::{certs::PkiFiles, tools::Tools};

/// The range cluster IPs of Services come from.
const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";

/// The range kwok gives pod IPs from.
const POD_CIDR: &str = "10.244.0.0/16";

/// The address kwok gives simulated nodes. It is loopback so that anything dialling a node
/// (the apiserver serving `kubectl logs`, for one) stays on this machine and is refused.
const NODE_IP: &str = "127.0.0.1";

/// How long the node lifecycle controller waits for a heartbeat before it marks a node
/// NotReady: longer than any test or benchmark runs.
const NODE_MONITOR_GRACE: &str = "24h";

/// The annotation (key, value) that makes kwok manage a node.
pub const KWOK_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

/// Where one cluster's files live and which ports it listens on.
#[derive(Debug)]
pub(crate) struct Layout {
    pub pki: PkiFiles,
    pub token_file: PathBuf,
    pub kubeconfig: PathBuf,
    pub stages: PathBuf,
    pub audit_policy: PathBuf,
    /// Where the apiserver writes its audit log; `None` writes none.
    pub audit_log: Option<PathBuf>,
    pub etcd_data: PathBuf,
    pub kwok_workdir: PathBuf,
    pub etcd_client_port: u16,
    pub etcd_peer_port: u16,
    pub apiserver_port: u16,
}

pub(crate) fn etcd(tools: &Tools, layout: &Layout) -> Command {
    let client = format!("http://127.0.0.1:{}", layout.etcd_client_port);
    let peer = format!("http://127.0.0.1:{}", layout.etcd_peer_port);
    let mut command = Command::new(&tools.etcd);
    command
        .arg("--name=testenv")
        .arg(format!("--data-dir={}", layout.etcd_data.display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=testenv={peer}"))
        // The data is thrown away with the cluster: durability only costs time.
        .arg("--unsafe-no-fsync");
    command
}

pub(crate) fn apiserver(tools: &Tools, layout: &Layout) -> Command {
    let pki = &layout.pki;
    let mut command = Command::new(&tools.kube_apiserver);
    command
        .arg(format!(
            "--etcd-servers=http://127.0.0.1:{}",
            layout.etcd_client_port
        ))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--secure-port={}", layout.apiserver_port))
        .arg(format!("--cert-dir={}", pki.dir.display()))
        .arg(format!("--tls-cert-file={}", pki.serving_cert.display()))
        .arg(format!(
            "--tls-private-key-file={}",
            pki.serving_key.display()
        ))
        .arg(format!("--client-ca-file={}", pki.ca_cert.display()))
        .arg(format!("--token-auth-file={}", layout.token_file.display()))
        .arg("--authorization-mode=RBAC")
        .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
        .arg(format!(
            "--service-account-key-file={}",
            pki.service_account_public.display()
        ))
        .arg(format!(
            "--service-account-signing-key-file={}",
            pki.service_account_private.display()
        ))
        .arg(format!(
            "--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"
        ))
        .arg("--allow-privileged=true")
        // The `kubernetes` Service cannot get Endpoints: they refuse loopback addresses.
        .arg("--endpoint-reconciler-type=none")
        // Fairness queues and profiling only cost start-up time in a single-user cluster.
        .arg("--enable-priority-and-fairness=false")
        .arg("--profiling=false");
    if let Some(log) = &layout.audit_log {
        command
            .arg(format!(
                "--audit-policy-file={}",
                layout.audit_policy.display()
            ))
            .arg(format!("--audit-log-path={}", log.display()))
            // Zero would mean the rotation library's default of 100 MB; a run must never
            // rotate, or counts read from the one file would miss requests.
            .arg("--audit-log-maxsize=1000000");
    }
    command
}

pub(crate) fn controller_manager(tools: &Tools, layout: &Layout) -> Command {
    let pki = &layout.pki;
    let mut command = Command::new(&tools.kube_controller_manager);
    command
        .arg(format!("--kubeconfig={}", layout.kubeconfig.display()))
        .arg("--leader-elect=false")
        // No serving port: nothing scrapes it, and two clusters must not compete for one.
        .arg("--secure-port=0")
        .arg(format!(
            "--service-account-private-key-file={}",
            pki.service_account_private.display()
        ))
        .arg(format!("--root-ca-file={}", pki.ca_cert.display()))
        .arg(format!(
            "--cluster-signing-cert-file={}",
            pki.ca_cert.display()
        ))
        .arg(format!(
            "--cluster-signing-key-file={}",
            pki.ca_key.display()
        ))
        .arg(format!(
            "--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"
        ))
        // kwok's simulated kubelets post no heartbeats: with the default grace period of 50 s
        // every node turns NotReady (and its pods unready) 50 s after it joined.
        .arg(format!("--node-monitor-grace-period={NODE_MONITOR_GRACE}"))
        .arg("--profiling=false");
    command
}

pub(crate) fn scheduler(tools: &Tools, layout: &Layout) -> Command {
    let mut command = Command::new(&tools.kube_scheduler);
    command
        .arg(format!("--kubeconfig={}", layout.kubeconfig.display()))
        .arg("--leader-elect=false")
        .arg("--secure-port=0")
        .arg("--profiling=false");
    command
}

pub(crate) fn kwok(tools: &Tools, layout: &Layout) -> Command {
    let (key, value) = KWOK_NODE_ANNOTATION;
    let mut command = Command::new(&tools.kwok);
    command
        .arg(format!("--kubeconfig={}", layout.kubeconfig.display()))
        .arg(format!("--config={}", layout.stages.display()))
        .arg(format!(
            "--manage-nodes-with-annotation-selector={key}={value}"
        ))
        .arg(format!("--cidr={POD_CIDR}"))
        .arg(format!("--node-ip={NODE_IP}"))
        // kwok also reads a config from its work dir (by default in the home directory); a
        // private one keeps a developer's own kwok settings out of the tests.
        .env("KWOK_WORKDIR", &layout.kwok_workdir);
    command
}
