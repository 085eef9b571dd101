//! What every reconcile shares: the client, settings, caches of related objects, the record
//! of node requests created but not yet seen, backoff and metrics.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::FutureExt;
use k8s_openapi::{
    api::{
        apps::v1::{ControllerRevision, Deployment, StatefulSet},
        batch::v1::Job,
        core::v1::{Node, Pod, Service},
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kaito_api::{Machine, NodeClaim, Workspace, selector};
use kaito_runtime::backoff::Backoff;
use kube::{
    Client, Resource,
    runtime::{
        events::Reporter,
        reflector::{ObjectRef, Store},
    },
};

use crate::{config::Config, metrics::Metrics};

/// Read caches of every kind a reconcile looks at, fed by the controller's watches.
#[derive(Clone)]
pub struct Stores {
    /// All nodes.
    pub nodes: Store<Node>,
    /// Machines labelled with a workspace, when the Machine CRD is installed.
    pub machines: Option<Store<Machine>>,
    /// NodeClaims labelled with a workspace, when the NodeClaim CRD is installed.
    pub node_claims: Option<Store<NodeClaim>>,
    /// Deployments labelled with a workspace.
    pub deployments: Store<Deployment>,
    /// StatefulSets labelled with a workspace.
    pub stateful_sets: Store<StatefulSet>,
    /// Services labelled with a workspace.
    pub services: Store<Service>,
    /// Jobs labelled with a workspace.
    pub jobs: Store<Job>,
    /// Pods labelled with a workspace.
    pub pods: Store<Pod>,
    /// ControllerRevisions labelled with a workspace name.
    pub revisions: Store<ControllerRevision>,
    /// Which of the cached objects each Workspace owns.
    pub owners: Owners,
    /// Nodes by label.
    pub node_labels: LabelIndex<Node>,
    /// Workspaces by a label their selector requires.
    pub selectors: LabelIndex<Workspace>,
}

/// The label pair a selector requires of every object it matches, if it requires one.
fn required_label(selector: &LabelSelector) -> Option<(String, String)> {
    selector::as_map(selector)?.into_iter().next()
}

/// Object references by the label pair they were recorded under.
type ByLabel<K> = HashMap<(String, String), HashSet<ObjectRef<K>>>;

/// Objects by label pair, recorded as they are seen, so that the objects a selector can match
/// (or the selectors a labelled object can match) are found without walking them all. The
/// cache stays the truth: every lookup reads it and matches the whole selector, so a stale
/// entry costs one look and is then dropped.
#[derive(Clone, Debug)]
pub struct LabelIndex<K: Resource<DynamicType = ()>> {
    by_label: Arc<Mutex<ByLabel<K>>>,
    /// Recorded objects that no single label can find (selectors without a required label).
    anywhere: Arc<Mutex<HashSet<ObjectRef<K>>>>,
}

impl<K: Resource<DynamicType = ()>> Default for LabelIndex<K> {
    fn default() -> Self {
        LabelIndex {
            by_label: Arc::default(),
            anywhere: Arc::default(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone> LabelIndex<K> {
    /// Records an object under each of its own labels (nodes).
    pub fn record_labels(&self, obj: &K) {
        let key = ObjectRef::from_obj(obj);
        if let Ok(mut by_label) = self.by_label.lock() {
            for (k, v) in obj.meta().labels.iter().flatten() {
                let pair = (k.clone(), v.clone());
                by_label.entry(pair).or_default().insert(key.clone());
            }
        }
    }

    /// Records an object under the label its selector requires (Workspaces).
    pub fn record_selector(&self, obj: &K, selector: &LabelSelector) {
        let key = ObjectRef::from_obj(obj);
        match required_label(selector) {
            Some(pair) => {
                if let Ok(mut by_label) = self.by_label.lock() {
                    by_label.entry(pair).or_default().insert(key);
                }
            }
            None => {
                if let Ok(mut anywhere) = self.anywhere.lock() {
                    anywhere.insert(key);
                }
            }
        }
    }

    /// The cached objects that `selector` can match: those recorded under the label it
    /// requires, or all of them when it requires none. The caller matches the whole selector.
    pub fn labelled(&self, selector: &LabelSelector, store: &Store<K>) -> Vec<Arc<K>> {
        let Some(pair) = required_label(selector) else {
            return store.state();
        };
        let Ok(mut by_label) = self.by_label.lock() else {
            return store.state();
        };
        let Some(keys) = by_label.get_mut(&pair) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        keys.retain(|key| match store.get(key) {
            Some(obj) if has_label(obj.as_ref(), &pair) => {
                found.push(obj);
                true
            }
            _ => false,
        });
        found
    }

    /// The cached objects recorded by [`LabelIndex::record_selector`] whose selector can match
    /// `labels`. The caller matches the whole selector.
    pub fn selecting(&self, labels: &BTreeMap<String, String>, store: &Store<K>) -> Vec<Arc<K>> {
        let mut keys: HashSet<ObjectRef<K>> = HashSet::new();
        if let Ok(by_label) = self.by_label.lock() {
            for (k, v) in labels {
                if let Some(found) = by_label.get(&(k.clone(), v.clone())) {
                    keys.extend(found.iter().cloned());
                }
            }
        }
        if let Ok(anywhere) = self.anywhere.lock() {
            keys.extend(anywhere.iter().cloned());
        }
        keys.iter().filter_map(|key| store.get(key)).collect()
    }
}

fn has_label<K: Resource>(obj: &K, (k, v): &(String, String)) -> bool {
    obj.meta().labels.as_ref().and_then(|l| l.get(k)) == Some(v)
}

/// The (namespace, name) of the objects each Workspace owns.
type Owned = HashMap<ObjectRef<Workspace>, BTreeSet<(Option<String>, String)>>;

/// Which objects of one kind each Workspace owns, by namespace and name, recorded as watch
/// events arrive. A reconcile then reads its own few objects from the cache instead of walking
/// every cached object, which would make each reconcile cost grow with the number of
/// Workspaces. The cache stays the truth: a recorded object it no longer has is dropped.
#[derive(Clone, Debug, Default)]
pub struct OwnerIndex {
    owned: Arc<Mutex<Owned>>,
}

impl OwnerIndex {
    /// Records that `owner` owns `obj` (nothing when there is no owner).
    pub fn record<K: Resource>(&self, owner: Option<ObjectRef<Workspace>>, obj: &K) {
        let (Some(owner), Some(name)) = (owner, obj.meta().name.clone()) else {
            return;
        };
        if let Ok(mut owned) = self.owned.lock() {
            let namespace = obj.meta().namespace.clone();
            owned.entry(owner).or_default().insert((namespace, name));
        }
    }

    /// The cached objects recorded for `owner`.
    pub fn owned<K>(&self, owner: &ObjectRef<Workspace>, store: &Store<K>) -> Vec<Arc<K>>
    where
        K: Resource<DynamicType = ()> + Clone,
    {
        let Ok(mut owned) = self.owned.lock() else {
            return Vec::new();
        };
        let Some(names) = owned.get_mut(owner) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        names.retain(|(namespace, name)| {
            let key = match namespace {
                Some(ns) => ObjectRef::new(name).within(ns),
                None => ObjectRef::new(name),
            };
            store.get(&key).map(|obj| found.push(obj)).is_some()
        });
        if names.is_empty() {
            owned.remove(owner);
        }
        found
    }

    /// Forgets a Workspace that is gone.
    pub fn forget(&self, owner: &ObjectRef<Workspace>) {
        if let Ok(mut owned) = self.owned.lock() {
            owned.remove(owner);
        }
    }
}

/// The owner indexes of the kinds a reconcile looks up by Workspace.
#[derive(Clone, Debug, Default)]
pub struct Owners {
    /// Machines.
    pub machines: OwnerIndex,
    /// NodeClaims.
    pub node_claims: OwnerIndex,
    /// Pods.
    pub pods: OwnerIndex,
    /// ControllerRevisions.
    pub revisions: OwnerIndex,
}

impl Owners {
    /// Forgets a Workspace that is gone.
    pub fn forget(&self, owner: &ObjectRef<Workspace>) {
        for index in [
            &self.machines,
            &self.node_claims,
            &self.pods,
            &self.revisions,
        ] {
            index.forget(owner);
        }
    }
}

impl Stores {
    /// Whether every cache has finished its first list.
    pub fn synced(&self) -> bool {
        fn ready<K: kube::Resource + Clone>(s: &Store<K>) -> bool
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            s.wait_until_ready()
                .now_or_never()
                .is_some_and(|r| r.is_ok())
        }
        ready(&self.nodes)
            && self.machines.as_ref().is_none_or(ready)
            && self.node_claims.as_ref().is_none_or(ready)
            && ready(&self.deployments)
            && ready(&self.stateful_sets)
            && ready(&self.services)
            && ready(&self.jobs)
            && ready(&self.pods)
            && ready(&self.revisions)
    }
}

/// How long a created node request counts as in flight without being seen in the cache.
const EXPECTATION_TTL: Duration = Duration::from_secs(120);

/// Names created per Workspace, with when.
type Created = HashMap<ObjectRef<Workspace>, Vec<(String, Instant)>>;

/// Node requests this process created that its cache may not show yet, so a lagging cache
/// never makes the controller create extras.
#[derive(Debug, Default)]
pub struct Expectations {
    created: Mutex<Created>,
}

impl Expectations {
    /// Records that `name` was created for `ws`.
    pub fn record(&self, ws: &ObjectRef<Workspace>, name: String) {
        if let Ok(mut map) = self.created.lock() {
            map.entry(ws.clone())
                .or_default()
                .push((name, Instant::now()));
        }
    }

    /// Names created for `ws` that the cache does not show yet; forgets the ones it shows
    /// and the ones older than the TTL.
    pub fn unseen(&self, ws: &ObjectRef<Workspace>, seen: &[String]) -> Vec<String> {
        let Ok(mut map) = self.created.lock() else {
            return Vec::new();
        };
        let Some(names) = map.get_mut(ws) else {
            return Vec::new();
        };
        names.retain(|(n, at)| !seen.contains(n) && at.elapsed() < EXPECTATION_TTL);
        let out = names.iter().map(|(n, _)| n.clone()).collect();
        if names.is_empty() {
            map.remove(ws);
        }
        out
    }

    /// Forgets everything about `ws` (it was deleted).
    pub fn forget(&self, ws: &ObjectRef<Workspace>) {
        if let Ok(mut map) = self.created.lock() {
            map.remove(ws);
        }
    }
}

/// State shared by all reconciles.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Effective settings.
    pub config: Config,
    /// Who the controller's events name as their reporter.
    pub reporter: Reporter,
    /// Caches of related objects.
    pub stores: Stores,
    /// Node requests created but not yet seen.
    pub expectations: Expectations,
    /// Per-Workspace retry delays after failures.
    pub backoff: Backoff<ObjectRef<Workspace>>,
    /// Metrics.
    pub metrics: Metrics,
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::runtime::{reflector, watcher};

    use super::*;

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("team".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn labelled_pod(name: &str, labels: &[(&str, &str)]) -> Pod {
        let mut p = pod(name);
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        p
    }

    fn selector(labels: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            match_expressions: None,
        }
    }

    #[test]
    fn a_label_index_finds_what_a_selector_can_match_and_drops_stale_entries() {
        let (store, mut writer) = reflector::store::<Pod>();
        let index = LabelIndex::default();
        for p in [
            labelled_pod("a", &[("apps", "phi")]),
            labelled_pod("b", &[("apps", "falcon")]),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(p.clone()));
            index.record_labels(&p);
        }
        let names = |mut found: Vec<Arc<Pod>>| -> Vec<String> {
            found.sort_by_key(|p| p.metadata.name.clone());
            found
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect()
        };
        assert_eq!(
            names(index.labelled(&selector(&[("apps", "phi")]), &store)),
            ["a"]
        );
        // Without a required label every cached object is a candidate.
        assert_eq!(names(index.labelled(&selector(&[]), &store)), ["a", "b"]);

        // "a" lost its label: the entry is stale and goes.
        let relabelled = labelled_pod("a", &[("apps", "mistral")]);
        writer.apply_watcher_event(&watcher::Event::Apply(relabelled.clone()));
        index.record_labels(&relabelled);
        assert!(
            index
                .labelled(&selector(&[("apps", "phi")]), &store)
                .is_empty()
        );
        assert_eq!(
            names(index.labelled(&selector(&[("apps", "mistral")]), &store)),
            ["a"]
        );
    }

    #[test]
    fn a_label_index_of_selectors_finds_the_ones_a_labelled_object_can_satisfy() {
        let (store, mut writer) = reflector::store::<Pod>();
        let index = LabelIndex::default();
        let (phi, any) = (pod("phi"), pod("any"));
        for p in [&phi, &any] {
            writer.apply_watcher_event(&watcher::Event::Apply(p.clone()));
        }
        index.record_selector(&phi, &selector(&[("apps", "phi")]));
        index.record_selector(&any, &selector(&[]));
        let names = |mut found: Vec<Arc<Pod>>| -> Vec<String> {
            found.sort_by_key(|p| p.metadata.name.clone());
            found
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect()
        };
        let node_labels = BTreeMap::from([("apps".to_owned(), "phi".to_owned())]);
        assert_eq!(names(index.selecting(&node_labels, &store)), ["any", "phi"]);
        assert_eq!(names(index.selecting(&BTreeMap::new(), &store)), ["any"]);
    }

    #[test]
    fn an_owner_index_returns_the_cached_objects_of_a_workspace_and_drops_deleted_ones() {
        let (store, mut writer) = reflector::store::<Pod>();
        let index = OwnerIndex::default();
        let mine = ObjectRef::<Workspace>::new("w").within("team");
        let theirs = ObjectRef::<Workspace>::new("other").within("team");
        for (name, owner) in [("a", &mine), ("b", &mine), ("c", &theirs)] {
            writer.apply_watcher_event(&watcher::Event::Apply(pod(name)));
            index.record(Some(owner.clone()), &pod(name));
        }
        index.record(None, &pod("ownerless"));
        let names = |found: Vec<Arc<Pod>>| -> Vec<String> {
            found
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect()
        };
        assert_eq!(names(index.owned(&mine, &store)), ["a", "b"]);

        writer.apply_watcher_event(&watcher::Event::Delete(pod("a")));
        assert_eq!(names(index.owned(&mine, &store)), ["b"]);
        index.forget(&mine);
        assert!(index.owned(&mine, &store).is_empty());
        assert_eq!(names(index.owned(&theirs, &store)), ["c"]);
    }
}
