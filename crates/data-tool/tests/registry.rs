//! `push` and `pull` against a real distribution registry started for each test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    io::Read,
    sync::{Arc, Mutex},
};

use axum::{Json, Router, extract::Query, http::HeaderMap, routing::get};
use common::{
    Auth, LocalRegistry, adapter_dir, arg, assert_same_top_level_files, docker_config, pull, push,
};
use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use kaito_data::{
    digest::sha256,
    reference::ImageRef,
    registry::{
        BlobSource, Registry, RegistryConfig,
        manifest::{DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST},
        push_scope,
    },
};
use serde_json::{Value, json};

const ADAPTER_PATHS: [&str; 5] = [
    "data/",
    "data/adapter_config.json",
    "data/adapter_model.safetensors",
    "data/fine_tuning_completed.txt",
    "data/training_args.bin",
];

/// A manifest fetched with plain HTTP, independent of the client under test.
async fn raw_manifest(host: &str, repo: &str, tag: &str, basic: Option<(&str, &str)>) -> Value {
    let url = format!("http://{host}/v2/{repo}/manifests/{tag}");
    let mut request = reqwest::Client::new()
        .get(url)
        .header("Accept", OCI_MANIFEST);
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let digest = response.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.bytes().await.unwrap();
    assert_eq!(sha256(&body), digest);
    let mut manifest: Value = serde_json::from_slice(&body).unwrap();
    manifest["digest"] = json!(digest);
    manifest
}

async fn raw_blob(host: &str, repo: &str, digest: &Value, basic: Option<(&str, &str)>) -> Vec<u8> {
    let url = format!("http://{host}/v2/{repo}/blobs/{}", digest.as_str().unwrap());
    let mut request = reqwest::Client::new().get(url);
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// The entry paths of a gzip-compressed tar and the digest of the uncompressed tar.
fn tar_paths(gzip: &[u8]) -> (Vec<String>, String) {
    let mut tar = Vec::new();
    GzDecoder::new(gzip).read_to_end(&mut tar).unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    let paths = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    (paths, sha256(&tar))
}

/// What a tiny base image pushed for a test is made of.
struct FakeBase {
    image: String,
    manifest_digest: String,
    layer_digest: String,
    diff_id: String,
}

/// Pushes a one-layer image in the Docker schema 2 format (as Docker Hub serves busybox),
/// with a shell stand-in and no `/data`.
async fn push_fake_base(registry: &LocalRegistry, repo: &str, tag: &str) -> FakeBase {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, body) in [("bin/sh", "#!fake shell\n"), ("etc/base-release", "tiny\n")] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o755);
        tar.append_data(&mut header, path, body.as_bytes()).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    std::io::Write::write_all(&mut gzip, &tar).unwrap();
    let layer = gzip.finish().unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
        "history": [{"created_by": "fake base"}],
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": sha256(&config),
            "size": config.len(),
        },
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": sha256(&layer), "size": layer.len()}],
    }))
    .unwrap();

    let image = registry.image(&format!("{repo}:{tag}"));
    let access = RegistryConfig {
        insecure: vec![registry.host.clone()],
        ..RegistryConfig::default()
    };
    let client = Registry::connect(
        &access,
        &ImageRef::parse(&image).unwrap(),
        vec![push_scope(repo)],
    )
    .unwrap();
    for blob in [&layer, &config] {
        let digest = sha256(blob);
        let size = blob.len() as u64;
        client
            .upload_blob(repo, &digest, size, BlobSource::Bytes(blob))
            .await
            .unwrap();
    }
    let manifest_digest = client
        .put_manifest(repo, tag, DOCKER_MANIFEST, &manifest)
        .await
        .unwrap();
    FakeBase {
        image,
        manifest_digest,
        layer_digest: sha256(&layer),
        diff_id: sha256(&tar),
    }
}

