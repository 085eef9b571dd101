use super::*;

fn review(
    op: &str,
    object: serde_json::Value,
    old: Option<serde_json::Value>,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d1c4a5e-1b2c-4d3e-8f90-000000000001",
            "kind": {"group": "kaito.sh", "version": "v1alpha1", "kind": "Workspace"},
            "resource": {"group": "kaito.sh", "version": "v1alpha1", "resource": "workspaces"},
            "name": object["metadata"]["name"],
            "namespace": "default",
            "operation": op,
            "userInfo": {"username": "tester"},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

fn seed(image: &str) -> serde_json::Value {
    let yaml = format!(
        "apiVersion: kaito.sh/v1alpha1\nkind: Workspace\nmetadata:\n  \
         name: workspace-tuning-phi-3\nresource:\n  instanceType: Standard_NC6s_v3\n  \
         labelSelector:\n    matchLabels:\n      app: tuning-phi-3\ntuning:\n  preset:\n    \
         name: phi-3-mini-128k-instruct\n  method: QLoRA\n  input:\n    \
         urls: [\"https://example.com/train.parquet?download=true\"]\n  output:\n    \
         image: \"{image}\"\n    imagePushSecret: push-secret\n"
    );
    yaml_serde::from_str(&yaml).expect("yaml")
}

fn handler() -> State<Arc<Handler>> {
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
    let client = Client::try_from(config).expect("client");
    State(Arc::new(Handler {
        client,
        cloud: Cloud::Azure,
    }))
}

fn response(r: Json<AdmissionReview<DynamicObject>>) -> serde_json::Value {
    serde_json::to_value(&r.0).expect("json")["response"].clone()
}

#[tokio::test]
async fn the_seed_as_written_is_denied_with_field_and_reason() {
    let body = review(
        "CREATE",
        seed("ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1"),
        None,
    );
    let resp = response(validate(handler(), Json(body)).await);
    assert_eq!(resp["allowed"], false);
    let message = resp["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Repository name must be lowercase"),
        "{message}"
    );
    assert!(message.contains("tuning.output.image"), "{message}");
}

#[tokio::test]
async fn the_filled_seed_is_admitted() {
    let body = review("CREATE", seed("myacr.azurecr.io/phi3-adapter:0.0.1"), None);
    let resp = response(validate(handler(), Json(body)).await);
    assert_eq!(resp["allowed"], true, "{resp}");
}

#[tokio::test]
async fn an_object_that_is_not_a_workspace_is_denied_not_crashed_on() {
    let mut obj = seed("myacr.azurecr.io/phi3-adapter:0.0.1");
    obj["tuning"]["input"] = serde_json::json!("not an object");
    let resp = response(validate(handler(), Json(review("CREATE", obj, None))).await);
    assert_eq!(resp["allowed"], false);
    let message = resp["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot read the Workspace"), "{message}");
    assert!(message.ends_with(": tuning.input"), "{message}");
}

#[tokio::test]
async fn a_count_too_large_for_its_type_is_denied_with_its_field() {
    let mut obj = seed("myacr.azurecr.io/phi3-adapter:0.0.1");
    obj["resource"]["count"] = serde_json::json!(2_147_483_648_u64);
    for resp in [
        response(mutate(handler(), Json(review("CREATE", obj.clone(), None))).await),
        response(validate(handler(), Json(review("CREATE", obj, None))).await),
    ] {
        assert_eq!(resp["allowed"], false);
        let message = resp["status"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("2147483648"), "{message}");
        assert!(message.ends_with(": resource.count"), "{message}");
    }
}

#[tokio::test]
async fn updates_that_only_touch_metadata_are_admitted_even_for_old_bad_objects() {
    let old = seed("ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1");
    let mut new = old.clone();
    new["metadata"]["finalizers"] = serde_json::json!([]);
    let resp = response(validate(handler(), Json(review("UPDATE", new, Some(old)))).await);
    assert_eq!(resp["allowed"], true, "{resp}");
}

#[tokio::test]
async fn defaulting_lowercases_the_method_and_fills_the_count() {
    let body = review("CREATE", seed("myacr.azurecr.io/phi3-adapter:0.0.1"), None);
    let resp = response(mutate(handler(), Json(body)).await);
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    let patch = patch_bytes(&resp["patch"]);
    let ops: serde_json::Value = serde_json::from_slice(&patch).expect("patch json");
    let text = ops.to_string();
    assert!(
        text.contains("/tuning/method") && text.contains("qlora"),
        "{text}"
    );
    assert!(text.contains("/tuning/preset/accessMode"), "{text}");
}

/// The patch bytes as the API server reads them (kube writes `[]byte` as a number array).
fn patch_bytes(v: &serde_json::Value) -> Vec<u8> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b.as_u64())
                .filter_map(|b| u8::try_from(b).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn patched_instance_type(resp: &serde_json::Value) -> Option<String> {
    let ops: serde_json::Value =
        serde_json::from_slice(&patch_bytes(&resp["patch"])).expect("patch json");
    ops.as_array()?
        .iter()
        .find(|op| op["path"] == "/resource/instanceType")
        .map(|op| op["value"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn instance_types_are_stored_in_the_catalog_spelling_and_keep_it_on_update() {
    let mut obj = seed("myacr.azurecr.io/phi3-adapter:0.0.1");
    obj["resource"]["instanceType"] = serde_json::json!(" standard_nc6s_v3 ");
    let resp = response(mutate(handler(), Json(review("CREATE", obj.clone(), None))).await);
    assert_eq!(
        patched_instance_type(&resp).as_deref(),
        Some("Standard_NC6s_v3"),
        "{resp}"
    );
    // A stored spelling from before stays, so a case-only edit changes nothing.
    let mut old = obj.clone();
    old["resource"]["instanceType"] = serde_json::json!("standard_nc6s_v3");
    let mut new = obj.clone();
    new["resource"]["instanceType"] = serde_json::json!("Standard_NC6s_v3");
    let resp = response(mutate(handler(), Json(review("UPDATE", new, Some(old)))).await);
    assert_eq!(
        patched_instance_type(&resp).as_deref(),
        Some("standard_nc6s_v3"),
        "{resp}"
    );
    // An unknown size is only trimmed; validation decides about it.
    obj["resource"]["instanceType"] = serde_json::json!(" Standard_D4s_v3");
    let resp = response(mutate(handler(), Json(review("CREATE", obj, None))).await);
    assert_eq!(
        patched_instance_type(&resp).as_deref(),
        Some("Standard_D4s_v3"),
        "{resp}"
    );
}
