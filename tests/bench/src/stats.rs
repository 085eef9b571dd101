//! Order statistics of latency samples: median and nearest-rank percentiles.

use std::time::Duration;

use serde::Serialize;

/// The distribution of one latency over a set of Workspaces, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Samples the figures are taken over.
    pub count: usize,
    /// Middle sample (mean of the two middle ones for an even count).
    pub median_ms: Option<f64>,
    /// Nearest-rank 99th percentile: the smallest sample at or above 99 % of them.
    pub p99_ms: Option<f64>,
    /// Largest sample.
    pub max_ms: Option<f64>,
}

impl Summary {
    /// Summarises durations.
    pub fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        Summary {
            count: ms.len(),
            median_ms: median(&ms),
            p99_ms: percentile(&ms, 99.0),
            max_ms: ms.last().copied(),
        }
    }
}

/// The median of sorted samples.
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The nearest-rank `p`-th percentile (0 < p <= 100) of sorted samples: the value at rank
/// ceil(p/100 * n), so p99 of fewer than 100 samples is their maximum.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_count_is_the_middle_sample() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), Some(2.0));
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), Some(3.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn p99_of_two_hundred_samples_is_the_one_hundred_ninety_eighth() {
        let sorted: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 99.0), Some(198.0));
        assert_eq!(percentile(&sorted, 50.0), Some(100.0));
        assert_eq!(percentile(&sorted, 100.0), Some(200.0));
    }

    #[test]
    fn p99_of_fewer_than_a_hundred_samples_is_the_maximum() {
        assert_eq!(percentile(&[3.0, 5.0, 8.0], 99.0), Some(8.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 99.0), None);
        assert_eq!(percentile(&[1.0], 0.0), None);
    }

    #[test]
    fn a_summary_sorts_its_samples_and_reports_milliseconds() {
        let samples = [300, 100, 200].map(Duration::from_millis);
        let s = Summary::of(&samples);
        assert_eq!(s.count, 3);
        assert_eq!(s.median_ms, Some(200.0));
        assert_eq!(s.p99_ms, Some(300.0));
        assert_eq!(s.max_ms, Some(300.0));
        assert_eq!(Summary::of(&[]).median_ms, None);
    }
}
