use super::*;

fn ws(kind: &str) -> Workspace {
    let body = match kind {
        "inference" => "inference:\n  preset: {name: phi-3-mini-4k-instruct}\n",
        _ => {
            "tuning:\n  preset: {name: phi-3-mini-4k-instruct}\n  method: lora\n  input: {urls: \
              [\"https://example.com/a.csv\"]}\n  \
              output: {image: \"r.io/a/b:1\", imagePushSecret: s}\n"
        }
    };
    let mut w: Workspace = yaml_serde::from_str(&format!(
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\n\
         metadata: {{name: w, namespace: d, generation: 3}}\nresource:\n  \
         instanceType: Standard_NC6s_v3\n  labelSelector:\n    matchLabels: {{a: b}}\n{body}"
    ))
    .expect("workspace");
    w.metadata.generation = Some(3);
    w
}

fn ready_plan() -> NodePlan {
    NodePlan {
        selected: vec!["n1".into()],
        needed: 1,
        ready_requests: 1,
        active_requests: 1,
        ..Default::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or_default()
}

fn get<'a>(st: &'a WorkspaceStatus, ty: &str) -> &'a Condition {
    st.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == ty)
        .unwrap_or_else(|| panic!("{ty} missing"))
}

fn replicas(ready: i32) -> Replicas {
    Replicas {
        desired: 1,
        ready,
        updated: 1,
        observed: true,
        stalled: false,
    }
}

#[test]
fn a_serving_inference_workspace_is_ready_everywhere() {
    let obs = Observed {
        plan: ready_plan(),
        inference: Some(InferenceView {
            replicas: Some(replicas(1)),
            problem: None,
        }),
        ..Default::default()
    };
    let st = compute(&ws("inference"), &obs, NodeRequestKind::Machine, now());
    for ty in [
        "ResourceReady",
        "MachineReady",
        "InferenceReady",
        "WorkspaceSucceeded",
        "WorkspaceReady",
    ] {
        assert_eq!(get(&st, ty).status, "True", "{ty}");
        assert_eq!(get(&st, ty).observed_generation, Some(3));
    }
    assert_eq!(st.state, Some(WorkspaceState::Ready));
    assert_eq!(st.worker_nodes, Some(vec!["n1".to_owned()]));
}

#[test]
fn r04_a_failed_launch_shows_the_cloud_message_on_resource_ready() {
    let plan = NodePlan {
        needed: 1,
        active_requests: 1,
        failed_request: Some((
            "ws1234".into(),
            "regional cores quota exceeded (limit 0, requested 24)".into(),
        )),
        ..Default::default()
    };
    let obs = Observed {
        plan,
        inference: Some(InferenceView::default()),
        ..Default::default()
    };
    let st = compute(&ws("inference"), &obs, NodeRequestKind::NodeClaim, now());
    let res = get(&st, "ResourceReady");
    assert_eq!(res.status, "False");
    assert!(res.message.contains("quota"));
    let nc = get(&st, "NodeClaimReady");
    assert_eq!(
        (nc.status.as_str(), nc.reason.as_str()),
        ("False", "checkNodeClaimStatusFailed")
    );
    assert_eq!(get(&st, "WorkspaceReady").status, "False");
}

#[test]
fn ready_machines_on_nodes_without_gpus_say_what_is_missing() {
    let plan = NodePlan {
        needed: 1,
        active_requests: 1,
        ready_requests: 1,
        waiting_for_gpus: vec!["aks-n1".into()],
        ..Default::default()
    };
    let obs = Observed {
        plan,
        job: None,
        ..Default::default()
    };
    let st = compute(&ws("tuning"), &obs, NodeRequestKind::Machine, now());
    let machine = get(&st, "MachineReady");
    assert_eq!(machine.status, "Unknown");
    assert_eq!(
        machine.message,
        "1 of 1 machines ready; waiting for nvidia.com/gpu on nodes aks-n1"
    );
    assert!(get(&st, "ResourceReady").message.contains("aks-n1"));
}

