//! The simulator over real HTTPS, as a provisioner sees it: tokens, agent pools, long-running
//! operations and the errors AKS answers.
// Helpers outside #[test] functions fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use aks_sim::{FaultRule, OperationFailure, OperationKind, Outage, PoolSeed, QuotaCode, operation};
use common::{Arm, eventually, gpu_body, header, pool_url, quick, start};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_created_pool_goes_from_creating_to_succeeded_and_a_delete_removes_it() {
    let (sim, client) = start(quick()).await;
    let arm = Arm::new(&sim, &client).await;
    let url = pool_url(&sim, "ws1a2b3c4d5");

    let created = arm.put(&url, &gpu_body("ws-big")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let operation_url = header(&created, "azure-asyncoperation");
    assert!(operation_url.starts_with(&format!("{}/subscriptions/", sim.base_url())));
    assert!(
        operation_url
            .contains("/providers/Microsoft.ContainerService/locations/eastus/operations/")
    );
    assert!(header(&created, "retry-after").parse::<u64>().is_ok());
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["name"], "ws1a2b3c4d5");
    assert_eq!(
        body["type"],
        "Microsoft.ContainerService/managedClusters/agentPools"
    );
    assert_eq!(body["properties"]["provisioningState"], "Creating");

    let statuses = arm.follow(&operation_url).await;
    assert_eq!(statuses.first().map(String::as_str), Some("InProgress"));
    assert_eq!(statuses.last().map(String::as_str), Some("Succeeded"));
    let operation: Value = arm.get(&operation_url).await.json().await.unwrap();
    assert!(operation["startTime"].is_string() && operation["endTime"].is_string());

    let pool: Value = arm.get(&url).await.json().await.unwrap();
    assert_eq!(pool["properties"]["provisioningState"], "Succeeded");
    assert_eq!(pool["properties"]["osDiskSizeGB"], 300);
    assert_eq!(pool["properties"]["mode"], "User");
    assert!(pool["properties"]["eTag"].is_string());

    let deleting = arm.delete(&url).await;
    assert_eq!(deleting.status(), StatusCode::ACCEPTED);
    let location = header(&deleting, "location");
    assert!(location.contains("/operationresults/"));
    let delete_operation = header(&deleting, "azure-asyncoperation");
    assert_eq!(
        arm.follow(&delete_operation)
            .await
            .last()
            .map(String::as_str),
        Some("Succeeded")
    );
    assert_eq!(arm.get(&location).await.status(), StatusCode::NO_CONTENT);
    let gone = arm.get(&url).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let error: Value = gone.json().await.unwrap();
    assert_eq!(error["error"]["code"], "NotFound");
    assert_eq!(arm.delete(&url).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn arm_calls_without_a_valid_token_get_401_with_an_arm_error() {
    let (sim, client) = start(quick()).await;
    let url = pool_url(&sim, "ws1");

    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AuthenticationFailed");

    let forged = client.get(&url).bearer_auth("a.b.c").send().await.unwrap();
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    let arm = Arm::new(&sim, &client).await;
    assert_eq!(arm.get(&url).await.status(), StatusCode::NOT_FOUND);
    sim.expire_tokens();
    let expired = arm.get(&url).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ExpiredAuthenticationToken");
}

#[tokio::test]
async fn the_token_endpoint_answers_like_aad() {
    let (sim, client) = start(quick()).await;
    let form = [
        ("client_id", common::CLIENT_ID),
        ("grant_type", "client_credentials"),
        ("scope", "https://management.azure.com/.default"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        (
            "client_assertion",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
        ),
    ];
    let response = client
        .post(sim.token_url(common::TENANT))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(body["ext_expires_in"].is_u64());

    sim.set_reject_client_assertions(true);
    let refused = client
        .post(sim.token_url(common::TENANT))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["error_codes"], json!([70021]));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS70021: ")
    );

    let no_grant = client
        .post(sim.token_url(common::TENANT))
        .form(&[("a", "b")])
        .send()
        .await
        .unwrap();
    let body: Value = no_grant.json().await.unwrap();
    assert_eq!(body["error_codes"], json!([900144]));
    assert_eq!(sim.requests().with_status(operation::TOKEN, 400), 2);
}

#[tokio::test]
async fn a_pool_name_the_arm_rule_refuses_gets_400_and_no_pool() {
    let (sim, client) = start(quick()).await;
    let arm = Arm::new(&sim, &client).await;
    for name in ["ws-a1b2c3", "wsa1b2c3d4e5f6", "Wsabc"] {
        let response = arm.put(&pool_url(&sim, name), &gpu_body("ws")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "InvalidParameter");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("^[a-z][a-z0-9]{0,11}$")
        );
    }
    assert!(sim.pools().is_empty());
    assert_eq!(sim.put_bodies().len(), 3, "refused PUTs are recorded too");
}

