//! `cluster-start`: how long the local control plane of the tests and the demo takes to
//! start, from nothing to ready with the project's CRDs applied, over several starts.

use std::{process::ExitCode, time::Instant};

use anyhow::bail;
use clap::Parser;
use kaito_bench::{host::Host, stats::Summary};
use kaito_testenv::Cluster;

/// Starts and stops the local cluster (etcd, kube-apiserver, controller-manager, scheduler,
/// kwok, the project's CRDs and controller identities) several times, one after another,
/// and prints the start times.
#[derive(Parser, Debug)]
#[command(name = "cluster-start", version, about)]
struct Args {
    /// Starts to measure.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    starts: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    kaito_e2e::run_main("cluster-start", run(&args)).await
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let host = Host::read();
    let mut samples = Vec::new();
    for i in 1..=args.starts {
        let wall = Instant::now();
        let cluster = Cluster::start(kaito_e2e::cluster_options()).await?;
        let took = cluster.start_duration();
        if took.is_zero() || took > wall.elapsed() {
            bail!("start {i}: the cluster reported an impossible start time {took:?}");
        }
        drop(cluster);
        eprintln!(
            "start {i}/{}: {:.2} s (stopped after {:.2} s)",
            args.starts,
            took.as_secs_f64(),
            wall.elapsed().as_secs_f64()
        );
        samples.push(took);
    }
    let summary = Summary::of(&samples);
    let tools: Vec<String> = host.tools.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "host: {} cores, Linux {}; {}",
        host.cores,
        host.kernel,
        tools.join(", ")
    );
    println!(
        "cluster start to ready over {} starts: median {:.2} s, max {:.2} s",
        summary.count,
        summary.median_ms.unwrap_or_default() / 1e3,
        summary.max_ms.unwrap_or_default() / 1e3
    );
    println!(
        "reproduce with: make bench-cluster-start BENCH_ARGS=\"--starts {}\"",
        args.starts
    );
    Ok(())
}
