//! The collector of orphaned agent pools: pools carrying our labels that no node request
//! owns, past a grace period, idle and running. Pools without our labels are never touched.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kaito_api::{Machine, NodeClaim, labels};
use kube::{Api, ResourceExt, api::ListParams};

use crate::{
    arm::{AgentPool, ArmError},
    context::Context,
    controller::{ReconcileError, error::is_not_found, kube_io},
    launch::parse_creation_label,
    register::elapsed,
};

/// Why a collection round failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Listing pools or deleting one failed.
    #[error(transparent)]
    Cloud(#[from] ArmError),
    /// Listing node requests or nodes failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Releasing a node failed.
    #[error(transparent)]
    Node(#[from] ReconcileError),
}

impl GcError {
    /// Stable category for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            GcError::Cloud(e) => e.class.as_str(),
            GcError::Kube(_) => "KubeApiFailed",
            GcError::Node(e) => e.category(),
        }
    }
}

/// What to do with one pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcDecision {
    /// Not a pool of ours: never touched, not even counted.
    NotOurs,
    /// Ours but left alone, for a stable PascalCase reason.
    Skip(&'static str),
    /// An orphan to delete.
    Collect,
}

/// Whether a pool carries KAITO ownership labels (a workspace or RAG engine, plus the
/// node pool or provisioner label of either Karpenter era).
pub fn is_ours(pool: &AgentPool) -> bool {
    let owner = pool.label(labels::LABEL_WORKSPACE).is_some()
        || pool.label(labels::LABEL_RAGENGINE).is_some();
    let karpenter = pool.label(labels::LABEL_NODEPOOL).is_some()
        || pool.label(labels::LABEL_PROVISIONER_NAME).is_some();
    owner && karpenter
}

/// Decides one pool: `owners` holds the names of every Machine and NodeClaim, including
/// those being deleted.
pub fn decide(
    pool: &AgentPool,
    owners: &BTreeSet<String>,
    now: Timestamp,
    grace: Duration,
) -> GcDecision {
    if !is_ours(pool) {
        return GcDecision::NotOurs;
    }
    if owners.contains(&pool.name) {
        return GcDecision::Skip("Owned");
    }
    if pool.is_stopped() {
        return GcDecision::Skip("Stopped");
    }
    if pool.is_busy() {
        return GcDecision::Skip("OperationInProgress");
    }
    let Some(created) = pool
        .label(labels::LABEL_CREATION_TIMESTAMP)
        .and_then(parse_creation_label)
    else {
        return GcDecision::Skip("NoCreationTimestamp");
    };
    if elapsed(Some(created), now) < grace {
        return GcDecision::Skip("GracePeriod");
    }
    GcDecision::Collect
}

/// Runs a collection round every `interval` until the task is dropped.
pub async fn run(ctx: Arc<Context>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match collect_once(&ctx).await {
            Ok(0) => tracing::debug!("No orphaned agent pools"),
            Ok(n) => tracing::info!(collected = n, "Collected orphaned agent pools"),
            Err(error) => {
                tracing::warn!(category = error.category(), %error, "Collection round failed")
            }
        }
    }
}

/// One round: list pools and owners, delete the orphans' nodes, then the orphans.
pub async fn collect_once(ctx: &Context) -> Result<usize, GcError> {
    let pools = ctx.cloud.list().await?;
    let owners = owners(ctx).await?;
    let now = Timestamp::now();
    let mut collected = 0;
    for pool in &pools {
        match decide(pool, &owners, now, ctx.settings.gc_grace_period) {
            GcDecision::NotOurs => {}
            GcDecision::Skip(reason) => ctx.metrics.gc_skipped(reason),
            GcDecision::Collect => {
                if collect(ctx, pool).await? {
                    collected += 1;
                }
            }
        }
    }
    Ok(collected)
}

