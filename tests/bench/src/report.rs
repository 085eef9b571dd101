//! The result of a run: one serializable value, written as JSON and printed as a table.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{host::Host, stats::Summary};

/// Version of the JSON layout; bumped whenever a field changes meaning or goes away.
pub const SCHEMA: &str = "kaito-bench/v1";

/// Everything one run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: String,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// How long the whole run took, cluster start and clean-ups included.
    pub wall_seconds: f64,
    /// The command that reproduces the run.
    pub command: String,
    /// The machine and the tool versions.
    pub host: Host,
    /// How the system was set up.
    pub setup: Setup,
    /// Idle memory and start-up time, by controller.
    pub startup: BTreeMap<String, Startup>,
    /// Latencies of Workspaces applied one after another at a steady rate.
    pub paced: Paced,
    /// One entry per number of Workspaces applied at once.
    pub scales: Vec<ScaleRun>,
}

/// How the system was set up.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Setup {
    /// Cargo profile the controllers were built with.
    pub controller_build: String,
    /// Preset of every Workspace.
    pub preset: String,
    /// Instance type of every Workspace (one node each).
    pub instance_type: String,
    /// Node-request kind the workspace controller creates.
    pub node_request_kind: String,
    /// How long the stand-in takes to create or delete an agent pool.
    pub cloud_delay_ms: u64,
    /// `Retry-After` the stand-in sends with long-running operations.
    pub arm_retry_after_seconds: u64,
    /// Whether the stand-in throttles like ARM.
    pub arm_rate_limits: bool,
    /// How Workspaces are applied.
    pub apply: String,
    /// How step times are taken.
    pub timing: String,
    /// How API requests are counted.
    pub api_counting: String,
    /// How long the largest run is left to settle before its last figures (the others: 5 s).
    pub settle_seconds: f64,
}

/// A controller's start-up.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Startup {
    /// Resident memory once serving, with no Workspace in the cluster.
    pub idle_rss_kib: u64,
    /// From the process start (kernel start time) to its first reconcile of an object that
    /// existed before it started (the finalizer it adds, as seen by a watch).
    pub first_reconcile_ms: f64,
}

/// The step latencies over a set of Workspaces.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latencies {
    /// Apply answered → node request (Machine) exists.
    pub apply_to_node_request: Summary,
    /// Node Ready → Deployment exists.
    pub node_ready_to_workload: Summary,
    /// Apply answered → `WorkspaceReady=True`.
    pub apply_to_ready: Summary,
}

/// Workspaces applied one at a time.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Paced {
    /// How many.
    pub workspaces: usize,
    /// Applies per second.
    pub rate_per_second: f64,
    /// Their latencies.
    pub latency: Latencies,
}

/// Workspaces applied at once.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleRun {
    /// How many.
    pub workspaces: usize,
    /// From the first apply sent to the last `WorkspaceReady=True` seen.
    pub all_ready_seconds: f64,
    /// Their latencies (queueing included).
    pub latency: Latencies,
    /// Figures of each controller, by name.
    pub controllers: BTreeMap<String, ControllerRun>,
    /// Requests the stand-in received.
    pub arm: Arm,
    /// Deleting the Workspaces until no node request or node is left, when done.
    pub cleanup_seconds: Option<f64>,
    /// How long the run was left to settle after all were Ready.
    pub settle_seconds: f64,
}

/// One controller during one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerRun {
    /// User plus system CPU from the first apply until all were Ready.
    pub cpu_seconds: f64,
    /// The same per Workspace.
    pub cpu_ms_per_workspace: f64,
    /// Peak resident memory from the first apply until all were Ready.
    pub peak_rss_kib: u64,
    /// Resident memory when all were Ready.
    pub rss_after_kib: u64,
    /// Resident memory after the settle time.
    pub rss_settled_kib: u64,
    /// API requests from the first apply until all were Ready.
    pub api_requests_to_ready: u64,
    /// API requests during the settle time.
    pub api_requests_settle: u64,
    /// Both together, per Workspace.
    pub api_requests_per_workspace: f64,
    /// Both together, by `"<verb> <resource>"`.
    pub api_calls: BTreeMap<String, u64>,
    /// Reconciles from the first apply to the end of the settle time, per Workspace (from the
    /// controller's own metrics).
    pub reconciles_per_workspace: f64,
    /// Failed reconciles in that time, by error category.
    pub reconcile_errors: BTreeMap<String, f64>,
}

