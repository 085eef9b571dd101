//! One cluster shared by all tests of a test binary, started once on first use.

use std::{panic, path::PathBuf, thread};

use tokio::sync::{OnceCell, oneshot};

use crate::{Cluster, ClusterOptions, Error, workdir};

/// The shared cluster with the options it was started with, or why it failed to start.
type Shared = Result<(Cluster, ClusterOptions), String>;

static SHARED: OnceCell<Shared> = OnceCell::const_new();

/// The binary's shared cluster with default options, started on first use.
pub async fn shared_cluster() -> Result<&'static Cluster, Error> {
    shared_cluster_with(ClusterOptions::default()).await
}

/// The binary's shared cluster, started with `options` on first use; every later call must
/// pass the same options.
///
/// The cluster lives until the test binary exits: statics are never dropped, so its processes
/// end by their parent-death signal and a later start sweeps its temp dir, unless a test of
/// the binary panicked. Every call prints where the logs are; the test harness shows that
/// line only for failing tests.
pub async fn shared_cluster_with(options: ClusterOptions) -> Result<&'static Cluster, Error> {
    let shared = SHARED
        .get_or_init(|| start_on_own_thread(options.clone()))
        .await;
    let (cluster, started_with) = shared
        .as_ref()
        .map_err(|e| Error::SharedCluster(e.clone()))?;
    if *started_with != options {
        return Err(Error::SharedClusterOptions);
    }
    eprintln!(
        "kaito-testenv: shared cluster logs in {}",
        cluster.log_dir().display()
    );
    Ok(cluster)
}

/// Starts the cluster on a thread with its own runtime, so that nothing of it depends on the
/// runtime of the test that happened to come first, which ends with that test.
async fn start_on_own_thread(options: ClusterOptions) -> Shared {
    let (done, started) = oneshot::channel();
    let spawned = thread::Builder::new()
        .name("kaito-testenv-start".to_owned())
        .spawn(move || {
            let _ = done.send(start_blocking(options));
        });
    if let Err(error) = spawned {
        return Err(format!("could not start a thread: {error}"));
    }
    let lost = || Err("the start thread ended without an answer".to_owned());
    started.await.unwrap_or_else(|_| lost())
}

fn start_blocking(options: ClusterOptions) -> Shared {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Error::Runtime(error).to_string())?;
    let cluster = runtime
        .block_on(Cluster::start(options.clone()))
        .map_err(|error| error.to_string())?;
    keep_dir_on_panic(cluster.temp_dir().to_path_buf());
    Ok((cluster, options))
}

/// Marks the shared cluster's dir kept as soon as anything panics, such as a failing test, so
/// that the next sweep leaves its logs alone.
fn keep_dir_on_panic(dir: PathBuf) {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        workdir::mark_kept(&dir);
        previous(info);
    }));
}
