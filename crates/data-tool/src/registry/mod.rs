//! A small client for the OCI distribution API: manifests and blobs, cross-repository
//! mounts, Basic and Bearer authentication, and retries of transient failures.

pub mod auth;
pub mod manifest;

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use reqwest::{
    RequestBuilder, Response, StatusCode,
    header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE},
};
use tokio::io::AsyncWriteExt;
use url::Url;

use self::{
    auth::Challenge,
    manifest::{Fetched, MANIFEST_ACCEPT, Manifest},
};
use crate::{
    digest::{Hasher, is_sha256, sha256},
    docker_config::{Credentials, DockerConfig},
    error::error_chain,
    reference::{ImageRef, Platform},
    retry::Retry,
};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry or token endpoint could not be reached, or the transfer broke off.
    #[error("{what}: {detail}")]
    Transport {
        /// The operation.
        what: String,
        /// The cause.
        detail: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{what}: HTTP {status}{detail}{}", hint(*status))]
    Status {
        /// The operation.
        what: String,
        /// The status.
        status: StatusCode,
        /// The registry's error text, when it gave one.
        detail: String,
    },
    /// Received content does not have the digest it was asked for by.
    #[error("{what}: expected {expected}, received {actual}")]
    DigestMismatch {
        /// The operation.
        what: String,
        /// Digest asked for.
        expected: String,
        /// Digest of the received bytes.
        actual: String,
    },
    /// The registry's answer cannot be used.
    #[error("{what}: {detail}")]
    Protocol {
        /// The operation.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => {
            " (authentication failed: check the registry's entry in the docker config)"
        }
        StatusCode::FORBIDDEN => " (the credentials are not allowed to do this)",
        _ => "",
    }
}

impl RegistryError {
    /// Whether trying again may help: 5xx, 429, 408, broken connections, corrupt transfers.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { .. } | RegistryError::DigestMismatch { .. } => true,
            RegistryError::Status { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            RegistryError::Protocol { .. } | RegistryError::Io { .. } => false,
        }
    }

    /// A stable PascalCase name for logs and the termination message.
    pub fn category(&self) -> &'static str {
        match self {
            RegistryError::Transport { .. } => "RegistryUnreachable",
            RegistryError::Status { status, .. } => match *status {
                StatusCode::UNAUTHORIZED => "RegistryUnauthorized",
                StatusCode::FORBIDDEN => "RegistryDenied",
                StatusCode::NOT_FOUND => "ImageNotFound",
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    "RegistryUnavailable"
                }
                _ => "RegistryRefused",
            },
            RegistryError::DigestMismatch { .. } => "DigestMismatch",
            RegistryError::Protocol { .. } => "RegistryProtocolError",
            RegistryError::Io { .. } => "FileError",
        }
    }
}

/// How to reach registries: credentials, plain-HTTP hosts and retries.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Credentials by registry.
    pub docker_config: DockerConfig,
    /// Registries (`HOST:PORT`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Attempts per operation.
    pub retry: Retry,
}

impl Default for RegistryConfig {
    /// Anonymous HTTPS access, five attempts a second apart at first.
    fn default() -> Self {
        RegistryConfig {
            docker_config: DockerConfig::default(),
            insecure: Vec::new(),
            retry: Retry::new(5, 1000),
        }
    }
}

impl TryFrom<&crate::cli::RegistryArgs> for RegistryConfig {
    type Error = crate::Error;

    fn try_from(args: &crate::cli::RegistryArgs) -> Result<Self, crate::Error> {
        let docker_config = match &args.docker_config {
            Some(path) => DockerConfig::load(path)?,
            None => DockerConfig::default(),
        };
        Ok(RegistryConfig {
            docker_config,
            insecure: args.insecure_registries.clone(),
            retry: Retry::new(args.attempts, args.retry_delay_ms),
        })
    }
}