/// ARM requests of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Arm {
    /// Every request, token requests included.
    pub requests: u64,
    /// Per node provisioned.
    pub requests_per_node: f64,
    /// By `"<METHOD> <operation> <status>"`.
    pub by_operation: BTreeMap<String, u64>,
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// The report as a table for people.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let h = &r.host;
    let tools: Vec<String> = h.tools.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(out, "kaito-bench ({})", r.started_at);
    let _ = writeln!(
        out,
        "host: {} cores, {:.1} GiB, Linux {}, {}; {}",
        h.cores,
        h.memory_bytes as f64 / (1u64 << 30) as f64,
        h.kernel,
        h.rustc,
        tools.join(", ")
    );
    let s = &r.setup;
    let _ = writeln!(
        out,
        "setup: {} controllers; {} on {}, one node each, {}s; stand-in: {} ms pool delay, \
         Retry-After {} s, ARM throttling {}",
        s.controller_build,
        s.preset,
        s.instance_type,
        s.node_request_kind,
        s.cloud_delay_ms,
        s.arm_retry_after_seconds,
        if s.arm_rate_limits { "on" } else { "off" },
    );
    let _ = writeln!(out, "timing: {}", s.timing);
    let _ = writeln!(out, "API requests: {}", s.api_counting);
    render_startup(&mut out, r);
    render_latency(&mut out, r);
    render_scales(&mut out, r);
    let _ = writeln!(
        out,
        "\nwall time {:.0} s; reproduce with: {}",
        r.wall_seconds, r.command
    );
    out
}

fn render_startup(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "\n{:<44}{:>14}{:>28}",
        "start-up", "idle RSS MiB", "start -> first reconcile ms"
    );
    for (name, s) in &r.startup {
        let _ = writeln!(
            out,
            "  {:<42}{:>14}{:>28.0}",
            name,
            mib(s.idle_rss_kib),
            s.first_reconcile_ms
        );
    }
}

fn latency_rows(out: &mut String, label: &str, l: &Latencies) {
    for (step, s) in [
        ("apply -> node request", &l.apply_to_node_request),
        ("node Ready -> Deployment", &l.node_ready_to_workload),
        ("apply -> WorkspaceReady", &l.apply_to_ready),
    ] {
        let _ = writeln!(
            out,
            "  {:<18}{:<26}{:>6}{:>12}{:>12}{:>12}",
            label,
            step,
            s.count,
            ms(s.median_ms),
            ms(s.p99_ms),
            ms(s.max_ms)
        );
    }
}

fn render_latency(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "\n{:<46}{:>6}{:>12}{:>12}{:>12}",
        "latency (ms)", "n", "median", "p99", "max"
    );
    let paced = format!("paced {}/s", r.paced.rate_per_second);
    latency_rows(out, &paced, &r.paced.latency);
    for run in &r.scales {
        latency_rows(out, &format!("{} at once", run.workspaces), &run.latency);
    }
}

fn render_scales(out: &mut String, r: &Report) {
    let _ = write!(out, "\n{:<44}", "Workspaces applied at once");
    for run in &r.scales {
        let _ = write!(out, "{:>12}", run.workspaces);
    }
    let row = |out: &mut String, label: &str, cell: &dyn Fn(&ScaleRun) -> String| {
        let _ = write!(out, "\n  {label:<42}");
        for run in &r.scales {
            let _ = write!(out, "{:>12}", cell(run));
        }
    };
    row(out, "all Ready (s)", &|run| {
        format!("{:.1}", run.all_ready_seconds)
    });
    row(out, "settled for (s)", &|run| {
        format!("{:.0}", run.settle_seconds)
    });
    row(out, "all Ready per Workspace (ms)", &|run| {
        format!(
            "{:.1}",
            run.all_ready_seconds * 1e3 / run.workspaces.max(1) as f64
        )
    });
    let names: Vec<String> = r
        .scales
        .first()
        .map(|run| run.controllers.keys().cloned().collect())
        .unwrap_or_default();
    for name in &names {
        let get = |run: &ScaleRun| run.controllers.get(name).cloned().unwrap_or_default();
        let _ = write!(out, "\n  {name}");
        row(out, "  CPU (s)", &|run| {
            format!("{:.2}", get(run).cpu_seconds)
        });
        row(out, "  CPU per Workspace (ms)", &|run| {
            format!("{:.2}", get(run).cpu_ms_per_workspace)
        });
        row(out, "  peak RSS (MiB)", &|run| mib(get(run).peak_rss_kib));
        row(out, "  RSS when all Ready (MiB)", &|run| {
            mib(get(run).rss_after_kib)
        });
        row(out, "  RSS after settling (MiB)", &|run| {
            mib(get(run).rss_settled_kib)
        });
        row(out, "  API requests until Ready", &|run| {
            get(run).api_requests_to_ready.to_string()
        });
        row(out, "  API requests while settling", &|run| {
            get(run).api_requests_settle.to_string()
        });
        row(out, "  API requests per Workspace", &|run| {
            format!("{:.2}", get(run).api_requests_per_workspace)
        });
        row(out, "  reconciles per Workspace", &|run| {
            format!("{:.2}", get(run).reconciles_per_workspace)
        });
        row(out, "  failed reconciles", &|run| {
            let failed: f64 = get(run).reconcile_errors.values().sum();
            format!("{:.0}", failed.max(0.0))
        });
    }
    row(out, "ARM requests", &|run| run.arm.requests.to_string());
    row(out, "ARM requests per node", &|run| {
        format!("{:.2}", run.arm.requests_per_node)
    });
    row(out, "clean-up (s)", &|run| {
        run.cleanup_seconds
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"))
    });
    let _ = writeln!(out);
    if let Some(last) = r.scales.last() {
        render_calls(out, last);
    }
}

