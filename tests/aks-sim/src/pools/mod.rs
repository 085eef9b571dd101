//! Agent pools and their long-running operations: the AKS state machine, free of I/O.
//!
//! Every change goes through [`PoolStore`] under one lock; timers and node joining live in
//! `operations` and `nodes`, which call back here to settle an operation.

pub(crate) mod quota;
pub(crate) mod validate;

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::time::{Duration, Instant};

use self::{
    quota::Demand,
    validate::{Os, PoolSpec},
};
use crate::{
    arm::error::{ArmError, ErrorBody},
    config::{CloudIds, Settings},
    ids::{etag, guid, scale_set_name},
    nodes::{self, Planned},
};

/// The ARM resource type of agent pools.
pub(crate) const POOL_TYPE: &str = "Microsoft.ContainerService/managedClusters/agentPools";

/// Cluster ids and current settings, read together under the state lock.
pub(crate) struct Ctx<'a> {
    pub cloud: &'a CloudIds,
    pub settings: &'a Settings,
}

/// The kind of a long-running agent pool operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    /// PUT of a new pool.
    Create,
    /// PUT of an existing pool.
    Update,
    /// DELETE of a pool.
    Delete,
    /// POST of `abort`.
    Abort,
}

impl OperationKind {
    fn verb(self) -> &'static str {
        match self {
            OperationKind::Create => "create",
            OperationKind::Update => "update",
            OperationKind::Delete => "delete",
            OperationKind::Abort => "abort",
        }
    }
}

/// The `status` of an operation as the operation status URL reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpStatus {
    InProgress,
    Succeeded,
    Failed,
    Canceled,
}

impl OpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::InProgress => "InProgress",
            OpStatus::Succeeded => "Succeeded",
            OpStatus::Failed => "Failed",
            OpStatus::Canceled => "Canceled",
        }
    }
}

/// One long-running operation.
#[derive(Clone, Debug)]
pub(crate) struct Operation {
    pub pool: String,
    pub pool_uid: u64,
    pub kind: OperationKind,
    pub status: OpStatus,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    pub error: Option<ErrorBody>,
    pub deadline: Instant,
    /// Set at start when a fault says this operation is to fail.
    pub fail_with: Option<ErrorBody>,
}

impl Operation {
    fn close(&mut self, status: OpStatus, error: Option<ErrorBody>) {
        self.status = status;
        self.end = Some(Timestamp::now());
        self.error = error;
    }
}

/// A node of a pool: its VMSS instance and Node name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeSlot {
    pub name: String,
    pub instance: u32,
}

/// One agent pool.
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    /// Tells a pool from an earlier one of the same name.
    pub uid: u64,
    pub name: String,
    pub spec: PoolSpec,
    /// The properties as sent, plus the defaults AKS fills in.
    pub properties: Map<String, Value>,
    pub state: String,
    pub etag: String,
    pub running: Option<(String, OperationKind)>,
    /// `aks-<pool>-<8 digits>-vmss`.
    pub scale_set: String,
    pub next_instance: u32,
    pub nodes: Vec<NodeSlot>,
    /// Set once deletion has taken the node list: later joins are dropped.
    pub nodes_closed: bool,
}

impl Pool {
    /// The full ARM body of the pool.
    pub fn render(&self, cloud: &CloudIds) -> Value {
        let mut properties = self.properties.clone();
        properties.insert("provisioningState".into(), json!(self.state));
        properties.insert("powerState".into(), json!({ "code": "Running" }));
        properties.insert("eTag".into(), json!(self.etag));
        json!({
            "id": pool_id(cloud, &self.name),
            "name": self.name,
            "type": POOL_TYPE,
            "properties": properties,
        })
    }

    fn touch(&mut self, state: &str) {
        self.state = state.to_owned();
        self.etag = etag();
    }

    fn cores(&self, settings: &Settings) -> u64 {
        u64::from(self.spec.count) * u64::from(quota::vcpus(&settings.quota, &self.spec.vm_size))
    }

