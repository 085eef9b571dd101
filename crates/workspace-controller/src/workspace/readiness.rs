//! Reading workload health: whether inference pods are ready now (not once), why not, and
//! how far a tuning Job got. Pure functions over snapshots.

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    batch::v1::Job,
    core::v1::{ContainerStatus, Pod},
};
use kaito_api::conditions::reasons;

/// Replica counts of a Deployment or StatefulSet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replicas {
    /// Replicas asked for.
    pub desired: i32,
    /// Replicas ready now.
    pub ready: i32,
    /// Replicas running the current template.
    pub updated: i32,
    /// Whether the controller has seen the latest spec.
    pub observed: bool,
    /// Whether the rollout gave up (Progressing=False).
    pub stalled: bool,
}

impl Replicas {
    /// Counts of a Deployment.
    pub fn of_deployment(d: &Deployment) -> Self {
        let status = d.status.clone().unwrap_or_default();
        Replicas {
            desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            observed: status.observed_generation >= d.metadata.generation,
            stalled: status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Progressing" && c.status == "False"),
        }
    }

    /// Counts of a StatefulSet.
    pub fn of_stateful_set(s: &StatefulSet) -> Self {
        let status = s.status.clone().unwrap_or_default();
        Replicas {
            desired: s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            observed: status.observed_generation >= s.metadata.generation,
            stalled: false,
        }
    }

    /// Whether every replica is ready on the current template.
    pub fn all_ready(&self) -> bool {
        self.observed && self.ready >= self.desired && self.updated >= self.desired
    }
}

/// Why pods are not ready: a pod-level reason and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodProblem {
    /// One of the pod-level reasons (OOM, crash loop, image pull, unschedulable).
    pub reason: &'static str,
    /// Which pod and container, and what Kubernetes said.
    pub message: String,
}

fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let s = pod.status.as_ref();
    let init = s
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default();
    let main = s
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    init.iter().chain(main)
}

fn container_problem(pod: &str, c: &ContainerStatus) -> Option<PodProblem> {
    let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
    let waiting_reason = waiting
        .and_then(|w| w.reason.as_deref())
        .unwrap_or_default();
    let oom = [c.state.as_ref(), c.last_state.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|s| s.terminated.as_ref())
        .any(|t| t.reason.as_deref() == Some("OOMKilled"));
    let say = |reason: &'static str, what: &str| PodProblem {
        reason,
        message: format!("pod {pod} container {}: {what}", c.name),
    };
    let detail = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
    // What the container does now wins over how it last ended: a crash loop after an OOM
    // kill is reported as the crash loop.
    match waiting_reason {
        "CrashLoopBackOff" => Some(say(
            reasons::CONTAINER_CRASH_LOOP_BACK_OFF,
            "keeps crashing",
        )),
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => Some(say(
            reasons::IMAGE_PULL_ERROR,
            &format!("cannot pull image {}: {detail}", c.image),
        )),
        _ if oom && !c.ready => Some(say(
            reasons::CONTAINER_OOM_KILLED,
            "killed for running out of memory",
        )),
        _ => None,
    }
}

/// The first problem found among the pods, most specific first.
pub fn pod_problem(pods: &[&Pod]) -> Option<PodProblem> {
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        if let Some(p) = statuses(pod).find_map(|c| container_problem(name, c)) {
            return Some(p);
        }
        let unschedulable = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter().find(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            });
        if let Some(c) = unschedulable {
            return Some(PodProblem {
                reason: reasons::UNSCHEDULABLE,
                message: format!(
                    "pod {name} cannot be scheduled: {}",
                    c.message.clone().unwrap_or_default()
                ),
            });
        }
    }
    None
}

/// How far a tuning Job got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobProgress {
    /// Not created or not started yet.
    Pending,
    /// Running: active and ready pod counts.
    Running {
        /// Active pods.
        active: i32,
        /// Ready pods.
        ready: i32,
    },
    /// Finished successfully.
    Succeeded,
    /// Failed, with which step failed.
    Failed(String),
}

/// Progress of a Job, naming the failed step from its pod when it failed.
pub fn job_progress(job: Option<&Job>, pods: &[&Pod]) -> JobProgress {
    let Some(status) = job.and_then(|j| j.status.as_ref()) else {
        return JobProgress::Pending;
    };
    if status.succeeded.unwrap_or(0) > 0 {
        return JobProgress::Succeeded;
    }
    if status.failed.unwrap_or(0) > 0 {
        return JobProgress::Failed(failed_step(pods));
    }
    match status.active.unwrap_or(0) {
        0 => JobProgress::Pending,
        active => JobProgress::Running {
            active,
            ready: status.ready.unwrap_or(0),
        },
    }
}