#[tokio::test]
async fn an_adapter_pushed_without_a_base_pulls_back_byte_for_byte() {
    let registry = LocalRegistry::start(Auth::Open).await;
    let results = adapter_dir();
    let image = registry.image("adapters/phi-3:0.0.1");
    let insecure = ["--insecure-registry", registry.host.as_str()];

    let args = [
        "--dir",
        arg(results.path()),
        "--image",
        &image,
        "--base-image",
        "none",
    ];
    let pushed = push(&[&args[..], &insecure].concat()).await.unwrap();

    let manifest = raw_manifest(&registry.host, "adapters/phi-3", "0.0.1", None).await;
    assert_eq!(manifest["digest"], pushed.digest);
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], OCI_CONFIG);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], OCI_LAYER_GZIP);
    let blob = raw_blob(&registry.host, "adapters/phi-3", &layers[0]["digest"], None).await;
    let (paths, diff_id) = tar_paths(&blob);
    assert_eq!(paths, ADAPTER_PATHS);
    let config = raw_blob(
        &registry.host,
        "adapters/phi-3",
        &manifest["config"]["digest"],
        None,
    );
    let config: Value = serde_json::from_slice(&config.await).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"], json!([diff_id]));
    assert_eq!(config["os"], "linux");

    let dest = tempfile::tempdir().unwrap();
    let pulled = pull(
        &[
            &["--image", &image, "--dest", arg(dest.path())][..],
            &insecure,
        ]
        .concat(),
    )
    .await
    .unwrap();
    assert_eq!(pulled.digest, pushed.digest);
    assert_same_top_level_files(results.path(), dest.path());
}

#[tokio::test]
async fn an_adapter_goes_on_top_of_a_base_mounted_from_the_same_registry() {
    let registry = LocalRegistry::start(Auth::Open).await;
    let base = push_fake_base(&registry, "base/tiny", "1").await;
    let results = adapter_dir();
    let image = registry.image("adapters/falcon:1");
    let insecure = ["--insecure-registry", registry.host.as_str()];

    let args = [
        "--dir",
        arg(results.path()),
        "--image",
        &image,
        "--base-image",
        &base.image,
    ];
    let pushed = push(&[&args[..], &insecure].concat()).await.unwrap();

    let manifest = raw_manifest(&registry.host, "adapters/falcon", "1", None).await;
    assert_eq!(manifest["digest"], pushed.digest);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(
        layers[0]["digest"], base.layer_digest,
        "the base layer comes first"
    );
    assert!(layers.iter().all(|l| l["mediaType"] == OCI_LAYER_GZIP));
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.name"],
        base.image
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.digest"],
        base.manifest_digest
    );

    // Both layers are served from the adapter's own repository.
    let base_layer = raw_blob(
        &registry.host,
        "adapters/falcon",
        &layers[0]["digest"],
        None,
    )
    .await;
    assert_eq!(tar_paths(&base_layer).0, ["bin/sh", "etc/base-release"]);
    let adapter_layer = raw_blob(
        &registry.host,
        "adapters/falcon",
        &layers[1]["digest"],
        None,
    );
    let (paths, adapter_diff_id) = tar_paths(&adapter_layer.await);
    assert_eq!(paths, ADAPTER_PATHS);
    let config = raw_blob(
        &registry.host,
        "adapters/falcon",
        &manifest["config"]["digest"],
        None,
    );
    let config: Value = serde_json::from_slice(&config.await).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        json!([base.diff_id, adapter_diff_id])
    );
    assert_eq!(
        config["config"]["Cmd"],
        json!(["sh"]),
        "the base's command is kept"
    );
    assert_eq!(config["history"].as_array().unwrap().len(), 2);

    let dest = tempfile::tempdir().unwrap();
    pull(
        &[
            &["--image", &image, "--dest", arg(dest.path())][..],
            &insecure,
        ]
        .concat(),
    )
    .await
    .unwrap();
    assert_same_top_level_files(results.path(), dest.path());
}

