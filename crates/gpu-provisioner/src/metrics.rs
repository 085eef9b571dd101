//! Prometheus metrics of the provisioner, and the same counts kept for the gRPC API.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use kaito_runtime::metrics::ReconcileMetrics;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Labels of an ARM request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ArmLabels {
    /// Operation, e.g. `PutAgentPool`.
    pub operation: String,
    /// HTTP status, `Transport` or `Auth`.
    pub code: String,
}

/// Labels naming an operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// Operation, e.g. `PutAgentPool`.
    pub operation: String,
}

/// Labels naming a provisioning state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// ARM provisioningState.
    pub state: String,
}

/// Labels naming why a collector candidate was skipped.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Stable PascalCase reason.
    pub reason: String,
}

/// Every metric of the provisioner.
pub struct Metrics {
    arm_requests: Family<ArmLabels, Counter>,
    arm_durations: Family<OperationLabels, Histogram>,
    pools: Family<StateLabels, Gauge>,
    creates: Counter,
    deletes: Counter,
    collected: Counter,
    gc_skipped: Family<ReasonLabels, Counter>,
    cloud_reachable: Gauge<i64, AtomicI64>,
    /// Reconcile counts, errors and durations by controller.
    pub reconciles: ReconcileMetrics,
    arm_counts: Mutex<BTreeMap<(String, String), u64>>,
    totals: [AtomicU64; 3],
}

impl Metrics {
    /// Registers every metric under `registry` (prefix it with `gpu_provisioner`).
    pub fn register(registry: &mut Registry) -> Self {
        let arm_durations = Family::<OperationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
        });
        let metrics = Metrics {
            arm_requests: Family::default(),
            arm_durations,
            pools: Family::default(),
            creates: Counter::default(),
            deletes: Counter::default(),
            collected: Counter::default(),
            gc_skipped: Family::default(),
            cloud_reachable: Gauge::default(),
            reconciles: ReconcileMetrics::register(registry),
            arm_counts: Mutex::new(BTreeMap::new()),
            totals: Default::default(),
        };
        metrics.register_into(registry);
        metrics
    }

    fn register_into(&self, r: &mut Registry) {
        let arm = "ARM requests by operation and HTTP status (or Transport/Auth)";
        r.register("arm_requests", arm, self.arm_requests.clone());
        let took = "Latency of ARM requests by operation";
        r.register(
            "arm_request_duration_seconds",
            took,
            self.arm_durations.clone(),
        );
        r.register(
            "agent_pools",
            "Managed agent pools by provisioningState",
            self.pools.clone(),
        );
        r.register(
            "agent_pool_creates",
            "Agent pool creates ARM accepted",
            self.creates.clone(),
        );
        r.register(
            "agent_pool_deletes",
            "Agent pool deletes ARM accepted",
            self.deletes.clone(),
        );
        let gc = "Ownerless agent pools the collector deleted";
        r.register("gc_collected_pools", gc, self.collected.clone());
        let skip = "Collector candidates left alone, by reason";
        r.register("gc_skipped_pools", skip, self.gc_skipped.clone());
        let up = "1 when the last ARM probe succeeded";
        r.register("cloud_reachable", up, self.cloud_reachable.clone());
    }

    /// Records one ARM request.
    pub fn arm_call(&self, operation: &str, code: &str, took: Duration) {
        let labels = ArmLabels {
            operation: operation.into(),
            code: code.into(),
        };
        self.arm_requests.get_or_create(&labels).inc();
        let op = OperationLabels {
            operation: operation.into(),
        };
        self.arm_durations
            .get_or_create(&op)
            .observe(took.as_secs_f64());
        if let Ok(mut counts) = self.arm_counts.lock() {
            *counts.entry((operation.into(), code.into())).or_default() += 1;
        }
    }

    /// Records an accepted create.
    pub fn pool_created(&self) {
        self.creates.inc();
        self.totals[0].fetch_add(1, Ordering::Relaxed);
    }

    /// Records an accepted delete.
    pub fn pool_deleted(&self) {
        self.deletes.inc();
        self.totals[1].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a collected orphan.
    pub fn pool_collected(&self) {
        self.collected.inc();
        self.totals[2].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a collector candidate left alone.
    pub fn gc_skipped(&self, reason: &str) {
        self.gc_skipped
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    /// Sets the pool counts by state from a full list.
    pub fn set_pools<'a>(&self, states: impl IntoIterator<Item = &'a str>) {
        self.pools.clear();
        for state in states {
            self.pools
                .get_or_create(&StateLabels {
                    state: state.into(),
                })
                .inc();
        }
    }

    /// Records the result of a cloud probe.
    pub fn set_cloud_reachable(&self, up: bool) {
        self.cloud_reachable.set(i64::from(up));
    }

    /// ARM request counts by (operation, code).
    pub fn arm_counts(&self) -> BTreeMap<(String, String), u64> {
        self.arm_counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Creates, deletes and collections so far.
    pub fn totals(&self) -> (u64, u64, u64) {
        let [c, d, g] = &self.totals;
        (
            c.load(Ordering::Relaxed),
            d.load(Ordering::Relaxed),
            g.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn arm_calls_show_up_by_operation_and_code() {
        let mut registry = Registry::with_prefix("gpu_provisioner");
        let metrics = Metrics::register(&mut registry);
        metrics.arm_call("PutAgentPool", "201", Duration::from_millis(20));
        metrics.arm_call("PutAgentPool", "429", Duration::from_millis(5));
        metrics.pool_created();
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            "gpu_provisioner_arm_requests_total{operation=\"PutAgentPool\",code=\"429\"} 1"
        ));
        assert!(text.contains("gpu_provisioner_agent_pool_creates_total 1"));
        assert_eq!(metrics.totals(), (1, 0, 0));
        assert_eq!(metrics.arm_counts().len(), 2);
    }
}
