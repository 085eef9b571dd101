//! One test per rule, with the accepted and the denied side.

use std::collections::BTreeMap;

use super::*;
use crate::{defaults, sku::Cloud, workspace::Workspace};

const SEED: &str = include_str!("../../tests/data/workspace-tuning-phi-3.yaml");

fn ws(yaml: &str) -> Workspace {
    yaml_serde::from_str(yaml).expect("test workspace parses")
}

fn azure() -> Context {
    Context::new(Cloud::Azure)
}

fn inference(name: &str, body: &str) -> Workspace {
    ws(&format!(
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: {name}\n  \
         namespace: default\n{body}"
    ))
}

fn phi3(extra: &str) -> Workspace {
    inference(
        "ws-phi",
        &format!(
            "resource:\n  instanceType: Standard_NC6s_v3\n  labelSelector:\n    \
             matchLabels:\n      apps: phi\ninference:\n  preset:\n    \
             name: phi-3-mini-4k-instruct\n{extra}"
        ),
    )
}

fn errors(result: Result<(), FieldErrors>) -> FieldErrors {
    result.err().unwrap_or_default()
}

fn denies(ws: &Workspace, path: &str, phrase: &str) {
    let errs = errors(validate_create(ws, &azure()));
    assert!(
        errs.0
            .iter()
            .any(|e| e.path == path && e.message.contains(phrase)),
        "expected {path:?} containing {phrase:?}, got: {errs}"
    );
}

fn admits(ws: &Workspace) {
    assert_eq!(validate_create(ws, &azure()), Ok(()));
}

fn filled_seed() -> Workspace {
    let text = SEED
        .replace(
            "ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1",
            "myacr.azurecr.io/phi3-adapter:0.0.1",
        )
        .replace("ACR_REGISTRY_SECRET_HERE", "acr-push");
    let mut w = ws(&text);
    w.metadata.namespace = Some("default".into());
    w
}

#[test]
fn the_seed_as_written_is_denied_for_its_uppercase_output_repository() {
    let seed = ws(SEED);
    let errs = errors(validate_create(&seed, &azure()));
    let paths: Vec<&str> = errs.0.iter().map(|e| e.path.as_str()).collect();
    // The placeholder Secret name is not a name the API server would take either.
    assert_eq!(
        paths,
        ["tuning.output.image", "tuning.output.imagePushSecret"],
        "{errs}"
    );
    assert!(
        errs.0[0]
            .message
            .contains("Repository name must be lowercase")
    );
    assert!(
        errs.to_string()
            .starts_with("validation failed: Repository name must be lowercase")
    );
}

#[test]
fn the_seed_with_placeholders_filled_is_admitted() {
    admits(&filled_seed());
}

#[test]
fn the_seed_round_trips_through_yaml() {
    let seed = ws(SEED);
    let again: Workspace =
        yaml_serde::from_str(&yaml_serde::to_string(&seed).expect("yaml")).expect("parses back");
    assert_eq!(seed, again);
    assert_eq!(seed.spec.resource.instance_type(), "Standard_NC6s_v3");
}

#[test]
fn neither_or_both_workloads_are_denied() {
    let neither = inference(
        "ws",
        "resource:\n  labelSelector:\n    matchLabels: {a: b}\n",
    );
    denies(&neither, "inference", "not neither");
    let mut both = filled_seed();
    both.spec.inference = phi3("").spec.inference;
    denies(&both, "inference", "not both");
}

#[test]
fn r01_names_that_cannot_become_service_names_are_denied() {
    for name in [
        "workspace-phi-3.5-mini",
        "Workspace-Phi",
        "7b-model",
        &"a".repeat(64),
    ] {
        let mut w = phi3("");
        w.metadata.name = Some(name.to_owned());
        denies(&w, "metadata.name", "start with a letter");
    }
    let mut w = phi3("");
    w.metadata.name = Some("a".repeat(MAX_WORKSPACE_NAME_LEN + 1));
    denies(&w, "metadata.name", "-headless");
    w.metadata.name = Some("a".repeat(MAX_WORKSPACE_NAME_LEN));
    admits(&w);
}

