//! An HTTPS stand-in for the parts of Azure a GPU node provisioner talks to: the Azure AD token
//! endpoint and the AKS agentPools API with its long-running operations, errors included. When
//! a pool's create succeeds it joins kwok-managed Nodes to a real local cluster, named, labelled
//! and sized like AKS nodes, and deletes them with the pool.
//!
//! ```no_run
//! # async fn example() -> Result<(), aks_sim::Error> {
//! use aks_sim::{AksSim, SimConfig};
//!
//! let sim = AksSim::start(SimConfig::default()).await?;
//! // Point the client at sim.base_url() (ARM) and sim.authority_host() (AAD), trusting
//! // sim.ca_pem(); then assert on sim.requests(), sim.pools() and sim.put_bodies().
//! sim.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! Every knob and fault is also reachable over the control API under `/_sim` (see the README).
#![deny(missing_docs)]

mod arm;
mod auth;
mod config;
mod control;
mod faults;
mod gateway;
mod handle;
mod ids;
mod nodes;
mod operations;
mod pools;
mod requests;
mod server;
mod sim;
mod tls;

use std::{
    io,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
};

use axum::Router;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use crate::{
    arm::error::ErrorBody,
    config::{
        AuthConfig, Bucket, CloudIds, Quota, QuotaCode, RateLimits, Settings, SimConfig,
        parse_duration,
    },
    faults::{ActiveRule, FaultAction, FaultRule, OperationFailure, Outage},
    handle::{PoolSeed, SimHandle},
    pools::OperationKind,
    requests::{CLIENT_CLOSED, PutRecord, RequestCount, RequestCounts, RequestKey, operation},
};
use crate::{nodes::Joiner, server::Listener, sim::Sim};

/// Why the simulator could not start or refused a direct change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The test certificates could not be generated.
    #[error("generating the test certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The TLS configuration was refused.
    #[error("building the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The address could not be listened on.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// An output file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A pool inserted directly was refused, as a PUT would be.
    #[error("refused with {status}: {} ({})", error.message, error.code)]
    Rejected {
        /// The HTTP status a PUT would get.
        status: u16,
        /// The ARM error.
        error: ErrorBody,
    },
}

/// Starts simulators.
#[derive(Debug)]
pub struct AksSim;

impl AksSim {
    /// Starts a simulator on the current tokio runtime.
    pub async fn start(config: SimConfig) -> Result<SimHandle, Error> {
        let tls = tls::generate()?;
        let socket = server::bind(config.listen)?;
        let addr = socket.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let base_url = format!("https://{addr}");
        let sim = build(config.clone(), base_url, tls.ca_pem);
        let router = Router::new()
            .nest("/_sim", control::router())
            .fallback(gateway::entry)
            .with_state(Arc::clone(&sim));
        let listener = Arc::new(Listener::start(socket, tls.server_config, router)?);
        let _ = sim.listener.set(Arc::downgrade(&listener));
        write(config.ca_out.as_ref(), &sim.ca_pem)?;
        write(config.url_out.as_ref(), &format!("{}\n", sim.base_url))?;
        let (url, cluster) = (&sim.base_url, &sim.cloud.cluster);
        tracing::info!(%url, %cluster, "Started the AKS simulator");
        Ok(SimHandle { sim, listener })
    }
}

fn build(config: SimConfig, base_url: String, ca_pem: String) -> Arc<Sim> {
    let cancel = CancellationToken::new();
    let (wake, _) = watch::channel(0);
    let mut faults = faults::Faults::default();
    for rule in config.faults {
        faults.add(rule);
    }
    Arc::new_cyclic(|sim| Sim {
        cloud: config.cloud,
        auth: config.auth,
        api_versions: config.api_versions,
        base_url,
        ca_pem,
        settings: Mutex::new(config.settings),
        state: Mutex::default(),
        faults: Mutex::new(faults),
        tokens: Mutex::default(),
        requests: Mutex::default(),
        puts: Mutex::default(),
        nodes: match config.kube {
            Some(client) => Joiner::start(client, sim.clone(), cancel.clone()),
            None => Joiner::disabled(),
        },
        wake,
        cancel,
        listener: OnceLock::new(),
    })
}

fn write(path: Option<&PathBuf>, contents: &str) -> Result<(), Error> {
    let Some(path) = path else { return Ok(()) };
    std::fs::write(path, contents).map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })
}
