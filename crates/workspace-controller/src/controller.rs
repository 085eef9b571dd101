//! Wiring the Workspace controller: caches and watches of every related kind, each mapped
//! back to the Workspaces it concerns.

use std::{fmt::Debug, sync::Arc};

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::api::{
    apps::v1::{ControllerRevision, Deployment, StatefulSet},
    batch::v1::Job,
    core::v1::{Node, Pod, Service},
};
use kaito_api::{Machine, NodeClaim, Workspace, labels as l, selector};
use kaito_runtime::backoff::Backoff;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config as ControllerConfig,
        events::Reporter,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;

use crate::{
    config::Config,
    context::{Context, Expectations, LabelIndex, OwnerIndex, Owners, Stores},
    error::is_kind_missing,
    metrics::Metrics,
    workspace,
};

type Watched<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// A cache of `K` and the stream that fills it (the controller polls the stream).
fn reflect<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, Watched<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .modify(|obj| obj.managed_fields_mut().clear())
        .default_backoff()
        .reflect(writer)
        // Deletions must wake Workspaces too (a node request or node that went away).
        .touched_objects()
        .boxed();
    (store, stream)
}

/// Records, for each object the stream passes, the Workspace `owner` names as its owner.
fn indexed<K>(
    stream: Watched<K>,
    index: &OwnerIndex,
    owner: fn(&K) -> Option<ObjectRef<Workspace>>,
) -> Watched<K>
where
    K: Resource + Send + 'static,
{
    let index = index.clone();
    stream
        .inspect(move |event| {
            if let Ok(obj) = event {
                index.record(owner(obj), obj);
            }
        })
        .boxed()
}

/// The Workspace of an object labelled with the Workspace's name in the Workspace's own
/// namespace (pods, and revisions under their own label).
fn same_namespace_owner<K: Resource>(obj: &K, label: &str) -> Option<ObjectRef<Workspace>> {
    let name = obj.meta().labels.as_ref()?.get(label)?;
    Some(ObjectRef::new(name).within(obj.meta().namespace.as_deref()?))
}

fn labelled() -> watcher::Config {
    watcher::Config::default().labels(l::LABEL_WORKSPACE)
}

fn api<K>(client: &Client, namespace: &str) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    if namespace.is_empty() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), namespace)
    }
}

