//! The tuning workload: one Job per spec revision whose pod downloads the data, trains, and
//! then pushes the adapter. Steps run in order as init containers then the main container,
//! so a failed step fails the pod and the Job, and nothing waits for a marker file.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Component, Path},
};

use k8s_openapi::{
    api::{
        batch::v1::{Job, JobSpec},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
            EnvVar, KeyToPath, LocalObjectReference, PodSpec, PodTemplateSpec,
            ProjectedVolumeSource, ResourceRequirements, SecretProjection, Volume, VolumeMount,
            VolumeProjection,
        },
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kaito_api::{
    Preset, Workspace, labels as l,
    templates::TRAINING_CONFIG_KEY,
    workspace::{AccessMode, TuningMethod},
};
use kube::{Resource, ResourceExt};

use super::{
    inference::preset_image,
    placement::{gpu_resources, gpu_tolerations, node_affinity, workspace_labels},
};

const DATA_DIR: &str = "/mnt/data";
const CONFIG_DIR: &str = "/mnt/config";
const DEFAULT_RESULTS_DIR: &str = "/mnt/results";
const DOCKER_CONFIG_DIR: &str = "/tmp/.docker/config";
/// Name of the container that pushes the adapter.
pub const PUSHER: &str = "adapter-pusher";
/// Name of the init container that downloads the data.
pub const DOWNLOADER: &str = "data-downloader";
/// Name of the init container that copies data out of an input image.
pub const EXTRACTOR: &str = "data-extractor";

/// What a tuning Job needs besides the Workspace.
#[derive(Clone, Debug)]
pub struct TuningInputs<'a> {
    /// The preset to tune.
    pub preset: &'a Preset,
    /// GPUs of the node (one training process each).
    pub gpus: u32,
    /// Registry of public preset images.
    pub registry: &'a str,
    /// Image of the data tool (download and push steps).
    pub data_tool_image: &'a str,
    /// ConfigMap in the Workspace namespace holding the training parameters.
    pub config_map: String,
    /// Training parameters, to find the output directory.
    pub training_config: &'a str,
    /// Spec revision this Job runs.
    pub revision: i64,
}

/// Name of the Job of a revision; a new revision never reuses a finishing Job's name.
pub fn job_name(ws: &Workspace, revision: i64) -> String {
    format!("{}-r{revision}", ws.name_any())
}

/// Name of the Workspace's own copy of the default training parameters.
pub fn params_config_map_name(ws: &Workspace, method: TuningMethod) -> String {
    format!("{}-{}-params", ws.name_any(), method.as_str())
}

/// The Workspace's copy of the default training parameters, owned by it so it goes with it.
pub fn params_config_map(ws: &Workspace, method: TuningMethod, text: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(params_config_map_name(ws, method)),
            namespace: ws.namespace(),
            labels: Some(workspace_labels(ws)),
            owner_references: ws.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            TRAINING_CONFIG_KEY.to_owned(),
            text.to_owned(),
        )])),
        ..Default::default()
    }
}

/// Where the trainer writes its results: `TrainingArguments.output_dir` below `/mnt`.
pub fn results_dir(training_config: &str) -> String {
    let doc: serde_json::Value = yaml_serde::from_str(training_config).unwrap_or_default();
    let dir = doc
        .pointer("/training_config/TrainingArguments/output_dir")
        .and_then(serde_json::Value::as_str);
    let Some(dir) = dir else {
        return DEFAULT_RESULTS_DIR.into();
    };
    let rel = dir
        .strip_prefix("/mnt/")
        .unwrap_or(dir)
        .trim_start_matches('/');
    let clean = Path::new(rel)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if clean && !rel.is_empty() {
        format!("/mnt/{rel}")
    } else {
        DEFAULT_RESULTS_DIR.into()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn input_step(ws: &Workspace, inputs: &TuningInputs<'_>) -> Option<Container> {
    let input = &ws.spec.tuning.as_ref()?.input;
    let data_mount = Some(vec![mount("data-volume", DATA_DIR)]);
    if let Some(urls) = input.urls.as_ref().filter(|u| !u.is_empty()) {
        let mut args = vec!["download".to_owned(), "--dest".into(), DATA_DIR.into()];
        args.extend(urls.iter().cloned());
        return Some(Container {
            name: DOWNLOADER.into(),
            image: Some(inputs.data_tool_image.into()),
            command: Some(vec!["kaito-data".into()]),
            args: Some(args),
            volume_mounts: data_mount,
            ..Default::default()
        });
    }
    let image = input.image.clone()?;
    Some(Container {
        name: EXTRACTOR.into(),
        image: Some(image),
        command: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("mkdir -p {DATA_DIR} && cp -r /data/* {DATA_DIR}/"),
        ]),
        volume_mounts: data_mount,
        ..Default::default()
    })
}

