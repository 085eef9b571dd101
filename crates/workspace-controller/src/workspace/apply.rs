//! Server-side apply of owned objects, skipped when the cached object already carries the
//! hash of what would be applied, so a steady Workspace costs no API writes.

use std::fmt::Debug;

use kaito_api::labels::FIELD_MANAGER_WORKSPACE;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::{ObjectRef, Store},
};
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Annotation holding the hash of the object as this controller last applied it.
pub const APPLIED_HASH: &str = "kaito.sh/applied-hash";

/// Applies `obj` (namespaced) unless the cache shows it applied already.
pub async fn apply<K>(client: &kube::Client, store: &Store<K>, mut obj: K) -> Result<bool, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
{
    let body = serde_json::to_vec(&obj).map_err(|source| Error::Serialize {
        what: "object",
        source,
    })?;
    let hash = hex::encode(&Sha256::digest(&body)[..12]);
    obj.annotations_mut()
        .insert(APPLIED_HASH.into(), hash.clone());
    let current = store.get(&ObjectRef::from_obj(&obj));
    if current.is_some_and(|c| c.annotations().get(APPLIED_HASH) == Some(&hash)) {
        return Ok(false);
    }
    let kind = K::kind(&()).into_owned();
    let name = obj.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER_WORKSPACE).force(),
        &Patch::Apply(&obj),
    )
    .await
    .map_err(|e| Error::kube(format!("apply {kind} {name}"), e))?;
    tracing::debug!(kind, name, "Applied object");
    Ok(true)
}
