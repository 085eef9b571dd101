//! Spec revisions: a ControllerRevision per distinct spec, numbered, at most ten kept, and
//! the hash and number mirrored in the Workspace's annotations.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::apps::v1::ControllerRevision,
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, runtime::RawExtension},
};
use kaito_api::{Workspace, WorkspaceSpec, labels as l};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::reflector::ObjectRef,
};
use sha2::{Digest, Sha256};

use crate::{
    context::Context,
    error::{Error, is_already_exists, is_not_found},
};

/// Revisions kept per Workspace.
pub const MAX_REVISIONS: usize = 10;

/// sha256 (hex) of the JSON of `resource`, `inference` and `tuning`, in that order.
pub fn spec_hash(spec: &WorkspaceSpec) -> Result<String, Error> {
    let json = |v: serde_json::Result<Vec<u8>>| {
        v.map_err(|source| Error::Serialize {
            what: "workspace spec",
            source,
        })
    };
    let mut hasher = Sha256::new();
    hasher.update(json(serde_json::to_vec(&spec.resource))?);
    hasher.update(json(serde_json::to_vec(&spec.inference))?);
    hasher.update(json(serde_json::to_vec(&spec.tuning))?);
    Ok(hex::encode(hasher.finalize()))
}

fn revision_name(ws: &Workspace, hash: &str, long: bool) -> String {
    let n = if long { 10 } else { 5 };
    format!("{}-{}", ws.name_any(), &hash[..n])
}

fn hash_of(cr: &ControllerRevision) -> Option<&str> {
    cr.metadata
        .annotations
        .as_ref()?
        .get(l::ANNOTATION_HASH)
        .map(String::as_str)
}

fn build(
    ws: &Workspace,
    name: String,
    hash: &str,
    revision: i64,
) -> Result<ControllerRevision, Error> {
    let data = serde_json::json!({
        "resource": ws.spec.resource,
        "inference": ws.spec.inference,
        "tuning": ws.spec.tuning,
    });
    Ok(ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: ws.namespace(),
            labels: Some(BTreeMap::from([(
                l::LABEL_REVISION_WORKSPACE.into(),
                ws.name_any(),
            )])),
            annotations: Some(BTreeMap::from([(l::ANNOTATION_HASH.into(), hash.into())])),
            owner_references: ws.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    })
}

/// Makes sure the current spec has a revision, returns its number, prunes old revisions and
/// mirrors hash and number into the Workspace's annotations. `hash` is [`spec_hash`] of the
/// Workspace's spec.
pub async fn ensure(ws: &Workspace, hash: &str, ctx: &Context) -> Result<i64, Error> {
    let ns = ws.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = ObjectRef::from_obj(ws);
    let mut mine: Vec<_> = (ctx.stores.owners.revisions)
        .owned(&owner, &ctx.stores.revisions)
        .into_iter()
        .filter(|cr| cr.namespace().as_deref() == Some(&ns))
        .filter(|cr| cr.labels().get(l::LABEL_REVISION_WORKSPACE) == ws.meta().name.as_ref())
        .filter(|cr| {
            cr.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == ws.meta().uid.as_ref())
        })
        .collect();
    mine.sort_by_key(|cr| cr.revision);
    let max = mine.last().map_or(0, |cr| cr.revision);
    let revision = match mine.iter().find(|cr| hash_of(cr) == Some(hash)) {
        Some(cr) if cr.revision == max => cr.revision,
        Some(cr) => {
            let patch = serde_json::json!({ "revision": max + 1 });
            api.patch(
                &cr.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| Error::kube("renumber revision", e))?;
            max + 1
        }
        None => create(ws, &api, hash, max + 1, &mine).await?,
    };
    prune(&api, &mine, revision).await?;
    annotate(ws, ctx, hash, revision).await?;
    Ok(revision)
}

async fn create(
    ws: &Workspace,
    api: &Api<ControllerRevision>,
    hash: &str,
    revision: i64,
    existing: &[std::sync::Arc<ControllerRevision>],
) -> Result<i64, Error> {
    let short = revision_name(ws, hash, false);
    let clash = existing.iter().any(|cr| cr.name_any() == short);
    let name = if clash {
        revision_name(ws, hash, true)
    } else {
        short
    };
    match api
        .create(
            &PostParams::default(),
            &build(ws, name.clone(), hash, revision)?,
        )
        .await
    {
        Ok(_) => Ok(revision),
        Err(e) if is_already_exists(&e) => api
            .get(&name)
            .await
            .map(|cr| cr.revision)
            .map_err(|e| Error::kube("read existing revision", e)),
        Err(e) => Err(Error::kube("create revision", e)),
    }
}

async fn prune(
    api: &Api<ControllerRevision>,
    mine: &[std::sync::Arc<ControllerRevision>],
    current: i64,
) -> Result<(), Error> {
    let total = mine.len() + usize::from(!mine.iter().any(|cr| cr.revision == current));
    let excess = total.saturating_sub(MAX_REVISIONS);
    for cr in mine.iter().filter(|cr| cr.revision != current).take(excess) {
        match api
            .delete(&cr.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::kube("prune revision", e)),
        }
    }
    Ok(())
}

async fn annotate(ws: &Workspace, ctx: &Context, hash: &str, revision: i64) -> Result<(), Error> {
    let ann = ws.annotations();
    let rev = revision.to_string();
    if ann.get(l::ANNOTATION_HASH).map(String::as_str) == Some(hash)
        && ann.get(l::ANNOTATION_REVISION) == Some(&rev)
    {
        return Ok(());
    }
    let api: Api<Workspace> =
        Api::namespaced(ctx.client.clone(), &ws.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": { "annotations": { l::ANNOTATION_HASH: hash, l::ANNOTATION_REVISION: rev } }
    });
    api.patch(
        &ws.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|e| Error::kube("annotate workspace revision", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_specs_hash_equal_and_any_change_changes_the_hash() {
        let mut spec = WorkspaceSpec::default();
        let a = spec_hash(&spec).expect("hash");
        assert_eq!(a, spec_hash(&spec.clone()).expect("hash"));
        assert_eq!(a.len(), 64);
        spec.resource.count = Some(2);
        assert_ne!(a, spec_hash(&spec).expect("hash"));
    }
}