#[test]
fn r02_an_unknown_preset_is_denied_and_says_where_to_look() {
    let w = inference(
        "ws",
        "resource:\n  instanceType: Standard_NC24ads_A100_v4\n  labelSelector:\n    \
         matchLabels: {a: b}\ninference:\n  preset:\n    name: not-a-real-model\n",
    );
    let errs = errors(validate_create(&w, &azure()));
    assert_eq!(errs.0.len(), 1, "only the preset error: {errs}");
    assert!(
        errs.0[0]
            .message
            .contains("Unsupported inference preset name not-a-real-model")
    );
    assert!(errs.0[0].message.contains("phi-3-mini-4k-instruct"));
    let mut t = filled_seed();
    if let Some(p) = t.spec.tuning.as_mut().and_then(|t| t.preset.as_mut()) {
        p.name = "not-a-real-model".into();
    }
    denies(
        &t,
        "tuning.preset.name",
        "presets that support tuning are phi-",
    );
    let message = errors(validate_create(&t, &azure())).to_string();
    assert!(message.contains("phi-3-mini-128k-instruct"), "{message}");
    assert!(
        !message.contains("falcon-40b-instruct"),
        "an untunable preset is offered for tuning: {message}"
    );
}

#[test]
fn r02_tuning_a_preset_without_tuning_support_is_denied() {
    let mut t = filled_seed();
    if let Some(p) = t.spec.tuning.as_mut().and_then(|t| t.preset.as_mut()) {
        p.name = "falcon-7b-instruct".into();
    }
    denies(&t, "tuning.preset.name", "does not support tuning");
    let message = errors(validate_create(&t, &azure())).to_string();
    assert!(
        message.contains("does not support tuning; presets that support tuning are phi-"),
        "{message}"
    );
}

#[test]
fn tuning_needs_a_known_nvidia_instance_type() {
    let mut t = filled_seed();
    t.spec.resource.instance_type = Some("Standard_Q1_v1".into());
    denies(
        &t,
        "resource.instanceType",
        "Unsupported instance type Standard_Q1_v1. Supported SKUs: ",
    );
    t.spec.resource.instance_type = Some("Standard_NV32as_v4".into());
    denies(&t, "resource.instanceType", "needs NVIDIA GPUs");
    t.spec.resource.instance_type = Some("standard_nc24ads_a100_v4".into());
    admits(&t);
}

#[test]
fn an_untunable_preset_gets_one_error_not_advice_on_access() {
    let mut t = filled_seed();
    if let Some(p) = t.spec.tuning.as_mut().and_then(|t| t.preset.as_mut()) {
        p.name = "llama-2-7b".into();
    }
    let errs = errors(validate_create(&t, &azure()));
    assert_eq!(errs.0.len(), 1, "{errs}");
    assert_eq!(errs.0[0].path, "tuning.preset.name");
}

#[test]
fn an_empty_preset_name_is_called_empty() {
    let mut t = filled_seed();
    if let Some(p) = t.spec.tuning.as_mut().and_then(|t| t.preset.as_mut()) {
        p.name = String::new();
    }
    denies(
        &t,
        "tuning.preset.name",
        "Unsupported tuning preset name (empty): ",
    );
}

#[test]
fn r03_instance_types_match_whatever_their_casing() {
    let mut w = phi3("");
    w.spec.resource.instance_type = Some("standard_nc6s_v3".into());
    admits(&w);
    w.spec.resource.instance_type = Some("Standard_Q1_v1".into());
    denies(
        &w,
        "resource.instanceType",
        "Unsupported instance type Standard_Q1_v1. Supported SKUs: ",
    );
    denies(&w, "resource.instanceType", "Standard_NC6, Standard_NC12, ");
}

#[test]
fn aws_types_are_checked_against_the_aws_catalog() {
    let mut w = phi3("");
    w.spec.resource.instance_type = Some("g5.xlarge".into());
    assert_eq!(validate_create(&w, &Context::new(Cloud::Aws)), Ok(()));
    assert!(validate_create(&w, &azure()).is_err());
}

