//! The demo: a local cluster, the AKS stand-in and both controllers; the seed's tuning
//! Workspace and a Phi-3 inference Workspace applied with kubectl and followed until Ready,
//! then the chain of objects that made them so.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Parser;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kaito_api::{NodeRequestKind, Workspace, conditions};
use kaito_e2e::{ClusterRef, Options, System, cluster_options, examples};
use kaito_testenv::Cluster;
use kube::{Api, api::ObjectMeta};

/// Runs kaito-rs end to end on this machine.
#[derive(Parser, Debug)]
#[command(name = "demo")]
struct Args {
    /// Keep the cluster running at the end and print how to use kubectl against it.
    #[arg(long)]
    keep: bool,
    /// Node-request kind the workspace controller creates: machine or nodeclaim.
    #[arg(long, default_value = "machine", value_parser = ["machine", "nodeclaim"])]
    node_request_api: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

struct Clock(Instant);

impl Clock {
    fn say(&self, what: &str) {
        println!("[demo {:>6.1}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    kaito_e2e::run_main("demo", run(&args)).await
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let clock = Clock(Instant::now());
    let kind = match args.node_request_api.as_str() {
        "nodeclaim" => NodeRequestKind::NodeClaim,
        // The only other value clap lets through.
        _ => NodeRequestKind::Machine,
    };
    clock.say(
        "starting the local cluster: etcd, kube-apiserver, controller-manager, scheduler, kwok",
    );
    let cluster = Cluster::start(cluster_options()).await?;
    clock.say("starting the AKS stand-in, the gpu-provisioner and the workspace controller");
    let options = Options {
        node_request_api: kind,
        ..Options::default()
    };
    let mut system = System::start(ClusterRef::Owned(Box::new(cluster)), options).await?;
    clock.say(&format!(
        "all components serving; logs in {}",
        system.log_dir().display()
    ));

    create_push_secret(&system).await?;
    for (label, doc) in [
        ("tuning", examples::TUNING_PHI_3),
        ("inference", examples::PHI_3_MINI),
    ] {
        let (ok, out) = system.kubectl(&["apply", "-n", "default", "-f", "-"], Some(doc))?;
        anyhow::ensure!(ok, "kubectl apply of the {label} example failed: {out}");
        clock.say(&format!("kubectl apply ({label}): {}", out.trim()));
    }

    let names = [
        examples::name_of(examples::TUNING_PHI_3),
        examples::name_of(examples::PHI_3_MINI),
    ];
    let outcome = follow(
        &mut system,
        &clock,
        &names,
        Duration::from_secs(args.timeout),
    )
    .await;
    print_chain(&system, kind)?;
    outcome?;
    clock.say("both Workspaces are ready");
    if args.keep {
        println!("\nThe cluster keeps running until you press Ctrl-C. To use it:");
        println!(
            "  export KUBECONFIG={}",
            system.cluster().kubeconfig_path().display()
        );
        println!(
            "  {} get workspace -A",
            kaito_testenv::tools()?.kubectl.display()
        );
        println!(
            "Logs are in {}; metrics on http://127.0.0.1:{}/metrics (workspace controller) and \
             http://127.0.0.1:{}/metrics (gpu-provisioner). The agent pools are printed here \
             again whenever they change.",
            system.log_dir().display(),
            system.workspace_admin_port,
            system.provisioner_admin_port,
        );
        watch_pools(&system).await?;
    }
    Ok(())
}

/// The Secret the tuning example pushes its adapter with (a local registry needs none, but
/// the Job mounts it as a real cluster would).
async fn create_push_secret(system: &System) -> anyhow::Result<()> {
    let auth =
        serde_json::json!({"auths": {"localhost:5000": {"username": "demo", "password": "demo"}}});
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("local-registry-push".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        data: Some(
            [(
                ".dockerconfigjson".to_owned(),
                ByteString(auth.to_string().into_bytes()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    let api: Api<Secret> = Api::namespaced(system.client()?, "default");
    let params = kube::api::PatchParams::apply("kaito-demo").force();
    api.patch(
        "local-registry-push",
        &params,
        &kube::api::Patch::Apply(&secret),
    )
    .await?;
    Ok(())
}

/// Prints `kubectl get workspace` whenever it changes until every Workspace is ready.
async fn follow(
    system: &mut System,
    clock: &Clock,
    names: &[String],
    limit: Duration,
) -> anyhow::Result<()> {
    let api: Api<Workspace> = Api::namespaced(system.client()?, "default");
    let mut last = String::new();
    let start = Instant::now();
    loop {
        system.check_running()?;
        let (_, table) = system.kubectl(&["get", "workspace", "-n", "default"], None)?;
        if table != last {
            clock.say("kubectl get workspace");
            print!("{table}");
            last = table;
        }
        let mut ready = 0;
        for name in names {
            let ws = api.get(name).await?;
            let conds = ws
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            if conditions::is_true(&conds, conditions::types::WORKSPACE_READY) {
                ready += 1;
            } else if let Some(c) = conds
                .iter()
                .find(|c| c.reason == "workspaceFailed" || c.reason == "InvalidSpec")
            {
                anyhow::bail!(
                    "{name}: {} is {} ({}): {}",
                    c.type_,
                    c.status,
                    c.reason,
                    c.message
                );
            }
            if start.elapsed() > limit {
                let failing: Vec<String> = conds
                    .iter()
                    .filter(|c| c.status != conditions::status::TRUE)
                    .map(|c| format!("{}={} ({}): {}", c.type_, c.status, c.reason, c.message))
                    .collect();
                anyhow::bail!("{name} not ready after {limit:?}: {}", failing.join("; "));
            }
        }
        if ready == names.len() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The stand-in's agent pools as a table.
fn pool_table(system: &System) -> String {
    let mut table = format!(
        "{:<14} {:<28} {:<12} WORKSPACE\n",
        "NAME", "VMSIZE", "STATE"
    );
    for pool in system.sim.pools() {
        let get = |p: &str| {
            pool.pointer(p)
                .and_then(|v| v.as_str())
                .unwrap_or("-")
                .to_owned()
        };
        table.push_str(&format!(
            "{:<14} {:<28} {:<12} {}\n",
            get("/name"),
            get("/properties/vmSize"),
            get("/properties/provisioningState"),
            get("/properties/nodeLabels/kaito.sh~1workspace"),
        ));
    }
    table
}

/// Until Ctrl-C, prints the agent pools again whenever they change: the stand-in lives in
/// this process, so this is where they can be seen.
async fn watch_pools(system: &System) -> anyhow::Result<()> {
    let mut shown = pool_table(system);
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            done = tokio::signal::ctrl_c() => return Ok(done?),
            _ = tick.tick() => {
                let now = pool_table(system);
                if now != shown {
                    println!("\n== agent pools changed (from the AKS stand-in)\n{now}");
                    shown = now;
                }
            }
        }
    }
}

/// Prints what the controllers built: node requests, agent pools, nodes, workloads, Service.
fn print_chain(system: &System, kind: NodeRequestKind) -> anyhow::Result<()> {
    let requests = match kind {
        NodeRequestKind::Machine => "machines",
        NodeRequestKind::NodeClaim => "nodeclaims",
    };
    println!("\n== node requests ({requests}.karpenter.sh)");
    print!(
        "{}",
        system
            .kubectl(&["get", requests, "-L", "kaito.sh/workspace"], None)?
            .1
    );
    println!("\n== agent pools (from the AKS stand-in)");
    print!("{}", pool_table(system));
    println!("\n== nodes");
    let columns =
        "-Lkaito.sh/workspace,node.kubernetes.io/instance-type,kubernetes.azure.com/agentpool";
    print!(
        "{}",
        system
            .kubectl(&["get", "nodes", "-l", "kaito.sh/workspace", columns], None)?
            .1
    );
    println!("\n== tuning Job and inference Deployment");
    print!(
        "{}",
        system
            .kubectl(&["get", "jobs,deployments", "-n", "default"], None)?
            .1
    );
    println!("\n== Service of the inference Workspace");
    let svc = examples::name_of(examples::PHI_3_MINI);
    print!(
        "{}",
        system
            .kubectl(&["get", "service", &svc, "-n", "default"], None)?
            .1
    );
    Ok(())
}
