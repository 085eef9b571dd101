use serde_json::json;

use super::*;

struct World {
    cloud: CloudIds,
    settings: Settings,
    store: PoolStore,
}

impl World {
    fn new() -> Self {
        Self {
            cloud: CloudIds::default(),
            settings: Settings::default(),
            store: PoolStore::default(),
        }
    }

    fn put_with(
        &mut self,
        name: &str,
        properties: Value,
        pre: &Preconditions,
    ) -> Result<Begun, ArmError> {
        let ctx = Ctx {
            cloud: &self.cloud,
            settings: &self.settings,
        };
        let parsed = validate::pool_body(name, &json!({ "properties": properties }))?;
        self.store.put(&ctx, name, parsed, pre, &mut |_| None)
    }

    fn put(&mut self, name: &str, properties: Value) -> Result<Begun, ArmError> {
        self.put_with(name, properties, &Preconditions::default())
    }

    fn delete(&mut self, name: &str) -> Result<Option<Begun>, ArmError> {
        let ctx = Ctx {
            cloud: &self.cloud,
            settings: &self.settings,
        };
        self.store
            .delete(&ctx, name, &Preconditions::default(), &mut |_| None)
    }

    fn settle(&mut self, id: &str) -> Settle {
        let ctx = Ctx {
            cloud: &self.cloud,
            settings: &self.settings,
        };
        self.store.settle(&ctx, id)
    }

    /// Runs an operation to its end, as the timer would.
    fn complete(&mut self, id: &str) {
        self.settle(id);
        self.store.succeed(id);
    }

    fn state(&self, name: &str) -> Option<String> {
        self.store.get(name).map(|pool| pool.state.clone())
    }
}

fn gpu() -> Value {
    json!({ "vmSize": "Standard_NC24ads_A100_v4", "count": 1, "osDiskSizeGB": 300 })
}

#[test]
fn a_new_pool_is_created_with_its_body_as_sent_and_aks_defaults() {
    let mut world = World::new();
    let begun = world.put("ws1", gpu()).unwrap();
    assert!(begun.created);
    let properties = &begun.body["properties"];
    assert_eq!(properties["provisioningState"], "Creating");
    assert_eq!(properties["osDiskSizeGB"], 300);
    assert_eq!(properties["mode"], "User");
    assert_eq!(properties["powerState"]["code"], "Running");
    assert!(
        properties["eTag"]
            .as_str()
            .is_some_and(|tag| !tag.is_empty())
    );
    assert!(
        properties["nodeImageVersion"]
            .as_str()
            .unwrap()
            .starts_with("AKSUbuntu-")
    );
    assert_eq!(begun.body["type"], POOL_TYPE);
    assert!(
        begun.body["id"]
            .as_str()
            .unwrap()
            .ends_with("/agentPools/ws1")
    );
}

#[test]
fn a_create_settles_into_its_nodes_then_succeeds() {
    let mut world = World::new();
    let begun = world
        .put("ws1", json!({ "vmSize": "Standard_NC12s_v3", "count": 2 }))
        .unwrap();
    let Settle::Scale { join, remove, .. } = world.settle(&begun.operation) else {
        panic!()
    };
    assert_eq!(join.len(), 2);
    assert!(remove.is_empty());
    assert_eq!(world.state("ws1").as_deref(), Some("Creating"));
    world.store.succeed(&begun.operation);
    assert_eq!(world.state("ws1").as_deref(), Some("Succeeded"));
    assert_eq!(
        world.store.operation(&begun.operation).unwrap().status,
        OpStatus::Succeeded
    );
}

#[test]
fn a_put_or_delete_while_an_operation_runs_is_a_conflict() {
    let mut world = World::new();
    world.put("ws1", gpu()).unwrap();
    let error = world.put("ws1", gpu()).unwrap_err();
    assert_eq!(
        (error.status, error.body.code.as_str()),
        (StatusCode::CONFLICT, "OperationNotAllowed")
    );
    assert!(
        error
            .body
            .message
            .contains("in progress create node pool operation")
    );
    let error = world.delete("ws1").unwrap_err();
    assert_eq!(error.status, StatusCode::CONFLICT);
}

#[test]
fn preconditions_guard_against_overwrites_and_stale_etags() {
    let mut world = World::new();
    let begun = world.put("ws1", gpu()).unwrap();
    world.complete(&begun.operation);
    let create_only = Preconditions {
        if_none_match: Some(vec!["*".into()]),
        ..Default::default()
    };
    let error = world.put_with("ws1", gpu(), &create_only).unwrap_err();
    assert_eq!(error.status, StatusCode::PRECONDITION_FAILED);
    let stale = Preconditions {
        if_match: Some(vec!["stale".into()]),
        ..Default::default()
    };
    assert_eq!(
        world.put_with("ws1", gpu(), &stale).unwrap_err().status,
        StatusCode::PRECONDITION_FAILED
    );
    let etag = world.store.get("ws1").unwrap().etag.clone();
    let fresh = Preconditions {
        if_match: Some(vec![etag]),
        ..Default::default()
    };
    let updated = world.put_with("ws1", gpu(), &fresh).unwrap();
    assert!(!updated.created);
    assert_eq!(updated.body["properties"]["provisioningState"], "Updating");
    assert!(world.put_with("ws2", gpu(), &create_only).unwrap().created);
}