fn train_command(preset: &Preset, gpus: u32) -> String {
    let extra = if preset.name.starts_with("falcon") {
        " --num_machines=1 --machine_rank=0 --gpu_ids=all"
    } else {
        ""
    };
    format!(
        "python3 metrics_server.py & accelerate launch --num_processes={gpus}{extra} fine_tuning.py"
    )
}

fn train_env(preset: &Preset) -> Vec<EnvVar> {
    let var = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    };
    let mut vars = vec![
        var("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True"),
        var(
            "YAML_FILE_PATH",
            &format!("{CONFIG_DIR}/{TRAINING_CONFIG_KEY}"),
        ),
    ];
    if preset.name.starts_with("phi-3") {
        vars.push(var(
            "DEFAULT_TARGET_MODULES",
            "k_proj,q_proj,v_proj,o_proj,gate_proj,down_proj,up_proj",
        ));
    }
    vars
}

fn pull_secrets(ws: &Workspace) -> Option<Vec<LocalObjectReference>> {
    let tuning = ws.spec.tuning.as_ref()?;
    let mut names: Vec<String> = tuning.input.image_pull_secrets.clone().unwrap_or_default();
    names.extend(tuning.output.image_push_secret.clone());
    if let Some(p) = tuning
        .preset
        .as_ref()
        .filter(|p| p.access_mode() == AccessMode::Private)
    {
        names.extend(p.image_pull_secrets().iter().cloned());
    }
    let mut seen = BTreeSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    let refs: Vec<LocalObjectReference> = names
        .into_iter()
        .map(|name| LocalObjectReference { name })
        .collect();
    Some(refs).filter(|r| !r.is_empty())
}

fn volumes(ws: &Workspace, config_map: &str) -> Vec<Volume> {
    let mut out = vec![
        Volume {
            name: "config-volume".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        empty_dir("data-volume"),
        empty_dir("results-volume"),
    ];
    let secret = ws
        .spec
        .tuning
        .as_ref()
        .and_then(|t| t.output.image_push_secret.clone());
    if let Some(secret) = secret {
        out.push(Volume {
            name: "docker-config".into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    secret: Some(SecretProjection {
                        name: secret,
                        items: Some(vec![KeyToPath {
                            key: ".dockerconfigjson".into(),
                            path: "config.json".into(),
                            ..Default::default()
                        }]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    out
}

/// The tuning Job of a revision.
pub fn job(ws: &Workspace, inputs: &TuningInputs<'_>) -> Job {
    let results = results_dir(inputs.training_config);
    let output = ws
        .spec
        .tuning
        .as_ref()
        .and_then(|t| t.output.image.clone())
        .unwrap_or_default();
    let trainer = Container {
        name: ws.name_any(),
        image: preset_image(ws, inputs.preset, inputs.registry),
        command: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            train_command(inputs.preset, inputs.gpus),
        ]),
        env: Some(train_env(inputs.preset)),
        ports: Some(vec![ContainerPort {
            container_port: 5000,
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(gpu_resources(inputs.gpus)),
            limits: Some(gpu_resources(inputs.gpus)),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("config-volume", CONFIG_DIR),
            mount("data-volume", DATA_DIR),
            mount("results-volume", &results),
        ]),
        ..Default::default()
    };
    let pusher = Container {
        name: PUSHER.into(),
        image: Some(inputs.data_tool_image.into()),
        command: Some(vec!["kaito-data".into()]),
        args: Some(vec![
            "push".into(),
            "--dir".into(),
            results.clone(),
            "--image".into(),
            output,
            "--docker-config".into(),
            format!("{DOCKER_CONFIG_DIR}/config.json"),
        ]),
        volume_mounts: Some(vec![
            mount("results-volume", &results),
            mount("docker-config", DOCKER_CONFIG_DIR),
        ]),
        ..Default::default()
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(
        l::ANNOTATION_REVISION.to_owned(),
        inputs.revision.to_string(),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(ws, inputs.revision)),
            namespace: ws.namespace(),
            labels: Some(workspace_labels(ws)),
            annotations: Some(annotations),
            owner_references: ws.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(workspace_labels(ws)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    affinity: Some(node_affinity(ws)),
                    tolerations: Some(gpu_tolerations()),
                    image_pull_secrets: pull_secrets(ws),
                    init_containers: Some(
                        input_step(ws, inputs)
                            .into_iter()
                            .chain([trainer])
                            .collect(),
                    ),
                    containers: vec![pusher],
                    volumes: Some(volumes(ws, &inputs.config_map)),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
