//! `download`: fetches each training data URL into the data directory under its basename,
//! so the trainer never starts on an error page, an empty file or a half-written one.

use std::{
    collections::BTreeMap,
    fmt,
    fs::Permissions,
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use kaito_api::validation::{check_data_ip, check_data_url, url_basename};
use reqwest::{
    StatusCode,
    dns::{Addrs, Name, Resolve, Resolving},
};
use tokio::{fs, io::AsyncWriteExt};
use url::Url;

use crate::{
    Error,
    cli::DownloadArgs,
    error::{error_chain, io_error},
    retry::Retry,
};

/// What `download` needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Directory the files are saved in.
    pub dest: PathBuf,
    /// URLs in the order given, each with the file name it is saved under.
    pub files: Vec<(Url, String)>,
    /// Attempts per URL.
    pub retry: Retry,
    /// Whether loopback, private and link-local addresses may be reached.
    pub allow_private_addresses: bool,
}

impl TryFrom<DownloadArgs> for Options {
    type Error = Error;

    fn try_from(args: DownloadArgs) -> Result<Self, Error> {
        // `DATA_URLS` arrives as one space-separated value; flags may also hold several.
        let raw: Vec<&str> = args
            .urls
            .iter()
            .flat_map(|u| u.split_whitespace())
            .collect();
        let files = plan(&raw)?;
        if !args.allow_private_addresses {
            let refused: Vec<String> = files
                .iter()
                .filter_map(|(url, _)| check_data_url(url.as_str()).err())
                .collect();
            if !refused.is_empty() {
                return Err(Error::InvalidArgument(refused.join("; ")));
            }
        }
        Ok(Options {
            dest: args.dest,
            files,
            retry: Retry::new(args.attempts, args.retry_delay_ms),
            allow_private_addresses: args.allow_private_addresses,
        })
    }
}

/// Parses the URLs and names their files; every problem is reported at once.
pub fn plan(raw: &[&str]) -> Result<Vec<(Url, String)>, Error> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for text in raw {
        let url = match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            Ok(url) => {
                problems.push(format!(
                    "{}: only http and https are supported",
                    redact(&url)
                ));
                continue;
            }
            Err(err) => {
                problems.push(format!("{text:?} is not a URL: {err}"));
                continue;
            }
        };
        // The same naming rule as the admission webhook, so a name clash was denied there.
        let name = url_basename(&url);
        if let Some(first) = taken.insert(name.clone(), redact(&url)) {
            problems.push(format!(
                "{} and {first} both save to {name:?}",
                redact(&url)
            ));
            continue;
        }
        files.push((url, name));
    }
    if files.is_empty() && problems.is_empty() {
        problems.push("no URL given: pass URLs as arguments or in DATA_URLS".to_owned());
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(Error::InvalidArgument(problems.join("; ")))
    }
}

/// A file that was saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// Where it was saved.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// A URL that could not be downloaded.
#[derive(Debug)]
pub struct DownloadFailure {
    /// The URL without credentials or query string.
    pub url: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: FetchError,
}

impl fmt::Display for DownloadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "{}: {} ({} attempt{plural})",
            self.url, self.error, self.attempts
        )
    }
}

/// Why one attempt to download a URL failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered with a status other than 200.
    #[error("HTTP {0}")]
    Status(StatusCode),
    /// The server answered 200 with nothing in the body.
    #[error("HTTP 200 with an empty body")]
    EmptyBody,
    /// The request or the body transfer failed.
    #[error("{0}")]
    Transfer(String),
    /// The file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl FetchError {
    /// The HTTP status, when the server answered with a wrong one.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status(status) => Some(status.as_u16()),
            _ => None,
        }
    }

    fn transfer(err: reqwest::Error) -> Self {
        // reqwest's message names the URL, which may carry a signed query: drop it.
        FetchError::Transfer(error_chain(&err.without_url()))
    }
}

/// Downloads every URL; fails after trying them all if any could not be saved.
pub async fn run(opts: &Options) -> Result<Vec<Downloaded>, Error> {
    fs::create_dir_all(&opts.dest)
        .await
        .map_err(io_error(format!("creating {}", opts.dest.display())))?;
    let client = client(opts.allow_private_addresses)
        .map_err(|e| Error::InvalidArgument(format!("HTTP client: {e}")))?;
    let mut saved = Vec::new();
    let mut failures = Vec::new();
    for (url, name) in &opts.files {
        match fetch_with_retries(&client, url, &opts.dest.join(name), opts.retry).await {
            Ok(done) => {
                tracing::info!(url = %redact(url), file = %done.path.display(), bytes = done.bytes,
                    "Downloaded file");
                saved.push(done);
            }
            Err(failure) => {
                tracing::error!(url = %failure.url, status = failure.error.status(),
                    attempts = failure.attempts, error = %failure.error, "Download failed");
                failures.push(failure);
            }
        }
    }
    if failures.is_empty() {
        Ok(saved)
    } else {
        Err(Error::Download {
            failures,
            total: opts.files.len(),
        })
    }
}

/// Redirects followed per URL at most.
const MAX_REDIRECTS: usize = 10;