#[test]
fn presets_must_fit_the_gpus_of_the_nodes() {
    let mut w = inference(
        "ws",
        "resource:\n  instanceType: Standard_NC12s_v3\n  labelSelector:\n    matchLabels: {a: b}\n\
         inference:\n  preset:\n    name: falcon-40b\n",
    );
    denies(&w, "resource.instanceType", "Insufficient total GPU memory");
    w.spec.resource.instance_type = Some("Standard_NC6s_v3".into());
    denies(&w, "resource.instanceType", "Insufficient number of GPUs");
    w.spec.resource.count = Some(6);
    admits(&w);
    w.spec.resource.instance_type = Some("Standard_NG32ads_V620_v1".into());
    denies(&w, "resource.instanceType", "needs NVIDIA GPUs");
}

#[test]
fn per_gpu_memory_must_hold_a_shard() {
    let mut w = inference(
        "ws",
        "resource:\n  instanceType: Standard_NC24s_v3\n  count: 2\n  labelSelector:\n    \
         matchLabels: {a: b}\ninference:\n  preset:\n    name: llama-2-70b\n    \
         accessMode: private\n    presetOptions:\n      image: reg.io/llama/llama-2-70b:1\n",
    );
    denies(&w, "resource.instanceType", "Insufficient per GPU memory");
    w.spec.resource.instance_type = Some("Standard_ND96asr_v4".into());
    w.spec.resource.count = Some(1);
    admits(&w);
}

#[test]
fn selectors_must_be_expressible_as_labels() {
    let mut w = phi3("");
    w.spec.resource.label_selector =
        yaml_serde::from_str("matchExpressions:\n- {key: apps, operator: In, values: [a, b]}\n")
            .expect("selector");
    denies(&w, "resource.labelSelector", "only matchLabels");
    w.spec.resource.label_selector =
        yaml_serde::from_str("matchExpressions:\n- {key: apps, operator: In, values: [a]}\n")
            .expect("selector");
    admits(&w);
}

#[test]
fn selector_labels_that_cannot_be_node_labels_are_denied() {
    for (key, value, says) in [
        ("apps/x/y", "phi", "invalid label key"),
        ("-apps", "phi", "invalid label key"),
        ("Bad_Prefix.io/apps", "phi", "invalid label key"),
        ("apps", "bad value!", "invalid value"),
        ("apps", &"v".repeat(64), "invalid value"),
        ("apps", "-phi", "invalid value"),
    ] {
        let mut w = phi3("");
        w.spec.resource.label_selector.match_labels =
            Some(BTreeMap::from([(key.to_owned(), value.to_owned())]));
        denies(&w, "resource.labelSelector", says);
    }
    let mut w = phi3("");
    w.spec.resource.label_selector =
        yaml_serde::from_str("matchExpressions:\n- {key: apps, operator: In, values: [a b]}\n")
            .expect("selector");
    denies(&w, "resource.labelSelector", "invalid value");
    for (key, value) in [
        ("example.com/apps", "phi-3.5_mini"),
        ("APPS", ""),
        ("a", &"v".repeat(63)),
    ] {
        let mut w = phi3("");
        w.spec.resource.label_selector.match_labels =
            Some(BTreeMap::from([(key.to_owned(), value.to_owned())]));
        admits(&w);
    }
}

#[test]
fn selectors_of_reserved_keys_only_are_denied() {
    let mut w = phi3("");
    w.spec.resource.label_selector.match_labels = Some(BTreeMap::from([(
        "kaito.sh/workspace".to_owned(),
        "x".to_owned(),
    )]));
    denies(
        &w,
        "resource.labelSelector.matchLabels",
        "at least one label",
    );
    w.spec.resource.label_selector.match_labels = None;
    denies(
        &w,
        "resource.labelSelector.matchLabels",
        "at least one label",
    );
}

#[test]
fn tuning_runs_on_one_node_only() {
    let mut t = filled_seed();
    t.spec.resource.count = Some(2);
    denies(&t, "resource.count", "multinode");
}

#[test]
fn inference_needs_exactly_one_of_preset_and_template() {
    let mut w = phi3("");
    if let Some(i) = w.spec.inference.as_mut() {
        i.preset = None;
    }
    denies(&w, "inference", "Preset or Template must be specified");
    let mut w = phi3("");
    if let Some(i) = w.spec.inference.as_mut() {
        i.template = Some(Default::default());
    }
    denies(&w, "inference", "cannot be set at the same time");
}

