use kaito_api::Preset;

use super::*;

fn ws(name: &str, body: &str) -> Workspace {
    let mut w: Workspace = yaml_serde::from_str(&format!(
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\n\
         metadata: {{name: {name}, namespace: ml}}\n{body}"
    ))
    .expect("workspace");
    w.metadata.uid = Some("uid-1".into());
    w
}

fn phi() -> Workspace {
    ws(
        "ws-phi",
        "resource:\n  instanceType: Standard_NC6s_v3\n  labelSelector:\n    \
         matchLabels: {apps: phi}\ninference:\n  preset: {name: phi-3-mini-4k-instruct}\n",
    )
}

fn llama(count: i32) -> Workspace {
    ws(
        "ws-llama",
        &format!(
            "resource:\n  count: {count}\n  instanceType: Standard_NC12s_v3\n  labelSelector:\n    \
             matchLabels: {{apps: llama}}\ninference:\n  preset:\n    name: llama-2-13b-chat\n    \
             accessMode: private\n    presetOptions:\n      image: reg.io/llama/chat:1\n      \
             imagePullSecrets: [reg-secret]\n"
        ),
    )
}

fn inputs(name: &str, gpus: u32) -> PresetInputs<'static> {
    PresetInputs {
        preset: Preset::find(name).expect("preset"),
        gpus,
        registry: "mcr.microsoft.com/aks/kaito",
    }
}

fn main_container(pod: &PodTemplateSpec) -> &Container {
    &pod.spec.as_ref().expect("spec").containers[0]
}

#[test]
fn the_service_maps_80_to_5000_and_exposes_29500() {
    let svc = service(&phi(), false);
    let spec = svc.spec.expect("spec");
    let ports: Vec<(Option<String>, i32)> = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name, p.port))
        .collect();
    assert_eq!(
        ports,
        vec![(Some("http".into()), 80), (Some("torch".into()), 29500)]
    );
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(
        spec.selector
            .and_then(|s| s.get("kaito.sh/workspace").cloned())
            .as_deref(),
        Some("ws-phi")
    );
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
}

#[test]
fn the_enablelb_annotation_in_any_casing_makes_a_load_balancer() {
    for value in ["True", "true", "TRUE"] {
        let mut w = phi();
        w.metadata.annotations = Some([("kaito.sh/enablelb".to_owned(), value.to_owned())].into());
        assert_eq!(
            service(&w, false).spec.and_then(|s| s.type_).as_deref(),
            Some("LoadBalancer")
        );
    }
}

#[test]
fn a_phi_pod_runs_the_public_image_with_the_transformers_command() {
    let pod = preset_pod(&phi(), inputs("phi-3-mini-4k-instruct", 1));
    let c = main_container(&pod);
    assert_eq!(
        c.image.as_deref(),
        Some("mcr.microsoft.com/aks/kaito/kaito-phi-3-mini-4k-instruct:0.0.2")
    );
    let cmd = c.command.clone().unwrap_or_default();
    assert_eq!(cmd[..2], ["/bin/sh".to_owned(), "-c".to_owned()]);
    assert_eq!(
        cmd[2],
        "accelerate launch --num_processes=1 --num_machines=1 --machine_rank=0 --gpu_ids=all \
         inference_api.py --pipeline=text-generation --torch_dtype=auto --trust_remote_code"
    );
    let gpu = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("nvidia.com/gpu"));
    assert_eq!(gpu.map(|q| q.0.as_str()), Some("1"));
    assert!(c.startup_probe.is_some() && c.readiness_probe.is_some() && c.liveness_probe.is_some());
    assert_eq!(
        c.liveness_probe
            .as_ref()
            .and_then(|p| p.initial_delay_seconds),
        None
    );
}

#[test]
fn distributed_llama_gets_rendezvous_arguments_per_workspace() {
    let w = llama(2);
    let cmd = preset_command(&w, Preset::find("llama-2-13b-chat").expect("preset"));
    assert!(
        cmd.starts_with("cd /workspace/llama/llama-2 && torchrun --nnodes=2 --nproc_per_node=1")
    );
    assert!(
        cmd.contains("--rdzv_endpoint=ws-llama-0.ws-llama-headless.ml.svc.cluster.local:29500")
    );
    assert!(cmd.contains("--node_rank=$(echo $HOSTNAME | grep -o '[^-]*$')"));
    assert!(cmd.ends_with("inference_api.py --max_seq_len=512 --max_batch_size=8"));
    let one = preset_command(&llama(1), Preset::find("llama-2-13b-chat").expect("preset"));
    assert!(one.contains("--nnodes=1 --nproc_per_node=2") && !one.contains("node_rank"));
}

#[test]
fn private_presets_use_the_user_image_and_secrets_plus_adapter_secrets() {
    let mut w = llama(2);
    if let Some(inf) = w.spec.inference.as_mut() {
        inf.adapters = Some(vec![
            yaml_serde::from_str(
                "source: {name: chat-style, image: reg.io/a/chat-style:1, \
                 imagePullSecrets: [adapter-secret]}",
            )
            .expect("adapter"),
        ]);
    }
    let pod = preset_pod(&w, inputs("llama-2-13b-chat", 2));
    assert_eq!(
        main_container(&pod).image.as_deref(),
        Some("reg.io/llama/chat:1")
    );
    let secrets: Vec<String> = pod
        .spec
        .and_then(|s| s.image_pull_secrets)
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(secrets, ["reg-secret", "adapter-secret"]);
}

