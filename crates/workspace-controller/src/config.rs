//! Command-line flags, each with an environment fallback matching the chart.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;
use kaito_api::{Cloud, NodeRequestKind};
use kaito_runtime::telemetry::LogFormat;

/// Reconciles KAITO Workspaces into GPU node requests and model workloads.
#[derive(Parser, Clone, Debug)]
#[command(name = "workspace-controller", version, about)]
pub struct Config {
    /// Node-request API to create: machine (karpenter.sh/v1alpha5) or nodeclaim (karpenter.sh/v1).
    #[arg(long, env = "NODE_REQUEST_API", default_value = "machine", value_parser = parse_kind)]
    pub node_request_api: NodeRequestKind,

    /// Cloud whose instance types apply: azure or aws.
    #[arg(long, env = "CLOUD_PROVIDER", default_value = "azure", value_parser = parse_cloud)]
    pub cloud: Cloud,

    /// Registry of the public preset images.
    #[arg(
        long,
        env = "PRESET_REGISTRY_NAME",
        default_value = "mcr.microsoft.com/aks/kaito"
    )]
    pub preset_registry: String,

    /// Image of the data tool that downloads tuning data and pushes adapters.
    #[arg(
        long,
        env = "DATA_TOOL_IMAGE",
        default_value = "ghcr.io/kaito-rs/kaito-data:0.1.0"
    )]
    pub data_tool_image: String,

    /// Namespace the controller runs in; its default ConfigMaps and webhook Secret live there.
    #[arg(long, env = "SYSTEM_NAMESPACE", default_value = "kaito-workspace")]
    pub system_namespace: String,

    /// Only reconcile Workspaces of this namespace (all namespaces when empty).
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,

    /// Node image family put on node requests: ubuntu or azurelinux.
    #[arg(long, env = "DEFAULT_NODE_IMAGE_FAMILY", default_value = "ubuntu")]
    pub node_image_family: String,

    /// Cluster name, used for AWS node classes.
    #[arg(long, env = "CLUSTER_NAME", default_value = "")]
    pub cluster_name: String,

    /// Address of the metrics server (/metrics).
    #[arg(long, env = "METRICS_BIND_ADDRESS", default_value = "0.0.0.0:8080")]
    pub metrics_bind_address: SocketAddr,

    /// Address of the health server (/livez, /healthz, /readyz).
    #[arg(
        long,
        env = "HEALTH_PROBE_BIND_ADDRESS",
        default_value = "0.0.0.0:8081"
    )]
    pub health_probe_bind_address: SocketAddr,

    /// Serve the admission webhook.
    #[arg(long, env = "WEBHOOK_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub webhook: bool,

    /// Port of the admission webhook.
    #[arg(long, env = "WEBHOOK_PORT", default_value_t = 9443)]
    pub webhook_port: u16,

    /// Address the webhook binds to.
    #[arg(long, env = "WEBHOOK_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub webhook_bind_host: String,

    /// Service that fronts the webhook in-cluster (its DNS names go into the certificate).
    #[arg(long, env = "WEBHOOK_SERVICE", default_value = "kaito-workspace")]
    pub webhook_service: String,

    /// Register the webhook by this URL instead of the Service (for runs outside a cluster);
    /// the controller then creates its webhook configurations itself.
    #[arg(long, env = "WEBHOOK_URL")]
    pub webhook_url: Option<String>,

    /// Elect a leader so that only one replica reconciles.
    #[arg(long, env = "LEADER_ELECT", default_value_t = false, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Name of the leader-election Lease.
    #[arg(long, env = "LEADER_ELECTION_ID", default_value = "ef60f9b0.io")]
    pub leader_election_id: String,

    /// Identity of this replica in the Lease (the pod name in-cluster).
    #[arg(long, env = "POD_NAME", default_value = "")]
    pub pod_name: String,

    /// Most Workspaces reconciled at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Kubeconfig to use instead of the in-cluster service account.
    #[arg(long, env = "KUBECONFIG_PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,

    /// Log level filter, for example info or debug.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Feature gates `Name=bool,...` (`Karpenter=true` selects NodeClaims, as upstream).
    #[arg(long, env = "FEATURE_GATES", default_value = "")]
    pub feature_gates: String,

    /// Print the supported presets and exit.
    #[arg(long)]
    pub list_presets: bool,
}

fn parse_kind(s: &str) -> Result<NodeRequestKind, String> {
    match s.to_ascii_lowercase().as_str() {
        "machine" | "machines" => Ok(NodeRequestKind::Machine),
        "nodeclaim" | "nodeclaims" => Ok(NodeRequestKind::NodeClaim),
        other => Err(format!(
            "unknown node-request API {other:?}: use machine or nodeclaim"
        )),
    }
}

fn parse_cloud(s: &str) -> Result<Cloud, String> {
    s.parse()
        .map_err(|e: kaito_api::sku::UnknownCloud| e.to_string())
}

/// Feature gates this controller knows.
const KNOWN_GATES: &[&str] = &["Karpenter", "vLLM", "disableNodeAutoProvisioning"];

impl Config {
    /// Applies the feature gates (an unknown gate is an error, as upstream) and returns the
    /// effective configuration.
    pub fn resolve(mut self) -> Result<Self, String> {
        for entry in self
            .feature_gates
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| format!("feature gate {entry:?} must look like Name=true"))?;
            if !KNOWN_GATES.contains(&name) {
                return Err(format!(
                    "unknown feature gate {name:?}; known: {}",
                    KNOWN_GATES.join(", ")
                ));
            }
            let on: bool = value
                .parse()
                .map_err(|_| format!("feature gate {name} must be true or false, got {value:?}"))?;
            if name == "Karpenter" && on {
                self.node_request_api = NodeRequestKind::NodeClaim;
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut all = vec!["workspace-controller"];
        all.extend_from_slice(args);
        Config::try_parse_from(all)
            .map_err(|e| e.to_string())?
            .resolve()
    }

    #[test]
    fn the_karpenter_gate_selects_node_claims() {
        let cfg = parse(&["--feature-gates", "vLLM=false,Karpenter=true"]).expect("valid");
        assert_eq!(cfg.node_request_api, NodeRequestKind::NodeClaim);
        assert_eq!(
            parse(&[]).expect("valid").node_request_api,
            NodeRequestKind::Machine
        );
    }

    #[test]
    fn unknown_gates_and_apis_are_refused() {
        assert!(parse(&["--feature-gates", "Warp=true"]).is_err_and(|e| e.contains("Warp")));
        assert!(parse(&["--node-request-api", "pods"]).is_err_and(|e| e.contains("nodeclaim")));
        assert!(parse(&["--cloud", "gcp"]).is_err());
    }
}
