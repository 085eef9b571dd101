//! Structured logs: JSON for clusters, text for people, level from a filter string.

use std::io::{IsTerminal, stdout};

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable text.
    Text,
}

/// Starts logging with the given format and filter (for example `info` or
/// `info,kube=warn`). `RUST_LOG`, when set, wins over the filter.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests start several controllers in one process) keeps the first.
    let _ = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true))
            .try_init(),
        // Colours only for a terminal: in a file they are escape codes.
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(stdout().is_terminal()))
            .try_init(),
    };
}