#[test]
fn r11_adapters_become_init_containers_without_empty_mounts() {
    let mut w = phi();
    if let Some(inf) = w.spec.inference.as_mut() {
        inf.adapters =
            Some(vec![yaml_serde::from_str(
            "source: {name: falcon-style, image: reg.io/a/falcon-style:1}\nstrength: \"0.2\"",
        )
        .expect("adapter")]);
    }
    let pod = preset_pod(&w, inputs("phi-3-mini-4k-instruct", 1));
    let spec = pod.spec.expect("spec");
    let volumes: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    let inits = spec.init_containers.unwrap_or_default();
    assert_eq!(inits.len(), 1);
    assert_eq!(inits[0].name, "falcon-style");
    assert!(
        spec.image_pull_secrets.is_none(),
        "no empty pull secret list"
    );
    for c in inits.iter().chain(spec.containers.iter()) {
        for m in c.volume_mounts.iter().flatten() {
            assert!(!m.name.is_empty() && !m.mount_path.is_empty());
            assert!(volumes.contains(&m.name), "mount {} has no volume", m.name);
        }
    }
    let env = spec.containers[0].env.clone().unwrap_or_default();
    assert_eq!(env[0].name, "falcon-style");
    assert_eq!(env[0].value.as_deref(), Some("0.2"));
}

#[test]
fn pods_are_placed_by_the_selector_and_tolerate_gpu_taints() {
    let pod = preset_pod(&phi(), inputs("phi-3-mini-4k-instruct", 1));
    let spec = pod.spec.expect("spec");
    let terms = spec
        .affinity
        .and_then(|a| a.node_affinity)
        .and_then(|n| n.required_during_scheduling_ignored_during_execution)
        .map(|s| s.node_selector_terms)
        .unwrap_or_default();
    let expr = &terms[0].match_expressions.as_ref().expect("exprs")[0];
    assert_eq!((expr.key.as_str(), expr.operator.as_str()), ("apps", "In"));
    assert_eq!(spec.tolerations.map(|t| t.len()), Some(2));
}

#[test]
fn a_stateful_set_uses_the_headless_service_and_parallel_pods() {
    let w = llama(2);
    let sts = stateful_set(&w, preset_pod(&w, inputs("llama-2-13b-chat", 2)), Some(1));
    let spec = sts.spec.expect("spec");
    assert_eq!(spec.service_name.as_deref(), Some("ws-llama-headless"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(spec.replicas, Some(2));
    let headless = headless_service(&w).spec.expect("spec");
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    let leader = service(&w, true)
        .spec
        .and_then(|s| s.selector)
        .unwrap_or_default();
    assert_eq!(
        leader
            .get("statefulset.kubernetes.io/pod-name")
            .map(String::as_str),
        Some("ws-llama-0")
    );
}

#[test]
fn a_deployment_rolls_one_pod_at_a_time_and_carries_the_revision() {
    let w = phi();
    let d = deployment(
        &w,
        preset_pod(&w, inputs("phi-3-mini-4k-instruct", 1)),
        Some(3),
    );
    let ann = d.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        ann.get("workspace.kaito.io/revision").map(String::as_str),
        Some("3")
    );
    let strategy = d
        .spec
        .and_then(|s| s.strategy)
        .and_then(|s| s.rolling_update)
        .expect("rolling");
    assert_eq!(strategy.max_surge, Some(IntOrString::Int(0)));
    assert_eq!(
        d.metadata.owner_references.map(|o| o[0].controller),
        Some(Some(true))
    );
}

#[test]
fn a_template_keeps_the_user_pod_but_is_placed_by_the_selector() {
    let w = ws(
        "ws-tpl",
        "resource:\n  instanceType: Standard_NC6s_v3\n  labelSelector:\n    \
         matchLabels: {apps: tpl}\ninference:\n  template:\n    spec:\n      tolerations:\n      \
         - {key: sku, operator: Equal, value: gpu, effect: NoSchedule}\n      containers:\n      \
         - name: server\n        image: reg.io/my/server:1\n        \
         ports: [{containerPort: 5000}]\n",
    );
    let pod = template_pod(&w);
    let spec = pod.spec.expect("spec");
    assert_eq!(
        spec.containers[0].image.as_deref(),
        Some("reg.io/my/server:1")
    );
    assert_eq!(
        spec.tolerations.map(|t| t.len()),
        Some(2),
        "no duplicate toleration"
    );
    assert!(spec.affinity.and_then(|a| a.node_affinity).is_some());
    assert_eq!(
        pod.metadata
            .and_then(|m| m.labels)
            .and_then(|l| l.get("kaito.sh/workspace").cloned())
            .as_deref(),
        Some("ws-tpl")
    );
}
