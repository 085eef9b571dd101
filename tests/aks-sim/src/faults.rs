//! Faults on demand (throttling and server-error bursts, hangs, in-progress conflicts,
//! failing operations, outages) and ARM's own per-subscription token buckets.

use std::{collections::HashMap, time::Duration};

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::{
    arm::error::ErrorBody,
    config::{Bucket, RateLimits},
    pools::OperationKind,
    requests::operation,
};

/// A fault applied to the requests it matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// What happens to a matching request.
    #[serde(flatten)]
    pub action: FaultAction,
    /// The operation kind matched (`agentPools.put`), a prefix of it (`agentPools`) or `*`
    /// for every request including the token endpoint. Unset: every ARM request (an
    /// in-progress conflict: every agent pool PUT and DELETE).
    #[serde(default)]
    pub operation: Option<String>,
    /// Applies to this many matching requests, then disappears; unset: for ever.
    #[serde(default)]
    pub times: Option<u32>,
    /// Applies to this share (0 to 1) of matching requests; unset: to all.
    #[serde(default)]
    pub fraction: Option<f64>,
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum FaultAction {
    /// Answer this status (429, 408, 500, 502, 503, 504) with the ARM error body for it.
    Status {
        /// The HTTP status.
        status: u16,
        /// `Retry-After` seconds; unset: the configured value for 429 and 503, none otherwise.
        #[serde(default, rename = "retryAfterSecs")]
        retry_after_secs: Option<u64>,
    },
    /// Wait this long, then answer normally.
    Hang {
        /// The wait.
        #[serde(rename = "delayMs", with = "crate::config::millis")]
        delay: Duration,
    },
    /// Answer `409 OperationNotAllowed` as if another operation ran on the pool.
    InProgress,
}

impl FaultRule {
    fn new(action: FaultAction, times: u32) -> Self {
        Self {
            action,
            operation: None,
            times: Some(times),
            fraction: None,
        }
    }

    /// The next `times` ARM requests get `429` with `Retry-After`.
    pub fn throttle(times: u32) -> Self {
        Self::status(429, times)
    }

    /// The next `times` ARM requests get `status` (e.g. 500 or 503).
    pub fn status(status: u16, times: u32) -> Self {
        Self::new(
            FaultAction::Status {
                status,
                retry_after_secs: None,
            },
            times,
        )
    }

    /// The next `times` ARM requests wait `delay` before they are answered.
    pub fn hang(delay: Duration, times: u32) -> Self {
        Self::new(FaultAction::Hang { delay }, times)
    }

    /// The next `times` agent pool PUTs or DELETEs get the in-progress conflict.
    pub fn in_progress(times: u32) -> Self {
        Self::new(FaultAction::InProgress, times)
    }

    /// Limits the rule to one operation kind (or a prefix, or `*`).
    pub fn on(mut self, operation: &str) -> Self {
        self.operation = Some(operation.to_owned());
        self
    }

    /// Applies the rule to a share of the matching requests, without a count limit.
    pub fn fraction(mut self, fraction: f64) -> Self {
        self.fraction = Some(fraction);
        self.times = None;
        self
    }

    /// Sets the `Retry-After` seconds of a status rule.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        if let FaultAction::Status {
            retry_after_secs, ..
        } = &mut self.action
        {
            *retry_after_secs = Some(seconds);
        }
        self
    }

    fn matches(&self, kind: &str) -> bool {
        let cloud_only = ![
            operation::TOKEN,
            operation::OPENID_CONFIGURATION,
            operation::KEYS,
            operation::INSTANCE_DISCOVERY,
        ]
        .contains(&kind);
        match (self.operation.as_deref(), &self.action) {
            (Some("*"), _) => true,
            (Some(wanted), _) => {
                kind == wanted
                    || kind
                        .strip_prefix(wanted)
                        .is_some_and(|r| r.starts_with('.'))
            }
            (None, FaultAction::InProgress) => {
                kind == operation::POOL_PUT || kind == operation::POOL_DELETE
            }
            (None, _) => cloud_only,
        }
    }
}

/// An upcoming operation that is to end `Failed` with the given error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationFailure {
    /// The kind of operation that fails; unset: any create, update or delete.
    #[serde(default)]
    pub kind: Option<OperationKind>,
    /// How many operations fail.
    #[serde(default = "one")]
    pub times: u32,
    /// The `error.code` of the operation status.
    pub code: String,
    /// The `error.message` of the operation status.
    pub message: String,
}

