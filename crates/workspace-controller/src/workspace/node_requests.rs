//! Node requests (Machines or NodeClaims) for a Workspace: their names, their contents, and
//! creating and deleting them.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kaito_api::{
    Cloud, Machine, NodeClaim, NodeRequestKind, Preset, Workspace,
    karpenter::{
        KAITO_NODE_CLASS_GROUP, KAITO_NODE_CLASS_KIND, KAITO_NODE_CLASS_NAME, MachineSpec,
        MachineTemplateRef, NodeClaimSpec, NodeClassRef, Requirement, ResourceRequests, Taint,
    },
    labels as l,
    quantity::ByteSize,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, PostParams},
    runtime::reflector::{ObjectRef, Store},
};
use sha2::{Digest, Sha256};

use super::nodes::RequestView;
use crate::{
    context::{Context, OwnerIndex},
    error::{Error, is_already_exists, is_kind_missing, is_not_found},
};

/// Disk asked for when the model states none (template workspaces).
pub const DEFAULT_DISK: ByteSize = ByteSize::gib(1024);

/// The deterministic name of the `slot`-th node request of a Workspace: `ws` and nine hex
/// characters of a hash of the Workspace UID and the slot. Two reconciles that pick the same
/// slot pick the same name, so the API server refuses the second create.
pub fn request_name(uid: &str, slot: usize) -> String {
    let digest = Sha256::digest(format!("{uid}/{slot}").as_bytes());
    format!("ws{}", &hex::encode(digest)[..9])
}

/// `n` names for new requests, skipping slots whose name exists or was just created.
pub fn next_names(uid: &str, taken: &BTreeSet<String>, n: usize) -> Vec<String> {
    (0..)
        .map(|slot| request_name(uid, slot))
        .filter(|name| !taken.contains(name))
        .take(n)
        .collect()
}

/// Disk each node needs: the preset's requirement, or a default for templates.
pub fn disk_request(ws: &Workspace) -> ByteSize {
    ws.preset()
        .and_then(|p| Preset::find(&p.name))
        .map_or(DEFAULT_DISK, |p| p.disk)
}

/// Labels every request of the Workspace carries: ownership plus the user's selector labels,
/// reserved keys dropped, so the node matches the selector.
fn request_labels(ws: &Workspace, extra: (&str, &str)) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = ws
        .selector_labels()
        .into_iter()
        .filter(|(k, _)| !l::RESERVED_SELECTOR_KEYS.contains(&k.as_str()))
        .collect();
    out.insert(l::LABEL_WORKSPACE.into(), ws.name_any());
    out.insert(
        l::LABEL_WORKSPACE_NAMESPACE.into(),
        ws.namespace().unwrap_or_default(),
    );
    out.insert(extra.0.into(), extra.1.into());
    out
}

fn storage(ws: &Workspace) -> Option<ResourceRequests> {
    Some(ResourceRequests {
        requests: Some(BTreeMap::from([(
            l::RESOURCE_STORAGE.to_owned(),
            disk_request(ws).to_quantity(),
        )])),
    })
}

/// The instance type as the catalog spells it, so the cloud gets its own casing.
fn canonical_sku(ws: &Workspace, cloud: Cloud) -> String {
    let given = ws.spec.resource.instance_type();
    cloud
        .sku(given)
        .map_or_else(|| given.to_owned(), |s| s.name.to_owned())
}

