//! Reconcile counts read from a controller's Prometheus endpoint, to tell how many times each
//! Workspace was reconciled.

use std::{collections::BTreeMap, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reconciles and reconcile errors (by category) a controller reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reconciles {
    /// Every reconcile, whatever its result.
    pub total: f64,
    /// Failed reconciles by error category.
    pub errors: BTreeMap<String, f64>,
}

impl Reconciles {
    /// The reconciles between `before` and this reading.
    pub fn since(&self, before: &Reconciles) -> Reconciles {
        let errors = self
            .errors
            .iter()
            .map(|(k, v)| (k.clone(), v - before.errors.get(k).copied().unwrap_or(0.0)))
            .filter(|(_, v)| *v > 0.0)
            .collect();
        Reconciles {
            total: self.total - before.total,
            errors,
        }
    }
}

/// Sums `*_reconciles_total` samples and collects `*_reconcile_errors_total` by category from
/// a text exposition.
pub fn parse(text: &str) -> Reconciles {
    let mut out = Reconciles::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or_default();
        if name.ends_with("_reconciles_total") {
            out.total += value;
        } else if name.ends_with("_reconcile_errors_total") {
            let category = label(series, "category").unwrap_or_default();
            *out.errors.entry(category).or_default() += value;
        }
    }
    out
}

fn label(series: &str, key: &str) -> Option<String> {
    let start = series.find(&format!("{key}=\""))? + key.len() + 2;
    let rest = &series[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// Reads `/metrics` of a controller's admin port on 127.0.0.1.
pub async fn scrape(port: u16) -> std::io::Result<Reconciles> {
    let read = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| std::io::Error::other("the metrics endpoint did not answer"))??;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(parse(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_summed_over_results_and_errors_kept_by_category() {
        let text = "# HELP kaito_workspace_reconciles Reconciles\n\
            kaito_workspace_reconciles_total{controller=\"w\",result=\"success\"} 90\n\
            kaito_workspace_reconciles_total{controller=\"w\",result=\"error\"} 10\n\
            kaito_workspace_reconcile_errors_total{controller=\"w\",category=\"Conflict\"} 10\n\
            kaito_workspace_reconcile_duration_seconds_count{controller=\"w\"} 100\n";
        let r = parse(text);
        assert_eq!(r.total, 100.0);
        assert_eq!(r.errors.get("Conflict"), Some(&10.0));
        let before = Reconciles {
            total: 40.0,
            errors: BTreeMap::from([("Conflict".to_owned(), 10.0)]),
        };
        assert_eq!(
            r.since(&before),
            Reconciles {
                total: 60.0,
                errors: BTreeMap::new()
            }
        );
    }
}