fn one() -> u32 {
    1
}

impl OperationFailure {
    /// The next create, update or delete fails with this error.
    pub fn new(code: &str, message: &str) -> Self {
        Self {
            kind: None,
            times: 1,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    /// Only operations of this kind fail.
    pub fn of(mut self, kind: OperationKind) -> Self {
        self.kind = Some(kind);
        self
    }
}

/// Whether the cloud can be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outage {
    /// Everything answers normally.
    #[default]
    None,
    /// Every request but the control API gets `503`.
    Unavailable,
    /// The listener is closed: connections are refused.
    Refuse,
}

/// The ARM request classes with their own limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    Reads,
    Writes,
    Deletes,
}

impl Class {
    pub fn of(method: &str) -> Self {
        match method {
            "GET" | "HEAD" => Class::Reads,
            "DELETE" => Class::Deletes,
            _ => Class::Writes,
        }
    }

    /// The suffix of the `x-ms-ratelimit-remaining-subscription-*` headers.
    pub fn header_suffix(self) -> &'static str {
        match self {
            Class::Reads => "reads",
            Class::Writes => "writes",
            Class::Deletes => "deletes",
        }
    }

    /// The word ARM uses in throttling messages.
    pub fn word(self) -> &'static str {
        match self {
            Class::Reads => "read",
            Class::Writes => "write",
            Class::Deletes => "delete",
        }
    }

    fn bucket(self, limits: &RateLimits) -> Bucket {
        match self {
            Class::Reads => limits.reads,
            Class::Writes => limits.writes,
            Class::Deletes => limits.deletes,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Level {
    tokens: f64,
    at: Instant,
}

/// What the rules decided for one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Triggered {
    pub hang: Option<Duration>,
    pub answer: Option<FaultAction>,
}

/// A rule with the id the control API shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActiveRule {
    /// Id for listing.
    pub id: u64,
    /// The rule.
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Requests it has applied to so far.
    pub fired: u32,
}

/// All active faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<ActiveRule>,
    next_id: u64,
    failures: Vec<OperationFailure>,
    pub outage: Outage,
    levels: HashMap<(String, Class), Level>,
}

impl Faults {
    pub fn add(&mut self, rule: FaultRule) -> u64 {
        self.next_id += 1;
        self.rules.push(ActiveRule {
            id: self.next_id,
            rule,
            fired: 0,
        });
        self.next_id
    }

    pub fn rules(&self) -> Vec<ActiveRule> {
        self.rules.clone()
    }

    pub fn clear(&mut self) {
        self.rules.clear();
        self.failures.clear();
    }

    /// Applies the rules to a request of `kind`: at most one hang and one answer.
    pub fn trigger(&mut self, kind: &str) -> Triggered {
        let mut triggered = Triggered::default();
        for active in &mut self.rules {
            let rule = &active.rule;
            let wanted = match rule.action {
                FaultAction::Hang { .. } => triggered.hang.is_none(),
                _ => triggered.answer.is_none(),
            };
            let lucky = rule
                .fraction
                .is_none_or(|share| rand::rng().random_bool(share.clamp(0.0, 1.0)));
            if !wanted || !rule.matches(kind) || !lucky {
                continue;
            }
            match &rule.action {
                FaultAction::Hang { delay } => triggered.hang = Some(*delay),
                action => triggered.answer = Some(action.clone()),
            }
            active.fired += 1;
        }
        self.rules
            .retain(|active| active.rule.times.is_none_or(|times| active.fired < times));
        triggered
    }

    pub fn add_failure(&mut self, failure: OperationFailure) {
        if failure.times > 0 {
            self.failures.push(failure);
        }
    }

    /// The error an operation of `kind` starting now is to fail with.
    pub fn take_failure(&mut self, kind: OperationKind) -> Option<ErrorBody> {
        if kind == OperationKind::Abort {
            return None;
        }
        let index = self
            .failures
            .iter()
            .position(|f| f.kind.is_none_or(|k| k == kind))?;
        let failure = &mut self.failures[index];
        failure.times -= 1;
        let error = ErrorBody::new(&failure.code, &failure.message);
        if failure.times == 0 {
            self.failures.remove(index);
        }
        Some(error)
    }

