//! One benchmark run: start the cluster and the system, then the start-up, paced and
//! at-once phases, each measured from outside the controllers.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use futures::{TryStreamExt, stream};
use k8s_openapi::api::{
    admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration},
    core::v1::{Namespace, Node},
    rbac::v1::ClusterRoleBinding,
};
use kaito_api::{Cloud, Machine, NodeRequestKind, Workspace, labels::LABEL_WORKSPACE};
use kaito_e2e::{ClusterRef, Options, System, cluster_options, system::bin_dir};
use kaito_testenv::{Cluster, Identity, create_namespace, shared_cluster_with};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use workspace_controller::webhook::registration;

use crate::{
    audit::{AuditLog, Tally},
    cli::Args,
    host::Host,
    metrics::{self, Reconciles},
    procfs::{self, BootClock, Memory},
    report::{Arm, ControllerRun, Latencies, Paced, Report, SCHEMA, ScaleRun, Setup, Startup},
    stats::Summary,
    timeline::Timeline,
};

/// Namespace of every Workspace of the bench.
pub const NAMESPACE: &str = "kaito-bench";
/// Preset of every Workspace: small, one GPU.
pub const PRESET: &str = "phi-3-mini-4k-instruct";
/// Instance type of every Workspace.
pub const INSTANCE_TYPE: &str = "Standard_NC6s_v3";
/// The controllers by process name, each with the user it runs as.
pub const CONTROLLERS: [(&str, &str); 2] = [
    ("workspace-controller", "kaito-bench-workspace-controller"),
    ("gpu-provisioner", "kaito-bench-gpu-provisioner"),
];
/// Workspaces applied at once are sent with this many requests in flight.
const APPLY_CONCURRENCY: usize = 64;
/// How long idle controllers are left alone before their memory is read.
const IDLE_QUIET: Duration = Duration::from_secs(3);
/// How long the runs other than the largest are left to settle: the flat-memory check after
/// the largest run is the one that matters, and the whole bench has to fit in 15 minutes.
const SHORT_SETTLE: Duration = Duration::from_secs(5);
/// The Workspace and node request that exist before the measured controllers start.
const FIRST: &str = "first";
const FIRST_REQUEST: &str = "wsbenchfirst";
const FIELD_MANAGER: &str = "kaito-bench";

/// Prints progress to stderr, so stdout holds only the report.
fn say(clock: Instant, what: &str) {
    eprintln!(
        "[kaito-bench {:>6.1}s] {what}",
        clock.elapsed().as_secs_f64()
    );
}

/// Everything the phases share.
struct Bench {
    args: Args,
    clock: Instant,
    boot: BootClock,
    admin: Client,
    system: System,
    timeline: Timeline,
    audit: AuditLog,
    pids: BTreeMap<String, u32>,
}

/// Runs the whole benchmark and returns its report.
pub async fn run(args: Args, command: String) -> anyhow::Result<Report> {
    let clock = Instant::now();
    let started_at = jiff::Timestamp::now().to_string();
    let (bins, build) = controller_binaries(&args)?;
    say(
        clock,
        &format!("{build} controllers; starting the local cluster"),
    );
    let options = cluster_options()
        .identity(Identity::user(CONTROLLERS[0].1, &[]))
        .identity(Identity::user(CONTROLLERS[1].1, &[]))
        .audit_log();
    let cluster = shared_cluster_with(options).await?;
    let admin = cluster.client()?;
    grant_cluster_admin(cluster, &admin).await?;
    let system_options = Options {
        node_request_api: NodeRequestKind::Machine,
        cloud_delay: Duration::ZERO,
        workspace_identity: Some(CONTROLLERS[0].1.to_owned()),
        provisioner_identity: Some(CONTROLLERS[1].1.to_owned()),
        bin_dir: Some(bins),
        ..Options::default()
    };

    say(
        clock,
        "idle controllers (no Workspace): reading their memory",
    );
    let idle = idle_memory(cluster, system_options.clone()).await?;
    let mut bench = start(args, clock, cluster, &admin, system_options).await?;
    let startup = bench.startup(&idle).await?;
    let paced = bench.paced().await?;
    bench.cleanup().await?;
    let mut scales = Vec::new();
    let count = bench.args.scales.len();
    let largest = bench.args.scales.iter().copied().max().unwrap_or(0);
    for (i, n) in bench.args.scales.clone().into_iter().enumerate() {
        let settle = if n == largest {
            bench.args.settle()
        } else {
            SHORT_SETTLE.min(bench.args.settle())
        };
        let mut run = bench.at_once(n, settle).await?;
        if i + 1 < count {
            run.cleanup_seconds = Some(bench.cleanup().await?);
        }
        scales.push(run);
    }
    if let Some(dir) = &bench.args.logs {
        copy_logs(&bench.system.log_dir(), dir)?;
        say(clock, &format!("logs copied to {}", dir.display()));
    }
    Ok(Report {
        schema: SCHEMA.to_owned(),
        started_at,
        wall_seconds: clock.elapsed().as_secs_f64(),
        command,
        host: Host::read(),
        setup: setup(&bench.args, &build),
        startup,
        paced,
        scales,
    })
}

