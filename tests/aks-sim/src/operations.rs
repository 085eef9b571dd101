//! Timers of long-running operations: each waits until its operation is due, then settles it
//! (joining or removing nodes outside the state lock) and reports the outcome.

use std::sync::Arc;

use crate::{
    pools::{Ctx, Settle},
    sim::Sim,
};

/// Starts the timer of a new operation.
pub(crate) fn spawn(sim: &Arc<Sim>, id: &str) {
    let (sim, id) = (Arc::clone(sim), id.to_owned());
    tokio::spawn(async move {
        if wait_until_due(&sim, &id).await {
            settle(&sim, &id).await;
        }
    });
}

/// Waits for the deadline, which `finish_operations` may move; false when cancelled.
async fn wait_until_due(sim: &Sim, id: &str) -> bool {
    let mut wake = sim.wake.subscribe();
    loop {
        let Some(deadline) = sim.state().deadline(id) else {
            return false;
        };
        tokio::select! {
            _ = sim.cancel.cancelled() => return false,
            _ = tokio::time::sleep_until(deadline) => return true,
            changed = wake.changed() => {
                if changed.is_err() {
                    // The sender lives as long as the simulator; without it only time is left.
                    tokio::time::sleep_until(deadline).await;
                    return true;
                }
            }
        }
    }
}

async fn settle(sim: &Arc<Sim>, id: &str) {
    let settings = sim.settings();
    let step = {
        let ctx = Ctx {
            cloud: &sim.cloud,
            settings: &settings,
        };
        sim.state().settle(&ctx, id)
    };
    match step {
        Settle::Done => return,
        Settle::Scale {
            pool_uid,
            join,
            remove,
        } => {
            if settings.node_join_delay.is_zero() {
                // As on AKS, the nodes have registered by the time the pool reports success.
                sim.nodes.join(pool_uid, join, settings.gpu_delay).await;
            } else {
                let later = Arc::clone(sim);
                tokio::spawn(async move {
                    tokio::select! {
                        _ = later.cancel.cancelled() => {}
                        _ = tokio::time::sleep(settings.node_join_delay) => {
                            later.nodes.join(pool_uid, join, settings.gpu_delay).await;
                        }
                    }
                });
            }
            sim.nodes.remove(remove).await;
        }
        Settle::Drain { remove } => sim.nodes.remove(remove).await,
    }
    sim.state().succeed(id);
}