#[tokio::test]
async fn basic_auth_credentials_come_from_the_docker_config_and_a_foreign_base_is_copied() {
    let base_registry = LocalRegistry::start(Auth::Open).await;
    let base = push_fake_base(&base_registry, "library/tiny", "latest").await;
    let registry = LocalRegistry::start(Auth::Basic {
        user: "pusher".to_owned(),
        password: "s3cret".to_owned(),
    })
    .await;
    let secrets = tempfile::tempdir().unwrap();
    let config = docker_config(secrets.path(), &registry.host, "pusher", "s3cret");
    let results = adapter_dir();
    let image = registry.image("adapters/mistral:2");
    let access = [
        "--docker-config",
        arg(&config),
        "--insecure-registry",
        registry.host.as_str(),
        "--insecure-registry",
        base_registry.host.as_str(),
    ];

    let args = [
        "--dir",
        arg(results.path()),
        "--image",
        &image,
        "--base-image",
        &base.image,
    ];
    push(&[&args[..], &access].concat()).await.unwrap();

    let basic = Some(("pusher", "s3cret"));
    let manifest = raw_manifest(&registry.host, "adapters/mistral", "2", basic).await;
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers[0]["digest"], base.layer_digest);
    let copied = raw_blob(
        &registry.host,
        "adapters/mistral",
        &layers[0]["digest"],
        basic,
    )
    .await;
    assert_eq!(sha256(&copied), base.layer_digest);

    let dest = tempfile::tempdir().unwrap();
    pull(
        &[
            &["--image", &image, "--dest", arg(dest.path())][..],
            &access,
        ]
        .concat(),
    )
    .await
    .unwrap();
    assert_same_top_level_files(results.path(), dest.path());

    let anonymous = tempfile::tempdir().unwrap();
    let insecure = ["--insecure-registry", registry.host.as_str()];
    let err = pull(
        &[
            &["--image", &image, "--dest", arg(anonymous.path())][..],
            &insecure,
        ]
        .concat(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.category(), "RegistryUnauthorized", "{err}");
    assert_eq!(err.exit_code(), 1);
    assert!(err.to_string().contains("401"), "{err}");

    let wrong = docker_config(secrets.path(), &registry.host, "pusher", "wrong");
    let with_wrong = [
        "--docker-config",
        arg(&wrong),
        "--insecure-registry",
        &registry.host,
    ];
    let err = pull(
        &[
            &["--image", &image, "--dest", arg(anonymous.path())][..],
            &with_wrong,
        ]
        .concat(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.category(), "RegistryUnauthorized", "{err}");
}

/// What the token endpoint was asked: the Authorization header and the query pairs.
type TokenRequests = Arc<Mutex<Vec<(Option<String>, Vec<(String, String)>)>>>;

async fn token_server() -> (String, TokenRequests) {
    let seen = TokenRequests::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/token",
        get(
            move |headers: HeaderMap, Query(query): Query<Vec<(String, String)>>| {
                let record = record.clone();
                async move {
                    let authorization = headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned());
                    record.lock().unwrap().push((authorization, query));
                    Json(json!({"token": "test-token", "expires_in": 300}))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let realm = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (realm, seen)
}

#[tokio::test]
async fn a_token_registry_is_reached_through_the_bearer_challenge() {
    let (realm, seen) = token_server().await;
    let registry = LocalRegistry::start(Auth::Token { realm }).await;
    let secrets = tempfile::tempdir().unwrap();
    let config = docker_config(secrets.path(), &registry.host, "robot", "t0ken");
    let results = adapter_dir();
    let image = registry.image("adapters/phi-3:0.0.2");
    let access = [
        "--docker-config",
        arg(&config),
        "--insecure-registry",
        &registry.host,
    ];

    let args = [
        "--dir",
        arg(results.path()),
        "--image",
        &image,
        "--base-image",
        "none",
    ];
    push(&[&args[..], &access].concat()).await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    pull(
        &[
            &["--image", &image, "--dest", arg(dest.path())][..],
            &access,
        ]
        .concat(),
    )
    .await
    .unwrap();
    assert_same_top_level_files(results.path(), dest.path());

    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "the token endpoint was never asked");
    let basic = format!("Basic {}", base64_of("robot:t0ken"));
    for (authorization, query) in seen.iter() {
        assert_eq!(authorization.as_deref(), Some(basic.as_str()));
        assert!(query.contains(&("service".to_owned(), "kaito-test-registry".to_owned())));
    }
    let push_scope = (
        "scope".to_owned(),
        "repository:adapters/phi-3:pull,push".to_owned(),
    );
    assert!(seen[0].1.contains(&push_scope), "{:?}", seen[0].1);
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn the_binary_prints_the_pushed_digest_and_exits_zero() {
    let registry = LocalRegistry::start(Auth::Open).await;
    let results = adapter_dir();
    let image = registry.image("adapters/cli:1");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kaito-data"))
        .args(["push", "--dir", arg(results.path()), "--image", &image])
        .args([
            "--base-image",
            "none",
            "--insecure-registry",
            &registry.host,
        ])
        .env("NO_COLOR", "1")
        .env_remove("DOCKER_CONFIG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let manifest = raw_manifest(&registry.host, "adapters/cli", "1", None).await;
    assert_eq!(stdout.lines().last(), manifest["digest"].as_str());
}