/// A Machine (karpenter.sh/v1alpha5) for the Workspace.
pub fn build_machine(ws: &Workspace, name: &str, cloud: Cloud) -> Machine {
    let sku = canonical_sku(ws, cloud);
    let mut m = Machine::new(
        name,
        MachineSpec {
            taints: Some(vec![Taint::sku_gpu()]),
            requirements: Some(vec![
                Requirement::is_in(l::LABEL_INSTANCE_TYPE, &[&sku]),
                Requirement::is_in(l::LABEL_PROVISIONER_NAME, &[l::PROVISIONER_DEFAULT]),
                Requirement::is_in(l::LABEL_MACHINE_TYPE, &[l::MACHINE_TYPE_GPU]),
                Requirement::is_in(l::LABEL_ARCH, &["amd64"]),
                Requirement::is_in(l::LABEL_OS, &["linux"]),
            ]),
            resources: storage(ws),
            machine_template_ref: Some(MachineTemplateRef {
                name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    m.metadata.labels = Some(request_labels(
        ws,
        (l::LABEL_PROVISIONER_NAME, l::PROVISIONER_DEFAULT),
    ));
    m
}

/// A NodeClaim (karpenter.sh/v1) for the Workspace.
pub fn build_node_claim(ws: &Workspace, name: &str, cloud: Cloud, image_family: &str) -> NodeClaim {
    let sku = canonical_sku(ws, cloud);
    let mut requirements = vec![
        Requirement::is_in(l::LABEL_NODEPOOL, &[l::NODEPOOL_KAITO]),
        Requirement::is_in(l::LABEL_INSTANCE_TYPE, &[&sku]),
        Requirement::is_in(l::LABEL_OS, &["linux"]),
    ];
    let node_class_ref = match cloud {
        Cloud::Azure => {
            requirements.push(Requirement::is_in(l::LABEL_AZURE_SKU_NAME, &[&sku]));
            NodeClassRef {
                group: KAITO_NODE_CLASS_GROUP.into(),
                kind: KAITO_NODE_CLASS_KIND.into(),
                name: KAITO_NODE_CLASS_NAME.into(),
            }
        }
        Cloud::Aws => {
            requirements.push(Requirement {
                key: l::LABEL_AWS_INSTANCE_GPU_COUNT.into(),
                operator: "Gt".into(),
                values: Some(vec!["0".into()]),
                min_values: None,
            });
            NodeClassRef {
                group: "karpenter.k8s.aws".into(),
                kind: "EC2NodeClass".into(),
                name: "default".into(),
            }
        }
    };
    let family = ws
        .annotations()
        .get(l::ANNOTATION_NODE_IMAGE_FAMILY)
        .map_or(image_family, String::as_str)
        .to_ascii_lowercase();
    let mut nc = NodeClaim::new(
        name,
        NodeClaimSpec {
            node_class_ref,
            requirements,
            resources: storage(ws),
            taints: Some(vec![Taint::sku_gpu()]),
            startup_taints: None,
            termination_grace_period: None,
            expire_after: None,
        },
    );
    nc.metadata = ObjectMeta {
        name: Some(name.into()),
        labels: Some(request_labels(ws, (l::LABEL_NODEPOOL, l::NODEPOOL_KAITO))),
        annotations: Some(BTreeMap::from([
            (l::ANNOTATION_DO_NOT_DISRUPT.to_owned(), "true".to_owned()),
            (l::ANNOTATION_NODE_IMAGE_FAMILY.to_owned(), family),
        ])),
        ..Default::default()
    };
    nc
}

fn owned_by<K: Resource>(obj: &K, ws: &Workspace) -> bool {
    let labels = obj.meta().labels.as_ref();
    let get = |k: &str| labels.and_then(|m| m.get(k)).map(String::as_str);
    get(l::LABEL_WORKSPACE) == ws.meta().name.as_deref()
        && get(l::LABEL_WORKSPACE_NAMESPACE) == ws.meta().namespace.as_deref()
}

fn from_store<K>(store: &Store<K>, index: &OwnerIndex, ws: &Workspace) -> Vec<RequestView>
where
    K: kaito_api::NodeRequest + Resource<DynamicType = ()> + Clone,
{
    index
        .owned(&ObjectRef::from_obj(ws), store)
        .iter()
        .filter(|r| owned_by(r.as_ref(), ws))
        .map(|r| RequestView::of(r.as_ref()))
        .collect()
}

/// Requests of the configured kind owned by the Workspace, as the cache shows them.
pub fn observed(ws: &Workspace, ctx: &Context) -> Vec<RequestView> {
    match ctx.config.node_request_api {
        NodeRequestKind::Machine => {
            (ctx.stores.machines.as_ref()).map(|s| from_store(s, &ctx.stores.owners.machines, ws))
        }
        NodeRequestKind::NodeClaim => (ctx.stores.node_claims.as_ref())
            .map(|s| from_store(s, &ctx.stores.owners.node_claims, ws)),
    }
    .unwrap_or_default()
}

/// Creates node requests under the given names, all at once. A name that already exists
/// (the cache lagged) counts as created.
pub async fn create(ws: &Workspace, names: &[String], ctx: &Context) -> Result<(), Error> {
    let key = ObjectRef::from_obj(ws);
    let cfg = &ctx.config;
    let results = join_all(names.iter().map(|name| async move {
        let result = match cfg.node_request_api {
            NodeRequestKind::Machine => {
                let obj = build_machine(ws, name, cfg.cloud);
                Api::<Machine>::all(ctx.client.clone())
                    .create(&PostParams::default(), &obj)
                    .await
                    .map(drop)
            }
            NodeRequestKind::NodeClaim => {
                let obj = build_node_claim(ws, name, cfg.cloud, &cfg.node_image_family);
                Api::<NodeClaim>::all(ctx.client.clone())
                    .create(&PostParams::default(), &obj)
                    .await
                    .map(drop)
            }
        };
        (name, result)
    }))
    .await;
    let kind = cfg.node_request_api.as_str();
    for (name, result) in results {
        match result {
            Ok(()) => {
                tracing::info!(
                    workspace = %key,
                    node_request = %name,
                    kind,
                    "Created node request"
                );
                ctx.metrics.node_request_created(kind);
                ctx.expectations.record(&key, name.clone());
            }
            Err(e) if is_already_exists(&e) => ctx.expectations.record(&key, name.clone()),
            Err(e) => return Err(Error::kube(format!("create {kind} {name}"), e)),
        }
    }
    Ok(())
}

/// Names of every request the Workspace owns, of either kind, deleting ones included.
pub fn all_names(ws: &Workspace, ctx: &Context) -> BTreeSet<String> {
    let names = |views: Vec<RequestView>| views.into_iter().map(|v| v.name);
    let machines = ctx
        .stores
        .machines
        .as_ref()
        .map(|s| from_store(s, &ctx.stores.owners.machines, ws))
        .unwrap_or_default();
    let claims = ctx
        .stores
        .node_claims
        .as_ref()
        .map(|s| from_store(s, &ctx.stores.owners.node_claims, ws))
        .unwrap_or_default();
    names(machines).chain(names(claims)).collect()
}

/// Deletes every node request the Workspace owns, of both kinds (legacy Machines too), and
/// returns how many still exist. A kind whose CRD is not installed has nothing to delete.
pub async fn delete_all(ws: &Workspace, ctx: &Context) -> Result<usize, Error> {
    let selector = format!(
        "{}={},{}={}",
        l::LABEL_WORKSPACE,
        ws.name_any(),
        l::LABEL_WORKSPACE_NAMESPACE,
        ws.namespace().unwrap_or_default()
    );
    let machines = delete_kind(Api::<Machine>::all(ctx.client.clone()), &selector).await?;
    let claims = delete_kind(Api::<NodeClaim>::all(ctx.client.clone()), &selector).await?;
    Ok(machines + claims)
}

async fn delete_kind<K>(api: Api<K>, selector: &str) -> Result<usize, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&()).into_owned();
    let list = match api
        .list(&kube::api::ListParams::default().labels(selector))
        .await
    {
        Ok(list) => list,
        Err(e) if is_kind_missing(&e) => return Ok(0),
        Err(e) => return Err(Error::kube(format!("list {kind}s"), e)),
    };
    for obj in list
        .items
        .iter()
        .filter(|o| o.meta().deletion_timestamp.is_none())
    {
        match api
            .delete(&obj.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => tracing::info!(node_request = %obj.name_any(), kind, "Deleting node request"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::kube(format!("delete {kind} {}", obj.name_any()), e)),
        }
    }
    Ok(list.items.len())
}

#[cfg(test)]
mod tests {
    use kaito_api::NodeRequest;

    use super::*;

    fn ws() -> Workspace {
        let mut w: Workspace = yaml_serde::from_str(
            "apiVersion: kaito.sh/v1beta1\nkind: Workspace\n\
             metadata: {name: big, namespace: team}\nresource:\n  \
             instanceType: standard_nc24ads_a100_v4\n  labelSelector:\n    \
             matchLabels: {apps: big, kaito.sh/workspace: spoofed}\ninference:\n  \
             preset: {name: phi-3-medium-4k-instruct}\n",
        )
        .expect("workspace");
        w.metadata.uid = Some("6f0c2d4e-0000-4000-8000-000000000001".into());
        w
    }

    #[test]
    fn names_are_deterministic_and_fit_the_agent_pool_rule() {
        let a = request_name("uid-1", 0);
        assert_eq!(a, request_name("uid-1", 0));
        assert_ne!(a, request_name("uid-1", 1));
        assert_ne!(a, request_name("uid-2", 0));
        assert_eq!(a.len(), 11);
        assert!(
            a.starts_with("ws")
                && a[2..]
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn new_names_skip_slots_already_taken() {
        let taken = BTreeSet::from([request_name("u", 0), request_name("u", 2)]);
        assert_eq!(
            next_names("u", &taken, 2),
            vec![request_name("u", 1), request_name("u", 3)]
        );
    }

    #[test]
    fn a_machine_carries_the_reference_labels_requirements_taint_and_disk() {
        let m = build_machine(&ws(), "ws123456789", Cloud::Azure);
        let labels = m.labels();
        assert_eq!(
            labels.get("kaito.sh/workspace").map(String::as_str),
            Some("big")
        );
        assert_eq!(
            labels
                .get("kaito.sh/workspacenamespace")
                .map(String::as_str),
            Some("team")
        );
        assert_eq!(labels.get("apps").map(String::as_str), Some("big"));
        assert_eq!(
            labels
                .get("karpenter.sh/provisioner-name")
                .map(String::as_str),
            Some("default")
        );
        assert_eq!(m.instance_type(), Some("Standard_NC24ads_A100_v4"));
        assert_eq!(m.taints(), [Taint::sku_gpu()]);
        assert_eq!(m.storage().and_then(Result::ok), Some(ByteSize::gib(50)));
        let keys: Vec<&str> = m.requirements().iter().map(|r| r.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "node.kubernetes.io/instance-type",
                "karpenter.sh/provisioner-name",
                "kaito.sh/machine-type",
                "kubernetes.io/arch",
                "kubernetes.io/os"
            ]
        );
    }

    #[test]
    fn a_node_claim_refers_to_the_kaito_node_class_and_keeps_storage_under_storage() {
        let nc = build_node_claim(&ws(), "ws123456789", Cloud::Azure, "ubuntu");
        assert_eq!(nc.spec.node_class_ref.group, "kaito.sh");
        assert_eq!(nc.spec.node_class_ref.kind, "KaitoNodeClass");
        assert_eq!(
            nc.labels().get("karpenter.sh/nodepool").map(String::as_str),
            Some("kaito")
        );
        assert_eq!(
            nc.annotations()
                .get("karpenter.sh/do-not-disrupt")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(
            nc.annotations()
                .get("kaito.sh/node-image-family")
                .map(String::as_str),
            Some("ubuntu")
        );
        assert!(
            nc.requirements()
                .iter()
                .any(|r| r.key == "karpenter.azure.com/sku-name")
        );
        assert_eq!(nc.storage().and_then(Result::ok), Some(ByteSize::gib(50)));
        let aws = build_node_claim(&ws(), "ws123456789", Cloud::Aws, "ubuntu");
        assert_eq!(aws.spec.node_class_ref.kind, "EC2NodeClass");
    }

    #[test]
    fn reserved_selector_keys_never_reach_the_request() {
        let m = build_machine(&ws(), "ws123456789", Cloud::Azure);
        assert_eq!(
            m.labels().get("kaito.sh/workspace").map(String::as_str),
            Some("big")
        );
    }

    #[test]
    fn templates_ask_for_the_default_disk() {
        let mut w = ws();
        w.spec.inference = Some(Default::default());
        assert_eq!(disk_request(&w), DEFAULT_DISK);
    }
}