    /// Adds slots up to the wanted count or takes the newest away.
    fn rescale(&mut self) -> (Vec<NodeSlot>, Vec<NodeSlot>) {
        let wanted = usize::try_from(self.spec.count).unwrap_or(usize::MAX);
        let mut added = Vec::new();
        while self.nodes.len() + added.len() < wanted {
            let instance = self.next_instance;
            self.next_instance += 1;
            added.push(NodeSlot {
                name: nodes::node_name(&self.scale_set, instance),
                instance,
            });
        }
        let removed = self.nodes.split_off(wanted.min(self.nodes.len()));
        self.nodes.extend(added.iter().cloned());
        (added, removed)
    }
}

/// The ARM id of a pool.
pub(crate) fn pool_id(cloud: &CloudIds, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/\
         managedClusters/{}/agentPools/{name}",
        cloud.subscription, cloud.resource_group, cloud.cluster
    )
}

/// `If-Match` and `If-None-Match` of a request, quotes and weak markers removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Preconditions {
    pub if_match: Option<Vec<String>>,
    pub if_none_match: Option<Vec<String>>,
}

impl Preconditions {
    /// Parses header values such as `*`, `"abc"` or `W/"abc", "def"`.
    pub fn parse_tags(value: &str) -> Vec<String> {
        value
            .split(',')
            .map(|tag| {
                tag.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_owned()
            })
            .filter(|tag| !tag.is_empty())
            .collect()
    }

    fn check(&self, pool: &str, current: Option<&str>) -> Result<(), ArmError> {
        let matches = |tags: &[String], etag: &str| tags.iter().any(|t| t == "*" || t == etag);
        if let Some(tags) = &self.if_match {
            let Some(etag) = current else {
                let message = format!("If-Match failed: agent pool '{pool}' does not exist.");
                return Err(ArmError::precondition_failed(message));
            };
            if !matches(tags, etag) {
                let message = format!(
                    "If-Match failed: the eTag of agent pool '{pool}' is '{etag}', not '{}'.",
                    tags.join(", ")
                );
                return Err(ArmError::precondition_failed(message));
            }
        }
        if let (Some(tags), Some(etag)) = (&self.if_none_match, current)
            && matches(tags, etag)
        {
            let message = format!("If-None-Match failed: agent pool '{pool}' already exists.");
            return Err(ArmError::precondition_failed(message));
        }
        Ok(())
    }
}

/// An accepted PUT, DELETE or abort: the operation that now runs.
#[derive(Clone, Debug)]
pub(crate) struct Begun {
    pub created: bool,
    pub body: Value,
    pub operation: String,
}

/// What remains to be done, outside the lock, to end an operation.
#[derive(Debug)]
pub(crate) enum Settle {
    /// The operation has ended (or was not running).
    Done,
    /// Nodes to join and to remove before the create or update reports success.
    Scale {
        pool_uid: u64,
        join: Vec<Planned>,
        remove: Vec<String>,
    },
    /// Nodes to remove before the pool is gone.
    Drain { remove: Vec<String> },
}

/// Decides whether an operation is to fail, given its kind (faults consume themselves).
pub(crate) type FailureSource<'a> = &'a mut dyn FnMut(OperationKind) -> Option<ErrorBody>;

/// Every pool and operation of the simulated cluster.
#[derive(Debug, Default)]
pub(crate) struct PoolStore {
    pools: BTreeMap<String, Pool>,
    operations: HashMap<String, Operation>,
    next_uid: u64,
}

