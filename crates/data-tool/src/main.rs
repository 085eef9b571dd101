//! `kaito-data`: downloads tuning data and pushes or pulls adapter images.

use std::process::ExitCode;

use clap::Parser;
use kaito_data::{cli::Cli, error::write_termination_message};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Cli {
        log_format,
        log_level,
        termination_log,
        command,
    } = Cli::parse();
    kaito_runtime::install_crypto_provider();
    kaito_runtime::telemetry::init(log_format, &log_level);

    match kaito_data::run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(category = err.category(), error = %err, "Step failed");
            write_termination_message(&termination_log, &err);
            ExitCode::from(err.exit_code())
        }
    }
}
