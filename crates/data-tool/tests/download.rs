//! `download` against a local HTTP server with a good, a missing, an empty and a flaky file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    os::unix::fs::PermissionsExt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{Router, http::StatusCode, response::Html, routing::get};
use common::{arg, parse, weights};
use kaito_data::{
    Error,
    cli::Command,
    download::{self, Downloaded},
};

/// Hit counts per route.
#[derive(Clone, Default)]
struct Hits {
    missing: Arc<AtomicUsize>,
    flaky: Arc<AtomicUsize>,
}

/// Serves the test files; returns the base URL and the hit counters.
async fn file_server() -> (String, Hits) {
    let hits = Hits::default();
    let (missing, flaky) = (hits.missing.clone(), hits.flaky.clone());
    let app = Router::new()
        .route("/data/train.jsonl", get(|| async { weights(200_000) }))
        .route(
            "/missing/eval.csv",
            get(move || async move {
                missing.fetch_add(1, Ordering::SeqCst);
                (
                    StatusCode::NOT_FOUND,
                    Html("<html><body>Not Found</body></html>"),
                )
            }),
        )
        .route("/empty/empty.json", get(|| async { "" }))
        .route(
            "/flaky/flaky.parquet",
            get(move || async move {
                // Fails twice, then serves the file.
                if flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                    (StatusCode::SERVICE_UNAVAILABLE, Vec::new())
                } else {
                    (StatusCode::OK, weights(5_000))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

/// Downloads as the tuning Job does, except that the test server on 127.0.0.1 is allowed.
async fn download(dest: &std::path::Path, urls: &[&str]) -> Result<Vec<Downloaded>, Error> {
    download_with(dest, &["--allow-private-addresses"], urls).await
}

async fn download_with(
    dest: &std::path::Path,
    flags: &[&str],
    urls: &[&str],
) -> Result<Vec<Downloaded>, Error> {
    let mut args = vec!["download", "--dest", arg(dest), "--retry-delay-ms", "5"];
    args.extend_from_slice(flags);
    args.extend_from_slice(urls);
    let Command::Download(args) = parse(&args) else {
        unreachable!()
    };
    download::run(&download::Options::try_from(args)?).await
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_served_file_is_saved_under_its_basename_without_the_query() {
    let (base, _) = file_server().await;
    let dest = tempfile::tempdir().unwrap();
    let url = format!("{base}/data/train.jsonl?sig=secret&se=2030");

    let saved = download(dest.path(), &[&url]).await.unwrap();

    assert_eq!(saved[0].path, dest.path().join("train.jsonl"));
    assert_eq!(std::fs::read(&saved[0].path).unwrap(), weights(200_000));
    assert_eq!(files_in(dest.path()), ["train.jsonl"]);
    let mode = std::fs::metadata(&saved[0].path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644, "the trainer may run as another user");
}

#[tokio::test]
async fn a_404_fails_after_every_attempt_naming_the_url_and_status_and_leaves_no_file() {
    let (base, hits) = file_server().await;
    let dest = tempfile::tempdir().unwrap();
    let url = format!("{base}/missing/eval.csv");

    let err = download(dest.path(), &[&url]).await.unwrap_err();

    let text = err.to_string();
    assert!(text.contains(&url), "{text}");
    assert!(text.contains("HTTP 404 Not Found"), "{text}");
    assert!(text.contains("3 attempts"), "{text}");
    assert_eq!(hits.missing.load(Ordering::SeqCst), 3);
    assert_eq!(err.exit_code(), 1);
    assert!(
        files_in(dest.path()).is_empty(),
        "{:?}",
        files_in(dest.path())
    );
}

#[tokio::test]
async fn an_empty_body_fails_and_leaves_no_file() {
    let (base, _) = file_server().await;
    let dest = tempfile::tempdir().unwrap();

    let err = download(dest.path(), &[&format!("{base}/empty/empty.json")])
        .await
        .unwrap_err();

    assert!(err.to_string().contains("empty body"), "{err}");
    assert!(files_in(dest.path()).is_empty());
}

#[tokio::test]
async fn a_flaky_server_is_retried_until_the_file_arrives() {
    let (base, hits) = file_server().await;
    let dest = tempfile::tempdir().unwrap();

    let saved = download(dest.path(), &[&format!("{base}/flaky/flaky.parquet")])
        .await
        .unwrap();

    assert_eq!(hits.flaky.load(Ordering::SeqCst), 3);
    assert_eq!(std::fs::read(&saved[0].path).unwrap(), weights(5_000));
    assert_eq!(files_in(dest.path()), ["flaky.parquet"]);
}

#[tokio::test]
async fn one_failed_url_fails_the_step_while_the_others_are_saved() {
    let (base, _) = file_server().await;
    let dest = tempfile::tempdir().unwrap();
    let good = format!("{base}/data/train.jsonl");
    let bad = format!("{base}/missing/eval.csv");

    let err = download(dest.path(), &[&good, &bad]).await.unwrap_err();

    let Error::Download { failures, total } = &err else {
        panic!("expected a download failure, got {err}");
    };
    assert_eq!((failures.len(), *total), (1, 2));
    assert_eq!(failures[0].error.status(), Some(404));
    assert_eq!(files_in(dest.path()), ["train.jsonl"]);
}

#[tokio::test]
async fn the_binary_reads_its_urls_from_the_environment_and_exits_one_on_failure() {
    let (base, _) = file_server().await;
    let dest = tempfile::tempdir().unwrap();
    let termination_log = tempfile::NamedTempFile::new().unwrap();
    let bad = format!("{base}/missing/eval.csv");
    let urls = format!("{base}/data/train.jsonl  {bad}");

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kaito-data"))
        .args(["download", "--retry-delay-ms", "5", "--log-format", "json"])
        .env("KAITO_DATA_ALLOW_PRIVATE_ADDRESSES", "true")
        .env("DATA_URLS", urls)
        .env("DATA_VOLUME_PATH", dest.path())
        .env("TERMINATION_LOG", termination_log.path())
        .output()
        .await
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let failed_line = stdout
        .lines()
        .find(|l| l.contains("\"Download failed\""))
        .unwrap_or_else(|| panic!("no failure line in:\n{stdout}"));
    let line: serde_json::Value = serde_json::from_str(failed_line).unwrap();
    assert_eq!(line["url"], bad);
    assert_eq!(line["status"], 404);
    assert_eq!(files_in(dest.path()), ["train.jsonl"]);
    let message = std::fs::read_to_string(termination_log.path()).unwrap();
    assert!(
        message.starts_with("DownloadFailed: 1 of 2 downloads failed"),
        "{message}"
    );
}

#[tokio::test]
async fn urls_of_other_schemes_are_refused_before_any_download() {
    let dest = tempfile::tempdir().unwrap();
    let err = download(dest.path(), &["ftp://host/x", "file:///etc/passwd"])
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("ftp://host/x"), "{err}");
    assert!(files_in(dest.path()).is_empty());
}

#[tokio::test]
async fn local_addresses_are_refused_unless_allowed_before_any_download() {
    let (base, hits) = file_server().await;
    let dest = tempfile::tempdir().unwrap();
    let url = format!("{base}/missing/eval.csv");
    let err = download_with(dest.path(), &[], &[&url]).await.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert!(files_in(dest.path()).is_empty());
    assert_eq!(
        hits.missing.load(Ordering::SeqCst),
        0,
        "the server was asked"
    );
}