    /// Takes a token from the subscription's bucket: the tokens left, or the seconds to wait.
    pub fn admit(
        &mut self,
        limits: &RateLimits,
        subscription: &str,
        class: Class,
        now: Instant,
    ) -> Result<u32, u64> {
        let bucket = class.bucket(limits);
        let capacity = f64::from(bucket.capacity);
        let rate = f64::from(bucket.refill_per_sec.max(1));
        let key = (subscription.to_ascii_lowercase(), class);
        let level = self.levels.entry(key).or_insert(Level {
            tokens: capacity,
            at: now,
        });
        let refilled = level.tokens + now.duration_since(level.at).as_secs_f64() * rate;
        *level = Level {
            tokens: refilled.min(capacity),
            at: now,
        };
        if level.tokens < 1.0 {
            let wait = ((1.0 - level.tokens) / rate).ceil().max(1.0);
            return Err(wait as u64);
        }
        level.tokens -= 1.0;
        Ok(level.tokens.floor() as u32)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_burst_applies_to_the_next_requests_only() {
        let mut faults = Faults::default();
        faults.add(FaultRule::throttle(2));
        let answer = |faults: &mut Faults| faults.trigger(operation::POOL_GET).answer;
        let throttled = Some(FaultAction::Status {
            status: 429,
            retry_after_secs: None,
        });
        assert_eq!(answer(&mut faults), throttled);
        assert_eq!(answer(&mut faults), throttled);
        assert_eq!(answer(&mut faults), None);
        assert!(faults.rules().is_empty());
    }

    #[test]
    fn rules_match_their_operation_kind_or_prefix() {
        let rule = FaultRule::status(503, 1).on("agentPools");
        assert!(rule.matches(operation::POOL_PUT));
        assert!(!rule.matches(operation::OPERATION_GET));
        assert!(!FaultRule::throttle(1).matches(operation::TOKEN));
        assert!(FaultRule::throttle(1).on("*").matches(operation::TOKEN));
        assert!(FaultRule::in_progress(1).matches(operation::POOL_DELETE));
        assert!(!FaultRule::in_progress(1).matches(operation::POOL_GET));
    }

    #[test]
    fn a_hang_and_an_answer_can_apply_together() {
        let mut faults = Faults::default();
        faults.add(FaultRule::hang(Duration::from_millis(5), 1));
        faults.add(FaultRule::status(500, 1));
        let triggered = faults.trigger(operation::POOL_GET);
        assert_eq!(triggered.hang, Some(Duration::from_millis(5)));
        assert!(triggered.answer.is_some());
    }

    #[test]
    fn rules_read_from_control_api_json() {
        let rule: FaultRule = serde_json::from_value(json!({
            "action": "status", "status": 429, "retryAfterSecs": 3,
            "operation": "agentPools.put", "times": 2,
        }))
        .unwrap();
        assert_eq!(
            rule,
            FaultRule::throttle(2).on("agentPools.put").retry_after(3)
        );
        let hang: FaultRule =
            serde_json::from_value(json!({"action": "hang", "delayMs": 1500})).unwrap();
        assert_eq!(
            hang.action,
            FaultAction::Hang {
                delay: Duration::from_millis(1500)
            }
        );
        assert_eq!(hang.times, None);
    }

    #[test]
    fn operation_failures_are_used_up_in_order() {
        let mut faults = Faults::default();
        faults.add_failure(OperationFailure::new("X", "x").of(OperationKind::Delete));
        assert_eq!(faults.take_failure(OperationKind::Create), None);
        assert_eq!(
            faults.take_failure(OperationKind::Delete).unwrap().code,
            "X"
        );
        assert_eq!(faults.take_failure(OperationKind::Delete), None);
    }

    #[test]
    fn the_token_bucket_empties_and_refills() {
        let limits = RateLimits {
            reads: Bucket {
                capacity: 2,
                refill_per_sec: 1,
            },
            ..RateLimits::default()
        };
        let mut faults = Faults::default();
        let start = Instant::now();
        let mut admit = |at: Duration| faults.admit(&limits, "s", Class::Reads, start + at);
        assert_eq!(admit(Duration::ZERO), Ok(1));
        assert_eq!(admit(Duration::ZERO), Ok(0));
        assert_eq!(admit(Duration::ZERO), Err(1));
        assert_eq!(admit(Duration::from_secs(1)), Ok(0));
    }
}