#[test]
fn template_workspaces_skip_gpu_checks_but_need_a_plausible_size() {
    let mut w = inference(
        "ws-tpl",
        "resource:\n  instanceType: Standard_D4s_v3\n  labelSelector:\n    matchLabels: {a: b}\n\
         inference:\n  template:\n    spec:\n      containers:\n      - name: c\n        \
         image: nginx\n",
    );
    admits(&w);
    w.spec.resource.instance_type = Some("Standard_E4s_v3".into());
    denies(&w, "resource.instanceType", "N-series or D-series");
}

#[test]
fn private_only_presets_need_private_mode_and_an_image() {
    let mut w = inference(
        "ws",
        "resource:\n  instanceType: Standard_NC12s_v3\n  count: 1\n  labelSelector:\n    \
         matchLabels: {a: b}\ninference:\n  preset:\n    name: llama-2-13b-chat\n",
    );
    denies(
        &w,
        "inference.preset.accessMode",
        "only supports private AccessMode",
    );
    if let Some(p) = w.spec.inference.as_mut().and_then(|i| i.preset.as_mut()) {
        p.access_mode = Some(crate::workspace::AccessMode::Private);
    }
    denies(
        &w,
        "inference.preset.presetOptions.image",
        "an image must be provided",
    );
    if let Some(p) = w.spec.inference.as_mut().and_then(|i| i.preset.as_mut()) {
        p.preset_options = Some(crate::workspace::PresetOptions {
            image: Some("myreg.io/llama/llama-2-13b-chat:1.0".into()),
            ..Default::default()
        });
    }
    admits(&w);
}

#[test]
fn gated_presets_need_a_model_access_secret_and_others_refuse_one() {
    let mut w = inference(
        "ws",
        "resource:\n  instanceType: Standard_NC24ads_A100_v4\n  labelSelector:\n    \
         matchLabels: {a: b}\ninference:\n  preset:\n    name: llama-3.1-8b-instruct\n",
    );
    denies(
        &w,
        "inference.preset.presetOptions.modelAccessSecret",
        "HF_TOKEN",
    );
    if let Some(p) = w.spec.inference.as_mut().and_then(|i| i.preset.as_mut()) {
        p.preset_options = Some(crate::workspace::PresetOptions {
            model_access_secret: Some("hf".into()),
            ..Default::default()
        });
    }
    admits(&w);
    let w = phi3("    presetOptions:\n      modelAccessSecret: hf\n");
    denies(
        &w,
        "inference.preset.presetOptions.modelAccessSecret",
        "does not require",
    );
}

#[test]
fn secret_names_must_be_names_the_api_server_accepts() {
    // The seed's placeholder, as a newcomer might leave it after fixing only the image.
    let mut t = filled_seed();
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.output.image_push_secret = Some("ACR_REGISTRY_SECRET_HERE".into());
        tun.input.image_pull_secrets = Some(vec!["ok".into(), "bad_name".into()]);
    }
    denies(
        &t,
        "tuning.output.imagePushSecret",
        "invalid Secret name \"ACR_REGISTRY_SECRET_HERE\"",
    );
    denies(
        &t,
        "tuning.input.imagePullSecrets[1]",
        "invalid Secret name",
    );
    let errs = errors(validate_create(&t, &azure()));
    assert!(!errs.has_path("tuning.input.imagePullSecrets[0]"), "{errs}");
    denies(
        &phi3("    presetOptions:\n      imagePullSecrets: [\"-x\"]\n"),
        "inference.preset.presetOptions.imagePullSecrets[0]",
        "invalid Secret name",
    );
    let mut gated = inference(
        "ws",
        "resource:\n  instanceType: Standard_NC24ads_A100_v4\n  labelSelector:\n    \
         matchLabels: {a: b}\ninference:\n  preset:\n    name: llama-3.1-8b-instruct\n    \
         presetOptions: {modelAccessSecret: HF.Token}\n",
    );
    denies(
        &gated,
        "inference.preset.presetOptions.modelAccessSecret",
        "invalid Secret name",
    );
    if let Some(p) = gated
        .spec
        .inference
        .as_mut()
        .and_then(|i| i.preset.as_mut())
    {
        p.preset_options = Some(crate::workspace::PresetOptions {
            model_access_secret: Some("hf.token-1".into()),
            image_pull_secrets: Some(vec!["acr.pull".into()]),
            ..Default::default()
        });
    }
    admits(&gated);
}

