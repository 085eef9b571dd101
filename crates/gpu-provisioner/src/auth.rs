//! Azure credentials and the HTTP transport they and the ARM client share.
//!
//! The transport is a reqwest client on the process-wide rustls provider (ring, installed at
//! start), trusting the system roots plus an optional extra CA bundle. The credential is
//! built lazily and rebuilt after a failure, so a missing token file or an unreachable
//! authority host at start makes the process unready instead of ending it.

use std::{path::Path, sync::Arc, time::Duration};

use azure_core::{
    cloud::{CloudConfiguration, CustomConfiguration},
    credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions},
    error::ErrorKind,
    http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport},
};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use tokio::sync::Mutex;

use crate::config::{AuthMode, Config};

/// Errors while setting up the transport.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The CA bundle could not be read.
    #[error("reading CA bundle {path}: {source}")]
    ReadCaBundle {
        /// Bundle path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The CA bundle is not PEM.
    #[error("parsing CA bundle {path}: {source}")]
    ParseCaBundle {
        /// Bundle path.
        path: String,
        /// Cause.
        source: reqwest_azure::Error,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(reqwest_azure::Error),
}

impl AuthError {
    /// Stable category for events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            AuthError::ReadCaBundle { .. } | AuthError::ParseCaBundle { .. } => "InvalidCaBundle",
            AuthError::Client(_) => "HttpClientFailed",
        }
    }
}

/// Builds the HTTP transport: system roots plus `ca_bundle`, bounded connect and total time.
pub fn transport(ca_bundle: Option<&Path>, timeout: Duration) -> Result<Transport, AuthError> {
    let mut builder = reqwest_azure::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout);
    if let Some(path) = ca_bundle {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| AuthError::ReadCaBundle {
            path: shown.clone(),
            source,
        })?;
        let certs = reqwest_azure::Certificate::from_pem_bundle(&pem).map_err(|source| {
            AuthError::ParseCaBundle {
                path: shown,
                source,
            }
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    let client = builder.build().map_err(AuthError::Client)?;
    Ok(Transport::new(Arc::new(client)))
}

/// Client options for the credential's own token requests: the shared transport, the
/// configured authority host and a few quick retries.
fn credential_client_options(config: &Config, transport: &Transport) -> ClientOptions {
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = config.authority_host.clone();
    let retry = ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_retries: 2,
        max_total_elapsed: azure_core::time::Duration::seconds(10),
        max_delay: azure_core::time::Duration::seconds(2),
    };
    ClientOptions {
        transport: Some(transport.clone()),
        cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
        retry: RetryOptions::exponential(retry),
        ..ClientOptions::default()
    }
}

/// Builds the configured credential now; fails when its inputs are missing.
fn build_credential(
    config: &Config,
    transport: &Transport,
) -> azure_core::Result<Arc<dyn TokenCredential>> {
    let client_options = credential_client_options(config, transport);
    match config.auth_mode {
        AuthMode::WorkloadIdentity => {
            let options = WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options },
                client_id: config.client_id.clone(),
                tenant_id: config.tenant_id.clone(),
                token_file_path: config.federated_token_file.clone(),
            };
            Ok(WorkloadIdentityCredential::new(Some(options))?)
        }
        AuthMode::ManagedIdentity => {
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: config.client_id.clone().map(UserAssignedId::ClientId),
                client_options,
            };
            Ok(ManagedIdentityCredential::new(Some(options))?)
        }
        AuthMode::ClientSecret => {
            let missing = |what: &str| {
                azure_core::Error::with_message(ErrorKind::Credential, format!("{what} is not set"))
            };
            let tenant = config
                .tenant_id
                .as_deref()
                .ok_or_else(|| missing("AZURE_TENANT_ID"))?;
            let client = config
                .client_id
                .clone()
                .ok_or_else(|| missing("AZURE_CLIENT_ID"))?;
            let secret = config
                .client_secret
                .clone()
                .ok_or_else(|| missing("AZURE_CLIENT_SECRET"))?;
            let options = ClientSecretCredentialOptions { client_options };
            Ok(ClientSecretCredential::new(
                tenant,
                client,
                Secret::new(secret),
                Some(options),
            )?)
        }
    }
}

/// A credential built on first use and rebuilt after a failed build.
pub struct LazyCredential {
    config: Config,
    transport: Transport,
    inner: Mutex<Option<Arc<dyn TokenCredential>>>,
}

impl std::fmt::Debug for LazyCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyCredential")
            .field("mode", &self.config.auth_mode)
            .finish()
    }
}

impl LazyCredential {
    /// A credential of the configured kind, not built yet.
    pub fn new(config: &Config, transport: Transport) -> Arc<Self> {
        Arc::new(LazyCredential {
            config: config.clone(),
            transport,
            inner: Mutex::new(None),
        })
    }

    async fn current(&self) -> azure_core::Result<Arc<dyn TokenCredential>> {
        let mut inner = self.inner.lock().await;
        if let Some(credential) = inner.as_ref() {
            return Ok(credential.clone());
        }
        let built = build_credential(&self.config, &self.transport).inspect_err(|error| {
            tracing::warn!(mode = ?self.config.auth_mode, %error, "Cannot build Azure credential");
        })?;
        *inner = Some(built.clone());
        Ok(built)
    }
}

#[async_trait::async_trait]
impl TokenCredential for LazyCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.current().await?.get_token(scopes, options).await
    }
}

/// The token scope for an ARM audience (`https://management.azure.com/.default`).
pub fn scope(audience: &str) -> String {
    format!("{}/.default", audience.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_of_the_public_cloud_audience_ends_in_default() {
        assert_eq!(
            scope("https://management.azure.com/"),
            "https://management.azure.com/.default"
        );
        assert_eq!(scope("https://arm.local"), "https://arm.local/.default");
    }

    #[test]
    fn a_missing_ca_bundle_is_a_clear_error() {
        kaito_runtime::install_crypto_provider();
        let missing = Path::new("/nonexistent/ca.pem");
        let error = transport(Some(missing), Duration::from_secs(1)).unwrap_err();
        assert_eq!(error.category(), "InvalidCaBundle");
    }
}
