//! Applying the workload once nodes are ready, and reading how it is doing.

use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ConfigMap, Node, Pod},
};
use kaito_api::{
    Preset, Workspace,
    conditions::reasons,
    labels::LABEL_WORKSPACE,
    templates::{TRAINING_CONFIG_KEY, default_training_config, default_tuning_config_map},
    workspace::TuningMethod,
};
use kube::{
    Api, Resource, ResourceExt,
    api::DeleteParams,
    runtime::reflector::{ObjectRef, Store},
};

use super::{
    apply::apply,
    inference::{self as inf, PresetInputs},
    placement,
    readiness::{self, Replicas},
    status::{InferenceView, Observed},
    tuning::{self as tun, TuningInputs},
};
use crate::{
    context::Context,
    error::{Error, is_not_found},
};

fn same_workspace<K: Resource>(obj: &K, ws: &Workspace) -> bool {
    obj.meta().namespace == ws.meta().namespace
        && obj
            .meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_WORKSPACE))
            == ws.meta().name.as_ref()
}

fn pods_of(ctx: &Context, ws: &Workspace) -> Vec<std::sync::Arc<Pod>> {
    let owner = ObjectRef::from_obj(ws);
    (ctx.stores
        .owners
        .pods
        .owned(&owner, &ctx.stores.pods)
        .into_iter())
    .filter(|p| same_workspace(p.as_ref(), ws))
    .collect()
}

fn cached<K>(store: &Store<K>, ws: &Workspace, name: &str) -> Option<std::sync::Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone,
{
    store.get(&ObjectRef::new(name).within(&ws.namespace().unwrap_or_default()))
}

fn selected_nodes(ctx: &Context, names: &[String]) -> Vec<std::sync::Arc<Node>> {
    names
        .iter()
        .filter_map(|n| ctx.stores.nodes.get(&ObjectRef::new(n)))
        .collect()
}

fn blocked(obs: &mut Observed, error: Error) {
    obs.blocked = Some((error.category().to_owned(), error.to_string()));
}

/// Records that the API server refused an object built from the spec.
pub fn refused(obs: &mut Observed, error: &Error) {
    obs.blocked = Some((
        reasons::WORKLOAD_INVALID.to_owned(),
        format!(
            "the API server refused the workload built from this spec; change the spec: {error}"
        ),
    ));
}

/// Services and the Deployment or StatefulSet of an inference Workspace.
pub async fn inference(
    ws: &Workspace,
    ctx: &Context,
    revision: i64,
    obs: &mut Observed,
) -> Result<(), Error> {
    let name = ws.name_any();
    let preset = ws.preset().and_then(|p| Preset::find(&p.name));
    let distributed = inf::is_distributed(preset);
    let existing = if distributed {
        cached(&ctx.stores.stateful_sets, ws, &name).map(|s| Replicas::of_stateful_set(&s))
    } else {
        cached(&ctx.stores.deployments, ws, &name).map(|d| Replicas::of_deployment(&d))
    };
    let pods = pods_of(ctx, ws);
    let pod_refs: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
    obs.inference = Some(InferenceView {
        replicas: existing,
        problem: readiness::pod_problem(&pod_refs),
    });
    if !obs.plan.resource_ready() && existing.is_none() {
        return Ok(());
    }

    apply(
        &ctx.client,
        &ctx.stores.services,
        inf::service(ws, distributed),
    )
    .await?;
    if distributed {
        apply(&ctx.client, &ctx.stores.services, inf::headless_service(ws)).await?;
    }
    let template = match preset {
        None => inf::template_pod(ws),
        Some(preset) => {
            let nodes = selected_nodes(ctx, &obs.plan.selected);
            let refs: Vec<&Node> = nodes.iter().map(AsRef::as_ref).collect();
            let gpus = match placement::gpus_per_pod(ws, ctx.config.cloud, &refs) {
                Ok(gpus) => gpus,
                Err(e) => {
                    blocked(obs, e);
                    return Ok(());
                }
            };
            inf::preset_pod(
                ws,
                PresetInputs {
                    preset,
                    gpus,
                    registry: &ctx.config.preset_registry,
                },
            )
        }
    };
    let revision = preset.map(|_| revision);
    if distributed {
        apply(
            &ctx.client,
            &ctx.stores.stateful_sets,
            inf::stateful_set(ws, template, revision),
        )
        .await?;
    } else {
        apply(
            &ctx.client,
            &ctx.stores.deployments,
            inf::deployment(ws, template, revision),
        )
        .await?;
    }
    Ok(())
}

