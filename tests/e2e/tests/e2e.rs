//! End to end through the real gpu-provisioner and the AKS stand-in: every example reaches
//! Ready, bad Workspaces are denied through kubectl, deletion leaves no node request, pool or
//! node, adapters roll the Deployment, a changed tuning input runs revision 2, and a cloud
//! quota error shows in the Workspace and clears when the quota is raised.
// Test code fails loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    future::Future,
    time::{Duration, Instant},
};

use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job, core::v1::Node};
use kaito_api::{Machine, Workspace, conditions};
use kaito_e2e::{ClusterRef, Options, System, cluster_options, examples};
use kaito_testenv::shared_cluster_with;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use tokio::sync::{OnceCell, RwLock};

static SYSTEM: OnceCell<&'static System> = OnceCell::const_new();
/// The quota test changes the stand-in for everyone; it takes this lock for writing.
static CLOUD: RwLock<()> = RwLock::const_new(());

/// The system of this test binary, started once on a thread and runtime of its own (the
/// stand-in lives on that runtime, and must outlive the test that happened to start it).
async fn system() -> &'static System {
    *SYSTEM.get_or_init(start_system).await
}

async fn start_system() -> &'static System {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let cluster = shared_cluster_with(cluster_options())
                .await
                .expect("cluster");
            let options = Options {
                provisioner_env: vec![("LAUNCH_RETRY_INTERVAL".into(), "3s".into())],
                ..Options::default()
            };
            let system = System::start(ClusterRef::Shared(cluster), options)
                .await
                .expect("system");
            let _ = tx.send(Box::leak(Box::new(system)) as &'static System);
            std::future::pending::<()>().await;
        });
    });
    rx.await.expect("the system starts")
}

async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn apply(system: &System, ns: &str, doc: &str) {
    let (ok, out) = system
        .kubectl(&["create", "namespace", ns], None)
        .expect("kubectl");
    assert!(ok || out.contains("AlreadyExists"), "{out}");
    let (ok, out) = system
        .kubectl(&["apply", "-n", ns, "-f", "-"], Some(doc))
        .expect("kubectl");
    assert!(ok, "{out}");
}

async fn wait_ready(system: &System, ns: &str, name: &str) -> Workspace {
    let api: Api<Workspace> = Api::namespaced(system.client().expect("client"), ns);
    eventually(
        &format!("{ns}/{name} WorkspaceReady"),
        Duration::from_secs(120),
        || async {
            let ws = api.get(name).await.ok()?;
            let conds = ws.status.as_ref()?.conditions.clone()?;
            conditions::is_true(&conds, conditions::types::WORKSPACE_READY).then_some(ws)
        },
    )
    .await
}

