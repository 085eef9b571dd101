//! The inference workload of a Workspace: Services, and a Deployment or (for distributed
//! presets) a StatefulSet. Everything here builds objects from plain values.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{
            Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
            StatefulSetSpec,
        },
        core::v1::{
            Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction,
            LocalObjectReference, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
            SecretKeySelector, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use kaito_api::{
    Preset, Workspace, labels as l,
    presets::{Runtime, Workload},
    workspace::AccessMode,
};
use kube::{Resource, ResourceExt};

use super::placement::{gpu_resources, gpu_tolerations, node_affinity, workspace_labels};

/// Port the model server listens on.
pub const SERVER_PORT: i32 = 5000;
/// Port of torch distributed rendezvous.
pub const TORCH_PORT: i32 = 29500;
/// Where adapters are copied for the server to load.
const ADAPTER_DIR: &str = "/mnt/adapter";
const ADAPTER_VOLUME: &str = "adapter-volume";
const SHM_VOLUME: &str = "dshm";

/// What a preset workload needs besides the Workspace.
#[derive(Clone, Copy, Debug)]
pub struct PresetInputs<'a> {
    /// The preset.
    pub preset: &'a Preset,
    /// GPUs each pod requests.
    pub gpus: u32,
    /// Registry of public preset images.
    pub registry: &'a str,
}