fn setup(args: &Args, build: &str) -> Setup {
    Setup {
        controller_build: build.to_owned(),
        preset: PRESET.to_owned(),
        instance_type: INSTANCE_TYPE.to_owned(),
        node_request_kind: "Machine".to_owned(),
        cloud_delay_ms: 0,
        arm_retry_after_seconds: 0,
        arm_rate_limits: args.arm_rate_limits,
        apply: format!(
            "server-side apply by the administrator, {APPLY_CONCURRENCY} in flight; \
             the apply time is when its answer arrived"
        ),
        timing: "arrival of the first watch event showing each step, in the bench process \
                 (monotonic clock); start-up from the kernel's process start time"
            .to_owned(),
        api_counting: "API server audit log (Metadata level), one user per controller, \
                       a watch counts once"
            .to_owned(),
        settle_seconds: args.settle as f64,
    }
}

/// Copies every file of the cluster's log directory into `to`.
fn copy_logs(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if let Some(name) = path.file_name().filter(|_| path.is_file()) {
            std::fs::copy(&path, to.join(name))
                .with_context(|| format!("copy {}", path.display()))?;
        }
    }
    Ok(())
}

/// The directory of the controller binaries and its cargo profile; a debug build is refused
/// unless asked for.
fn controller_binaries(args: &Args) -> anyhow::Result<(PathBuf, String)> {
    let dir = bin_dir()?;
    let profile = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if profile != "release" && !args.allow_debug_build {
        bail!(
            "the controllers in {} are not a release build: run `make bench`, or \
             `cargo build --release -p workspace-controller -p gpu-provisioner -p kaito-bench` \
             and start target/release/kaito-bench (or pass --allow-debug-build)",
            dir.display()
        );
    }
    Ok((dir, profile))
}

/// Binds each controller's user to cluster-admin and waits until the authorizer knows.
async fn grant_cluster_admin(cluster: &Cluster, admin: &Client) -> anyhow::Result<()> {
    let api: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (_, user) in CONTROLLERS {
        let name = format!("{user}-cluster-admin");
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": name },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }],
        });
        api.patch(&name, &params, &Patch::Apply(&binding)).await?;
        let client = cluster.client_as(user)?;
        let namespaces: Api<Namespace> = Api::all(client);
        let deadline = Instant::now() + Duration::from_secs(30);
        while namespaces
            .list(&ListParams::default().limit(1))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("the cluster-admin binding of {user} did not take effect");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Starts both controllers with nothing to do, reads their resident memory, and stops them.
async fn idle_memory(
    cluster: &'static Cluster,
    options: Options,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let system = System::start(ClusterRef::Shared(cluster), options).await?;
    tokio::time::sleep(IDLE_QUIET).await;
    let mut rss = BTreeMap::new();
    for (name, _) in CONTROLLERS {
        let pid = system.pid(name).context("no controller process")?;
        rss.insert(name.to_owned(), procfs::memory(pid)?.rss_kib);
    }
    Ok(rss)
}

/// Creates the first Workspace and its node request while no controller runs, then starts
/// the controllers that are measured from here on.
async fn start(
    args: Args,
    clock: Instant,
    cluster: &'static Cluster,
    admin: &Client,
    options: Options,
) -> anyhow::Result<Bench> {
    // The idle controllers are gone; their webhook would refuse every Workspace.
    remove_webhooks(admin).await?;
    create_namespace(admin, NAMESPACE).await?;
    let timeline = Timeline::default();
    // The watches run until the process ends.
    drop(timeline.watch(admin, NAMESPACE));
    let first = workspace(FIRST)?;
    apply_workspace(admin, &timeline, FIRST).await?;
    let machine = workspace_controller::workspace::node_requests::build_machine(
        &first,
        FIRST_REQUEST,
        Cloud::Azure,
    );
    Api::<Machine>::all(admin.clone())
        .create(&PostParams::default(), &machine)
        .await
        .context("create the first node request")?;

    say(
        clock,
        "starting the measured controllers and the AKS stand-in",
    );
    let system = System::start(ClusterRef::Shared(cluster), options).await?;
    system.sim.update_settings(|s| {
        s.retry_after_secs = 0;
        if !args.arm_rate_limits {
            s.rate_limits = None;
        }
    });
    let mut pids = BTreeMap::new();
    for (name, _) in CONTROLLERS {
        let pid = system.pid(name).context("no controller process")?;
        pids.insert(name.to_owned(), pid);
    }
    let audit_path = cluster
        .audit_log_path()
        .context("the cluster has no audit log")?
        .to_path_buf();
    Ok(Bench {
        args,
        clock,
        boot: BootClock::now(),
        admin: admin.clone(),
        system,
        timeline,
        audit: AuditLog::new(audit_path),
        pids,
    })
}

