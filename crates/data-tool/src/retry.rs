//! A bounded number of attempts with doubling waits between them.

use std::{fmt::Display, time::Duration};

/// Longest wait between two attempts, whatever the first delay.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// How often to try an operation and how long to wait in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in total, at least one.
    pub attempts: u32,
    /// Wait after the first failure; it doubles after each further one, up to 30 s.
    pub first_delay: Duration,
}

impl Retry {
    /// `attempts` tries (at least one) with `first_delay_ms` before the second.
    pub fn new(attempts: u32, first_delay_ms: u64) -> Self {
        Retry {
            attempts: attempts.max(1),
            first_delay: Duration::from_millis(first_delay_ms),
        }
    }

    /// The wait after `failures` failed attempts (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.first_delay.saturating_mul(factor).min(MAX_DELAY)
    }

    /// Runs `op` (given the attempt number, from 1) until it succeeds, fails with an error
    /// `retryable` rejects, or the attempts run out; the last error is returned.
    pub async fn run<T, E: Display>(
        &self,
        what: &str,
        retryable: impl Fn(&E) -> bool,
        mut op: impl AsyncFnMut(u32) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Ok(value) => return Ok(value),
                Err(err) if attempt < self.attempts && retryable(&err) => {
                    let wait = self.delay(attempt);
                    tracing::warn!(
                        operation = what,
                        attempt,
                        attempts = self.attempts,
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %err,
                        "Attempt failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn delays_double_from_the_first_delay_up_to_thirty_seconds() {
        let retry = Retry::new(10, 4000);
        assert_eq!(retry.delay(1), Duration::from_secs(4));
        assert_eq!(retry.delay(2), Duration::from_secs(8));
        assert_eq!(retry.delay(3), Duration::from_secs(16));
        assert_eq!(retry.delay(4), MAX_DELAY);
        assert_eq!(retry.delay(40), MAX_DELAY);
    }

    #[test]
    fn zero_attempts_still_tries_once() {
        assert_eq!(Retry::new(0, 1).attempts, 1);
    }

    #[tokio::test]
    async fn retryable_errors_are_tried_again_until_the_attempts_run_out() {
        let calls = Cell::new(0);
        let result: Result<(), String> = Retry::new(3, 0)
            .run(
                "test",
                |_| true,
                async |_| {
                    calls.set(calls.get() + 1);
                    Err("boom".to_owned())
                },
            )
            .await;
        assert_eq!(result, Err("boom".to_owned()));
        assert_eq!(calls.get(), 3);
    }

    #[tokio::test]
    async fn a_final_error_stops_at_once_and_a_success_ends_the_loop() {
        let calls = Cell::new(0);
        let final_error: Result<(), String> = Retry::new(3, 0)
            .run(
                "test",
                |_| false,
                async |_| {
                    calls.set(calls.get() + 1);
                    Err("final".to_owned())
                },
            )
            .await;
        assert_eq!(final_error, Err("final".to_owned()));
        assert_eq!(calls.get(), 1);

        let second: Result<u32, String> = Retry::new(3, 0)
            .run(
                "test",
                |_| true,
                async |n| if n < 2 { Err("again".into()) } else { Ok(n) },
            )
            .await;
        assert_eq!(second, Ok(2));
    }
}