#[tokio::test]
async fn bodies_aks_would_refuse_get_400_invalid_parameter_with_a_target() {
    let (sim, client) = start(quick()).await;
    let arm = Arm::new(&sim, &client).await;
    let url = pool_url(&sim, "ws1");
    let cases = [
        (json!({ "properties": { "count": 1 } }), "properties.vmSize"),
        (
            json!({ "properties": { "vmSize": "Standard_D4s_v3", "osDiskSizeGB": 4096 } }),
            "properties.osDiskSizeGB",
        ),
        (
            json!({ "properties": { "vmSize": "Standard_D4s_v3", "count": -1 } }),
            "properties.count",
        ),
        (
            json!({ "properties": { "vmSize": "Standard_D4s_v3", "osSKU": "Debian" } }),
            "properties.osSKU",
        ),
    ];
    for (body, target) in cases {
        let response = arm.put(&url, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{target}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["target"], target);
    }
    let no_version = arm.get(&sim.agent_pool_url("ws1")).await;
    let error: Value = no_version.json().await.unwrap();
    assert_eq!(error["error"]["code"], "MissingApiVersionParameter");
}

#[tokio::test]
async fn if_none_match_star_on_an_existing_pool_gets_412() {
    let (sim, client) = start(quick()).await;
    let arm = Arm::new(&sim, &client).await;
    let url = pool_url(&sim, "ws1");
    let create_only = |body: &Value| {
        client
            .put(&url)
            .bearer_auth(&arm.token)
            .header("If-None-Match", "*")
            .json(body)
            .send()
    };
    assert_eq!(
        create_only(&gpu_body("ws")).await.unwrap().status(),
        StatusCode::CREATED
    );
    sim.finish_operations();
    let again = create_only(&gpu_body("ws")).await.unwrap();
    assert_eq!(again.status(), StatusCode::PRECONDITION_FAILED);
    let error: Value = again.json().await.unwrap();
    assert_eq!(error["error"]["code"], "PreconditionFailed");

    let stale = client
        .delete(&url)
        .bearer_auth(&arm.token)
        .header("If-Match", "\"stale\"");
    assert_eq!(
        stale.send().await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    eventually("the create to finish", || async {
        (sim.pool("ws1")?["properties"]["provisioningState"] == "Succeeded").then_some(())
    })
    .await;
    let pool = sim.pool("ws1").unwrap();
    let etag = pool["properties"]["eTag"].as_str().unwrap();
    let fresh = client
        .delete(&url)
        .bearer_auth(&arm.token)
        .header("If-Match", format!("\"{etag}\""));
    assert_eq!(fresh.send().await.unwrap().status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_create_over_the_cores_quota_is_refused_until_the_quota_is_raised() {
    let (sim, client) = start(quick()).await;
    sim.set_quota_limit(Some(0));
    sim.set_quota_code(QuotaCode::OperationNotAllowed);
    let arm = Arm::new(&sim, &client).await;
    let url = pool_url(&sim, "ws1");

    let refused = arm.put(&url, &gpu_body("ws")).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "OperationNotAllowed");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("Total Regional Cores quota"), "{message}");
    assert!(message.contains("Current Limit: 0") && message.contains("Additional Required: 24"));
    assert!(sim.pool("ws1").is_none());

    sim.set_quota_code(QuotaCode::QuotaExceeded);
    let preflight = arm.put(&url, &gpu_body("ws")).await;
    assert_eq!(preflight.status(), StatusCode::BAD_REQUEST);
    let error: Value = preflight.json().await.unwrap();
    assert_eq!(error["error"]["code"], "QuotaExceeded");

    sim.set_quota_limit(Some(100));
    assert_eq!(
        arm.put(&url, &gpu_body("ws")).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_vm_size_not_allowed_in_the_subscription_gets_400_bad_request() {
    let (sim, client) = start(quick()).await;
    sim.set_not_allowed_vm_sizes(["Standard_NC24ads_A100_v4"]);
    let arm = Arm::new(&sim, &client).await;
    let response = arm.put(&pool_url(&sim, "ws1"), &gpu_body("ws")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "BadRequest");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("is not allowed in your subscription in location 'eastus'"));
}

#[tokio::test]
async fn a_throttling_burst_answers_429_with_retry_after_then_clears() {
    let (sim, client) = start(quick()).await;
    let arm = Arm::new(&sim, &client).await;
    sim.add_fault(FaultRule::throttle(2).retry_after(7));
    let url = pool_url(&sim, "");
    for _ in 0..2 {
        let throttled = arm.get(&url).await;
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&throttled, "retry-after"), "7");
        assert_eq!(
            header(&throttled, "x-ms-ratelimit-remaining-subscription-reads"),
            "0"
        );
        let error: Value = throttled.json().await.unwrap();
        assert_eq!(error["error"]["code"], "SubscriptionRequestsThrottled");
    }
    let ok = arm.get(&url).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(
        ok.headers()
            .contains_key("x-ms-ratelimit-remaining-subscription-reads")
    );
    assert_eq!(sim.requests().with_status(operation::POOL_LIST, 429), 2);
}

