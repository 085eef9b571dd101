//! `kaito-bench`: runs the benchmark, prints the table on stdout and writes the JSON report.

use std::{path::Path, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;
use kaito_bench::{cli::Args, report};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    kaito_testenv::install_crypto_provider();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kaito-bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    let command = format!("make bench (that is: {})", argv.join(" "));
    let output = args.output.clone();
    let report = kaito_bench::run::run(args, command).await?;
    print!("{}", report::render(&report));
    write_json(&output, &report)?;
    eprintln!("JSON report written to {}", output.display());
    Ok(())
}

fn write_json(path: &Path, report: &report::Report) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n").with_context(|| format!("write {}", path.display()))
}
