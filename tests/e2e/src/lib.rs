//! The whole kaito-rs system on one machine, for the demo, the end-to-end suite and the
//! benchmarks: a real local control plane, the AKS stand-in and both controllers.

pub mod examples;
pub mod system;

pub use system::{ClusterRef, Options, System, cluster_options, kubectl};

/// Runs a command-line program's body on the crypto provider the clients need, and turns its
/// result into the exit code, printing the error chain after the program's name.
pub async fn run_main<F>(program: &str, body: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    kaito_testenv::install_crypto_provider();
    match body.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program} failed: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
