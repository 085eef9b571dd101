use kaito_api::templates::QLORA_TRAINING_CONFIG;

use super::*;

const SEED: &str = "apiVersion: kaito.sh/v1alpha1\nkind: Workspace\nmetadata:\n  \
    name: workspace-tuning-phi-3\n  namespace: default\nresource:\n  \
    instanceType: Standard_NC6s_v3\n  labelSelector:\n    matchLabels:\n      \
    app: tuning-phi-3\ntuning:\n  preset:\n    name: phi-3-mini-128k-instruct\n  method: qlora\n  \
    input:\n    urls:\n    - https://example.com/data/train.parquet?download=true\n  output:\n    \
    image: myacr.azurecr.io/phi3-adapter:0.0.1\n    imagePushSecret: acr-push\n";

fn seed() -> Workspace {
    yaml_serde::from_str(SEED).expect("workspace")
}

fn inputs() -> TuningInputs<'static> {
    TuningInputs {
        preset: Preset::find("phi-3-mini-128k-instruct").expect("preset"),
        gpus: 1,
        registry: "mcr.microsoft.com/aks/kaito",
        data_tool_image: "ghcr.io/kaito-rs/kaito-data:0.1.0",
        config_map: "workspace-tuning-phi-3-qlora-params".into(),
        training_config: QLORA_TRAINING_CONFIG,
        revision: 1,
    }
}

fn pod_spec(job: &Job) -> PodSpec {
    job.spec
        .clone()
        .and_then(|s| s.template.spec)
        .expect("pod spec")
}

#[test]
fn the_seed_job_downloads_trains_then_pushes_without_privilege() {
    let job = job(&seed(), &inputs());
    assert_eq!(
        job.metadata.name.as_deref(),
        Some("workspace-tuning-phi-3-r1")
    );
    assert_eq!(job.spec.as_ref().and_then(|s| s.backoff_limit), Some(0));
    let spec = pod_spec(&job);
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    let inits = spec.init_containers.clone().unwrap_or_default();
    let names: Vec<&str> = inits.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["data-downloader", "workspace-tuning-phi-3"]);
    assert_eq!(
        inits[0].args.clone().unwrap_or_default(),
        [
            "download",
            "--dest",
            "/mnt/data",
            "https://example.com/data/train.parquet?download=true"
        ]
    );
    let trainer = &inits[1];
    assert_eq!(
        trainer.image.as_deref(),
        Some("mcr.microsoft.com/aks/kaito/kaito-phi-3-mini-128k-instruct:0.0.2")
    );
    assert!(
        trainer
            .command
            .as_ref()
            .is_some_and(|c| c[2].contains("--num_processes=1 fine_tuning.py"))
    );
    let env: Vec<&str> = trainer
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert!(env.contains(&"DEFAULT_TARGET_MODULES"));
    assert_eq!(spec.containers[0].name, "adapter-pusher");
    let args = spec.containers[0].args.clone().unwrap_or_default();
    assert!(
        args.windows(2)
            .any(|w| w == ["--image", "myacr.azurecr.io/phi3-adapter:0.0.1"])
    );
    for c in inits.iter().chain(spec.containers.iter()) {
        assert!(
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .is_none_or(|p| !p)
        );
    }
}

#[test]
fn every_mount_refers_to_a_declared_volume() {
    let spec = pod_spec(&job(&seed(), &inputs()));
    let volumes: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        for m in c.volume_mounts.iter().flatten() {
            assert!(
                volumes.contains(&m.name),
                "{} mounts undeclared {}",
                c.name,
                m.name
            );
        }
    }
    let docker = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "docker-config")
        .expect("volume");
    let secret = docker
        .projected
        .as_ref()
        .and_then(|p| p.sources.as_ref())
        .map(|s| s[0].secret.clone());
    assert_eq!(secret.flatten().map(|s| s.name), Some("acr-push".into()));
    let names: Vec<&str> = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["acr-push"]);
}

#[test]
fn r09_tuning_pods_follow_the_label_selector_and_tolerate_the_gpu_taint() {
    let spec = pod_spec(&job(&seed(), &inputs()));
    let terms = spec
        .affinity
        .and_then(|a| a.node_affinity)
        .and_then(|n| n.required_during_scheduling_ignored_during_execution)
        .map(|s| s.node_selector_terms)
        .unwrap_or_default();
    let expr = &terms[0].match_expressions.as_ref().expect("exprs")[0];
    assert_eq!(expr.key, "app");
    assert_eq!(
        expr.values.as_deref(),
        Some(&["tuning-phi-3".to_owned()][..])
    );
    let sku = spec
        .tolerations
        .iter()
        .flatten()
        .find(|t| t.key.as_deref() == Some("sku"));
    assert_eq!(sku.and_then(|t| t.value.as_deref()), Some("gpu"));
}

#[test]
fn input_images_are_copied_by_an_extractor() {
    let mut w = seed();
    if let Some(t) = w.spec.tuning.as_mut() {
        t.input.urls = None;
        t.input.image = Some("reg.io/data/set:1".into());
        t.input.image_pull_secrets = Some(vec!["data-secret".into()]);
    }
    let spec = pod_spec(&job(&w, &inputs()));
    let first = &spec.init_containers.unwrap_or_default()[0];
    assert_eq!(first.name, "data-extractor");
    assert_eq!(first.image.as_deref(), Some("reg.io/data/set:1"));
    let names: Vec<String> = spec
        .image_pull_secrets
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["data-secret", "acr-push"]);
}

#[test]
fn the_results_dir_comes_from_the_training_arguments() {
    assert_eq!(results_dir(QLORA_TRAINING_CONFIG), "/mnt/results");
    let custom = "training_config:\n  TrainingArguments:\n    output_dir: out/lora\n";
    assert_eq!(results_dir(custom), "/mnt/out/lora");
    let escape = "training_config:\n  TrainingArguments:\n    output_dir: ../etc\n";
    assert_eq!(results_dir(escape), "/mnt/results");
}

#[test]
fn the_default_parameters_copy_is_owned_by_the_workspace() {
    let mut w = seed();
    w.metadata.uid = Some("uid".into());
    let cm = params_config_map(&w, TuningMethod::Qlora, QLORA_TRAINING_CONFIG);
    assert_eq!(
        cm.metadata.name.as_deref(),
        Some("workspace-tuning-phi-3-qlora-params")
    );
    assert_eq!(
        cm.metadata.owner_references.map(|o| o[0].name.clone()),
        Some("workspace-tuning-phi-3".into())
    );
}
