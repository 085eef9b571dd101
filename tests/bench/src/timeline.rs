//! When each Workspace reached each step, as seen by watches in this process: the arrival
//! time of the first watch event that shows the step. The clock is this process's monotonic
//! clock (microseconds), not object timestamps, which have a resolution of one second.

use std::{
    collections::HashMap,
    fmt::Debug,
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use futures::StreamExt;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Node};
use kaito_api::{
    Machine, Workspace, conditions,
    labels::{LABEL_WORKSPACE, TERMINATION_FINALIZER, WORKSPACE_FINALIZER},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

/// The steps of one Workspace, each the first time it was seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// The apply of the Workspace was answered.
    pub applied: Option<Instant>,
    /// The Workspace carried the controller's finalizer (its first reconcile).
    pub finalized: Option<Instant>,
    /// Its node request (Machine) existed.
    pub node_request: Option<Instant>,
    /// Its node request carried the provisioner's finalizer (the provisioner's first reconcile).
    pub node_request_finalized: Option<Instant>,
    /// Its node was Ready.
    pub node_ready: Option<Instant>,
    /// Its Deployment existed.
    pub workload: Option<Instant>,
    /// Its `WorkspaceReady` condition was True.
    pub ready: Option<Instant>,
}

/// Marks of every Workspace of the bench namespace, by name.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    marks: Arc<Mutex<HashMap<String, Marks>>>,
}

/// Sets a mark only the first time.
fn first(slot: &mut Option<Instant>, at: Instant) {
    if slot.is_none() {
        *slot = Some(at);
    }
}

impl Timeline {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Marks>> {
        // A panic elsewhere cannot leave the map half-written: every update is one assignment.
        self.marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the marks of one Workspace.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut Marks)) {
        change(self.lock().entry(name.to_owned()).or_default());
    }

    /// Records that the apply of `name` was answered at `at`.
    pub fn applied(&self, name: &str, at: Instant) {
        self.update(name, |m| first(&mut m.applied, at));
    }

    /// The marks of `name`.
    pub fn get(&self, name: &str) -> Marks {
        self.lock().get(name).copied().unwrap_or_default()
    }

    /// How many of `names` are Ready, and when the last of those became so.
    pub fn ready(&self, names: &[String]) -> (usize, Option<Instant>) {
        let marks = self.lock();
        let times: Vec<Instant> = names.iter().filter_map(|n| marks.get(n)?.ready).collect();
        (times.len(), times.into_iter().max())
    }

    /// Starts the watches that fill the timeline; they run until the handles are dropped or
    /// aborted.
    pub fn watch(&self, client: &Client, namespace: &str) -> Vec<JoinHandle<()>> {
        let by_label = watcher::Config::default().labels(LABEL_WORKSPACE);
        vec![
            self.follow(
                Api::<Workspace>::namespaced(client.clone(), namespace),
                watcher::Config::default(),
                |ws, at, m| {
                    if ws.finalizers().iter().any(|f| f == WORKSPACE_FINALIZER) {
                        first(&mut m.finalized, at);
                    }
                    let conds = ws.status.as_ref().and_then(|s| s.conditions.as_deref());
                    let types = conditions::types::WORKSPACE_READY;
                    if conds.is_some_and(|c| conditions::is_true(c, types)) {
                        first(&mut m.ready, at);
                    }
                },
                |ws| Some(ws.name_any()),
            ),
            self.follow(
                Api::<Machine>::all(client.clone()),
                by_label.clone(),
                |machine, at, m| {
                    first(&mut m.node_request, at);
                    if machine
                        .finalizers()
                        .iter()
                        .any(|f| f == TERMINATION_FINALIZER)
                    {
                        first(&mut m.node_request_finalized, at);
                    }
                },
                owner,
            ),
            self.follow(
                Api::<Node>::all(client.clone()),
                by_label,
                |node, at, m| {
                    if is_ready(node) {
                        first(&mut m.node_ready, at);
                    }
                },
                owner,
            ),
            self.follow(
                Api::<Deployment>::namespaced(client.clone(), namespace),
                watcher::Config::default(),
                |_, at, m| first(&mut m.workload, at),
                |d| Some(d.name_any()),
            ),
        ]
    }

    /// Watches `api` and marks, at each event's arrival, the Workspace `key` names.
    fn follow<K>(
        &self,
        api: Api<K>,
        config: watcher::Config,
        mark: fn(&K, Instant, &mut Marks),
        key: fn(&K) -> Option<String>,
    ) -> JoinHandle<()>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        let timeline = self.clone();
        tokio::spawn(async move {
            let mut events = watcher(api, config)
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = events.next().await {
                let at = Instant::now();
                if let Ok(obj) = event
                    && let Some(name) = key(&obj)
                {
                    timeline.update(&name, |m| mark(&obj, at, m));
                }
            }
        })
    }
}

/// The Workspace a node request or node belongs to.
fn owner<K: Resource>(obj: &K) -> Option<String> {
    obj.meta().labels.as_ref()?.get(LABEL_WORKSPACE).cloned()
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_mark_keeps_the_first_time_it_was_seen() {
        let timeline = Timeline::default();
        let t0 = Instant::now();
        timeline.applied("w", t0);
        timeline.applied("w", t0 + Duration::from_secs(1));
        assert_eq!(timeline.get("w").applied, Some(t0));
    }

    #[test]
    fn readiness_counts_only_the_names_asked_for() {
        let timeline = Timeline::default();
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(5);
        timeline.update("a", |m| m.ready = Some(t0));
        timeline.update("b", |m| m.ready = Some(later));
        timeline.update("c", |m| m.applied = Some(t0));
        let names = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert_eq!(timeline.ready(&names), (2, Some(later)));
        assert_eq!(timeline.ready(&names[..1]), (1, Some(t0)));
    }
}