#[test]
fn the_vm_size_of_a_pool_cannot_change() {
    let mut world = World::new();
    let begun = world.put("ws1", gpu()).unwrap();
    world.complete(&begun.operation);
    let error = world.put(
        "ws1",
        json!({ "vmSize": "Standard_NC48ads_A100_v4", "osDiskSizeGB": 300 }),
    );
    assert_eq!(error.unwrap_err().body.code, "PropertyChangeNotAllowed");
}

#[test]
fn a_refused_vm_size_gets_the_not_allowed_error_and_no_pool() {
    let mut world = World::new();
    world.settings.not_allowed_vm_sizes = vec!["standard_nc24ads_a100_v4".into()];
    let error = world.put("ws1", gpu()).unwrap_err();
    assert_eq!(
        (error.status, error.body.code.as_str()),
        (StatusCode::BAD_REQUEST, "BadRequest")
    );
    assert!(error.body.message.contains(
        "The VM size of AgentPoolProfile:ws1 is not allowed in your subscription in location \
         'eastus'"
    ));
    assert!(world.store.get("ws1").is_none());
}

#[test]
fn the_quota_counts_existing_pools_and_can_be_raised() {
    let mut world = World::new();
    world.settings.quota.limit_cores = Some(30);
    world.put("ws1", gpu()).unwrap();
    let error = world.put("ws2", gpu()).unwrap_err();
    assert!(
        error
            .body
            .message
            .contains("Current Usage: 24, Additional Required: 24")
    );
    world.settings.quota.limit_cores = Some(48);
    assert!(world.put("ws2", gpu()).is_ok());
}

#[test]
fn a_delete_drains_the_nodes_and_then_the_pool_is_gone() {
    let mut world = World::new();
    let begun = world.put("ws1", gpu()).unwrap();
    world.complete(&begun.operation);
    let uid = world.store.get("ws1").unwrap().uid;
    let deleting = world.delete("ws1").unwrap().unwrap();
    assert_eq!(world.state("ws1").as_deref(), Some("Deleting"));
    let Settle::Drain { remove } = world.settle(&deleting.operation) else {
        panic!()
    };
    assert_eq!(remove.len(), 1);
    assert!(!world.store.accepts_nodes(uid));
    world.store.succeed(&deleting.operation);
    assert!(world.store.get("ws1").is_none());
    assert!(world.delete("ws1").unwrap().is_none());
}

#[test]
fn an_injected_failure_ends_the_operation_failed_with_its_error() {
    let mut world = World::new();
    let ctx = Ctx {
        cloud: &world.cloud,
        settings: &world.settings,
    };
    let parsed = validate::pool_body("ws1", &json!({ "properties": gpu() })).unwrap();
    let failure = ErrorBody::new("AllocationFailed", "no capacity");
    let mut source = |_| Some(failure.clone());
    let begun = world
        .store
        .put(&ctx, "ws1", parsed, &Preconditions::default(), &mut source)
        .unwrap();
    assert!(matches!(world.settle(&begun.operation), Settle::Done));
    let operation = world.store.operation(&begun.operation).unwrap();
    assert_eq!(operation.status, OpStatus::Failed);
    assert_eq!(operation.error.as_ref().unwrap().code, "AllocationFailed");
    assert_eq!(world.state("ws1").as_deref(), Some("Failed"));
    assert!(
        world.put("ws1", gpu()).is_ok(),
        "a failed pool can be PUT again"
    );
}

#[test]
fn an_abort_cancels_the_running_create() {
    let mut world = World::new();
    let begun = world.put("ws1", gpu()).unwrap();
    let ctx = Ctx {
        cloud: &world.cloud,
        settings: &world.settings,
    };
    let abort = world.store.abort(&ctx, "ws1").unwrap();
    assert_eq!(world.state("ws1").as_deref(), Some("Canceling"));
    assert_eq!(
        world.store.operation(&begun.operation).unwrap().status,
        OpStatus::Canceled
    );
    world.complete(&abort.operation);
    assert_eq!(world.state("ws1").as_deref(), Some("Canceled"));
    let ctx = Ctx {
        cloud: &world.cloud,
        settings: &world.settings,
    };
    assert_eq!(
        world.store.abort(&ctx, "ws1").unwrap_err().status,
        StatusCode::CONFLICT
    );
}

#[test]
fn scaling_down_removes_the_newest_nodes() {
    let mut world = World::new();
    let begun = world
        .put("ws1", json!({ "vmSize": "Standard_D4s_v3", "count": 3 }))
        .unwrap();
    world.complete(&begun.operation);
    let names = world.store.get("ws1").unwrap().nodes.clone();
    let update = world
        .put("ws1", json!({ "vmSize": "Standard_D4s_v3", "count": 1 }))
        .unwrap();
    let Settle::Scale { join, remove, .. } = world.settle(&update.operation) else {
        panic!()
    };
    assert!(join.is_empty());
    assert_eq!(remove, vec![names[1].name.clone(), names[2].name.clone()]);
}