#[tokio::test]
async fn arm_limits_throttle_a_burst_beyond_the_bucket() {
    let (sim, client) = start(quick()).await;
    let arm = Arm::new(&sim, &client).await;
    sim.update_settings(|s| {
        if let Some(limits) = &mut s.rate_limits {
            limits.writes.capacity = 2;
            limits.writes.refill_per_sec = 1;
        }
    });
    let url = pool_url(&sim, "ws1");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            arm.client
                .post(format!(
                    "{}/abort?api-version=2026-01-01",
                    sim.agent_pool_url("ws1")
                ))
                .bearer_auth(&arm.token)
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(
        arm.get(&url).await.status(),
        StatusCode::NOT_FOUND,
        "reads have their own bucket"
    );
}

#[tokio::test]
async fn a_put_or_delete_while_the_pool_is_creating_gets_the_in_progress_conflict() {
    let mut config = quick();
    config.settings.create_delay = Duration::from_secs(30);
    let (sim, client) = start(config).await;
    let arm = Arm::new(&sim, &client).await;
    let url = pool_url(&sim, "ws1");
    assert_eq!(
        arm.put(&url, &gpu_body("ws")).await.status(),
        StatusCode::CREATED
    );

    for response in [arm.put(&url, &gpu_body("ws")).await, arm.delete(&url).await] {
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "OperationNotAllowed");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(
            "Operation is not allowed because there's an in progress create node pool operation"
        ));
    }
    let pool: Value = arm.get(&url).await.json().await.unwrap();
    assert_eq!(pool["properties"]["provisioningState"], "Creating");
}