fn client(allow_private_addresses: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("kaito-data/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // Datasets can be large: bound the silence between chunks, not the whole transfer.
        .read_timeout(Duration::from_secs(120));
    if allow_private_addresses {
        return builder.build();
    }
    // The webhook checked the URLs as written; a redirect or a host name may still lead to
    // the node's metadata service or the cluster's network, so each hop and each resolved
    // address is checked again here.
    builder
        .redirect(reqwest::redirect::Policy::custom(
            |attempt| match redirect_allowed(attempt.previous().len(), attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(reason) => attempt.error(reason),
            },
        ))
        .dns_resolver(Arc::new(PublicAddressesOnly))
        .build()
}

/// Whether to follow a redirect to `url` after `followed` earlier ones.
fn redirect_allowed(followed: usize, url: &Url) -> Result<(), String> {
    if followed >= MAX_REDIRECTS {
        return Err(format!("more than {MAX_REDIRECTS} redirects"));
    }
    check_data_url(url.as_str())
        .map(drop)
        .map_err(|reason| format!("redirect refused: {reason}"))
}

/// Resolves host names with the system resolver and keeps only the addresses training data
/// may come from.
struct PublicAddressesOnly;

impl Resolve for PublicAddressesOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| check_data_ip(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                let reason = all.first().map_or_else(
                    || "no address".to_owned(),
                    |a| check_data_ip(a.ip()).err().unwrap_or_default(),
                );
                return Err(format!("host {host} refused: {reason}").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

async fn fetch_with_retries(
    client: &reqwest::Client,
    url: &Url,
    target: &Path,
    retry: Retry,
) -> Result<Downloaded, DownloadFailure> {
    let shown = redact(url);
    let mut attempts = 0;
    // Every failure is retried, a 404 included: object stores answer 404 for a moment after
    // an upload, and the user asked for this file.
    let result = retry
        .run(
            &format!("download {shown}"),
            |_| true,
            async |attempt| {
                attempts = attempt;
                fetch_once(client, url, target).await
            },
        )
        .await;
    result.map_err(|error| DownloadFailure {
        url: shown,
        attempts,
        error,
    })
}

/// One GET streamed into a temporary file beside the target, renamed into place when whole.
async fn fetch_once(
    client: &reqwest::Client,
    url: &Url,
    target: &Path,
) -> Result<Downloaded, FetchError> {
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(FetchError::transfer)?;
    if response.status() != StatusCode::OK {
        return Err(FetchError::Status(response.status()));
    }
    let dir = target.parent().unwrap_or_else(|| Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // Dropping the temp file on any early return deletes it: no partial file survives.
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".part")
        // Readable by the trainer, which may run as another user than this step.
        .permissions(Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(write_error(dir))?;
    let handle = partial
        .as_file()
        .try_clone()
        .map_err(write_error(partial.path()))?;
    let mut file = fs::File::from_std(handle);
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(FetchError::transfer)? {
        file.write_all(&chunk)
            .await
            .map_err(write_error(partial.path()))?;
        bytes += chunk.len() as u64;
    }
    if bytes == 0 {
        return Err(FetchError::EmptyBody);
    }
    file.sync_all().await.map_err(write_error(partial.path()))?;
    partial.persist(target).map_err(|e| FetchError::Io {
        what: format!("renaming into {}", target.display()),
        source: e.error,
    })?;
    Ok(Downloaded {
        path: target.to_path_buf(),
        bytes,
    })
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError {
    let what = format!("writing {}", path.display());
    move |source| FetchError::Io { what, source }
}

/// A URL fit for logs: no user info, and the query (often a signature) replaced.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    if shown.query().is_some() {
        shown.set_query(Some("redacted"));
    }
    shown.set_fragment(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_to_local_or_metadata_addresses_are_refused() {
        let public = Url::parse("https://data.example/d.csv").unwrap();
        assert_eq!(redirect_allowed(0, &public), Ok(()));
        for target in [
            "http://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:8080/secret.txt",
            "http://168.63.129.16/machine",
            "file:///etc/passwd",
        ] {
            let err = redirect_allowed(0, &Url::parse(target).unwrap()).unwrap_err();
            assert!(err.starts_with("redirect refused: "), "{target}: {err}");
        }
        let err = redirect_allowed(MAX_REDIRECTS, &public).unwrap_err();
        assert!(err.contains("redirects"), "{err}");
    }

    #[tokio::test]
    async fn host_names_that_resolve_only_to_local_addresses_are_refused() {
        // `localhost` resolves from /etc/hosts, so this needs no network.
        let name: Name = "localhost".parse().unwrap();
        let Err(err) = PublicAddressesOnly.resolve(name).await else {
            panic!("localhost was resolved");
        };
        let text = err.to_string();
        assert!(text.starts_with("host localhost refused: "), "{text}");
        assert!(text.contains("loopback"), "{text}");
    }

    #[test]
    fn files_are_named_after_the_last_path_segment_without_the_query() {
        let files = plan(&["https://example.com/data/train.jsonl?sig=abc&se=1"]).unwrap();
        assert_eq!(files[0].1, "train.jsonl");
    }

    #[test]
    fn two_urls_with_the_same_basename_are_refused() {
        let err = plan(&[
            "https://a.example/x/train.csv",
            "https://b.example/y/train.csv?v=2",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("\"train.csv\""), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn other_schemes_and_non_urls_are_refused_together() {
        let err = plan(&["ftp://host/x", "not a url", "https://ok.example/a"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ftp://host/x: only http and https"), "{text}");
        assert!(text.contains("\"not a url\" is not a URL"), "{text}");
    }

    #[test]
    fn no_url_at_all_is_an_invalid_argument() {
        assert!(matches!(plan(&[]), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn logged_urls_hide_credentials_and_signed_queries() {
        let url = Url::parse("https://user:pw@acct.example/c/d.json?sig=secret#frag").unwrap();
        assert_eq!(redact(&url), "https://acct.example/c/d.json?redacted");
    }
}
