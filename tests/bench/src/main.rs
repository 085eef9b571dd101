//! `kaito-bench`: runs the benchmark, prints the table on stdout and writes the JSON report.

use std::{path::Path, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;
use kaito_bench::{
    cli::{self, Args},
    report,
};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    kaito_e2e::run_main("kaito-bench", run(args)).await
}

async fn run(args: Args) -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let command = cli::reproduce_command(&argv);
    let output = args.output.clone();
    // A path that cannot be written fails now, not after the whole run.
    writable(&output)?;
    let report = kaito_bench::run::run(args, command).await?;
    print!("{}", report::render(&report));
    write_json(&output, &report)?;
    eprintln!("JSON report written to {}", output.display());
    Ok(())
}

/// Creates the report's directory and opens the report for writing, leaving any old one.
fn writable(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot write the report to {}", path.display()))?;
    Ok(())
}

fn write_json(path: &Path, report: &report::Report) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(path, json + "\n").with_context(|| format!("write {}", path.display()))
}
