//! Which endpoint a request path names. ARM matches its fixed segments without case.

use crate::requests::operation;

/// The cluster a path names: subscription, resource group and managed cluster as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClusterPath {
    pub subscription: String,
    pub resource_group: String,
    pub cluster: String,
}

/// An ARM endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ArmPath {
    Cluster(ClusterPath),
    Pools(ClusterPath),
    Pool(ClusterPath, String),
    Abort(ClusterPath, String),
    /// The `Azure-AsyncOperation` URL.
    Operation {
        subscription: String,
        id: String,
    },
    /// The `Location` URL.
    OperationResult {
        subscription: String,
        id: String,
    },
}

impl ArmPath {
    pub fn subscription(&self) -> &str {
        match self {
            ArmPath::Cluster(path)
            | ArmPath::Pools(path)
            | ArmPath::Pool(path, _)
            | ArmPath::Abort(path, _) => &path.subscription,
            ArmPath::Operation { subscription, .. }
            | ArmPath::OperationResult { subscription, .. } => subscription,
        }
    }
}

/// Any endpoint of the simulator other than the control API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Token { tenant: String },
    OpenIdConfiguration { tenant: String },
    Keys,
    InstanceDiscovery,
    Arm(ArmPath),
    Unknown,
}

impl Endpoint {
    /// Reads a request path.
    pub fn parse(path: &str) -> Self {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let is = |segment: &str, fixed: &str| segment.eq_ignore_ascii_case(fixed);
        match segments.as_slice() {
            [tenant, o, v, t] if is(o, "oauth2") && is(v, "v2.0") && is(t, "token") => {
                Endpoint::Token {
                    tenant: (*tenant).to_owned(),
                }
            }
            [tenant, v, w, o]
                if is(v, "v2.0") && is(w, ".well-known") && is(o, "openid-configuration") =>
            {
                Endpoint::OpenIdConfiguration {
                    tenant: (*tenant).to_owned(),
                }
            }
            [_, d, v, k] if is(d, "discovery") && is(v, "v2.0") && is(k, "keys") => Endpoint::Keys,
            [c, d, i] if is(c, "common") && is(d, "discovery") && is(i, "instance") => {
                Endpoint::InstanceDiscovery
            }
            [s, ..] if is(s, "subscriptions") => {
                arm(&segments).map_or(Endpoint::Unknown, Endpoint::Arm)
            }
            _ => Endpoint::Unknown,
        }
    }

    /// The operation kind requests are counted under.
    pub fn kind(&self, method: &str) -> &'static str {
        match (self, method) {
            (Endpoint::Token { .. }, "POST") => operation::TOKEN,
            (Endpoint::OpenIdConfiguration { .. }, "GET") => operation::OPENID_CONFIGURATION,
            (Endpoint::Keys, "GET") => operation::KEYS,
            (Endpoint::InstanceDiscovery, "GET") => operation::INSTANCE_DISCOVERY,
            (Endpoint::Arm(ArmPath::Cluster(_)), "GET") => operation::CLUSTER_GET,
            (Endpoint::Arm(ArmPath::Pools(_)), "GET") => operation::POOL_LIST,
            (Endpoint::Arm(ArmPath::Pool(..)), "GET") => operation::POOL_GET,
            (Endpoint::Arm(ArmPath::Pool(..)), "PUT") => operation::POOL_PUT,
            (Endpoint::Arm(ArmPath::Pool(..)), "DELETE") => operation::POOL_DELETE,
            (Endpoint::Arm(ArmPath::Abort(..)), "POST") => operation::POOL_ABORT,
            (Endpoint::Arm(ArmPath::Operation { .. }), "GET") => operation::OPERATION_GET,
            (Endpoint::Arm(ArmPath::OperationResult { .. }), "GET") => {
                operation::OPERATION_RESULT_GET
            }
            _ => operation::UNKNOWN,
        }
    }
}

fn arm(segments: &[&str]) -> Option<ArmPath> {
    let is = |segment: &str, fixed: &str| segment.eq_ignore_ascii_case(fixed);
    let owned = |segment: &&str| (*segment).to_owned();
    match segments {
        [_, sub, p, ns, l, _, o, id]
            if is(p, "providers") && is(ns, "Microsoft.ContainerService") && is(l, "locations") =>
        {
            let (subscription, id) = (owned(sub), owned(id));
            if is(o, "operations") {
                Some(ArmPath::Operation { subscription, id })
            } else if is(o, "operationresults") {
                Some(ArmPath::OperationResult { subscription, id })
            } else {
                None
            }
        }
        [_, sub, g, rg, p, ns, m, cluster, rest @ ..]
            if is(g, "resourceGroups")
                && is(p, "providers")
                && is(ns, "Microsoft.ContainerService")
                && is(m, "managedClusters") =>
        {
            let path = ClusterPath {
                subscription: owned(sub),
                resource_group: owned(rg),
                cluster: owned(cluster),
            };
            match rest {
                [] => Some(ArmPath::Cluster(path)),
                [a] if is(a, "agentPools") => Some(ArmPath::Pools(path)),
                [a, name] if is(a, "agentPools") => Some(ArmPath::Pool(path, owned(name))),
                [a, name, x] if is(a, "agentPools") && is(x, "abort") => {
                    Some(ArmPath::Abort(path, owned(name)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "/subscriptions/s/resourceGroups/rg/providers/\
                           Microsoft.ContainerService/managedClusters/aks";

    #[test]
    fn agent_pool_paths_are_read_without_case_on_fixed_segments() {
        let path = Endpoint::parse(&format!("{}/agentpools/ws1", CLUSTER.to_lowercase()));
        let Endpoint::Arm(ArmPath::Pool(cluster, name)) = &path else {
            panic!("{path:?}")
        };
        assert_eq!(
            (cluster.resource_group.as_str(), name.as_str()),
            ("rg", "ws1")
        );
        assert_eq!(path.kind("PUT"), operation::POOL_PUT);
        assert_eq!(path.kind("PATCH"), operation::UNKNOWN);
        let abort = Endpoint::parse(&format!("{CLUSTER}/agentPools/ws1/abort"));
        assert_eq!(abort.kind("POST"), operation::POOL_ABORT);
        assert_eq!(
            Endpoint::parse(&format!("{CLUSTER}/agentPools")).kind("GET"),
            operation::POOL_LIST
        );
    }

    #[test]
    fn operation_urls_and_aad_paths_are_recognised() {
        let status = "/subscriptions/s/providers/Microsoft.ContainerService/locations/eastus/\
                      operations/abc";
        assert_eq!(
            Endpoint::parse(status).kind("GET"),
            operation::OPERATION_GET
        );
        let result = status.replace("operations", "operationresults");
        assert_eq!(
            Endpoint::parse(&result).kind("GET"),
            operation::OPERATION_RESULT_GET
        );
        let token = Endpoint::parse("/tenant-1/oauth2/v2.0/token");
        assert_eq!(
            token,
            Endpoint::Token {
                tenant: "tenant-1".into()
            }
        );
        let openid = Endpoint::parse("/t/v2.0/.well-known/openid-configuration");
        assert_eq!(openid.kind("GET"), operation::OPENID_CONFIGURATION);
        assert_eq!(Endpoint::parse("/nowhere"), Endpoint::Unknown);
    }
}
