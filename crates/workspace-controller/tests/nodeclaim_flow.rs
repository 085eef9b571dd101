//! The controller against a real local cluster that serves NodeClaims (and no Machines), with
//! the admission webhook registered by URL and used through kubectl.
// Test code fails loudly, helpers included.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::{process::Command, time::Duration};

use k8s_openapi::api::apps::v1::Deployment;
use kaito_api::{NodeClaim, NodeRequestKind, Workspace};
use kaito_testenv::tools;
use kube::{Api, api::ListParams};
use support::{create_workspace, ensure_namespace, env_with_webhook, eventually, wait_condition};

const KIND: NodeRequestKind = NodeRequestKind::NodeClaim;
const SEED: &str = include_str!("../../api/tests/data/workspace-tuning-phi-3.yaml");

/// Runs kubectl against the test cluster, feeding `stdin`; returns (success, stdout+stderr).
fn kubectl(env: &support::Env, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let kubectl = tools().expect("tools").kubectl;
    let mut cmd = Command::new(kubectl);
    cmd.arg("--kubeconfig")
        .arg(env.cluster.kubeconfig_path())
        .args(args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl runs");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("kubectl output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn filled_seed() -> String {
    SEED.replace(
        "ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1",
        "myacr.azurecr.io/phi3-adapter:0.0.1",
    )
    .replace("ACR_REGISTRY_SECRET_HERE", "acr-push")
}

async fn claims_of(client: &kube::Client, ns: &str, name: &str) -> Vec<NodeClaim> {
    let sel = format!("kaito.sh/workspace={name},kaito.sh/workspacenamespace={ns}");
    Api::<NodeClaim>::all(client.clone())
        .list(&ListParams::default().labels(&sel))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test]
async fn kubectl_apply_of_the_seed_as_written_is_denied_with_field_and_reason() {
    let env = env_with_webhook(KIND).await;
    ensure_namespace(&env.client, "seed-denied").await;
    let (ok, out) = kubectl(&env, &["apply", "-n", "seed-denied", "-f", "-"], Some(SEED));
    assert!(!ok, "{out}");
    assert!(out.contains("validation.workspace.kaito.sh"), "{out}");
    assert!(out.contains("Repository name must be lowercase"), "{out}");
    assert!(out.contains("tuning.output.image"), "{out}");
}

#[tokio::test]
async fn kubectl_denies_names_presets_and_adapters_that_cannot_work() {
    let env = env_with_webhook(KIND).await;
    ensure_namespace(&env.client, "denials").await;
    let base = "apiVersion: kaito.sh/v1alpha1\nkind: Workspace\nmetadata:\n  name: NAME\n\
                resource:\n  instanceType: Standard_NC6s_v3\n  labelSelector:\n    \
                matchLabels:\n      apps: x\ninference:\n  preset:\n    name: PRESET\nADAPTERS";
    let cases = [
        (
            "workspace-phi-3.5-mini",
            "phi-3-mini-4k-instruct",
            "",
            "metadata.name",
        ),
        (
            "ws-unknown",
            "not-a-real-model",
            "",
            "Unsupported inference preset name not-a-real-model",
        ),
        (
            "ws-strong",
            "phi-3-mini-4k-instruct",
            "  adapters:\n  - source: {name: a, image: \"reg.io/a/b:1\"}\n    strength: \"1.5\"\n",
            "must be between 0 and 1",
        ),
    ];
    for (name, preset, adapters, phrase) in cases {
        let doc = base
            .replace("NAME", name)
            .replace("PRESET", preset)
            .replace("ADAPTERS", adapters);
        let (ok, out) = kubectl(&env, &["apply", "-n", "denials", "-f", "-"], Some(&doc));
        assert!(!ok && out.contains(phrase), "{name}: {out}");
    }
    let (ok, out) = kubectl(
        &env,
        &["get", "workspaces", "-n", "denials", "-o", "name"],
        None,
    );
    assert!(ok && out.trim().is_empty(), "nothing was created: {out}");
}

#[tokio::test]
async fn the_filled_seed_is_admitted_defaulted_and_shows_the_seed_columns() {
    let env = env_with_webhook(KIND).await;
    let ns = "seed-columns";
    ensure_namespace(&env.client, ns).await;
    let seed = filled_seed().replace("method: qlora", "method: QLoRA");
    let (ok, out) = kubectl(&env, &["apply", "-n", ns, "-f", "-"], Some(&seed));
    assert!(ok, "{out}");
    let ws = wait_condition(
        &env.client,
        ns,
        "workspace-tuning-phi-3",
        "WorkspaceReady",
        "True",
    )
    .await;
    assert_eq!(
        ws.spec.tuning.and_then(|t| t.method).as_deref(),
        Some("qlora"),
        "defaulted once"
    );
    let (ok, out) = kubectl(&env, &["get", "wk", "-n", ns], None);
    assert!(ok, "{out}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "INSTANCE",
            "RESOURCEREADY",
            "INFERENCEREADY",
            "WORKSPACEREADY",
            "AGE"
        ]
    );
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..3],
        ["workspace-tuning-phi-3", "Standard_NC6s_v3", "True"]
    );
    assert_eq!(row[3], "True", "WORKSPACEREADY: {out}");
    let (ok, wide) = kubectl(&env, &["get", "wk", "-n", ns, "-o", "wide"], None);
    assert!(
        ok && wide.contains("JOBSTARTED")
            && wide.contains("WORKSPACESUCCEEDED")
            && wide.contains("Succeeded"),
        "{wide}"
    );
    let (ok, out) = kubectl(
        &env,
        &[
            "delete",
            "wk",
            "-n",
            ns,
            "workspace-tuning-phi-3",
            "--wait=true",
            "--timeout=90s",
        ],
        None,
    );
    assert!(ok, "{out}");
    assert!(
        claims_of(&env.client, ns, "workspace-tuning-phi-3")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn an_inference_workspace_becomes_ready_through_node_claims_and_cleans_up() {
    let env = env_with_webhook(KIND).await;
    let (ns, name) = ("claims", "workspace-phi-3-mini");
    ensure_namespace(&env.client, ns).await;
    let yaml = format!(
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: {name}\nresource:\n  \
         instanceType: Standard_NC6s_v3\n  labelSelector:\n    matchLabels:\n      apps: phi-3\n\
         inference:\n  preset:\n    name: phi-3-mini-4k-instruct\n"
    );
    create_workspace(&env.client, ns, &yaml).await;
    let ws = wait_condition(&env.client, ns, name, "WorkspaceReady", "True").await;
    assert_eq!(
        support::condition(&ws, "NodeClaimReady").map(|c| c.status.as_str()),
        Some("True")
    );
    let claims = claims_of(&env.client, ns, name).await;
    assert_eq!(claims.len(), 1);
    let claim = &claims[0];
    assert_eq!(claim.spec.node_class_ref.kind, "KaitoNodeClass");
    let disk = claim
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"));
    assert_eq!(disk.map(|q| q.0.as_str()), Some("50Gi"));
    assert!(
        Api::<Deployment>::namespaced(env.client.clone(), ns)
            .get(name)
            .await
            .is_ok()
    );

    // this cluster has no Machine CRD; deletion must not wait for Machines.
    Api::<Workspace>::namespaced(env.client.clone(), ns)
        .delete(name, &Default::default())
        .await
        .expect("delete");
    eventually(
        "workspace and claims gone",
        Duration::from_secs(60),
        || async {
            let gone = Api::<Workspace>::namespaced(env.client.clone(), ns)
                .get_opt(name)
                .await
                .ok()?
                .is_none();
            (gone && claims_of(&env.client, ns, name).await.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn kubectl_explain_describes_the_workspace_fields() {
    let env = env_with_webhook(KIND).await;
    let (ok, out) = kubectl(&env, &["explain", "workspace.resource"], None);
    assert!(ok, "{out}");
    assert!(out.contains("GPU nodes the workload needs"), "{out}");
    assert!(out.contains("instanceType"), "{out}");
    assert!(out.contains("node.kubernetes.io/instance-type"), "{out}");
    let (ok, out) = kubectl(&env, &["explain", "workspace.tuning.output"], None);
    assert!(ok && out.contains("imagePushSecret"), "{out}");
}
