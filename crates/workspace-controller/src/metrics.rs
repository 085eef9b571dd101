//! Metrics of the workspace controller.

use std::{collections::HashMap, sync::Mutex};

use kaito_runtime::metrics::ReconcileMetrics;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// Label naming a Workspace state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// Pending, Ready, NotReady, Running, Succeeded or Failed.
    pub state: String,
}

/// Label naming a node-request kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// machine or nodeclaim.
    pub kind: String,
}

/// Every metric the controller exposes.
pub struct Metrics {
    /// Reconcile counts, errors and durations.
    pub reconcile: ReconcileMetrics,
    workspaces: Family<StateLabels, Gauge>,
    node_requests_created: Family<KindLabels, Counter>,
    states: Mutex<HashMap<String, String>>,
}

impl Metrics {
    /// Registers the metrics under `registry` (prefix `kaito_workspace`).
    pub fn register(registry: &mut Registry) -> Self {
        let sub = registry.sub_registry_with_prefix("kaito_workspace");
        let reconcile = ReconcileMetrics::register(sub);
        let workspaces = Family::<StateLabels, Gauge>::default();
        sub.register("workspaces", "Workspaces by state", workspaces.clone());
        let node_requests_created = Family::<KindLabels, Counter>::default();
        sub.register(
            "node_requests_created",
            "Node requests created, by kind",
            node_requests_created.clone(),
        );
        Metrics {
            reconcile,
            workspaces,
            node_requests_created,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Records the state of a Workspace (`None` once it is gone).
    pub fn set_state(&self, key: &str, state: Option<&str>) {
        let Ok(mut states) = self.states.lock() else {
            return;
        };
        let old = match state {
            Some(s) => states.insert(key.to_owned(), s.to_owned()),
            None => states.remove(key),
        };
        if old.as_deref() == state {
            return;
        }
        if let Some(old) = old {
            self.workspaces
                .get_or_create(&StateLabels { state: old })
                .dec();
        }
        if let Some(new) = state {
            self.workspaces
                .get_or_create(&StateLabels {
                    state: new.to_owned(),
                })
                .inc();
        }
    }

    /// Counts a created node request.
    pub fn node_request_created(&self, kind: &str) {
        self.node_requests_created
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }
}
