//! What the HTTPS tests share: a client that trusts only the simulator's CA, tokens, URLs and
//! polling with a deadline.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::{future::Future, time::Duration};

use aks_sim::{AksSim, SimConfig, SimHandle};
use reqwest::{Certificate, Client, Response, StatusCode};
use serde_json::{Value, json};

/// The api-version the tests call with.
pub const API_VERSION: &str = "2026-01-01";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "3c1f2a9e-5b8d-4e7f-a1c2-9d8e7f6a5b4c";
/// How long anything in these tests may take to happen.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A simulator with short delays, and a client for it.
pub async fn start(config: SimConfig) -> (SimHandle, Client) {
    kaito_runtime::install_crypto_provider();
    let sim = AksSim::start(config).await.unwrap();
    let client = client_for(&sim);
    (sim, client)
}

pub fn quick() -> SimConfig {
    let mut config = SimConfig::default();
    config.settings.create_delay = Duration::from_millis(300);
    config.settings.delete_delay = Duration::from_millis(300);
    config
}

/// A client that trusts the simulator's CA and nothing else.
pub fn client_for(sim: &SimHandle) -> Client {
    let ca = Certificate::from_pem(sim.ca_pem().as_bytes()).unwrap();
    Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Gets a token the way `azure_identity`'s client-secret credential does.
pub async fn token(sim: &SimHandle, client: &Client) -> String {
    let form = [
        ("client_id", CLIENT_ID),
        ("client_secret", "not-a-secret"),
        ("grant_type", "client_credentials"),
        ("scope", "https://management.azure.com/.default"),
    ];
    let response = client
        .post(sim.token_url(TENANT))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// The URL of a pool (or, with `""`, of the collection) with the api-version.
pub fn pool_url(sim: &SimHandle, name: &str) -> String {
    if name.is_empty() {
        format!("{}?api-version={API_VERSION}", sim.agent_pools_url())
    } else {
        format!("{}?api-version={API_VERSION}", sim.agent_pool_url(name))
    }
}

/// A GPU pool body like the provisioner sends.
pub fn gpu_body(workspace: &str) -> Value {
    json!({ "properties": {
        "type": "VirtualMachineScaleSets",
        "count": 1,
        "vmSize": "Standard_NC24ads_A100_v4",
        "osType": "Linux",
        "osSKU": "Ubuntu",
        "osDiskSizeGB": 300,
        "nodeLabels": {
            "karpenter.sh/nodepool": "kaito",
            "kaito.sh/workspace": workspace,
            "kaito.sh/workspacenamespace": "default",
            "kaito.sh/machine-type": "gpu",
        },
        "nodeTaints": ["sku=gpu:NoSchedule"],
    }})
}

/// An ARM client with a token.
pub struct Arm {
    pub client: Client,
    pub token: String,
}

impl Arm {
    pub async fn new(sim: &SimHandle, client: &Client) -> Self {
        Self {
            client: client.clone(),
            token: token(sim, client).await,
        }
    }

    pub async fn get(&self, url: &str) -> Response {
        self.client
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, url: &str, body: &Value) -> Response {
        self.client
            .put(url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, url: &str) -> Response {
        self.client
            .delete(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// Polls an `Azure-AsyncOperation` URL until the status is terminal; answers every
    /// status seen, in order.
    pub async fn follow(&self, operation_url: &str) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let body: Value = self.get(operation_url).await.json().await.unwrap();
            let status = body["status"].as_str().unwrap_or("none").to_owned();
            seen.push(status.clone());
            if status != "InProgress" {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the operation did not end: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The value of a response header.
pub fn header(response: &Response, name: &str) -> String {
    let value = response.headers().get(name);
    value
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Calls `check` until it answers `Some`, failing after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