/// Where blob bytes for an upload come from.
#[derive(Clone, Copy, Debug)]
pub enum BlobSource<'a> {
    /// A file, streamed.
    File(&'a Path),
    /// Bytes in memory.
    Bytes(&'a [u8]),
}

/// The `repository:<name>:pull` scope.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The `repository:<name>:pull,push` scope.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

/// A connection to one registry with the scopes an operation needs.
#[derive(Debug)]
pub struct Registry {
    http: reqwest::Client,
    registry: String,
    base: Url,
    credentials: Option<Credentials>,
    scopes: Vec<String>,
    authorization: Mutex<Option<String>>,
    retry: Retry,
}

impl Registry {
    /// A client for the registry of `image`, asking for `scopes` when it needs a token.
    pub fn connect(
        config: &RegistryConfig,
        image: &ImageRef,
        scopes: Vec<String>,
    ) -> Result<Self, RegistryError> {
        let insecure = config
            .insecure
            .iter()
            .any(|h| h == &image.registry || h == image.api_host());
        let scheme = if insecure { "http" } else { "https" };
        let what = format!("registry {}", image.registry);
        let base = Url::parse(&format!("{scheme}://{}/", image.api_host())).map_err(|e| {
            RegistryError::Protocol {
                what: what.clone(),
                detail: format!("not a host name: {e}"),
            }
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("kaito-data/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            // Layers can be large: bound the silence between chunks, not the transfer.
            .read_timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| RegistryError::Protocol {
                what,
                detail: error_chain(&e),
            })?;
        Ok(Registry {
            http,
            registry: image.registry.clone(),
            base,
            credentials: config.docker_config.credentials(&image.registry).cloned(),
            scopes,
            authorization: Mutex::new(None),
            retry: config.retry,
        })
    }

    /// Resolves an image to a single-platform manifest (picking `platform` from an index)
    /// and returns it with its digest.
    pub async fn resolve(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<(Manifest, String), RegistryError> {
        let repo = &image.repository;
        let (fetched, digest) = self.manifest(repo, image.manifest_reference()).await?;
        let invalid = |detail: String| RegistryError::Protocol {
            what: format!("reading the manifest of {image}"),
            detail,
        };
        match fetched {
            Fetched::Manifest(manifest) => Ok((*manifest, digest)),
            Fetched::Index(index) => {
                let entry = index.select(platform).map_err(invalid)?;
                match self.manifest(repo, &entry.digest).await? {
                    (Fetched::Manifest(manifest), digest) => Ok((*manifest, digest)),
                    (Fetched::Index(_), _) => Err(invalid("an index inside an index".into())),
                }
            }
        }
    }

    /// Fetches a manifest or index by tag or digest.
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Fetched, String), RegistryError> {
        let separator = if is_sha256(reference) { '@' } else { ':' };
        let what = format!(
            "fetching manifest {}/{repo}{separator}{reference}",
            self.registry
        );
        let (body, content_type, digest) = self
            .retry
            .run(&what, RegistryError::is_transient, async |_| {
                self.manifest_once(&what, repo, reference).await
            })
            .await?;
        let fetched = manifest::parse_manifest(&body, content_type.as_deref())
            .map_err(|detail| RegistryError::Protocol { what, detail })?;
        Ok((fetched, digest))
    }

    async fn manifest_once(
        &self,
        what: &str,
        repo: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, Option<String>, String), RegistryError> {
        let url = self.url(&format!("v2/{repo}/manifests/{reference}"))?;
        let response = self
            .send(what, || {
                Ok(self.http.get(url.clone()).header(ACCEPT, MANIFEST_ACCEPT))
            })
            .await?;
        let response = expect(what, response, &[StatusCode::OK]).await?;
        let content_type = header(&response, CONTENT_TYPE);
        let body = response.bytes().await.map_err(transport(what))?;
        let digest = sha256(&body);
        if is_sha256(reference) && digest != reference {
            return Err(RegistryError::DigestMismatch {
                what: what.to_owned(),
                expected: reference.to_owned(),
                actual: digest,
            });
        }
        Ok((body.to_vec(), content_type, digest))
    }

    /// Whether the repository already has a blob.
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool, RegistryError> {
        let what = format!("checking blob {digest} in {}/{repo}", self.registry);
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        self.retry
            .run(&what, RegistryError::is_transient, async |_| {
                let response = self.send(&what, || Ok(self.http.head(url.clone()))).await?;
                match response.status() {
                    StatusCode::OK => Ok(true),
                    StatusCode::NOT_FOUND => Ok(false),
                    status => Err(RegistryError::Status {
                        what: what.clone(),
                        status,
                        detail: error_text(response).await,
                    }),
                }
            })
            .await
    }

    /// Downloads a blob into a file, checking its digest.
    pub async fn fetch_blob(
        &self,
        repo: &str,
        digest: &str,
        to: &Path,
    ) -> Result<u64, RegistryError> {
        let what = format!("fetching blob {digest} from {}/{repo}", self.registry);
        self.retry
            .run(&what, RegistryError::is_transient, async |_| {
                self.fetch_blob_once(&what, repo, digest, to).await
            })
            .await
    }

    async fn fetch_blob_once(
        &self,
        what: &str,
        repo: &str,
        digest: &str,
        to: &Path,
    ) -> Result<u64, RegistryError> {
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        let response = self.send(what, || Ok(self.http.get(url.clone()))).await?;
        let mut response = expect(what, response, &[StatusCode::OK]).await?;
        let mut file = tokio::fs::File::create(to).await.map_err(io(what, to))?;
        let mut hasher = Hasher::default();
        while let Some(chunk) = response.chunk().await.map_err(transport(what))? {
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io(what, to))?;
        }
        file.flush().await.map_err(io(what, to))?;
        let (actual, size) = hasher.finish();
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: what.to_owned(),
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(size)
    }

    /// Downloads a small blob (an image config) into memory, checking its digest.
    pub async fn fetch_blob_bytes(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let what = format!("fetching blob {digest} from {}/{repo}", self.registry);
        let url = self.url(&format!("v2/{repo}/blobs/{digest}"))?;
        self.retry
            .run(&what, RegistryError::is_transient, async |_| {
                let response = self.send(&what, || Ok(self.http.get(url.clone()))).await?;
                let response = expect(&what, response, &[StatusCode::OK]).await?;
                let body = response.bytes().await.map_err(transport(&what))?;
                let actual = sha256(&body);
                if actual != digest {
                    return Err(RegistryError::DigestMismatch {
                        what: what.clone(),
                        expected: digest.to_owned(),
                        actual,
                    });
                }
                Ok(body.to_vec())
            })
            .await
    }

    /// Asks the registry to link a blob of another repository into `repo` without a
    /// transfer; false when it declined (the blob must then be uploaded).
    pub async fn mount_blob(
        &self,
        repo: &str,
        digest: &str,
        from: &str,
    ) -> Result<bool, RegistryError> {
        let what = format!(
            "mounting blob {digest} from {from} into {}/{repo}",
            self.registry
        );
        let mut url = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        self.retry
            .run(&what, RegistryError::is_transient, async |_| {
                let response = self.send(&what, || Ok(self.http.post(url.clone()))).await?;
                let accepted = [StatusCode::CREATED, StatusCode::ACCEPTED];
                let response = expect(&what, response, &accepted).await?;
                if response.status() == StatusCode::CREATED {
                    return Ok(true);
                }
                // Declined: the registry opened an upload session instead; close it.
                if let Ok(session) = self.location(&what, &response) {
                    let _ = self
                        .send(&what, || Ok(self.http.delete(session.clone())))
                        .await;
                }
                Ok(false)
            })
            .await
    }

    /// Uploads a blob (monolithic upload: one POST for a session, one PUT with the bytes).
    pub async fn upload_blob(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        source: BlobSource<'_>,
    ) -> Result<(), RegistryError> {
        let what = format!("uploading blob {digest} to {}/{repo}", self.registry);
        // A failed PUT may leave the session unusable, so each attempt opens a new one.
        self.retry
            .run(&what, RegistryError::is_transient, async |_| {
                self.upload_blob_once(&what, repo, digest, size, source)
                    .await
            })
            .await
    }

    async fn upload_blob_once(
        &self,
        what: &str,
        repo: &str,
        digest: &str,
        size: u64,
        source: BlobSource<'_>,
    ) -> Result<(), RegistryError> {
        let start = self.url(&format!("v2/{repo}/blobs/uploads/"))?;
        let response = self
            .send(what, || Ok(self.http.post(start.clone())))
            .await?;
        let response = expect(what, response, &[StatusCode::ACCEPTED]).await?;
        let mut put = self.location(what, &response)?;
        put.query_pairs_mut().append_pair("digest", digest);
        let response = self
            .send(what, || {
                let body = match source {
                    BlobSource::File(path) => {
                        let file = std::fs::File::open(path).map_err(io(what, path))?;
                        reqwest::Body::from(tokio::fs::File::from_std(file))
                    }
                    BlobSource::Bytes(bytes) => reqwest::Body::from(bytes.to_vec()),
                };
                Ok(self
                    .http
                    .put(put.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    // Streamed bodies have no length of their own; registries want one.
                    .header(CONTENT_LENGTH, size)
                    .body(body))
            })
            .await?;
        expect(what, response, &[StatusCode::CREATED]).await?;
        Ok(())
    }

    /// Uploads a manifest under a tag and returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        tag: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<String, RegistryError> {
        let what = format!("pushing manifest {}/{repo}:{tag}", self.registry);
        let url = self.url(&format!("v2/{repo}/manifests/{tag}"))?;
        let digest = sha256(body);
        let answered = self
            .retry
            .run(&what, RegistryError::is_transient, async |_| {
                let response = self
                    .send(&what, || {
                        Ok(self
                            .http
                            .put(url.clone())
                            .header(CONTENT_TYPE, media_type)
                            .body(body.to_vec()))
                    })
                    .await?;
                let response = expect(&what, response, &[StatusCode::CREATED]).await?;
                Ok(header(&response, "docker-content-digest"))
            })
            .await?;
        if let Some(answered) = answered.filter(|d| d != &digest) {
            tracing::warn!(computed = %digest, registry = %answered,
                "Registry reports another manifest digest");
        }
        Ok(digest)
    }

    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base.join(path).map_err(|e| RegistryError::Protocol {
            what: format!("building a URL for {path}"),
            detail: e.to_string(),
        })
    }

    /// The `Location` of an upload session, resolved against the registry URL.
    fn location(&self, what: &str, response: &Response) -> Result<Url, RegistryError> {
        let location = header(response, LOCATION).ok_or_else(|| RegistryError::Protocol {
            what: what.to_owned(),
            detail: "the registry gave no upload location".to_owned(),
        })?;
        self.base
            .join(&location)
            .map_err(|e| RegistryError::Protocol {
                what: what.to_owned(),
                detail: format!("bad upload location {location:?}: {e}"),
            })
    }

    /// Sends a request, answering one authentication challenge on the way. `build` makes
    /// the request afresh for the second try, since a streamed body can be sent once only.
    async fn send(
        &self,
        what: &str,
        build: impl Fn() -> Result<RequestBuilder, RegistryError>,
    ) -> Result<Response, RegistryError> {
        let mut answered_challenge = false;
        loop {
            let mut request = build()?;
            if let Some(value) = self.current_authorization() {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request.send().await.map_err(transport(what))?;
            if response.status() != StatusCode::UNAUTHORIZED || answered_challenge {
                return Ok(response);
            }
            let Some(challenge) = header(&response, WWW_AUTHENTICATE) else {
                return Ok(response);
            };
            if !self.answer(what, &challenge).await? {
                // Nothing to answer with: the 401 itself is the clearest error.
                return Ok(response);
            }
            answered_challenge = true;
        }
    }

    /// Gets the authorization a challenge asks for; false when there are no credentials
    /// for a Basic challenge.
    async fn answer(&self, what: &str, header_value: &str) -> Result<bool, RegistryError> {
        let value = match auth::parse_challenge(header_value) {
            Some(Challenge::Basic) => match &self.credentials {
                Some(credentials) => auth::basic(credentials),
                None => return Ok(false),
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let mut scopes = self.scopes.clone();
                scopes.extend(scope.filter(|s| !self.scopes.contains(s)));
                let token = auth::fetch_token(
                    &self.http,
                    &realm,
                    service.as_deref(),
                    &scopes,
                    self.credentials.as_ref(),
                )
                .await?;
                format!("Bearer {token}")
            }
            None => {
                return Err(RegistryError::Protocol {
                    what: what.to_owned(),
                    detail: format!("unsupported authentication challenge {header_value:?}"),
                });
            }
        };
        tracing::debug!(registry = %self.registry, "Authenticated to registry");
        *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
        Ok(true)
    }

    fn current_authorization(&self) -> Option<String> {
        self.authorization
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Passes a response whose status is one of `ok`, else turns it into an error.
async fn expect(
    what: &str,
    response: Response,
    ok: &[StatusCode],
) -> Result<Response, RegistryError> {
    let status = response.status();
    if ok.contains(&status) {
        return Ok(response);
    }
    Err(RegistryError::Status {
        what: what.to_owned(),
        status,
        detail: error_text(response).await,
    })
}

/// The registry's error text: `CODE: message` from a distribution error body, else the
/// start of the body.
pub(crate) async fn error_text(response: Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let from_json = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("errors")?.as_array()?.first().cloned())
        .map(|e| {
            let field = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            format!("{}: {}", field("code"), field("message"))
        });
    let detail = from_json.unwrap_or_else(|| text.trim().chars().take(200).collect());
    if detail.is_empty() {
        detail
    } else {
        format!(" ({detail})")
    }
}

fn header(response: &Response, name: impl reqwest::header::AsHeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn transport(what: &str) -> impl FnOnce(reqwest::Error) -> RegistryError {
    let what = what.to_owned();
    move |err| RegistryError::Transport {
        what,
        detail: error_chain(&err.without_url()),
    }
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError {
    let what = format!("{what} ({})", PathBuf::from(path).display());
    move |source| RegistryError::Io { what, source }
}