fn failed_step(pods: &[&Pod]) -> String {
    let failure = pods.iter().find_map(|pod| {
        statuses(pod).find_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| {
                let why = t
                    .reason
                    .clone()
                    .or_else(|| t.message.clone())
                    .unwrap_or_default();
                format!(
                    "step {} failed with exit code {} {why}",
                    c.name, t.exit_code
                )
            })
        })
    });
    failure.map_or_else(
        || "the tuning job failed".to_owned(),
        |f| f.trim_end().to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::{
        batch::v1::JobStatus,
        core::v1::{
            ContainerState, ContainerStateTerminated, ContainerStateWaiting, PodCondition,
            PodStatus,
        },
    };

    use super::*;

    fn pod(statuses: Vec<ContainerStatus>, conditions: Vec<PodCondition>) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some("p-0".into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                container_statuses: Some(statuses),
                conditions: Some(conditions),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn container(
        ready: bool,
        state: ContainerState,
        last: Option<ContainerState>,
    ) -> ContainerStatus {
        ContainerStatus {
            name: "main".into(),
            image: "reg.io/m:1".into(),
            ready,
            state: Some(state),
            last_state: last,
            ..Default::default()
        }
    }

    fn waiting(reason: &str) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn terminated(reason: &str, code: i32) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                reason: Some(reason.into()),
                exit_code: code,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn r07_oom_kills_and_crash_loops_are_named() {
        let oom = pod(
            vec![container(false, terminated("OOMKilled", 137), None)],
            vec![],
        );
        assert_eq!(
            pod_problem(&[&oom]).map(|p| p.reason),
            Some("ContainerOOMKilled")
        );
        let looping = pod(
            vec![container(false, waiting("CrashLoopBackOff"), None)],
            vec![],
        );
        assert_eq!(
            pod_problem(&[&looping]).map(|p| p.reason),
            Some("ContainerCrashLoopBackOff")
        );
        let back = pod(
            vec![container(
                true,
                ContainerState::default(),
                Some(terminated("OOMKilled", 137)),
            )],
            vec![],
        );
        assert_eq!(
            pod_problem(&[&back]),
            None,
            "a recovered container is not a problem"
        );
    }

    #[test]
    fn image_pulls_and_scheduling_failures_are_named() {
        let pull = pod(
            vec![container(false, waiting("ImagePullBackOff"), None)],
            vec![],
        );
        assert_eq!(
            pod_problem(&[&pull]).map(|p| p.reason),
            Some("ImagePullError")
        );
        let pending = pod(
            vec![],
            vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some("0/3 nodes are available".into()),
                ..Default::default()
            }],
        );
        let p = pod_problem(&[&pending]).expect("problem");
        assert_eq!(p.reason, "Unschedulable");
        assert!(p.message.contains("0/3 nodes"));
    }

    #[test]
    fn replicas_are_ready_only_when_all_are_ready_on_the_current_spec() {
        let r = Replicas {
            desired: 2,
            ready: 2,
            updated: 2,
            observed: true,
            stalled: false,
        };
        assert!(r.all_ready());
        assert!(!Replicas { ready: 1, ..r }.all_ready());
        assert!(!Replicas { updated: 1, ..r }.all_ready());
        assert!(
            !Replicas {
                observed: false,
                ..r
            }
            .all_ready()
        );
    }

    #[test]
    fn job_progress_names_the_failed_step() {
        let job = |status: JobStatus| Job {
            status: Some(status),
            ..Default::default()
        };
        assert_eq!(job_progress(None, &[]), JobProgress::Pending);
        let running = job(JobStatus {
            active: Some(1),
            ready: Some(1),
            ..Default::default()
        });
        assert_eq!(
            job_progress(Some(&running), &[]),
            JobProgress::Running {
                active: 1,
                ready: 1
            }
        );
        let done = job(JobStatus {
            succeeded: Some(1),
            ..Default::default()
        });
        assert_eq!(job_progress(Some(&done), &[]), JobProgress::Succeeded);
        let failed = job(JobStatus {
            failed: Some(1),
            ..Default::default()
        });
        let mut p = pod(vec![], vec![]);
        if let Some(s) = p.status.as_mut() {
            s.init_container_statuses = Some(vec![ContainerStatus {
                name: "data-downloader".into(),
                state: Some(terminated("Error", 1)),
                ..Default::default()
            }]);
        }
        match job_progress(Some(&failed), &[&p]) {
            JobProgress::Failed(m) => assert!(m.contains("data-downloader"), "{m}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