#[tokio::test]
async fn an_in_progress_fault_refuses_the_next_put() {
    let (sim, client) = start(quick()).await;
    let arm = Arm::new(&sim, &client).await;
    sim.add_fault(FaultRule::in_progress(1));
    let url = pool_url(&sim, "ws1");
    assert_eq!(
        arm.put(&url, &gpu_body("ws")).await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        arm.put(&url, &gpu_body("ws")).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_list_is_paged_with_next_links() {
    let mut config = quick();
    config.settings.page_size = 2;
    let (sim, client) = start(config).await;
    for index in 0..5 {
        let seed = PoolSeed::new(
            &format!("pool{index}"),
            json!({ "vmSize": "Standard_D4s_v3" }),
        );
        sim.insert_pool(seed).await.unwrap();
    }
    let arm = Arm::new(&sim, &client).await;
    let mut names = Vec::new();
    let mut next = Some(pool_url(&sim, ""));
    let mut pages = 0;
    while let Some(url) = next {
        let page: Value = arm.get(&url).await.json().await.unwrap();
        let value = page["value"].as_array().unwrap();
        names.extend(
            value
                .iter()
                .map(|pool| pool["name"].as_str().unwrap().to_owned()),
        );
        next = page["nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["pool0", "pool1", "pool2", "pool3", "pool4"]);
    assert_eq!(sim.requests().with_status(operation::POOL_LIST, 200), 3);
}

#[tokio::test]
async fn the_put_body_is_recorded_exactly_as_sent() {
    let (sim, client) = start(quick()).await;
    let arm = Arm::new(&sim, &client).await;
    let body = gpu_body("ws-big");
    arm.put(&pool_url(&sim, "ws1"), &body).await;
    let puts = sim.put_bodies();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].body, body);
    assert_eq!(puts[0].body["properties"]["osDiskSizeGB"], 300);
    assert_eq!(puts[0].status, 201);
    assert_eq!(puts[0].api_version.as_deref(), Some(common::API_VERSION));
}

#[tokio::test]
async fn an_operation_set_to_fail_ends_failed_with_its_error() {
    let (sim, client) = start(quick()).await;
    let failure = OperationFailure::new("AllocationFailed", "No capacity for the VM size.");
    sim.fail_next_operations(failure.of(OperationKind::Create));
    let arm = Arm::new(&sim, &client).await;
    let url = pool_url(&sim, "ws1");
    let created = arm.put(&url, &gpu_body("ws")).await;
    let operation_url = header(&created, "azure-asyncoperation");
    assert_eq!(
        arm.follow(&operation_url).await.last().map(String::as_str),
        Some("Failed")
    );
    let operation: Value = arm.get(&operation_url).await.json().await.unwrap();
    assert_eq!(operation["error"]["code"], "AllocationFailed");
    let pool: Value = arm.get(&url).await.json().await.unwrap();
    assert_eq!(pool["properties"]["provisioningState"], "Failed");
}

#[tokio::test]
async fn an_abort_cancels_a_running_create() {
    let mut config = quick();
    config.settings.create_delay = Duration::from_secs(30);
    let (sim, client) = start(config).await;
    let arm = Arm::new(&sim, &client).await;
    let url = pool_url(&sim, "ws1");
    let created = arm.put(&url, &gpu_body("ws")).await;
    let operation_url = header(&created, "azure-asyncoperation");
    let abort_url = format!(
        "{}/abort?api-version={}",
        sim.agent_pool_url("ws1"),
        common::API_VERSION
    );
    let abort = arm
        .client
        .post(&abort_url)
        .bearer_auth(&arm.token)
        .send()
        .await
        .unwrap();
    assert_eq!(abort.status(), StatusCode::ACCEPTED);
    assert_eq!(
        arm.follow(&operation_url).await.last().map(String::as_str),
        Some("Canceled")
    );
    assert_eq!(
        arm.follow(&header(&abort, "azure-asyncoperation"))
            .await
            .last()
            .map(String::as_str),
        Some("Succeeded")
    );
    let pool: Value = arm.get(&url).await.json().await.unwrap();
    assert_eq!(pool["properties"]["provisioningState"], "Canceled");
}

#[tokio::test]
async fn server_error_bursts_and_hangs_reach_the_client() {
    let (sim, client) = start(quick()).await;
    let arm = Arm::new(&sim, &client).await;
    let url = pool_url(&sim, "ws1");
    sim.add_fault(FaultRule::status(503, 1).on(operation::POOL_GET));
    let unavailable = arm.get(&url).await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(unavailable.headers().contains_key("retry-after"));
    sim.add_fault(FaultRule::status(500, 1));
    let error: Value = arm.get(&url).await.json().await.unwrap();
    assert_eq!(error["error"]["code"], "InternalServerError");

    sim.add_fault(FaultRule::hang(Duration::from_secs(5), 1));
    let impatient = arm
        .client
        .get(&url)
        .bearer_auth(&arm.token)
        .timeout(Duration::from_millis(300));
    let started = Instant::now();
    assert!(impatient.send().await.unwrap_err().is_timeout());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        arm.get(&url).await.status(),
        StatusCode::NOT_FOUND,
        "the hang was used up"
    );
}

#[tokio::test]
async fn an_outage_answers_503_or_refuses_connections_until_it_ends() {
    let (sim, client) = start(quick()).await;
    let arm = Arm::new(&sim, &client).await;
    let url = pool_url(&sim, "ws1");

    sim.set_outage(Outage::Unavailable).await.unwrap();
    assert_eq!(
        arm.get(&url).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let control = client
        .get(format!("{}/_sim/outage", sim.base_url()))
        .send()
        .await
        .unwrap();
    let mode: Value = control.json().await.unwrap();
    assert_eq!(mode["mode"], "unavailable", "the control API stays up");

    sim.set_outage(Outage::Refuse).await.unwrap();
    let refused = arm
        .client
        .get(&url)
        .bearer_auth(&arm.token)
        .send()
        .await
        .unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");

    sim.set_outage(Outage::None).await.unwrap();
    assert_eq!(arm.get(&url).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_control_api_sets_knobs_counts_requests_and_seeds_pools() {
    let (sim, client) = start(quick()).await;
    let control = |path: &str| format!("{}/_sim/{path}", sim.base_url());

    let patch = json!({ "createDelayMs": 30000, "quota": { "limitCores": 64 } });
    let settings: Value = client
        .patch(control("settings"))
        .json(&patch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["createDelayMs"], 30000);
    assert_eq!(sim.settings().quota.limit_cores, Some(64));

    let seed =
        json!({ "properties": { "vmSize": "Standard_D4s_v3", "nodeLabels": { "team": "x" } } });
    let seeded = client
        .put(control("pools/unowned"))
        .json(&seed)
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), StatusCode::CREATED);
    let arm = Arm::new(&sim, &client).await;
    let pool: Value = arm
        .get(&pool_url(&sim, "unowned"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pool["properties"]["provisioningState"], "Succeeded");
    assert_eq!(pool["properties"]["nodeLabels"]["team"], "x");

    let fault = json!({ "action": "status", "status": 429, "times": 1, "operation": "agentPools" });
    client
        .post(control("faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(
        arm.get(&pool_url(&sim, "unowned")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    let counts: Value = client
        .get(control("requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = counts["requests"].as_array().unwrap();
    let count = |kind: &str, status: u16| {
        entries
            .iter()
            .find(|e| e["operation"] == kind && e["status"] == status)
            .map_or(0, |e| e["count"].as_u64().unwrap())
    };
    assert_eq!(count("token", 200), 1);
    assert_eq!(count("agentPools.get", 200), 1);
    assert_eq!(count("agentPools.get", 429), 1);
    client.delete(control("requests")).send().await.unwrap();
    assert_eq!(sim.requests().total(), 0);

    let pools: Value = client
        .get(control("pools"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pools["value"].as_array().unwrap().len(), 1);
}