fn pools_of(system: &System, name: &str) -> Vec<String> {
    system
        .sim
        .pools()
        .into_iter()
        .filter(|p| {
            p.pointer("/properties/nodeLabels/kaito.sh~1workspace")
                .and_then(|v| v.as_str())
                == Some(name)
        })
        .filter_map(|p| {
            p.pointer("/name")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect()
}

/// Deletes the Workspace with kubectl and waits until its node requests, pools and nodes are
/// gone too.
async fn delete_and_check_clean(system: &System, ns: &str, name: &str) {
    let (ok, out) = system
        .kubectl(
            &[
                "delete",
                "workspace",
                name,
                "-n",
                ns,
                "--wait=true",
                "--timeout=120s",
            ],
            None,
        )
        .expect("kubectl");
    assert!(ok, "{out}");
    let client = system.client().expect("client");
    let selector = format!("kaito.sh/workspace={name},kaito.sh/workspacenamespace={ns}");
    eventually(
        &format!("{ns}/{name} leaves nothing behind"),
        Duration::from_secs(120),
        || async {
            let machines = Api::<Machine>::all(client.clone())
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            let nodes = Api::<Node>::all(client.clone())
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            (machines.items.is_empty()
                && nodes.items.is_empty()
                && pools_of(system, name).is_empty())
            .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn every_example_reaches_ready_and_deleting_it_leaves_nothing_behind() {
    let system = system().await;
    let _cloud = CLOUD.read().await;
    let mut docs: Vec<(String, &str)> = examples::INFERENCE
        .iter()
        .map(|(file, doc)| (file.trim_end_matches(".yaml").replace('_', "-"), *doc))
        .collect();
    docs.push(("tuning-phi-3".into(), examples::TUNING_PHI_3));
    for (ns, doc) in &docs {
        apply(system, ns, doc);
    }
    for (ns, doc) in &docs {
        let name = examples::name_of(doc);
        let ws = wait_ready(system, ns, &name).await;
        if ws.spec.tuning.is_some() {
            let jobs = Api::<Job>::namespaced(system.client().unwrap(), ns)
                .list(&Default::default())
                .await
                .unwrap();
            assert_eq!(
                jobs.items[0].status.as_ref().and_then(|s| s.succeeded),
                Some(1),
                "{ns}"
            );
        }
        assert!(
            !pools_of(system, &name).is_empty(),
            "{ns}: provisioned through an agent pool"
        );
    }
    for (ns, doc) in &docs {
        delete_and_check_clean(system, ns, &examples::name_of(doc)).await;
    }
}

#[tokio::test]
async fn bad_workspaces_are_denied_through_kubectl_with_field_and_reason() {
    let system = system().await;
    let (ok, _) = system
        .kubectl(&["create", "namespace", "denied"], None)
        .expect("kubectl");
    let _ = ok;
    let seed = include_str!("../../../crates/api/tests/data/workspace-tuning-phi-3.yaml");
    let dolly_url = "https://huggingface.co/datasets/philschmid/dolly-15k-oai-style/resolve/main/\
                     data/train-00000-of-00001-54e3756291ca09c6.parquet?download=true";
    let bad_url =
        examples::TUNING_PHI_3.replace(dolly_url, "http://169.254.169.254/latest/meta-data");
    let bad_name =
        examples::PHI_3_MINI.replace("name: workspace-phi-3-mini", "name: workspace-phi-3.5-mini");
    let bad_sku = examples::PHI_3_MINI.replace("Standard_NC6s_v3", "Standard_Q1_v1");
    let cases = [
        (
            seed.to_owned(),
            "tuning.output.image",
            "Repository name must be lowercase",
        ),
        (bad_url, "tuning.input.urls[0]", "link-local"),
        (bad_name, "metadata.name", "at most 52 characters"),
        (
            bad_sku,
            "resource.instanceType",
            "Unsupported instance type Standard_Q1_v1. Supported SKUs: Standard_NC6",
        ),
    ];
    for (doc, field, reason) in cases {
        let (ok, out) = system
            .kubectl(&["apply", "-n", "denied", "-f", "-"], Some(&doc))
            .expect("kubectl");
        assert!(!ok, "admitted: {out}");
        assert!(
            out.contains("denied the request") && out.contains(field) && out.contains(reason),
            "{out}"
        );
    }
    let (_, out) = system
        .kubectl(&["get", "workspace", "-n", "denied", "-o", "name"], None)
        .expect("kubectl");
    assert!(
        out.trim().is_empty() || out.contains("No resources"),
        "nothing created: {out}"
    );
}

#[tokio::test]
async fn adding_an_adapter_rolls_the_deployment() {
    let system = system().await;
    let _cloud = CLOUD.read().await;
    let (ns, doc) = ("adapter-roll", examples::PHI_3_MINI);
    let name = examples::name_of(doc);
    apply(system, ns, doc);
    wait_ready(system, ns, &name).await;
    let deps: Api<Deployment> = Api::namespaced(system.client().unwrap(), ns);
    let before = deps.get(&name).await.unwrap().metadata.generation;
    let patch = concat!(
        r#"{"inference":{"adapters":[{"source":{"name":"dolly-style","#,
        r#""image":"localhost:5000/adapters/phi-3-mini-128k-instruct-qlora:0.0.1"},"#,
        r#""strength":"0.8"}]}}"#,
    );
    let (ok, out) = system
        .kubectl(
            &[
                "patch",
                "workspace",
                &name,
                "-n",
                ns,
                "--type",
                "merge",
                "-p",
                patch,
            ],
            None,
        )
        .expect("kubectl");
    assert!(ok, "{out}");
    eventually(
        "the deployment to roll with the adapter",
        Duration::from_secs(90),
        || async {
            let d = deps.get(&name).await.ok()?;
            let spec = d.spec.as_ref()?.template.spec.as_ref()?;
            let has = spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == "dolly-style");
            let rolled = d.metadata.generation > before
                && d.status.as_ref()?.updated_replicas == Some(1)
                && d.status.as_ref()?.ready_replicas == Some(1);
            (has && rolled).then_some(())
        },
    )
    .await;
    wait_ready(system, ns, &name).await;
    delete_and_check_clean(system, ns, &name).await;
}

#[tokio::test]
async fn changing_the_tuning_input_runs_revision_two() {
    let system = system().await;
    let _cloud = CLOUD.read().await;
    let (ns, doc) = ("tuning-rev2", examples::TUNING_PHI_3);
    let name = examples::name_of(doc);
    apply(system, ns, doc);
    wait_ready(system, ns, &name).await;
    let patch = serde_json::json!({
        "tuning": {"input": {"urls": ["https://example.com/data/more.parquet"]}}
    });
    Api::<Workspace>::namespaced(system.client().unwrap(), ns)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let jobs: Api<Job> = Api::namespaced(system.client().unwrap(), ns);
    eventually("revision 2 to succeed", Duration::from_secs(90), || async {
        let job = jobs.get_opt(&format!("{name}-r2")).await.ok().flatten()?;
        (job.status?.succeeded == Some(1)).then_some(())
    })
    .await;
    wait_ready(system, ns, &name).await;
    delete_and_check_clean(system, ns, &name).await;
}

#[tokio::test]
async fn a_quota_error_shows_in_the_workspace_and_clears_when_the_quota_is_raised() {
    let system = system().await;
    let _cloud = CLOUD.write().await;
    system
        .sim
        .set_quota_code(aks_sim::QuotaCode::OperationNotAllowed);
    system.sim.set_quota_limit(Some(0));
    let (ns, doc) = ("cores-short", examples::PHI_3_MINI);
    let name = examples::name_of(doc);
    apply(system, ns, doc);
    let yaml = eventually(
        "the quota error in the conditions",
        Duration::from_secs(90),
        || async {
            let (_, out) = system
                .kubectl(&["get", "workspace", &name, "-n", ns, "-o", "yaml"], None)
                .ok()?;
            let ws: Workspace = yaml_serde::from_str(&out).ok()?;
            let conds = ws.status?.conditions?;
            let res = conditions::find(&conds, conditions::types::RESOURCE_READY)?;
            res.message.contains("quota").then_some(out)
        },
    )
    .await;
    let ws: Workspace = yaml_serde::from_str(&yaml).expect("workspace yaml");
    let conds = ws.status.and_then(|s| s.conditions).unwrap_or_default();
    let res = conditions::find(&conds, conditions::types::RESOURCE_READY).expect("ResourceReady");
    assert_eq!(res.status, "False");
    assert!(res.message.contains("quota"), "{}", res.message);
    let machines = Api::<Machine>::all(system.client().unwrap())
        .list(&ListParams::default().labels(&format!("kaito.sh/workspace={name}")))
        .await
        .unwrap();
    assert_eq!(
        machines.items.len(),
        1,
        "exactly one node request while the quota is short"
    );

    system.sim.set_quota_limit(None);
    wait_ready(system, ns, &name).await;
    delete_and_check_clean(system, ns, &name).await;
}
