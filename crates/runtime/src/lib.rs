//! Operational plumbing shared by the workspace controller and the GPU provisioner: logging,
//! the admin HTTP server (metrics and health), leader election, per-object backoff and
//! shutdown signals.
#![deny(missing_docs)]

pub mod admin;
pub mod backoff;
pub mod leader;
pub mod metrics;
pub mod telemetry;

use tokio::signal::unix::{SignalKind, signal};

/// Installs the process-wide rustls crypto provider (ring). Every `main` and test harness
/// calls it first: two providers linked into one binary make client creation panic.
pub fn install_crypto_provider() {
    // A second install returns an error, which is fine: some provider is in place.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("Shutdown requested");
}