/// Whether the CRD of a node-request kind is served.
async fn installed<K>(client: &Client) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    match Api::<K>::all(client.clone())
        .list(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_kind_missing(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The Workspace a labelled object belongs to.
fn owner_from_labels<K: Resource>(
    obj: &K,
    namespace: Option<String>,
) -> Option<ObjectRef<Workspace>> {
    let labels = obj.meta().labels.as_ref()?;
    let name = labels.get(l::LABEL_WORKSPACE)?;
    let ns = labels
        .get(l::LABEL_WORKSPACE_NAMESPACE)
        .cloned()
        .or(namespace)?;
    Some(ObjectRef::new(name).within(&ns))
}

/// Workspaces a node concerns: the one it was provisioned for, and every Workspace whose
/// selector matches it (bring-your-own nodes).
fn workspaces_of_node(
    store: &Store<Workspace>,
    selectors: &LabelIndex<Workspace>,
    node: &Node,
) -> Vec<ObjectRef<Workspace>> {
    let labels = node.labels();
    let mut out: Vec<ObjectRef<Workspace>> = owner_from_labels(node, None).into_iter().collect();
    for ws in selectors.selecting(labels, store) {
        if selector::matches(&ws.spec.resource.label_selector, labels) {
            out.push(ObjectRef::from_obj(ws.as_ref()));
        }
    }
    out
}

/// Runs the controller until shutdown.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let ns = config.watch_namespace.clone();
    let machines_installed = installed::<Machine>(&client).await?;
    let claims_installed = installed::<NodeClaim>(&client).await?;
    tracing::info!(
        machines = machines_installed,
        nodeclaims = claims_installed,
        kind = config.node_request_api.as_str(),
        "Node-request kinds found"
    );

    let owners = Owners::default();
    let (node_labels, selectors) = (LabelIndex::default(), LabelIndex::default());
    let (nodes, node_stream) =
        reflect(Api::<Node>::all(client.clone()), watcher::Config::default());
    let labels = node_labels.clone();
    let node_stream = node_stream
        .inspect(move |event| {
            if let Ok(node) = event {
                labels.record_labels(node);
            }
        })
        .boxed();
    let (deployments, deployment_stream) = reflect(api::<Deployment>(&client, &ns), labelled());
    let (stateful_sets, sts_stream) = reflect(api::<StatefulSet>(&client, &ns), labelled());
    let (services, service_stream) = reflect(api::<Service>(&client, &ns), labelled());
    let (jobs, job_stream) = reflect(api::<Job>(&client, &ns), labelled());
    let (pods, pod_stream) = reflect(api::<Pod>(&client, &ns), labelled());
    let pod_stream = indexed(pod_stream, &owners.pods, |p| {
        same_namespace_owner(p, l::LABEL_WORKSPACE)
    });
    let revision_cfg = watcher::Config::default().labels(l::LABEL_REVISION_WORKSPACE);
    let (revisions, revision_stream) =
        reflect(api::<ControllerRevision>(&client, &ns), revision_cfg);
    let revision_stream = indexed(revision_stream, &owners.revisions, |r| {
        same_namespace_owner(r, l::LABEL_REVISION_WORKSPACE)
    });
    let machines = machines_installed.then(|| {
        let (store, stream) = reflect(Api::<Machine>::all(client.clone()), labelled());
        let stream = indexed(stream, &owners.machines, |m| owner_from_labels(m, None));
        (store, stream)
    });
    let claims = claims_installed.then(|| {
        let (store, stream) = reflect(Api::<NodeClaim>::all(client.clone()), labelled());
        let stream = indexed(stream, &owners.node_claims, |c| owner_from_labels(c, None));
        (store, stream)
    });

    let stores = Stores {
        nodes,
        machines: machines.as_ref().map(|m| m.0.clone()),
        node_claims: claims.as_ref().map(|c| c.0.clone()),
        deployments,
        stateful_sets,
        services,
        jobs,
        pods,
        revisions,
        owners,
        node_labels,
        selectors: selectors.clone(),
    };
    let reporter = Reporter {
        controller: l::FIELD_MANAGER_WORKSPACE.into(),
        instance: Some(config.pod_name.clone()).filter(|p| !p.is_empty()),
    };
    let ctx = Arc::new(Context {
        reporter,
        client: client.clone(),
        stores,
        expectations: Expectations::default(),
        backoff: Backoff::new(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(300),
        ),
        metrics,
        config: config.clone(),
    });

    let controller = Controller::new(api::<Workspace>(&client, &ns), watcher::Config::default())
        .with_config(ControllerConfig::default().concurrency(config.concurrency));
    let ws_store = controller.store();
    let mut controller = controller
        .owns_stream(deployment_stream)
        .owns_stream(sts_stream)
        .owns_stream(service_stream)
        .owns_stream(job_stream)
        .owns_stream(revision_stream)
        .watches_stream(pod_stream, |pod| {
            let ns = pod.namespace();
            owner_from_labels(&pod, ns)
        })
        .watches_stream(node_stream, move |node| {
            workspaces_of_node(&ws_store, &selectors, &node)
        });
    if let Some((_, stream)) = machines {
        controller = controller.watches_stream(stream, |m| owner_from_labels(&m, None));
    }
    if let Some((_, stream)) = claims {
        controller = controller.watches_stream(stream, |c| owner_from_labels(&c, None));
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(workspace::reconcile, workspace::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "Controller event");
            }
        })
        .await;
    Ok(())
}