#[test]
fn dns_subdomains_are_lowercase_dotted_labels() {
    for good in ["a", "a.b", "acr-push", "0.x-1", &"a".repeat(253)] {
        assert!(is_dns1123_subdomain(good), "{good}");
    }
    for bad in ["", "A", "a_b", "-a", "a-", "a..b", ".a", &"a".repeat(254)] {
        assert!(!is_dns1123_subdomain(bad), "{bad}");
    }
}

fn adapter(name: &str, strength: Option<&str>) -> String {
    let strength = strength
        .map(|s| format!("    strength: \"{s}\"\n"))
        .unwrap_or_default();
    format!("  - source:\n      name: {name}\n      image: reg.io/adapters/{name}:1\n{strength}")
}

#[test]
fn r11_adapters_are_checked_on_create() {
    admits(&phi3(&format!(
        "  adapters:\n{}",
        adapter("first", Some("0.2"))
    )));
    admits(&phi3(&format!("  adapters:\n{}", adapter("first", None))));
    let w = phi3(&format!("  adapters:\n{}", adapter("first", Some("1.5"))));
    denies(
        &w,
        "inference.adapters[0].strength",
        "must be between 0 and 1",
    );
    let w = phi3(&format!("  adapters:\n{}", adapter("first", Some("lots"))));
    denies(&w, "inference.adapters[0].strength", "decimal");
    let w = phi3(&format!(
        "  adapters:\n{}{}",
        adapter("same", None),
        adapter("same", None)
    ));
    denies(
        &w,
        "inference.adapters[1].source.name",
        "Duplicate adapter source name found: same",
    );
}

#[test]
fn an_adapter_may_not_take_the_workspace_name() {
    admits(&phi3(&format!(
        "  adapters:\n{}",
        adapter("ws-phi-2", None)
    )));
    let w = phi3(&format!("  adapters:\n{}", adapter("ws-phi", None)));
    denies(
        &w,
        "inference.adapters[0].source.name",
        "the Workspace's own name",
    );
}

#[test]
fn adapter_sources_need_a_label_name_and_an_image() {
    let w = phi3("  adapters:\n  - strength: \"0.5\"\n");
    denies(&w, "inference.adapters[0].source", "missing field: Source");
    let w = phi3("  adapters:\n  - source:\n      name: Upper\n      image: r.io/a/b:1\n");
    denies(&w, "inference.adapters[0].source.name", "DNS");
    let w = phi3("  adapters:\n  - source:\n      name: ok\n");
    denies(
        &w,
        "inference.adapters[0].source.image",
        "Image of Adapter field must be specified",
    );
    let many: String = (0..11).map(|i| adapter(&format!("a{i}"), None)).collect();
    denies(
        &phi3(&format!("  adapters:\n{many}")),
        "inference.adapters",
        "maximum limit",
    );
}

#[test]
fn the_inference_config_map_must_exist_and_parse() {
    let w = phi3("  config: my-config\n");
    denies(
        &w,
        "inference.config",
        "ConfigMap 'my-config' specified in 'config' not found in namespace 'default'",
    );
    let mut ctx = azure();
    let mut data = BTreeMap::from([(
        "inference_config.yaml".to_owned(),
        "vllm: {max-model-len: 2048}".to_owned(),
    )]);
    ctx.config_maps
        .get_or_insert_with(Default::default)
        .insert("my-config".into(), data.clone());
    assert_eq!(validate_create(&w, &ctx), Ok(()));
    data.insert(
        "inference_config.yaml".into(),
        "vllm: {max-model-len: many}".into(),
    );
    ctx.config_maps
        .get_or_insert_with(Default::default)
        .insert("my-config".into(), data.clone());
    assert!(errors(validate_create(&w, &ctx)).has_path("inference.config.vllm.max-model-len"));
    data.insert("inference_config.yaml".into(), "[unclosed".into());
    ctx.config_maps
        .get_or_insert_with(Default::default)
        .insert("my-config".into(), data);
    assert!(
        errors(validate_create(&w, &ctx))
            .to_string()
            .contains("Failed to parse")
    );
    ctx.config_maps
        .get_or_insert_with(Default::default)
        .insert("my-config".into(), BTreeMap::new());
    assert!(
        errors(validate_create(&w, &ctx))
            .to_string()
            .contains("missing field")
    );
}

