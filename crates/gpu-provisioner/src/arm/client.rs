//! The ARM agentPools client on azure_core's pipeline: bearer tokens, no inner retries
//! (the controllers requeue by error class, so retries never stack), a bounded number of
//! requests in flight, and a deadline on each request.

use std::{sync::Arc, time::Duration};

use azure_core::{
    credentials::TokenCredential,
    error::ErrorKind,
    http::{
        ClientOptions, Context, Method, Pipeline, PipelineSendOptions, RawResponse, Request,
        RetryOptions, Transport, Url,
        headers::{HeaderName, Headers},
        policies::{Policy, auth::BearerTokenAuthorizationPolicy},
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::{
    Accepted, AgentPools,
    error::{ArmError, ErrorClass},
    types::{AgentPool, AgentPoolBody, AgentPoolList, CloudError, CloudErrorBody, OperationStatus},
};
use crate::metrics::Metrics;

const AZURE_ASYNC_OPERATION: HeaderName = HeaderName::from_static("azure-asyncoperation");
const LOCATION: HeaderName = HeaderName::from_static("location");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
const X_MS_RETRY_AFTER_MS: HeaderName = HeaderName::from_static("x-ms-retry-after-ms");

/// Where the managed cluster is and how to talk to ARM.
#[derive(Clone, Debug)]
pub struct ArmTarget {
    /// ARM endpoint, e.g. `https://management.azure.com`.
    pub endpoint: String,
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group of the cluster.
    pub resource_group: String,
    /// Cluster name.
    pub cluster_name: String,
    /// api-version of the agentPools API.
    pub api_version: String,
}

impl ArmTarget {
    /// URL of the agentPools collection.
    pub fn pools_url(&self) -> String {
        format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/\
             managedClusters/{}/agentPools",
            self.endpoint.trim_end_matches('/'),
            self.subscription_id,
            self.resource_group,
            self.cluster_name
        )
    }
}

/// The ARM implementation of [`AgentPools`].
pub struct ArmClient {
    pipeline: Pipeline,
    target: ArmTarget,
    limit: Semaphore,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl ArmClient {
    /// A client sending through `transport` with tokens of `credential` for `scope`.
    pub fn new(
        target: ArmTarget,
        credential: Arc<dyn TokenCredential>,
        scope: String,
        transport: Transport,
        concurrency: usize,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let auth: Arc<dyn Policy> =
            Arc::new(BearerTokenAuthorizationPolicy::new(credential, [scope]));
        let options = ClientOptions {
            transport: Some(transport),
            retry: RetryOptions::none(),
            ..ClientOptions::default()
        };
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            vec![auth],
            None,
        );
        ArmClient {
            pipeline,
            target,
            limit: Semaphore::new(concurrency.max(1)),
            timeout,
            metrics,
        }
    }

    fn pool_url(&self, name: &str) -> String {
        self.with_version(&format!("{}/{name}", self.target.pools_url()))
    }

    fn with_version(&self, url: &str) -> String {
        format!("{url}?api-version={}", self.target.api_version)
    }

    /// Sends one request and returns the buffered response, whatever its status.
    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        url: &str,
        headers: &[(&'static str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, ArmError> {
        let url = Url::parse(url).map_err(|e| {
            ArmError::without_response(operation, ErrorClass::InvalidRequest, e.to_string())
        })?;
        let mut request = Request::new(url, method);
        for (name, value) in headers {
            request.insert_header(HeaderName::from_static(name), value.clone());
        }
        if let Some(body) = body {
            request.insert_header(HeaderName::from_static("content-type"), "application/json");
            request.set_body(body);
        }
        let _permit = self.limit.acquire().await.map_err(|e| {
            ArmError::without_response(operation, ErrorClass::Transient, e.to_string())
        })?;
        let started = std::time::Instant::now();
        let options = PipelineSendOptions {
            skip_checks: true,
            ..PipelineSendOptions::default()
        };
        let context = Context::new();
        let sent = self.pipeline.send(&context, &mut request, Some(options));
        let result = match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(transport_error(operation, &error)),
            Err(_) => Err(ArmError::without_response(
                operation,
                ErrorClass::Transient,
                format!("no answer within {:?}", self.timeout),
            )),
        };
        let code = match &result {
            Ok(response) => u16::from(response.status()).to_string(),
            Err(error) if error.class == ErrorClass::Auth => "Auth".to_owned(),
            Err(_) => "Transport".to_owned(),
        };
        self.metrics.arm_call(operation, &code, started.elapsed());
        result
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: &str,
    ) -> Result<(u16, Option<T>), ArmError> {
        let response = self.send(operation, Method::Get, url, &[], None).await?;
        let status = u16::from(response.status());
        if status == 404 {
            return Ok((status, None));
        }
        if !(200..300).contains(&status) {
            return Err(error_from(operation, &response));
        }
        Ok((status, Some(parse_body(operation, &response)?)))
    }
}

#[async_trait::async_trait]
impl AgentPools for ArmClient {
    async fn get(&self, name: &str) -> Result<Option<AgentPool>, ArmError> {
        Ok(self.get_json("GetAgentPool", &self.pool_url(name)).await?.1)
    }

    async fn create(&self, name: &str, body: &AgentPoolBody) -> Result<Accepted, ArmError> {
        const OP: &str = "PutAgentPool";
        let bytes = serde_json::to_vec(body).map_err(|e| {
            ArmError::without_response(OP, ErrorClass::InvalidRequest, e.to_string())
        })?;
        let headers = [("if-none-match", "*".to_owned())];
        let url = self.pool_url(name);
        let response = self
            .send(OP, Method::Put, &url, &headers, Some(bytes))
            .await?;
        let status = u16::from(response.status());
        if !(200..300).contains(&status) {
            return Err(error_from(OP, &response));
        }
        self.metrics.pool_created();
        Ok(Accepted {
            pool: serde_json::from_slice(response.body()).ok(),
            operation_url: operation_url(response.headers()),
            retry_after: retry_after(response.headers()),
        })
    }

    async fn delete(&self, name: &str, etag: Option<&str>) -> Result<Accepted, ArmError> {
        const OP: &str = "DeleteAgentPool";
        let headers: Vec<_> = etag
            .map(|e| ("if-match", e.to_owned()))
            .into_iter()
            .collect();
        let url = self.pool_url(name);
        let response = self.send(OP, Method::Delete, &url, &headers, None).await?;
        let status = u16::from(response.status());
        if !(200..300).contains(&status) {
            return Err(error_from(OP, &response));
        }
        self.metrics.pool_deleted();
        Ok(Accepted {
            pool: None,
            operation_url: operation_url(response.headers()),
            retry_after: retry_after(response.headers()),
        })
    }

    async fn operation(&self, url: &str) -> Result<OperationStatus, ArmError> {
        const OP: &str = "GetOperation";
        match self.get_json::<OperationStatus>(OP, url).await? {
            (_, Some(status)) => Ok(status),
            (status, None) => Err(ArmError::from_response(OP, status, not_found(), None)),
        }
    }

    async fn list(&self) -> Result<Vec<AgentPool>, ArmError> {
        let mut pools = Vec::new();
        let mut next = Some(self.with_version(&self.target.pools_url()));
        while let Some(url) = next.take() {
            let (status, page) = self
                .get_json::<AgentPoolList>("ListAgentPools", &url)
                .await?;
            let page = page.ok_or_else(|| {
                ArmError::from_response("ListAgentPools", status, not_found(), None)
            })?;
            pools.extend(page.value);
            next = page.next_link.filter(|link| !link.is_empty());
        }
        Ok(pools)
    }
}

fn not_found() -> CloudErrorBody {
    CloudErrorBody {
        code: "NotFound".into(),
        ..CloudErrorBody::default()
    }
}

fn transport_error(operation: &'static str, error: &azure_core::Error) -> ArmError {
    let class = match error.kind() {
        ErrorKind::Credential => ErrorClass::Auth,
        _ => ErrorClass::Transient,
    };
    ArmError::without_response(operation, class, error.to_string())
}

fn parse_body<T: DeserializeOwned>(
    operation: &'static str,
    response: &RawResponse,
) -> Result<T, ArmError> {
    serde_json::from_slice(response.body()).map_err(|e| {
        let message = format!("unreadable response body: {e}");
        ArmError::without_response(operation, ErrorClass::Transient, message)
    })
}

fn error_from(operation: &'static str, response: &RawResponse) -> ArmError {
    let status = u16::from(response.status());
    let body = serde_json::from_slice::<CloudError>(response.body())
        .ok()
        .and_then(|e| e.error)
        .unwrap_or_default();
    ArmError::from_response(operation, status, body, retry_after(response.headers()))
}

fn operation_url(headers: &Headers) -> Option<String> {
    headers
        .get_optional_string(&AZURE_ASYNC_OPERATION)
        .or_else(|| headers.get_optional_string(&LOCATION))
        .filter(|u| !u.is_empty())
}

/// The wait ARM asks for: `retry-after-ms` headers win over `Retry-After` seconds.
fn retry_after(headers: &Headers) -> Option<Duration> {
    let millis = |name: &HeaderName| headers.get_optional_str(name)?.trim().parse::<u64>().ok();
    if let Some(ms) = millis(&X_MS_RETRY_AFTER_MS).or_else(|| millis(&RETRY_AFTER_MS)) {
        return Some(Duration::from_millis(ms));
    }
    let secs = headers
        .get_optional_str(&RETRY_AFTER)?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pools_url_names_the_cluster_in_its_resource_group() {
        let target = ArmTarget {
            endpoint: "https://arm.local/".into(),
            subscription_id: "sub".into(),
            resource_group: "rg".into(),
            cluster_name: "aks".into(),
            api_version: "2026-01-01".into(),
        };
        assert_eq!(
            target.pools_url(),
            "https://arm.local/subscriptions/sub/resourceGroups/rg/providers/\
             Microsoft.ContainerService/managedClusters/aks/agentPools"
        );
    }

    #[test]
    fn retry_after_reads_milliseconds_before_seconds() {
        let mut headers = Headers::new();
        headers.insert(RETRY_AFTER, "7");
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(X_MS_RETRY_AFTER_MS, "250");
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&Headers::new()), None);
    }
}