async fn remove_webhooks(admin: &Client) -> anyhow::Result<()> {
    let gone = |r: Result<_, kube::Error>| match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other.map(drop),
    };
    let dp = DeleteParams::default();
    gone(
        Api::<ValidatingWebhookConfiguration>::all(admin.clone())
            .delete(registration::VALIDATING_NAME, &dp)
            .await
            .map(drop),
    )?;
    gone(
        Api::<MutatingWebhookConfiguration>::all(admin.clone())
            .delete(registration::MUTATING_NAME, &dp)
            .await
            .map(drop),
    )?;
    Ok(())
}

/// A Workspace of the bench: the preset on its own node, selected by a label of its own.
fn workspace_json(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": { "name": name, "namespace": NAMESPACE },
        "resource": {
            "instanceType": INSTANCE_TYPE,
            "labelSelector": { "matchLabels": { "apps": name } },
        },
        "inference": { "preset": { "name": PRESET } },
    })
}

fn workspace(name: &str) -> anyhow::Result<Workspace> {
    Ok(serde_json::from_value(workspace_json(name))?)
}

/// Applies one Workspace (server-side) and marks when the answer arrived.
async fn apply_workspace(admin: &Client, timeline: &Timeline, name: &str) -> anyhow::Result<()> {
    let api: Api<Workspace> = Api::namespaced(admin.clone(), NAMESPACE);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(&workspace_json(name)))
        .await
        .with_context(|| format!("apply Workspace {name}"))?;
    timeline.applied(name, Instant::now());
    Ok(())
}

/// CPU time and memory of one process.
#[derive(Clone, Copy, Debug)]
struct Usage {
    cpu: Duration,
    memory: Memory,
}

impl Bench {
    fn say(&self, what: &str) {
        say(self.clock, what);
    }

    fn usage(&self) -> anyhow::Result<BTreeMap<String, Usage>> {
        let mut out = BTreeMap::new();
        for (name, pid) in &self.pids {
            let cpu = procfs::ticks(procfs::stat(*pid)?.cpu_ticks);
            let memory = procfs::memory(*pid)?;
            out.insert(name.clone(), Usage { cpu, memory });
        }
        Ok(out)
    }

    /// The reconcile counts of each controller, from its metrics.
    async fn reconciles(&self) -> anyhow::Result<BTreeMap<String, Reconciles>> {
        let ports = [
            (CONTROLLERS[0].0, self.system.workspace_admin_port),
            (CONTROLLERS[1].0, self.system.provisioner_admin_port),
        ];
        let mut out = BTreeMap::new();
        for (name, port) in ports {
            let read = metrics::scrape(port)
                .await
                .with_context(|| format!("read the metrics of {name}"))?;
            out.insert(name.to_owned(), read);
        }
        Ok(out)
    }

