//! Command-line flags of `kaito-bench`.

use std::{path::PathBuf, time::Duration};

use clap::Parser;

/// Measures the workspace controller and the gpu-provisioner on a local control plane with
/// the AKS stand-in: latencies, time to Ready at scale, CPU, memory and API requests.
#[derive(Parser, Clone, Debug)]
#[command(name = "kaito-bench", version, about)]
pub struct Args {
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/bench/latest.json")]
    pub output: PathBuf,

    /// Numbers of Workspaces applied at once, one run each, in this order.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000", value_parser = at_least_one)]
    pub scales: Vec<usize>,

    /// Workspaces applied one after another for the latency figures.
    #[arg(long, default_value_t = 200, value_parser = at_least_one)]
    pub paced: usize,

    /// Applies per second of the paced run (about what this machine's API server sustains,
    /// so the figures show the controllers rather than a queue).
    #[arg(long, default_value_t = 2.0, value_parser = positive_rate)]
    pub paced_rate: f64,

    /// Seconds to wait after the largest run before its settled figures are read (5 after
    /// the others).
    #[arg(long, default_value_t = 30)]
    pub settle: u64,

    /// Seconds a run may take before the bench gives up.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,

    /// Keep the stand-in's ARM request throttling (off by default: it would measure the
    /// throttle, not the controllers).
    #[arg(long)]
    pub arm_rate_limits: bool,

    /// Copy the logs of every component (controllers, API server, audit log) here at the end.
    #[arg(long)]
    pub logs: Option<PathBuf>,

    /// Run controllers from a debug build (their figures are then not comparable).
    #[arg(long)]
    pub allow_debug_build: bool,
}

impl Args {
    /// [`Args::settle`] as a duration.
    pub fn settle(&self) -> Duration {
        Duration::from_secs(self.settle)
    }

    /// [`Args::timeout`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

/// A number of Workspaces for one run: zero would measure nothing.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("a run needs at least 1 Workspace".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

/// Slowest and fastest paced rates, in applies per second: slower would take days, faster
/// is no longer paced (and 1/rate must stay a usable interval).
const RATES: (f64, f64) = (0.01, 1000.0);

/// Applies per second, within [`RATES`].
fn positive_rate(text: &str) -> Result<f64, String> {
    let (slowest, fastest) = RATES;
    match text.trim().parse::<f64>() {
        Ok(rate) if (slowest..=fastest).contains(&rate) => Ok(rate),
        Ok(_) => Err(format!(
            "the rate must be between {slowest} and {fastest} applies per second"
        )),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// The command that reruns the bench with the same flags (`argv` without the program name).
pub fn reproduce_command(argv: &[String]) -> String {
    let plain = |a: &String| {
        a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,=/:".contains(c))
    };
    if argv.is_empty() {
        "make bench".to_owned()
    } else if argv.iter().all(plain) {
        format!("make bench BENCH_ARGS=\"{}\"", argv.join(" "))
    } else {
        let quoted: Vec<String> = argv
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        format!("target/release/kaito-bench {}", quoted.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_run_one_hundred_and_a_thousand_after_one() {
        let args = Args::try_parse_from(["kaito-bench"]).unwrap();
        assert_eq!(args.scales, [1, 100, 1000]);
        assert_eq!(args.paced, 200);
        assert_eq!(args.output, PathBuf::from("target/bench/latest.json"));
        let args = Args::try_parse_from(["kaito-bench", "--scales", "5,10"]).unwrap();
        assert_eq!(args.scales, [5, 10]);
    }

    #[test]
    fn runs_of_no_workspace_and_rates_of_zero_are_refused() {
        for bad in [
            ["--scales", "1,0"],
            ["--scales", "abc"],
            ["--paced-rate", "0"],
            ["--paced-rate", "-1"],
            ["--paced-rate", "NaN"],
            ["--paced-rate", "inf"],
            ["--paced-rate", "1e10"],
            ["--paced-rate", "1e-300"],
            ["--paced", "0"],
        ] {
            let parsed = Args::try_parse_from(std::iter::once("kaito-bench").chain(bad));
            assert!(parsed.is_err(), "{bad:?} was accepted");
        }
        let args = Args::try_parse_from(["kaito-bench", "--paced-rate", "0.5"]).unwrap();
        assert_eq!(args.paced_rate, 0.5);
    }

    #[test]
    fn the_reproduce_command_carries_the_flags() {
        let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(reproduce_command(&[]), "make bench");
        assert_eq!(
            reproduce_command(&argv(&["--scales", "1,10", "--paced", "20"])),
            "make bench BENCH_ARGS=\"--scales 1,10 --paced 20\""
        );
        assert_eq!(
            reproduce_command(&argv(&["--logs", "my logs"])),
            "target/release/kaito-bench '--logs' 'my logs'"
        );
    }
}
