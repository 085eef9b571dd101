//! Exit codes and messages of the binary for inputs that need no network.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

async fn kaito_data(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kaito-data"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("DOCKER_CONFIG")
        .env_remove("DATA_URLS")
        .output()
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn a_results_dir_without_weights_exits_three_naming_the_file() {
    let results = tempfile::tempdir().unwrap();
    std::fs::write(results.path().join("adapter_config.json"), "{}").unwrap();
    let dir = results.path().to_str().unwrap();

    let output = kaito_data(&["push", "--dir", dir, "--image", "reg.example/a/b:1"]).await;

    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("adapter_model.safetensors is missing"),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn an_invalid_image_reference_exits_two() {
    let results = tempfile::tempdir().unwrap();
    let dir = results.path().to_str().unwrap();

    let output = kaito_data(&["push", "--dir", dir, "--image", "reg.example/Upper/b:1"]).await;

    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("InvalidArgument"),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn a_missing_url_list_is_a_usage_error() {
    let dest = tempfile::tempdir().unwrap();
    let output = kaito_data(&["download", "--dest", dest.path().to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

#[tokio::test]
async fn an_unreadable_docker_config_exits_two() {
    let results = tempfile::tempdir().unwrap();
    let dir = results.path().to_str().unwrap();
    let config = results.path().join("config.json");
    std::fs::write(&config, "not json").unwrap();

    let output = kaito_data(&[
        "pull",
        "--image",
        "reg.example/a/b:1",
        "--dest",
        dir,
        "--docker-config",
        config.to_str().unwrap(),
    ])
    .await;

    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("InvalidDockerConfig"),
        "{}",
        text(&output)
    );
}