#[test]
fn max_model_len_may_not_exceed_the_context_length() {
    let w = inference(
        "ws",
        "resource:\n  instanceType: Standard_NC6s_v3\n  labelSelector:\n    matchLabels: {a: b}\n\
         inference:\n  preset:\n    name: mistral-7b\n  config: c\n",
    );
    let mut ctx = azure();
    ctx.config_maps.get_or_insert_with(Default::default).insert(
        "c".into(),
        BTreeMap::from([(
            "inference_config.yaml".into(),
            "vllm:\n  max-model-len: 65536\n".into(),
        )]),
    );
    assert!(
        errors(validate_create(&w, &ctx))
            .to_string()
            .contains("context length 32768")
    );
}

#[test]
fn tuning_methods_are_lora_or_qlora_in_any_casing() {
    let mut t = filled_seed();
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.method = Some("QLoRA".into());
    }
    admits(&t);
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.method = Some("full".into());
    }
    denies(&t, "tuning.method", "Method must be lora or qlora");
}

#[test]
fn the_tuning_config_map_must_exist_and_match_the_method() {
    let mut t = filled_seed();
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.config = Some("params".into());
    }
    denies(
        &t,
        "tuning.config",
        "ConfigMap 'params' specified in 'config' not found",
    );
    let mut ctx = azure();
    ctx.config_maps.get_or_insert_with(Default::default).insert(
        "params".into(),
        BTreeMap::from([(
            "training_config.yaml".into(),
            crate::templates::LORA_TRAINING_CONFIG.into(),
        )]),
    );
    assert!(
        errors(validate_create(&t, &ctx)).has_path("tuning.config"),
        "lora params for qlora"
    );
    ctx.config_maps.get_or_insert_with(Default::default).insert(
        "params".into(),
        BTreeMap::from([(
            "training_config.yaml".into(),
            crate::templates::QLORA_TRAINING_CONFIG.into(),
        )]),
    );
    assert_eq!(validate_create(&t, &ctx), Ok(()));
}

#[test]
fn r08_dataset_urls_must_be_public_http() {
    let bad = [
        ("ftp://host/x", "HTTP or HTTPS"),
        ("file:///etc/passwd", "HTTP or HTTPS"),
        ("http://localhost:8080/x", "local or metadata endpoint"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.1.2.3/data.csv", "private"),
        ("http://[::1]/data.csv", "loopback"),
        ("http://metadata.google.internal/x", "metadata"),
        ("http://168.63.129.16/machine", "private, or link-local"),
        ("http://[64:ff9b::a9fe:a9fe]/x", "link-local"),
        ("not a url", "invalid data source URL"),
    ];
    for (url, phrase) in bad {
        let mut t = filled_seed();
        if let Some(tun) = t.spec.tuning.as_mut() {
            tun.input.urls = Some(vec![url.to_owned()]);
        }
        denies(&t, "tuning.input.urls[0]", phrase);
    }
    let mut t = filled_seed();
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.input.urls = Some(vec![
            "https://a.example/x/d.csv".into(),
            "https://b.example/d.csv".into(),
        ]);
    }
    denies(&t, "tuning.input.urls[1]", "same file name");
}

#[test]
fn tuning_input_takes_exactly_one_source_and_no_volumes() {
    let mut t = filled_seed();
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.input.image = Some("reg.io/data/set:1".into());
    }
    denies(&t, "tuning.input", "Exactly one of URLs, Volume, or Image");
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.input.urls = None;
    }
    admits(&t);
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.input.image = Some("dataset:1".into());
    }
    denies(&t, "tuning.input.image", "require full input image URL");
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.input.volume_source = Some(serde_json::json!({"emptyDir": {}}));
    }
    denies(&t, "tuning.input.volumeSource", "not implemented");
}

