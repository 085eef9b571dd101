//! Per-object exponential backoff: kube-runtime's error policy has no memory of how often an
//! object failed, so this keeps the count per object until it succeeds again.

use std::{collections::HashMap, hash::Hash, sync::Mutex, time::Duration};

/// Failure counts by object key, giving doubling delays between a floor and a ceiling.
#[derive(Debug)]
pub struct Backoff<K> {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<K, u32>>,
}

impl<K: Eq + Hash + Clone> Backoff<K> {
    /// Delays start at `base` and double up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records one more failure of `key` and returns how long to wait before retrying.
    pub fn fail(&self, key: &K) -> Duration {
        let n = match self.failures.lock() {
            Ok(mut map) => {
                let n = map.entry(key.clone()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset(&self, key: &K) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }

    /// Number of objects currently backing off.
    pub fn len(&self) -> usize {
        self.failures.lock().map(|m| m.len()).unwrap_or_default()
    }

    /// Whether no object is backing off.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_object_up_to_the_ceiling_and_reset_on_success() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(b.fail(&"a"), Duration::from_secs(1));
        assert_eq!(b.fail(&"a"), Duration::from_secs(2));
        assert_eq!(b.fail(&"b"), Duration::from_secs(1));
        assert_eq!(b.fail(&"a"), Duration::from_secs(4));
        assert_eq!(b.fail(&"a"), Duration::from_secs(5));
        b.reset(&"a");
        assert_eq!(b.fail(&"a"), Duration::from_secs(1));
        assert_eq!(b.len(), 2);
    }
}