impl PoolStore {
    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.pools.get(name)
    }

    /// Pools ordered by name.
    pub fn list(&self) -> impl Iterator<Item = &Pool> {
        self.pools.values()
    }

    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.get(id)
    }

    /// When a running operation is due; `None` once it has ended.
    pub fn deadline(&self, id: &str) -> Option<Instant> {
        let operation = self.operations.get(id)?;
        (operation.status == OpStatus::InProgress).then_some(operation.deadline)
    }

    /// Makes every running operation due now; answers how many there were.
    pub fn hurry_all(&mut self) -> usize {
        let now = Instant::now();
        let running = self
            .operations
            .values_mut()
            .filter(|op| op.status == OpStatus::InProgress);
        running.map(|op| op.deadline = now).count()
    }

    /// Whether nodes may still join the pool with this uid.
    pub fn accepts_nodes(&self, uid: u64) -> bool {
        self.pools
            .values()
            .any(|pool| pool.uid == uid && !pool.nodes_closed)
    }

    /// PUT: creates the pool or updates it.
    pub fn put(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        (spec, sent): (PoolSpec, Map<String, Value>),
        preconditions: &Preconditions,
        failure: FailureSource<'_>,
    ) -> Result<Begun, ArmError> {
        let existing = self.pools.get(name);
        preconditions.check(name, existing.map(|pool| pool.etag.as_str()))?;
        if let Some((id, kind)) = existing.and_then(|pool| pool.running.clone()) {
            return Err(ArmError::in_progress(kind.verb(), &id, name));
        }
        let created = existing.is_none();
        let kind = if created {
            OperationKind::Create
        } else {
            OperationKind::Update
        };
        self.admit(ctx, name, &spec)?;
        let properties = with_defaults(sent, &spec, ctx.settings);
        let pool = match self.pools.remove(name) {
            Some(pool) => Pool {
                spec,
                properties,
                ..pool
            },
            None => self.new_pool(name, spec, properties),
        };
        let delay = ctx.settings.create_delay;
        let begun = self.begin(ctx, pool, kind, delay, failure(kind));
        Ok(Begun { created, ..begun })
    }

    /// The checks that only apply to what the pool would become: VM size, changes, quota.
    fn admit(&self, ctx: &Ctx<'_>, name: &str, spec: &PoolSpec) -> Result<(), ArmError> {
        let existing = self.pools.get(name);
        match existing {
            None => vm_size_allowed(ctx, name, &spec.vm_size)?,
            Some(pool) => unchanged(&pool.spec, spec)?,
        }
        let usage: u64 = self
            .pools
            .values()
            .filter(|p| p.state != "Failed")
            .map(|p| p.cores(ctx.settings))
            .sum();
        let vcpus = u64::from(quota::vcpus(&ctx.settings.quota, &spec.vm_size));
        let before = existing
            .filter(|p| p.state != "Failed")
            .map_or(0, |p| p.cores(ctx.settings));
        let requested = (u64::from(spec.count) * vcpus).saturating_sub(before);
        quota::check(&ctx.settings.quota, ctx.cloud, Demand { usage, requested })
    }

    fn new_pool(&mut self, name: &str, spec: PoolSpec, properties: Map<String, Value>) -> Pool {
        self.next_uid += 1;
        Pool {
            uid: self.next_uid,
            name: name.to_owned(),
            spec,
            properties,
            state: String::new(),
            etag: etag(),
            running: None,
            scale_set: scale_set_name(name),
            next_instance: 0,
            nodes: Vec::new(),
            nodes_closed: false,
        }
    }

    /// Stores the pool in its new transitional state with a running operation.
    fn begin(
        &mut self,
        ctx: &Ctx<'_>,
        mut pool: Pool,
        kind: OperationKind,
        delay: Duration,
        fail_with: Option<ErrorBody>,
    ) -> Begun {
        let id = guid();
        let state = match kind {
            OperationKind::Create => "Creating",
            OperationKind::Update => "Updating",
            OperationKind::Delete => "Deleting",
            OperationKind::Abort => "Canceling",
        };
        pool.touch(state);
        pool.running = Some((id.clone(), kind));
        let operation = Operation {
            pool: pool.name.clone(),
            pool_uid: pool.uid,
            kind,
            status: OpStatus::InProgress,
            start: Timestamp::now(),
            end: None,
            error: None,
            deadline: Instant::now() + delay,
            fail_with,
        };
        self.operations.insert(id.clone(), operation);
        let body = pool.render(ctx.cloud);
        self.pools.insert(pool.name.clone(), pool);
        Begun {
            created: false,
            body,
            operation: id,
        }
    }

    /// DELETE: `None` when there is no pool (204).
    pub fn delete(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        preconditions: &Preconditions,
        failure: FailureSource<'_>,
    ) -> Result<Option<Begun>, ArmError> {
        let current = self.pools.get(name);
        preconditions.check(name, current.map(|pool| pool.etag.as_str()))?;
        let Some(pool) = self.pools.remove(name) else {
            return Ok(None);
        };
        if let Some((id, kind)) = pool.running.clone() {
            let error = ArmError::in_progress(kind.verb(), &id, name);
            self.pools.insert(name.to_owned(), pool);
            return Err(error);
        }
        let delay = ctx.settings.delete_delay;
        let fail_with = failure(OperationKind::Delete);
        Ok(Some(self.begin(
            ctx,
            pool,
            OperationKind::Delete,
            delay,
            fail_with,
        )))
    }

    /// POST abort: cancels the running operation.
    pub fn abort(&mut self, ctx: &Ctx<'_>, name: &str) -> Result<Begun, ArmError> {
        let Some(pool) = self.pools.remove(name) else {
            return Err(ArmError::pool_not_found(&ctx.cloud.cluster, name));
        };
        let Some((running, _)) = pool.running.clone() else {
            let message = format!("Agent pool '{name}' has no running operation to abort.");
            self.pools.insert(name.to_owned(), pool);
            return Err(ArmError::new(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                message,
            ));
        };
        if let Some(operation) = self.operations.get_mut(&running) {
            let message = "The operation was canceled by a request to abort the latest operation.";
            operation.close(
                OpStatus::Canceled,
                Some(ErrorBody::new("Canceled", message)),
            );
        }
        Ok(self.begin(
            ctx,
            pool,
            OperationKind::Abort,
            ctx.settings.abort_delay,
            None,
        ))
    }

    /// Stores a pool directly, as if it had been created earlier (by anyone).
    pub fn seed(
        &mut self,
        ctx: &Ctx<'_>,
        name: &str,
        (spec, sent): (PoolSpec, Map<String, Value>),
        state: &str,
        with_nodes: bool,
    ) -> Result<(u64, Vec<Planned>), ArmError> {
        if self
            .pools
            .get(name)
            .is_some_and(|pool| pool.running.is_some())
        {
            let message = format!("Agent pool '{name}' has a running operation.");
            return Err(ArmError::new(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                message,
            ));
        }
        let properties = with_defaults(sent, &spec, ctx.settings);
        let mut pool = self.new_pool(name, spec, properties);
        pool.state = state.to_owned();
        let (added, _) = if with_nodes {
            pool.rescale()
        } else {
            Default::default()
        };
        let planned = added
            .iter()
            .map(|slot| nodes::plan(ctx, &pool, slot))
            .collect();
        let uid = pool.uid;
        self.pools.insert(name.to_owned(), pool);
        Ok((uid, planned))
    }

    /// Removes a pool at once; answers its node names.
    pub fn remove(&mut self, name: &str) -> Option<Vec<String>> {
        let pool = self.pools.remove(name)?;
        Some(pool.nodes.into_iter().map(|slot| slot.name).collect())
    }

    /// Ends a due operation, or says which nodes must change first.
    pub fn settle(&mut self, ctx: &Ctx<'_>, id: &str) -> Settle {
        let Some(operation) = self.operations.get_mut(id) else {
            return Settle::Done;
        };
        if operation.status != OpStatus::InProgress {
            return Settle::Done;
        }
        let pool = self
            .pools
            .get_mut(&operation.pool)
            .filter(|p| p.uid == operation.pool_uid);
        let Some(pool) = pool else {
            let message = "The agent pool was removed while the operation ran.";
            operation.close(
                OpStatus::Canceled,
                Some(ErrorBody::new("Canceled", message)),
            );
            return Settle::Done;
        };
        if operation.kind == OperationKind::Abort {
            operation.close(OpStatus::Succeeded, None);
            pool.running = None;
            pool.touch("Canceled");
            return Settle::Done;
        }
        if let Some(error) = operation.fail_with.take() {
            operation.close(OpStatus::Failed, Some(error));
            pool.running = None;
            pool.touch("Failed");
            return Settle::Done;
        }
        if operation.kind == OperationKind::Delete {
            pool.nodes_closed = true;
            return Settle::Drain {
                remove: pool.nodes.iter().map(|s| s.name.clone()).collect(),
            };
        }
        let (added, removed) = pool.rescale();
        let join = added
            .iter()
            .map(|slot| nodes::plan(ctx, pool, slot))
            .collect();
        let remove = removed.into_iter().map(|slot| slot.name).collect();
        Settle::Scale {
            pool_uid: pool.uid,
            join,
            remove,
        }
    }

    /// Reports a settled operation as succeeded.
    pub fn succeed(&mut self, id: &str) {
        let Some(operation) = self.operations.get_mut(id) else {
            return;
        };
        if operation.status != OpStatus::InProgress {
            return;
        }
        operation.close(OpStatus::Succeeded, None);
        let (name, uid, kind) = (operation.pool.clone(), operation.pool_uid, operation.kind);
        if self.pools.get(&name).is_none_or(|pool| pool.uid != uid) {
            return;
        }
        if kind == OperationKind::Delete {
            self.pools.remove(&name);
        } else if let Some(pool) = self.pools.get_mut(&name) {
            pool.running = None;
            pool.touch("Succeeded");
        }
    }
}