    /// Waits until every one of `names` is Ready, failing if a controller exits or time
    /// runs out; returns when the last became Ready.
    async fn wait_ready(&mut self, names: &[String]) -> anyhow::Result<Instant> {
        let started = Instant::now();
        let mut reported = Instant::now();
        loop {
            self.system.check_running()?;
            let (ready, last) = self.timeline.ready(names);
            if ready == names.len() {
                return last.context("no Workspace to wait for");
            }
            if started.elapsed() > self.args.timeout() {
                bail!(
                    "{ready} of {} Workspaces Ready after {:?}; logs in {}",
                    names.len(),
                    self.args.timeout(),
                    self.system.log_dir().display()
                );
            }
            if reported.elapsed() > Duration::from_secs(15) {
                self.say(&format!("{ready} of {} Ready", names.len()));
                reported = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the first Workspace and reads when each controller first reconciled.
    async fn startup(
        &mut self,
        idle: &BTreeMap<String, u64>,
    ) -> anyhow::Result<BTreeMap<String, Startup>> {
        self.wait_ready(&[FIRST.to_owned()]).await?;
        let marks = self.timeline.get(FIRST);
        let mut out = BTreeMap::new();
        for (name, seen) in [
            (CONTROLLERS[0].0, marks.finalized),
            (CONTROLLERS[1].0, marks.node_request_finalized),
        ] {
            let pid = *self.pids.get(name).context("no controller process")?;
            let started = procfs::ticks(procfs::stat(pid)?.start_ticks);
            let seen = seen.context("the first reconcile was not seen")?;
            let since_start = self.boot.since_boot(seen).saturating_sub(started);
            let startup = Startup {
                idle_rss_kib: idle.get(name).copied().unwrap_or(0),
                first_reconcile_ms: since_start.as_secs_f64() * 1e3,
            };
            out.insert(name.to_owned(), startup);
        }
        self.say("first Workspace Ready");
        Ok(out)
    }

    /// Applies Workspaces one after another at a steady rate and measures their latencies.
    async fn paced(&mut self) -> anyhow::Result<Paced> {
        let n = self.args.paced;
        let rate = self.args.paced_rate;
        self.say(&format!("paced: {n} Workspaces at {rate}/s"));
        let names: Vec<String> = (0..n).map(|i| format!("paced-{i:04}")).collect();
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut applies = tokio::task::JoinSet::new();
        for name in &names {
            ticker.tick().await;
            let (admin, timeline, name) = (self.admin.clone(), self.timeline.clone(), name.clone());
            applies.spawn(async move { apply_workspace(&admin, &timeline, &name).await });
        }
        while let Some(applied) = applies.join_next().await {
            applied??;
        }
        self.wait_ready(&names).await?;
        Ok(Paced {
            workspaces: n,
            rate_per_second: rate,
            latency: latencies(&self.timeline, &names),
        })
    }

    /// Applies `n` Workspaces at once and measures until all are Ready and after settling.
    async fn at_once(&mut self, n: usize, settle_for: Duration) -> anyhow::Result<ScaleRun> {
        self.say(&format!("{n} Workspaces at once"));
        let names: Vec<String> = (0..n).map(|i| format!("n{n}-{i:04}")).collect();
        for pid in self.pids.values() {
            if let Err(e) = procfs::reset_peak(*pid) {
                self.say(&format!("cannot reset the peak memory of {pid}: {e}"));
            }
        }
        self.audit.take()?;
        let arm_before = arm_counts(&self.system);
        let reconciles_before = self.reconciles().await?;
        let before = self.usage()?;

        let t0 = Instant::now();
        let (admin, timeline) = (&self.admin, &self.timeline);
        stream::iter(names.iter().map(Ok))
            .try_for_each_concurrent(APPLY_CONCURRENCY, |name| async move {
                apply_workspace(admin, timeline, name).await
            })
            .await?;
        let last_ready = self.wait_ready(&names).await?;
        let at_ready = self.usage()?;
        let to_ready = self.audit.take()?;
        self.say(&format!("{n} Ready; settling"));
        tokio::time::sleep(settle_for).await;
        self.system.check_running()?;
        let settled = self.usage()?;
        let settle = self.audit.take()?;
        let arm = arm_run(&arm_counts(&self.system), &arm_before, n);
        let reconciles_after = self.reconciles().await?;

        let mut controllers = BTreeMap::new();
        for (name, user) in CONTROLLERS {
            let (b, r, s) = (
                before.get(name).context("no usage")?,
                at_ready.get(name).context("no usage")?,
                settled.get(name).context("no usage")?,
            );
            let mut run = controller_run(n, user, (b, r, s), &to_ready, &settle);
            if let (Some(after), Some(before)) =
                (reconciles_after.get(name), reconciles_before.get(name))
            {
                let during = after.since(before);
                run.reconciles_per_workspace = during.total / n.max(1) as f64;
                run.reconcile_errors = during.errors;
            }
            controllers.insert(name.to_owned(), run);
        }
        Ok(ScaleRun {
            workspaces: n,
            all_ready_seconds: last_ready.saturating_duration_since(t0).as_secs_f64(),
            latency: latencies(&self.timeline, &names),
            controllers,
            arm,
            cleanup_seconds: None,
            settle_seconds: settle_for.as_secs_f64(),
        })
    }

    /// Deletes every Workspace of the bench and waits until no node request or node of one
    /// is left; returns how long that took.
    async fn cleanup(&mut self) -> anyhow::Result<f64> {
        self.say("deleting the Workspaces");
        let started = Instant::now();
        let workspaces: Api<Workspace> = Api::namespaced(self.admin.clone(), NAMESPACE);
        workspaces
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await?;
        let machines: Api<Machine> = Api::all(self.admin.clone());
        let nodes: Api<Node> = Api::all(self.admin.clone());
        let one = ListParams::default().limit(1);
        let labelled = ListParams::default().labels(LABEL_WORKSPACE).limit(1);
        loop {
            self.system.check_running()?;
            let left = workspaces.list(&one).await?.items.len()
                + machines.list(&one).await?.items.len()
                + nodes.list(&labelled).await?.items.len();
            if left == 0 {
                break;
            }
            if started.elapsed() > self.args.timeout() {
                bail!("Workspaces, node requests or nodes still exist after the timeout");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(started.elapsed().as_secs_f64())
    }
}

/// The step latencies of `names`. A step seen before the previous one (two watches race)
/// counts as zero.
fn latencies(timeline: &Timeline, names: &[String]) -> Latencies {
    let (mut to_request, mut to_workload, mut to_ready) = (Vec::new(), Vec::new(), Vec::new());
    for name in names {
        let m = timeline.get(name);
        let span =
            |from: Option<Instant>, to: Option<Instant>| Some(to?.saturating_duration_since(from?));
        to_request.extend(span(m.applied, m.node_request));
        to_workload.extend(span(m.node_ready, m.workload));
        to_ready.extend(span(m.applied, m.ready));
    }
    Latencies {
        apply_to_node_request: Summary::of(&to_request),
        node_ready_to_workload: Summary::of(&to_workload),
        apply_to_ready: Summary::of(&to_ready),
    }
}

/// The figures of one controller from its usage before, at Ready and after settling, and the
/// requests counted until Ready and while settling.
fn controller_run(
    n: usize,
    user: &str,
    (before, ready, settled): (&Usage, &Usage, &Usage),
    to_ready: &Tally,
    settle: &Tally,
) -> ControllerRun {
    let cpu = ready.cpu.saturating_sub(before.cpu).as_secs_f64();
    let mut both = to_ready.clone();
    both.add(settle);
    let per = n.max(1) as f64;
    ControllerRun {
        cpu_seconds: cpu,
        cpu_ms_per_workspace: cpu * 1e3 / per,
        peak_rss_kib: ready.memory.peak_kib,
        rss_after_kib: ready.memory.rss_kib,
        rss_settled_kib: settled.memory.rss_kib,
        api_requests_to_ready: to_ready.total(user),
        api_requests_settle: settle.total(user),
        api_requests_per_workspace: both.total(user) as f64 / per,
        api_calls: both.calls(user),
        ..ControllerRun::default()
    }
}

/// The stand-in's request counts by `"<METHOD> <operation> <status>"`.
fn arm_counts(system: &System) -> BTreeMap<String, u64> {
    system
        .sim
        .requests()
        .entries()
        .into_iter()
        .map(|e| {
            (
                format!("{} {} {}", e.method, e.operation, e.status),
                e.count,
            )
        })
        .collect()
}

/// The ARM requests between two counts, for `nodes` nodes.
pub fn arm_run(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, nodes: usize) -> Arm {
    let by_operation: BTreeMap<String, u64> = after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect();
    let requests = by_operation.values().sum();
    Arm {
        requests,
        requests_per_node: requests as f64 / nodes.max(1) as f64,
        by_operation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_requests_of_a_run_are_the_difference_of_two_counts() {
        let before = BTreeMap::from([("GET agentPools.get 200".to_owned(), 5)]);
        let after = BTreeMap::from([
            ("GET agentPools.get 200".to_owned(), 9),
            ("PUT agentPools.put 201".to_owned(), 4),
        ]);
        let arm = arm_run(&after, &before, 4);
        assert_eq!(arm.requests, 8);
        assert_eq!(arm.requests_per_node, 2.0);
        assert_eq!(arm.by_operation["GET agentPools.get 200"], 4);
        assert!(arm_run(&before, &before, 0).by_operation.is_empty());
    }

    #[test]
    fn every_bench_workspace_selects_a_label_of_its_own() {
        let ws = workspace("n5-0001").unwrap();
        let labels = ws
            .spec
            .resource
            .label_selector
            .match_labels
            .clone()
            .unwrap_or_default();
        assert_eq!(labels.get("apps").map(String::as_str), Some("n5-0001"));
        assert_eq!(ws.spec.resource.instance_type(), INSTANCE_TYPE);
    }
}