fn render_calls(out: &mut String, run: &ScaleRun) {
    let _ = writeln!(
        out,
        "\nAPI calls per Workspace at {} Workspaces",
        run.workspaces
    );
    let n = run.workspaces.max(1) as f64;
    for (name, c) in &run.controllers {
        let mut calls: Vec<(&String, &u64)> = c.api_calls.iter().collect();
        calls.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let cells: Vec<String> = calls
            .iter()
            .map(|(call, count)| format!("{call} {:.2}", **count as f64 / n))
            .collect();
        let _ = writeln!(out, "  {name}: {}", cells.join(", "));
    }
    let mut ops: Vec<(&String, &u64)> = run.arm.by_operation.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let cells: Vec<String> = ops
        .iter()
        .map(|(op, count)| format!("{op} {:.2}", **count as f64 / n))
        .collect();
    let _ = writeln!(out, "  ARM per node: {}", cells.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let controller = ControllerRun {
            cpu_seconds: 1.5,
            api_calls: BTreeMap::from([("create machines".to_owned(), 100)]),
            ..Default::default()
        };
        Report {
            schema: SCHEMA.to_owned(),
            startup: BTreeMap::from([("gpu-provisioner".to_owned(), Startup::default())]),
            scales: vec![ScaleRun {
                workspaces: 100,
                controllers: BTreeMap::from([("workspace-controller".to_owned(), controller)]),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_json_has_the_documented_camel_case_shape() {
        let json = serde_json::to_value(sample()).unwrap();
        for key in [
            "schema",
            "startedAt",
            "wallSeconds",
            "command",
            "host",
            "setup",
            "startup",
            "paced",
            "scales",
        ] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
        assert_eq!(json["schema"], "kaito-bench/v1");
        assert!(json["host"]["memoryBytes"].is_u64());
        assert!(json["setup"]["armRateLimits"].is_boolean());
        assert!(json["startup"]["gpu-provisioner"]["firstReconcileMs"].is_f64());
        let latency = &json["paced"]["latency"]["applyToNodeRequest"];
        assert!(latency["count"].is_u64() && latency["medianMs"].is_null());
        let run = &json["scales"][0];
        assert_eq!(run["workspaces"], 100);
        assert!(run["cleanupSeconds"].is_null());
        assert!(run["settleSeconds"].is_f64());
        let wc = &run["controllers"]["workspace-controller"];
        assert_eq!(wc["cpuSeconds"], 1.5);
        assert_eq!(wc["apiCalls"]["create machines"], 100);
        for key in [
            "cpuMsPerWorkspace",
            "peakRssKib",
            "rssAfterKib",
            "rssSettledKib",
            "apiRequestsToReady",
            "apiRequestsSettle",
            "apiRequestsPerWorkspace",
            "reconcilesPerWorkspace",
            "reconcileErrors",
        ] {
            assert!(wc.get(key).is_some(), "{key} missing");
        }
        assert!(run["arm"]["requestsPerNode"].is_f64());
        assert!(run["arm"]["byOperation"].is_object());
    }

    #[test]
    fn the_table_names_every_controller_and_the_command() {
        let mut report = sample();
        report.command = "make bench".to_owned();
        let table = render(&report);
        assert!(table.contains("workspace-controller"));
        assert!(table.contains("gpu-provisioner"));
        assert!(table.contains("create machines 1.00"));
        assert!(table.ends_with("reproduce with: make bench\n"));
    }
}