fn vm_size_allowed(ctx: &Ctx<'_>, pool: &str, vm_size: &str) -> Result<(), ArmError> {
    let refused = ctx
        .settings
        .not_allowed_vm_sizes
        .iter()
        .any(|s| s.eq_ignore_ascii_case(vm_size));
    if !refused {
        return Ok(());
    }
    let message = format!(
        "The VM size of AgentPoolProfile:{pool} is not allowed in your subscription in location \
         '{}'. For more details, please visit https://aka.ms/aks/quotas-skus-regions",
        ctx.cloud.location
    );
    Err(ArmError::new(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        message,
    ))
}

/// Refuses changes AKS does not allow on an existing pool.
fn unchanged(before: &PoolSpec, after: &PoolSpec) -> Result<(), ArmError> {
    let changes = [
        (
            "vmSize",
            !before.vm_size.eq_ignore_ascii_case(&after.vm_size),
        ),
        ("osType", before.os != after.os),
        ("osSKU", before.os_sku != after.os_sku),
        ("osDiskSizeGB", before.os_disk_gb != after.os_disk_gb),
    ];
    match changes.iter().find(|(_, changed)| *changed) {
        Some((field, _)) => {
            let message =
                format!("properties.{field} of an existing agent pool cannot be changed.");
            Err(
                ArmError::new(StatusCode::BAD_REQUEST, "PropertyChangeNotAllowed", message)
                    .with_target(format!("properties.{field}")),
            )
        }
        None => Ok(()),
    }
}