#[test]
fn tuning_output_needs_an_image_and_a_push_secret() {
    let mut t = filled_seed();
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.output.image_push_secret = None;
    }
    denies(
        &t,
        "tuning.output.imagePushSecret",
        "Must specify imagePushSecret",
    );
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.output.image = None;
    }
    denies(&t, "tuning.output", "Exactly one of Volume or Image");
    if let Some(tun) = t.spec.tuning.as_mut() {
        tun.output.image = Some("reg.io/a/Bad_Path/x:1".into());
        tun.output.image_push_secret = Some("s".into());
    }
    denies(
        &t,
        "tuning.output.image",
        "path components must be lowercase",
    );
}

fn update(old: &Workspace, edit: impl FnOnce(&mut Workspace)) -> FieldErrors {
    let mut new = old.clone();
    edit(&mut new);
    errors(validate_update(old, &new, &azure()))
}

#[test]
fn metadata_only_updates_and_deletions_are_never_denied() {
    let mut bad = phi3("");
    bad.metadata.name = Some("Bad.Name".into());
    let errs = update(&bad, |w| {
        w.metadata.finalizers = None;
        w.metadata.labels = Some(BTreeMap::from([("x".into(), "y".into())]));
    });
    assert!(errs.is_empty(), "{errs}");
    let errs = update(&bad, |w| {
        w.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
        w.spec.resource.count = Some(5);
    });
    assert!(errs.is_empty(), "{errs}");
}

#[test]
fn defaults_alone_do_not_count_as_a_change() {
    let old = phi3("");
    let new = defaults::defaulted(&old);
    assert_eq!(validate_update(&old, &new, &azure()), Ok(()));
}

#[test]
fn immutable_resource_fields_are_denied_on_update() {
    let old = phi3("");
    assert!(update(&old, |w| w.spec.resource.count = Some(2)).has_path("resource.count"));
    let errs = update(&old, |w| {
        w.spec.resource.instance_type = Some("Standard_NC12s_v3".into())
    });
    assert!(errs.has_path("resource.instanceType"));
    let errs = update(&old, |w| {
        w.spec.resource.instance_type = Some("standard_nc6s_v3".into())
    });
    assert!(errs.is_empty(), "{errs}");
    let errs = update(&old, |w| {
        w.spec.resource.label_selector.match_labels =
            Some(BTreeMap::from([("apps".into(), "other".into())]));
    });
    assert!(errs.has_path("resource.labelSelector"));
    let errs = update(&old, |w| {
        w.spec.resource.preferred_nodes = Some(vec!["n1".into()])
    });
    assert!(errs.is_empty(), "{errs}");
}

#[test]
fn workloads_cannot_be_toggled_and_presets_cannot_change() {
    let old = phi3("");
    let errs = update(&old, |w| w.spec.tuning = filled_seed().spec.tuning);
    assert!(errs.has_path("tuning"), "{errs}");
    let errs = update(&old, |w| {
        if let Some(p) = w.spec.inference.as_mut().and_then(|i| i.preset.as_mut()) {
            p.name = "phi-3-mini-128k-instruct".into();
        }
    });
    assert!(errs.has_path("inference.preset"));
}

#[test]
fn template_content_may_change_but_not_be_removed() {
    let old = inference(
        "ws-tpl",
        "resource:\n  instanceType: Standard_NC6s_v3\n  labelSelector:\n    matchLabels: {a: b}\n\
         inference:\n  template:\n    spec:\n      containers:\n      - name: c\n        \
         image: nginx:1\n",
    );
    let errs = update(&old, |w| {
        if let Some(t) = w.spec.inference.as_mut().and_then(|i| i.template.as_mut()) {
            t.metadata = Some(Default::default());
        }
    });
    assert!(errs.is_empty(), "{errs}");
    let errs = update(&old, |w| {
        if let Some(i) = w.spec.inference.as_mut() {
            i.template = None;
            i.preset = phi3("").spec.inference.and_then(|i| i.preset);
        }
    });
    assert!(errs.has_path("inference.template"));
}

#[test]
fn adapters_may_change_on_update_but_are_checked() {
    let old = phi3("");
    let errs = update(&old, |w| {
        *w = phi3(&format!("  adapters:\n{}", adapter("a", Some("0.5"))))
    });
    assert!(errs.is_empty(), "{errs}");
    let errs = update(&old, |w| {
        *w = phi3(&format!("  adapters:\n{}", adapter("a", Some("2"))))
    });
    assert!(errs.has_path("inference.adapters[0].strength"));
}