/// The parameters ConfigMap of a tuning Workspace and its text: the user's, or the Workspace's
/// own copy of the chart's default (read from the release namespace, compiled-in fallback).
async fn training_params(
    ws: &Workspace,
    ctx: &Context,
    method: TuningMethod,
) -> Result<(String, String), Error> {
    let ns = ws.namespace().unwrap_or_default();
    let user = ws
        .spec
        .tuning
        .as_ref()
        .and_then(|t| t.config.clone())
        .filter(|c| !c.is_empty());
    if let Some(name) = user {
        let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .get(&name)
            .await
            .map_err(|e| Error::kube(format!("read tuning ConfigMap {name}"), e))?;
        let text = cm
            .data
            .and_then(|d| d.get(TRAINING_CONFIG_KEY).cloned())
            .unwrap_or_default();
        return Ok((name, text));
    }
    let template = default_tuning_config_map(method);
    let system = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.config.system_namespace);
    let text = match system.get_opt(template).await {
        Ok(Some(cm)) => cm.data.and_then(|d| d.get(TRAINING_CONFIG_KEY).cloned()),
        Ok(None) => None,
        Err(e) => return Err(Error::kube(format!("read default ConfigMap {template}"), e)),
    }
    .unwrap_or_else(|| default_training_config(method).to_owned());
    let copy = tun::params_config_map(ws, method, &text);
    let name = copy.name_any();
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns);
    let params = kube::api::PatchParams::apply(kaito_api::labels::FIELD_MANAGER_WORKSPACE).force();
    api.patch(&name, &params, &kube::api::Patch::Apply(&copy))
        .await
        .map_err(|e| Error::kube(format!("apply ConfigMap {name}"), e))?;
    Ok((name, text))
}

/// The Job of the current revision of a tuning Workspace, and its progress.
pub async fn tuning(
    ws: &Workspace,
    ctx: &Context,
    revision: i64,
    obs: &mut Observed,
) -> Result<(), Error> {
    let job_name = tun::job_name(ws, revision);
    let current = cached(&ctx.stores.jobs, ws, &job_name);
    let pods = pods_of(ctx, ws);
    let job_pods: Vec<&Pod> = pods
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| p.labels().get("batch.kubernetes.io/job-name") == Some(&job_name))
        .collect();
    obs.job = Some(readiness::job_progress(current.as_deref(), &job_pods));
    remove_old_jobs(ws, ctx, &job_name).await?;
    if current.is_some() || !obs.plan.resource_ready() {
        return Ok(());
    }
    let Some(preset) = ws.preset().and_then(|p| Preset::find(&p.name)) else {
        return Ok(());
    };
    let method = ws
        .spec
        .tuning
        .as_ref()
        .and_then(|t| t.method.as_deref())
        .and_then(TuningMethod::parse)
        .unwrap_or(TuningMethod::Lora);
    let nodes = selected_nodes(ctx, &obs.plan.selected);
    let refs: Vec<&Node> = nodes.iter().map(AsRef::as_ref).collect();
    let gpus = match placement::gpus_per_pod(ws, ctx.config.cloud, &refs) {
        Ok(gpus) => gpus,
        Err(e) => {
            blocked(obs, e);
            return Ok(());
        }
    };
    let (config_map, text) = training_params(ws, ctx, method).await?;
    let inputs = TuningInputs {
        preset,
        gpus,
        registry: &ctx.config.preset_registry,
        data_tool_image: &ctx.config.data_tool_image,
        config_map,
        training_config: &text,
        revision,
    };
    apply(&ctx.client, &ctx.stores.jobs, tun::job(ws, &inputs)).await?;
    tracing::info!(workspace = %ObjectRef::from_obj(ws), job = %job_name, "Started tuning job");
    Ok(())
}

/// Deletes the Jobs of earlier revisions (their pods go with them).
async fn remove_old_jobs(ws: &Workspace, ctx: &Context, keep: &str) -> Result<(), Error> {
    let old: Vec<String> = ctx
        .stores
        .jobs
        .state()
        .into_iter()
        .filter(|j| same_workspace(j.as_ref(), ws) && j.name_any() != keep)
        .filter(|j| j.meta().deletion_timestamp.is_none())
        .map(|j| j.name_any())
        .collect();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ws.namespace().unwrap_or_default());
    for name in old {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(job = %name, "Deleted job of an earlier revision"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::kube(format!("delete job {name}"), e)),
        }
    }
    Ok(())
}
