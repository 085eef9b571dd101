//! Waiting for the cluster, and the small network helpers the tests need.

use std::{
    future::Future,
    net::TcpListener,
    time::{Duration, Instant},
};

use crate::Error;

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(250);

/// Polls `check` until it returns `Some`, failing with `what` after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                seconds: within.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A port of 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16, Error> {
    let io = |source| Error::Io {
        what: "finding a free port".to_owned(),
        source,
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    Ok(listener.local_addr().map_err(io)?.port())
}

/// The HTTP status of a GET, or `None` when nothing answers.
pub async fn http_status(url: &str) -> Option<u16> {
    Some(reqwest::get(url).await.ok()?.status().as_u16())
}
