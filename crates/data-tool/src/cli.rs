//! Command-line interface: subcommands, flags and their environment fallbacks.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kaito_runtime::telemetry::LogFormat;

/// Exit codes, shown in `--help`.
const EXIT_CODES: &str = "Exit codes: 0 done; 1 a download, registry or file operation \
failed; 2 invalid arguments or docker config; 3 the results directory holds no adapter.";

/// Help heading of the flags every subcommand takes.
const GLOBAL: &str = "Global options";

/// Moves data into and adapters out of a KAITO tuning Job.
#[derive(Debug, Parser)]
#[command(name = "kaito-data", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Log line format: `text` for Job logs read by people, `json` for log pipelines.
    #[arg(
        long,
        global = true,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        help_heading = GLOBAL
    )]
    pub log_format: LogFormat,

    /// Log filter such as `info` or `debug,hyper=info`; `RUST_LOG` wins when set.
    #[arg(
        long,
        global = true,
        env = "LOG_LEVEL",
        default_value = "info",
        help_heading = GLOBAL
    )]
    pub log_level: String,

    /// File that receives the failure message shown by `kubectl describe pod`; written only
    /// when it already exists (the kubelet creates it).
    #[arg(
        long,
        global = true,
        env = "TERMINATION_LOG",
        default_value = "/dev/termination-log",
        help_heading = GLOBAL
    )]
    pub termination_log: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download training data files into a directory, one file per URL.
    Download(DownloadArgs),
    /// Push the adapter in a results directory as an OCI image with the files under /data.
    Push(PushArgs),
    /// Pull an image and copy the files under its /data into a directory.
    Pull(PullArgs),
}

/// Flags of `download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Directory the files are saved in, each under its URL's last path segment.
    #[arg(long, env = "DATA_VOLUME_PATH")]
    pub dest: PathBuf,

    /// Attempts per URL before it counts as failed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,

    /// Wait before the second attempt, in milliseconds; it doubles after each failure.
    #[arg(long, default_value_t = 2000)]
    pub retry_delay_ms: u64,

    /// Let URLs, redirects and resolved host names reach loopback, private and link-local
    /// addresses, which are refused otherwise (for local mirrors and tests).
    #[arg(long, env = "KAITO_DATA_ALLOW_PRIVATE_ADDRESSES")]
    pub allow_private_addresses: bool,

    /// http or https URLs; `DATA_URLS` may hold them instead, separated by spaces.
    #[arg(env = "DATA_URLS", required = true, value_name = "URL")]
    pub urls: Vec<String>,
}

/// Flags of `push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Directory the trainer wrote the adapter into; its top-level files are pushed.
    #[arg(long)]
    pub dir: PathBuf,

    /// Target image, `REGISTRY/REPOSITORY:TAG`.
    #[arg(long)]
    pub image: String,

    /// Image the adapter layer goes on top of; it must provide `/bin/sh`, `mkdir` and `cp`
    /// for the inference adapter init container. `none` pushes the adapter layer alone.
    #[arg(long, default_value = "busybox:latest")]
    pub base_image: String,

    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Flags of `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image to fetch, `REGISTRY/REPOSITORY:TAG` or `...@sha256:...`.
    #[arg(long)]
    pub image: String,

    /// Directory the files under the image's /data are written to.
    #[arg(long)]
    pub dest: PathBuf,

    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Registry access flags shared by `push` and `pull`.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Docker config JSON with registry credentials (`auths`), or a directory holding
    /// `config.json`. Without it registries are accessed anonymously.
    #[arg(long, env = "DOCKER_CONFIG")]
    pub docker_config: Option<PathBuf>,

    /// Registry (`HOST:PORT`) spoken to over plain HTTP instead of HTTPS; repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,

    /// Platform picked from multi-platform images and written into the pushed config,
    /// `OS/ARCH[/VARIANT]`; defaults to this machine's.
    #[arg(long)]
    pub platform: Option<String>,

    /// Attempts per registry operation; 5xx, 429 and connection errors are retried.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,

    /// Wait before the second attempt, in milliseconds; it doubles after each failure.
    #[arg(long, default_value_t = 1000)]
    pub retry_delay_ms: u64,
}
