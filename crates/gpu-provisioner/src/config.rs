//! Command-line flags, each with the environment variable the Helm chart sets.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};
use kaito_runtime::telemetry::LogFormat;

/// How the provisioner authenticates to Azure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// A projected service-account token exchanged at the authority host.
    #[default]
    WorkloadIdentity,
    /// The instance metadata service of the node.
    ManagedIdentity,
    /// A service principal's client secret.
    ClientSecret,
}

/// Everything the provisioner can be told at start.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "gpu-provisioner",
    version,
    about = "Realises node requests as AKS agent pools"
)]
pub struct Config {
    /// Subscription of the managed cluster.
    #[arg(long, env = "ARM_SUBSCRIPTION_ID")]
    pub subscription_id: String,
    /// Resource group of the managed cluster (not the MC_ node resource group).
    #[arg(long, env = "ARM_RESOURCE_GROUP")]
    pub resource_group: String,
    /// Name of the managed cluster.
    #[arg(long, env = "AZURE_CLUSTER_NAME")]
    pub cluster_name: String,
    /// Region of the cluster (informational).
    #[arg(long, env = "LOCATION", default_value = "")]
    pub location: String,

    /// Azure Resource Manager endpoint.
    #[arg(
        long,
        env = "ARM_ENDPOINT",
        default_value = "https://management.azure.com"
    )]
    pub arm_endpoint: String,
    /// Audience of ARM tokens; the scope asked for is this plus `.default`.
    #[arg(
        long,
        env = "ARM_AUDIENCE",
        default_value = "https://management.azure.com/"
    )]
    pub arm_audience: String,
    /// api-version of the agentPools API (one with eTags and conditional requests).
    #[arg(long, env = "ARM_API_VERSION", default_value = "2026-01-01")]
    pub arm_api_version: String,
    /// Extra PEM CA bundle trusted for ARM and the authority host, besides the system roots.
    #[arg(long, env = "AZURE_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    /// Most ARM requests in flight at once.
    #[arg(long, env = "ARM_CONCURRENCY", default_value_t = 8)]
    pub arm_concurrency: usize,
    /// Longest time one ARM request may take.
    #[arg(long, env = "ARM_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub arm_timeout: Duration,

    /// Credential to use.
    #[arg(long, env = "AZURE_AUTH_MODE", value_enum, default_value_t = AuthMode::WorkloadIdentity)]
    pub auth_mode: AuthMode,
    /// Entra tenant.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub tenant_id: Option<String>,
    /// Client id of the identity or application.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Projected service-account token exchanged for Entra tokens (workload identity).
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub federated_token_file: Option<PathBuf>,
    /// Entra authority host.
    #[arg(
        long,
        env = "AZURE_AUTHORITY_HOST",
        default_value = "https://login.microsoftonline.com/"
    )]
    pub authority_host: String,
    /// Client secret (client-secret mode only).
    #[arg(long, env = "AZURE_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,

    /// Port of `/metrics` (also serves the probes).
    #[arg(long, env = "METRICS_PORT", default_value_t = 8080)]
    pub metrics_port: u16,
    /// Port of `/livez`, `/healthz` and `/readyz` (also serves the metrics).
    #[arg(long, env = "HEALTH_PROBE_PORT", default_value_t = 8081)]
    pub health_probe_port: u16,
    /// Port of the gRPC server (grpc.health.v1 and the provisioner API).
    #[arg(long, env = "GRPC_PORT", default_value_t = 8082)]
    pub grpc_port: u16,
    /// Address the servers bind to.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: std::net::IpAddr,

    /// Whether to take the leader lease before acting.
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader lease (the chart's Role grants exactly this name).
    #[arg(
        long,
        env = "LEADER_ELECTION_NAME",
        default_value = "gpu-provisioner-leader-election"
    )]
    pub leader_election_name: String,
    /// Namespace of the leader lease.
    #[arg(long, env = "SYSTEM_NAMESPACE", default_value = "gpu-provisioner")]
    pub leader_election_namespace: String,

    /// Log filter, e.g. `info` or `debug,kube=info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Kubeconfig to use instead of the in-cluster configuration.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// How often orphaned agent pools are looked for.
    #[arg(long, env = "GC_INTERVAL", default_value = "2m", value_parser = parse_duration)]
    pub gc_interval: Duration,
    /// How old (by `kaito.sh/creation-timestamp`) an ownerless pool must be to be collected.
    #[arg(long, env = "GC_GRACE_PERIOD", default_value = "10m", value_parser = parse_duration)]
    pub gc_grace_period: Duration,
    /// How long a terminal launch failure (quota, SKU) waits before the create is tried again.
    #[arg(long, env = "LAUNCH_RETRY_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub launch_retry_interval: Duration,
    /// How long to wait between polls of a running operation when ARM names no interval.
    #[arg(
        long,
        env = "OPERATION_POLL_INTERVAL",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub operation_poll_interval: Duration,
    /// How long a registered node may take to report its GPUs before Initialized=False.
    #[arg(
        long,
        env = "INITIALIZATION_DEADLINE",
        default_value = "30m",
        value_parser = parse_duration
    )]
    pub initialization_deadline: Duration,
    /// How often the cloud is probed for the health check.
    #[arg(long, env = "CLOUD_PROBE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub cloud_probe_interval: Duration,
}

impl Config {
    /// Address of the metrics server.
    pub fn metrics_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.metrics_port)
    }

    /// Address of the probe server.
    pub fn health_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.health_probe_port)
    }

    /// Address of the gRPC server.
    pub fn grpc_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.grpc_port)
    }
}

/// Parses `90s`, `2m`, `1h`, `500ms`, `1m30s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let value: u64 = rest[..digits].parse().map_err(|_| bad_duration(text))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad_duration(text)),
        };
        total += unit.saturating_mul(u32::try_from(value).map_err(|_| bad_duration(text))?);
        rest = &rest[unit_len..];
    }
    if text.is_empty() {
        return Err(bad_duration(text));
    }
    Ok(total)
}

fn bad_duration(text: &str) -> String {
    format!("{text:?} is not a duration such as 30s, 2m or 1h")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units_or_as_seconds() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 minutes").is_err());
    }

    #[test]
    fn chart_environment_fills_the_required_flags() {
        let config = Config::try_parse_from([
            "gpu-provisioner",
            "--subscription-id=sub",
            "--resource-group=rg",
            "--cluster-name=aks",
            "--leader-elect=false",
        ])
        .unwrap();
        assert_eq!(config.arm_endpoint, "https://management.azure.com");
        assert_eq!(config.gc_grace_period, Duration::from_secs(600));
        assert!(!config.leader_elect);
        assert_eq!(config.auth_mode, AuthMode::WorkloadIdentity);
    }
}