#[test]
fn r07_inference_ready_follows_the_pods_and_the_state_becomes_not_ready() {
    let mut w = ws("inference");
    let serving = Observed {
        plan: ready_plan(),
        inference: Some(InferenceView {
            replicas: Some(replicas(1)),
            problem: None,
        }),
        ..Default::default()
    };
    w.status = Some(compute(&w, &serving, NodeRequestKind::Machine, now()));
    let oom = Observed {
        plan: ready_plan(),
        inference: Some(InferenceView {
            replicas: Some(replicas(0)),
            problem: Some(PodProblem {
                reason: "ContainerOOMKilled",
                message: "pod p".into(),
            }),
        }),
        ..Default::default()
    };
    let st = compute(&w, &oom, NodeRequestKind::Machine, now());
    assert_eq!(get(&st, "InferenceReady").reason, "ContainerOOMKilled");
    assert_eq!(get(&st, "WorkspaceSucceeded").status, "False");
    assert_eq!(st.state, Some(WorkspaceState::NotReady));
}

#[test]
fn slow_rollouts_turn_from_pending_to_failed_after_the_preset_timeout() {
    let mut w = ws("inference");
    let rolling = Observed {
        plan: ready_plan(),
        inference: Some(InferenceView {
            replicas: Some(replicas(0)),
            problem: None,
        }),
        ..Default::default()
    };
    w.status = Some(compute(&w, &rolling, NodeRequestKind::Machine, now()));
    assert_eq!(
        get(w.status.as_ref().expect("status"), "InferenceReady").reason,
        "WorkspaceInferenceStatusPending"
    );
    let later = now() + std::time::Duration::from_secs(31 * 60);
    let st = compute(&w, &rolling, NodeRequestKind::Machine, later);
    assert_eq!(
        get(&st, "InferenceReady").reason,
        "WorkspaceInferenceStatusFailed"
    );
}

#[test]
fn tuning_states_follow_the_job() {
    let w = ws("tuning");
    let cases = [
        (JobProgress::Pending, WorkspaceState::Pending, "False"),
        (
            JobProgress::Running {
                active: 1,
                ready: 1,
            },
            WorkspaceState::Running,
            "True",
        ),
        (JobProgress::Succeeded, WorkspaceState::Succeeded, "True"),
        (
            JobProgress::Failed("step x failed".into()),
            WorkspaceState::Failed,
            "False",
        ),
    ];
    for (job, state, started) in cases {
        let obs = Observed {
            plan: ready_plan(),
            job: Some(job.clone()),
            ..Default::default()
        };
        let st = compute(&w, &obs, NodeRequestKind::Machine, now());
        assert_eq!(st.state, Some(state), "{job:?}");
        assert_eq!(get(&st, "JobStarted").status, started, "{job:?}");
        let done = matches!(job, JobProgress::Succeeded);
        assert_eq!(get(&st, "WorkspaceReady").status == "True", done);
        assert!(
            st.conditions
                .iter()
                .flatten()
                .all(|c| c.type_ != "InferenceReady")
        );
    }
}

#[test]
fn unchanged_observations_give_an_equal_status() {
    let mut w = ws("inference");
    let obs = Observed {
        plan: ready_plan(),
        inference: Some(InferenceView::default()),
        ..Default::default()
    };
    w.status = Some(compute(&w, &obs, NodeRequestKind::Machine, now()));
    let later = now() + std::time::Duration::from_secs(5);
    assert_eq!(
        Some(compute(&w, &obs, NodeRequestKind::Machine, later)),
        w.status
    );
}

#[test]
fn an_invalid_spec_is_reported_on_the_summary() {
    let obs = Observed {
        invalid: Some("validation failed: x: y".into()),
        ..Default::default()
    };
    let st = compute(&ws("inference"), &obs, NodeRequestKind::Machine, now());
    assert_eq!(get(&st, "WorkspaceReady").reason, "InvalidSpec");
    assert_eq!(st.state, Some(WorkspaceState::Pending));
    // A Workspace that was serving does not keep saying Ready beside WorkspaceReady=False.
    let mut was_ready = ws("inference");
    was_ready.status = Some(WorkspaceStatus {
        state: Some(WorkspaceState::Ready),
        ..Default::default()
    });
    let st = compute(&was_ready, &obs, NodeRequestKind::Machine, now());
    assert_eq!(st.state, Some(WorkspaceState::NotReady));
    let st = compute(&ws("tuning"), &obs, NodeRequestKind::Machine, now());
    assert_eq!(st.state, Some(WorkspaceState::Failed));
}