/// Names of every Machine and NodeClaim; a kind whose CRD is absent has none.
async fn owners(ctx: &Context) -> Result<BTreeSet<String>, kube::Error> {
    let mut names = BTreeSet::new();
    let params = ListParams::default();
    match Api::<NodeClaim>::all(ctx.client.clone())
        .list_metadata(&params)
        .await
    {
        Ok(list) => names.extend(list.items.iter().map(|o| o.name_any())),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e),
    }
    match Api::<Machine>::all(ctx.client.clone())
        .list_metadata(&params)
        .await
    {
        Ok(list) => names.extend(list.items.iter().map(|o| o.name_any())),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(names)
}

/// Deletes an orphan's nodes and then the orphan (if it is still the version listed).
async fn collect(ctx: &Context, pool: &AgentPool) -> Result<bool, GcError> {
    let Some(_guard) = ctx.try_lock_pool(&pool.name) else {
        ctx.metrics.gc_skipped("PoolBusy");
        return Ok(false);
    };
    for node in kube_io::pool_nodes(ctx, &pool.name, None).await? {
        kube_io::release_node(ctx, &node).await?;
    }
    match ctx
        .cloud
        .delete(&pool.name, pool.properties.e_tag.as_deref())
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    ctx.metrics.pool_collected();
    tracing::info!(pool = %pool.name, "Collected orphaned agent pool");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::arm::types::PowerState;

    fn pool(name: &str, labels: &[(&str, &str)], state: &str) -> AgentPool {
        let mut p = AgentPool {
            name: name.into(),
            ..AgentPool::default()
        };
        p.properties.provisioning_state = Some(state.into());
        p.properties.node_labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        p
    }

    const OURS: [(&str, &str); 3] = [
        ("kaito.sh/workspace", "w"),
        ("karpenter.sh/nodepool", "kaito"),
        ("kaito.sh/creation-timestamp", "2025-05-02T10-00-00Z"),
    ];

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn an_ownerless_labelled_pool_is_collected_after_the_grace_period() {
        let p = pool("orphan", &OURS, "Succeeded");
        let grace = Duration::from_secs(600);
        let owners = BTreeSet::new();
        assert_eq!(
            decide(&p, &owners, at("2025-05-02T10:05:00Z"), grace),
            GcDecision::Skip("GracePeriod")
        );
        assert_eq!(
            decide(&p, &owners, at("2025-05-02T10:11:00Z"), grace),
            GcDecision::Collect
        );
    }

    #[test]
    fn a_pool_without_our_labels_is_never_touched() {
        let p = pool("userpool", &[("kaito.sh/workspace", "w")], "Succeeded");
        let late = at("2030-01-01T00:00:00Z");
        assert_eq!(
            decide(&p, &BTreeSet::new(), late, Duration::ZERO),
            GcDecision::NotOurs
        );
        let bare = pool("system", &[], "Succeeded");
        assert_eq!(
            decide(&bare, &BTreeSet::new(), late, Duration::ZERO),
            GcDecision::NotOurs
        );
    }

    #[test]
    fn owned_stopped_and_busy_pools_are_left_alone() {
        let late = at("2030-01-01T00:00:00Z");
        let owned = pool("ws1", &OURS, "Succeeded");
        let owners = BTreeSet::from(["ws1".to_owned()]);
        assert_eq!(
            decide(&owned, &owners, late, Duration::ZERO),
            GcDecision::Skip("Owned")
        );
        let mut stopped = pool("ws2", &OURS, "Succeeded");
        stopped.properties.power_state = Some(PowerState {
            code: "Stopped".into(),
        });
        assert_eq!(
            decide(&stopped, &owners, late, Duration::ZERO),
            GcDecision::Skip("Stopped")
        );
        let starting = pool("ws3", &OURS, "Starting");
        assert_eq!(
            decide(&starting, &owners, late, Duration::ZERO),
            GcDecision::Skip("OperationInProgress")
        );
    }
}