#[test]
fn tuning_inputs_may_change_but_names_presets_and_methods_may_not() {
    let old = filled_seed();
    let errs = update(&old, |w| {
        if let Some(t) = w.spec.tuning.as_mut() {
            t.input.urls = Some(vec!["https://example.com/other.parquet".into()]);
            t.output.image = Some("myacr.azurecr.io/phi3-adapter:0.0.2".into());
        }
    });
    assert!(errs.is_empty(), "{errs}");
    let errs = update(&old, |w| {
        if let Some(t) = w.spec.tuning.as_mut() {
            t.input.name = Some("renamed".into());
        }
    });
    assert!(errs.has_path("tuning.input.name"));
    let errs = update(&old, |w| {
        if let Some(t) = w.spec.tuning.as_mut() {
            t.method = Some("lora".into());
        }
    });
    assert!(errs.has_path("tuning.method"));
    let errs = update(&old, |w| {
        if let Some(t) = w.spec.tuning.as_mut() {
            t.method = Some("QLORA".into());
        }
    });
    assert!(errs.is_empty(), "case-only change is no change: {errs}");
}

mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::workspace::{AdapterSpec, DataSource, InferenceSpec, PresetSpec, TuningSpec};

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-zA-Z0-9._:/ -]{0,40}",
            Just("phi-3-mini-4k-instruct".to_owned()),
            Just("https://example.com/d.csv".to_owned()),
            Just("reg.io/a/b:1".to_owned()),
            Just("Standard_NC6s_v3".to_owned()),
        ]
    }

    fn adapter() -> impl Strategy<Value = AdapterSpec> {
        (
            proptest::option::of((text(), proptest::option::of(text()))),
            proptest::option::of(text()),
        )
            .prop_map(|(src, strength)| AdapterSpec {
                source: src.map(|(name, image)| DataSource {
                    name: Some(name),
                    image,
                    ..Default::default()
                }),
                strength,
            })
    }

    fn workspace() -> impl Strategy<Value = Workspace> {
        (
            text(),
            proptest::option::of(-3i32..5),
            proptest::option::of(text()),
            proptest::collection::btree_map("[a-z/.]{0,12}", text(), 0..3),
            proptest::option::of((
                proptest::option::of(text()),
                proptest::collection::vec(adapter(), 0..12),
            )),
            proptest::option::of((
                text(),
                proptest::option::of(text()),
                proptest::collection::vec(text(), 0..3),
                text(),
            )),
        )
            .prop_map(|(name, count, sku, labels, inf, tun)| {
                let mut w = Workspace::new(&name, Default::default());
                w.spec.resource.count = count;
                w.spec.resource.instance_type = sku;
                w.spec.resource.label_selector.match_labels = Some(labels);
                w.spec.inference = inf.map(|(preset, adapters)| InferenceSpec {
                    preset: preset.map(|name| PresetSpec {
                        name,
                        ..Default::default()
                    }),
                    adapters: Some(adapters),
                    ..Default::default()
                });
                w.spec.tuning = tun.map(|(preset, method, urls, image)| TuningSpec {
                    preset: Some(PresetSpec {
                        name: preset,
                        ..Default::default()
                    }),
                    method,
                    input: DataSource {
                        urls: Some(urls),
                        ..Default::default()
                    },
                    output: crate::workspace::DataDestination {
                        image: Some(image),
                        image_push_secret: Some("s".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                });
                w
            })
    }

    proptest! {
        #[test]
        fn validation_never_panics_and_defaulting_is_idempotent(
            a in workspace(),
            b in workspace()
        ) {
            let ctx = Context::new(Cloud::Azure);
            let _ = validate_create(&a, &ctx);
            let _ = validate_update(&a, &b, &ctx);
            let once = defaults::defaulted(&a);
            prop_assert_eq!(&defaults::defaulted(&once), &once);
            prop_assert_eq!(
                validate_create(&once, &ctx).is_ok(),
                validate_create(&a, &ctx).is_ok()
            );
        }
    }
}