/// The node image AKS would report for the OS SKU.
pub(crate) fn node_image(spec: &PoolSpec) -> String {
    let image = match (spec.os, spec.os_sku.as_str()) {
        (Os::Windows, sku) => format!(
            "AKSWindows-{}-containerd",
            sku.trim_start_matches("Windows")
        ),
        (Os::Linux, "AzureLinux" | "AzureLinux3") => "AKSAzureLinux-V3gen2".to_owned(),
        (Os::Linux, "CBLMariner") => "AKSCBLMariner-V2gen2".to_owned(),
        (Os::Linux, "Ubuntu2404") => "AKSUbuntu-2404gen2containerd".to_owned(),
        (Os::Linux, _) => "AKSUbuntu-2204gen2containerd".to_owned(),
    };
    format!("{image}-202512.01.0")
}

/// The properties as sent, plus what AKS fills in; read-only fields come from the state.
fn with_defaults(
    mut sent: Map<String, Value>,
    spec: &PoolSpec,
    settings: &Settings,
) -> Map<String, Value> {
    let os = if spec.os == Os::Windows {
        "Windows"
    } else {
        "Linux"
    };
    let defaults = [
        ("count", json!(spec.count)),
        ("type", json!("VirtualMachineScaleSets")),
        ("osType", json!(os)),
        ("osSKU", json!(spec.os_sku)),
        ("mode", json!(spec.mode)),
        ("osDiskType", json!("Managed")),
        ("maxPods", json!(spec.max_pods)),
        ("scaleSetPriority", json!("Regular")),
        ("enableAutoScaling", json!(false)),
        ("orchestratorVersion", json!(settings.kubernetes_version)),
    ];
    for (key, value) in defaults {
        sent.entry(key).or_insert(value);
    }
    if spec.os_disk_gb == 0 {
        // AKS answers the size it picked for the VM.
        sent.insert("osDiskSizeGB".into(), json!(128));
    }
    sent.insert(
        "currentOrchestratorVersion".into(),
        json!(settings.kubernetes_version),
    );
    sent.insert("nodeImageVersion".into(), json!(node_image(spec)));
    for read_only in ["provisioningState", "powerState", "eTag"] {
        sent.remove(read_only);
    }
    sent
}

#[cfg(test)]
mod tests;