fn meta(ws: &Workspace, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: ws.namespace(),
        labels: Some(workspace_labels(ws)),
        owner_references: ws.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// Service `<name>`: http 80→5000 and torch 29500, LoadBalancer when the Workspace asks.
pub fn service(ws: &Workspace, distributed: bool) -> Service {
    let lb = ws
        .annotations()
        .get(l::ANNOTATION_ENABLE_LB)
        .is_some_and(|v| l::is_truthy(v));
    let mut selector = workspace_labels(ws);
    if distributed {
        selector.insert(
            l::LABEL_STATEFULSET_POD_NAME.into(),
            format!("{}-0", ws.name_any()),
        );
    }
    Service {
        metadata: meta(ws, ws.name_any()),
        spec: Some(ServiceSpec {
            type_: Some(if lb { "LoadBalancer" } else { "ClusterIP" }.into()),
            selector: Some(selector),
            ports: Some(vec![
                port("http", 80, SERVER_PORT),
                port("torch", TORCH_PORT, TORCH_PORT),
            ]),
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Service `<name>-headless` giving the pods of a distributed preset stable DNS names.
pub fn headless_service(ws: &Workspace) -> Service {
    Service {
        metadata: meta(ws, headless_name(ws)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(workspace_labels(ws)),
            ports: Some(vec![port("torchrun", TORCH_PORT, TORCH_PORT)]),
            publish_not_ready_addresses: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn headless_name(ws: &Workspace) -> String {
    format!("{}-headless", ws.name_any())
}

fn port(name: &str, port: i32, target: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(target)),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// Renders server arguments in catalog order; an empty value renders as a bare flag.
fn render_args(args: &[(&str, &str)]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                format!("--{k}")
            } else {
                format!("--{k}={v}")
            }
        })
        .collect();
    parts.join(" ")
}

/// torchrun arguments of a llama preset, computed per Workspace from immutable preset data.
fn torchrun_args(ws: &Workspace, preset: &Preset) -> String {
    let nodes = u32::try_from(ws.spec.resource.count().max(1)).unwrap_or(1);
    let Workload::Distributed { world_size } = preset.workload else {
        return "--standalone --nnodes=1 --nproc_per_node=1".into();
    };
    let name = ws.name_any();
    let ns = ws.namespace().unwrap_or_default();
    let mut args = vec![
        format!("--nnodes={nodes}"),
        format!("--nproc_per_node={}", world_size / nodes),
        format!("--master_port={TORCH_PORT}"),
        "--max_restarts=3".into(),
        "--rdzv_id=job".into(),
        "--rdzv_backend=c10d".into(),
        format!("--rdzv_endpoint={name}-0.{name}-headless.{ns}.svc.cluster.local:{TORCH_PORT}"),
    ];
    if nodes > 1 {
        args.push("--node_rank=$(echo $HOSTNAME | grep -o '[^-]*$')".into());
        args.push(format!(
            "--master_addr={name}-0.{name}-headless.{ns}.svc.cluster.local"
        ));
    }
    args.join(" ")
}

/// The shell command of the preset's inference server.
pub fn preset_command(ws: &Workspace, preset: &Preset) -> String {
    let args = render_args(preset.run_args);
    match preset.runtime {
        Runtime::Transformers => format!(
            "accelerate launch --num_processes=1 --num_machines=1 --machine_rank=0 --gpu_ids=all \
             inference_api.py {args}"
        ),
        Runtime::Llama2 => format!(
            "cd /workspace/llama/llama-2 && torchrun {} inference_api.py {args}",
            torchrun_args(ws, preset)
        ),
    }
}

/// The image of a preset workload: the user's for private access, else the public one.
pub fn preset_image(ws: &Workspace, preset: &Preset, registry: &str) -> Option<String> {
    let spec = ws.preset()?;
    match spec.access_mode() {
        AccessMode::Private => spec.image().map(str::to_owned),
        AccessMode::Public => preset.public_image(registry),
    }
}

/// Pull secrets of the preset image (private mode) plus every adapter's, without repeats.
fn pull_secrets(ws: &Workspace) -> Vec<LocalObjectReference> {
    let preset = ws
        .preset()
        .filter(|p| p.access_mode() == AccessMode::Private);
    let mut names: Vec<String> = preset
        .map(|p| p.image_pull_secrets().to_vec())
        .unwrap_or_default();
    for adapter in ws.adapters() {
        let secrets = adapter
            .source
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_deref());
        names.extend(secrets.unwrap_or_default().iter().cloned());
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    names
        .into_iter()
        .map(|name| LocalObjectReference { name })
        .collect()
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(SERVER_PORT),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// One init container per adapter copying its `/data` into the adapter volume.
fn adapter_init_containers(ws: &Workspace) -> Vec<Container> {
    ws.adapters()
        .iter()
        .filter_map(|a| {
            let name = a.name().to_owned();
            let image = a.source.as_ref()?.image.clone()?;
            Some(Container {
                command: Some(vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    format!("mkdir -p {ADAPTER_DIR}/{name} && cp -r /data/* {ADAPTER_DIR}/{name}"),
                ]),
                image: Some(image),
                image_pull_policy: Some("Always".into()),
                volume_mounts: Some(vec![mount(ADAPTER_VOLUME, ADAPTER_DIR)]),
                name,
                ..Default::default()
            })
        })
        .collect()
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn empty_dir(name: &str, memory: bool) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: memory.then(|| "Memory".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env(ws: &Workspace) -> Vec<EnvVar> {
    let mut vars: Vec<EnvVar> = ws
        .adapters()
        .iter()
        .map(|a| EnvVar {
            name: a.name().into(),
            value: Some(a.strength().into()),
            ..Default::default()
        })
        .collect();
    if let Some(secret) = ws.preset().and_then(|p| p.model_access_secret()) {
        vars.push(EnvVar {
            name: "HF_TOKEN".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.into(),
                    key: "HF_TOKEN".into(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    vars
}

/// The pod template of a preset workload.
pub fn preset_pod(ws: &Workspace, inputs: PresetInputs<'_>) -> PodTemplateSpec {
    let has_adapters = !ws.adapters().is_empty();
    let multi_node = ws.spec.resource.count() > 1;
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if multi_node {
        volumes.push(empty_dir(SHM_VOLUME, true));
        mounts.push(mount(SHM_VOLUME, "/dev/shm"));
    }
    if has_adapters {
        volumes.push(empty_dir(ADAPTER_VOLUME, false));
        mounts.push(mount(ADAPTER_VOLUME, ADAPTER_DIR));
    }
    let startup_failures = i32::try_from(inputs.preset.readiness_timeout.as_secs() / 10)
        .unwrap_or(i32::MAX)
        .max(1);
    let main = Container {
        name: ws.name_any(),
        image: preset_image(ws, inputs.preset, inputs.registry),
        command: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            preset_command(ws, inputs.preset),
        ]),
        ports: Some(vec![ContainerPort {
            container_port: SERVER_PORT,
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(gpu_resources(inputs.gpus)),
            limits: Some(gpu_resources(inputs.gpus)),
            ..Default::default()
        }),
        startup_probe: Some(http_probe("/healthz", 10, startup_failures)),
        readiness_probe: Some(http_probe("/healthz", 10, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        env: Some(env(ws)).filter(|e| !e.is_empty()),
        volume_mounts: Some(mounts).filter(|m| !m.is_empty()),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(workspace_labels(ws)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            affinity: Some(node_affinity(ws)),
            tolerations: Some(gpu_tolerations()),
            image_pull_secrets: Some(pull_secrets(ws)).filter(|s| !s.is_empty()),
            init_containers: Some(adapter_init_containers(ws)).filter(|c| !c.is_empty()),
            containers: vec![main],
            volumes: Some(volumes).filter(|v| !v.is_empty()),
            ..Default::default()
        }),
    }
}

fn replicas(ws: &Workspace) -> i32 {
    ws.spec.resource.count().max(1)
}

fn selector(ws: &Workspace) -> LabelSelector {
    LabelSelector {
        match_labels: Some(workspace_labels(ws)),
        ..Default::default()
    }
}

/// Deployment `<name>` running the pod template, replaced one pod at a time on GPU nodes.
pub fn deployment(ws: &Workspace, template: PodTemplateSpec, revision: Option<i64>) -> Deployment {
    let mut metadata = meta(ws, ws.name_any());
    if let Some(rev) = revision {
        metadata.annotations = Some(BTreeMap::from([(
            l::ANNOTATION_REVISION.into(),
            rev.to_string(),
        )]));
    }
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(replicas(ws)),
            selector: selector(ws),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(0)),
                    max_unavailable: Some(IntOrString::Int(1)),
                }),
            }),
            template,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// StatefulSet `<name>` for distributed presets, with stable pod names for rendezvous.
pub fn stateful_set(
    ws: &Workspace,
    template: PodTemplateSpec,
    revision: Option<i64>,
) -> StatefulSet {
    let mut metadata = meta(ws, ws.name_any());
    if let Some(rev) = revision {
        metadata.annotations = Some(BTreeMap::from([(
            l::ANNOTATION_REVISION.into(),
            rev.to_string(),
        )]));
    }
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas(ws)),
            selector: selector(ws),
            service_name: Some(headless_name(ws)),
            pod_management_policy: Some("Parallel".into()),
            template,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pod template of a template Workspace: the user's pod, labelled, placed on the
/// selected nodes (the user's node affinity is replaced) and tolerating the GPU taints.
pub fn template_pod(ws: &Workspace) -> PodTemplateSpec {
    let mut pod = ws
        .spec
        .inference
        .as_ref()
        .and_then(|i| i.template.clone())
        .unwrap_or_default();
    let meta = pod.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .extend(workspace_labels(ws));
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.affinity
        .get_or_insert_with(Default::default)
        .node_affinity = node_affinity(ws).node_affinity;
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for t in gpu_tolerations() {
        if !tolerations.contains(&t) {
            tolerations.push(t);
        }
    }
    pod
}

/// Whether a preset runs distributed over several pods.
pub fn is_distributed(preset: Option<&Preset>) -> bool {
    preset.is_some_and(Preset::is_distributed)
}

#[cfg(test)]
mod tests;
