//! Test helpers: a real OCI registry process from the tools cache, adapter directories and
//! command-line parsing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use clap::Parser;
use kaito_data::cli::{Cli, Command as Sub};
use tempfile::TempDir;

/// How a test registry checks requests.
pub enum Auth {
    /// Anyone may push and pull.
    Open,
    /// htpasswd Basic authentication with one user.
    Basic { user: String, password: String },
    /// The distribution `silly` controller: a Bearer challenge pointing at `realm`, and any
    /// `Authorization` header accepted afterwards.
    Token { realm: String },
}

/// A distribution `registry` process on a free 127.0.0.1 port, stopped when dropped.
pub struct LocalRegistry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    child: Child,
    _dir: TempDir,
}

impl LocalRegistry {
    /// Starts a registry and waits until it answers `/v2/`.
    pub async fn start(auth: Auth) -> LocalRegistry {
        let binary = kaito_testenv::Tools::resolve().unwrap().registry;
        assert!(
            binary.is_file(),
            "{} is missing: run `make tools` to build the pinned tools",
            binary.display()
        );
        // A port picked this way can be taken by another process before the registry binds
        // it; try a few times before giving up.
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let config = dir.path().join("config.yml");
            fs::write(&config, registry_config(dir.path(), port, &auth)).unwrap();
            let log = dir.path().join("registry.log");
            let log_file = fs::File::create(&log).unwrap();
            let child = Command::new(&binary)
                .arg("serve")
                .arg(&config)
                .env("OTEL_TRACES_EXPORTER", "none")
                .stdout(Stdio::from(log_file.try_clone().unwrap()))
                .stderr(Stdio::from(log_file))
                .spawn()
                .unwrap();
            let mut registry = LocalRegistry {
                host: format!("127.0.0.1:{port}"),
                child,
                _dir: dir,
            };
            if registry.wait_ready().await {
                return registry;
            }
            last_log = fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("the registry did not start:\n{last_log}");
    }

    async fn wait_ready(&mut self) -> bool {
        let url = format!("http://{}/v2/", self.host);
        for _ in 0..200 {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok(response) = reqwest::get(&url).await {
                // 401 is an answer too: the registry is up and wants credentials.
                return response.status().is_success() || response.status().as_u16() == 401;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// `host/repository:tag` in this registry.
    pub fn image(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.host)
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn registry_config(dir: &Path, port: u16, auth: &Auth) -> String {
    let storage = dir.join("storage");
    let auth = match auth {
        Auth::Open => String::new(),
        Auth::Basic { user, password } => {
            let hash = bcrypt::hash(password, 4).unwrap();
            let htpasswd = dir.join("htpasswd");
            fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            format!(
                "auth:\n  htpasswd:\n    realm: kaito-test\n    path: {}\n",
                htpasswd.display()
            )
        }
        Auth::Token { realm } => {
            format!("auth:\n  silly:\n    realm: {realm}\n    service: kaito-test-registry\n")
        }
    };
    format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n\
         http:\n  addr: 127.0.0.1:{port}\n\
         {auth}",
        storage.display()
    )
}

/// A docker config file with one registry's credentials in the `auth` field.
pub fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) -> PathBuf {
    let auth = STANDARD.encode(format!("{user}:{password}"));
    let path = dir.join("config.json");
    let json = serde_json::json!({ "auths": { registry: { "auth": auth } } });
    fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    path
}

/// A results directory as the trainer leaves it: the adapter, a few more files at the top,
/// and a checkpoint directory that must not be pushed.
pub fn adapter_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 8, "target_modules": ["q_proj"]}"#;
    fs::write(dir.path().join("adapter_config.json"), config).unwrap();
    fs::write(
        dir.path().join("adapter_model.safetensors"),
        weights(300_000),
    )
    .unwrap();
    fs::write(dir.path().join("training_args.bin"), weights(1_000)).unwrap();
    fs::write(dir.path().join("fine_tuning_completed.txt"), "done\n").unwrap();
    fs::create_dir(dir.path().join("checkpoint-10")).unwrap();
    fs::write(
        dir.path().join("checkpoint-10").join("optimizer.pt"),
        weights(10),
    )
    .unwrap();
    dir
}

/// Bytes that do not compress much, like trained weights.
pub fn weights(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// Asserts that `pulled` holds exactly the top-level files of `results`, byte for byte.
pub fn assert_same_top_level_files(results: &Path, pulled: &Path) {
    let mut expected: Vec<String> = fs::read_dir(results)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    expected.sort();
    let found: Vec<String> = kaito_data::layer::list_files(pulled)
        .unwrap()
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert_eq!(found, expected);
    for name in &expected {
        let want = fs::read(results.join(name)).unwrap();
        let got = fs::read(pulled.join(name)).unwrap();
        assert!(want == got, "{name} differs after the round trip");
    }
}

/// Parses a `kaito-data` command line (without the program name).
pub fn parse(args: &[&str]) -> Sub {
    let mut argv = vec!["kaito-data"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap().command
}

/// Runs `push` through the library with fast retries.
pub async fn push(args: &[&str]) -> Result<kaito_data::push::Pushed, kaito_data::Error> {
    let mut all = vec!["push", "--retry-delay-ms", "10"];
    all.extend_from_slice(args);
    let Sub::Push(args) = parse(&all) else {
        unreachable!()
    };
    kaito_data::push::run(&kaito_data::push::Options::try_from(args)?).await
}

/// Runs `pull` through the library with fast retries.
pub async fn pull(args: &[&str]) -> Result<kaito_data::pull::Pulled, kaito_data::Error> {
    let mut all = vec!["pull", "--retry-delay-ms", "10"];
    all.extend_from_slice(args);
    let Sub::Pull(args) = parse(&all) else {
        unreachable!()
    };
    kaito_data::pull::run(&kaito_data::pull::Options::try_from(args)?).await
}

/// A path as a `&str` argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}
