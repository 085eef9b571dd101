//! Counting Kubernetes API requests at the API server, from its audit log: one request per
//! `auditID`, attributed to the authenticated user, by verb and resource.

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    path::PathBuf,
};

use serde::Deserialize;

/// The fields of an audit event a count needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "auditID")]
    audit_id: String,
    stage: String,
    verb: String,
    user: User,
    #[serde(rename = "requestURI", default)]
    request_uri: String,
    object_ref: Option<ObjectRef>,
}

#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Debug, Deserialize)]
struct ObjectRef {
    resource: Option<String>,
    subresource: Option<String>,
}

/// Requests per user, each broken down by `"<verb> <resource>[/<subresource>]"` (or the path,
/// for a non-resource request such as discovery).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// user → call → requests.
    pub by_user: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Tally {
    /// Every request of `user`.
    pub fn total(&self, user: &str) -> u64 {
        self.by_user
            .get(user)
            .map_or(0, |calls| calls.values().sum())
    }

    /// The calls of `user`, by count.
    pub fn calls(&self, user: &str) -> BTreeMap<String, u64> {
        self.by_user.get(user).cloned().unwrap_or_default()
    }

    /// Adds another tally to this one.
    pub fn add(&mut self, other: &Tally) {
        for (user, calls) in &other.by_user {
            let mine = self.by_user.entry(user.clone()).or_default();
            for (call, n) in calls {
                *mine.entry(call.clone()).or_default() += n;
            }
        }
    }
}

/// Turns audit lines into requests. With `RequestReceived` left out of the policy a request
/// is logged once when it completes; a watch is logged when its response starts and again
/// when it ends, under one `auditID`, and counts once, when it starts.
#[derive(Debug, Default)]
pub struct Counter {
    /// Watches (and other long requests) whose response started and has not ended yet.
    open: HashSet<String>,
}

impl Counter {
    /// Counts one audit line into `tally`; lines that are not events are skipped.
    pub fn count(&mut self, line: &[u8], tally: &mut Tally) {
        let Ok(event) = serde_json::from_slice::<Event>(line) else {
            return;
        };
        match event.stage.as_str() {
            "ResponseStarted" => {
                self.open.insert(event.audit_id.clone());
            }
            "ResponseComplete" | "Panic" => {
                if self.open.remove(&event.audit_id) {
                    return;
                }
            }
            _ => return,
        }
        let call = format!("{} {}", event.verb, target(&event));
        let user = tally.by_user.entry(event.user.username).or_default();
        *user.entry(call).or_default() += 1;
    }
}

/// `resource[/subresource]`, or the path of a non-resource request.
fn target(event: &Event) -> String {
    match event
        .object_ref
        .as_ref()
        .and_then(|o| o.resource.as_deref())
    {
        Some(resource) => match event
            .object_ref
            .as_ref()
            .and_then(|o| o.subresource.as_deref())
        {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_owned(),
        },
        None => event
            .request_uri
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Reads an audit log as it grows: each [`AuditLog::take`] counts the requests logged since
/// the previous one.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    offset: u64,
    counter: Counter,
}

impl AuditLog {
    /// Starts at the beginning of the file.
    pub fn new(path: PathBuf) -> Self {
        AuditLog {
            path,
            offset: 0,
            counter: Counter::default(),
        }
    }

    /// Counts the complete lines written since the last call.
    pub fn take(&mut self) -> io::Result<Tally> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        // A line still being written waits for the next call.
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut tally = Tally::default();
        for line in bytes[..complete].split(|b| *b == b'\n') {
            self.counter.count(line, &mut tally);
        }
        self.offset += complete as u64;
        Ok(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, stage: &str, user: &str, verb: &str, object: &str) -> String {
        serde_json::json!({
            "kind": "Event",
            "level": "Metadata",
            "auditID": id,
            "stage": stage,
            "requestURI": "/apis/x?watch=1",
            "verb": verb,
            "user": { "username": user, "groups": ["system:authenticated"] },
            "objectRef": serde_json::from_str::<serde_json::Value>(object).unwrap(),
            "responseStatus": { "code": 200 },
        })
        .to_string()
    }

    const MACHINES: &str = r#"{"resource":"machines","apiGroup":"karpenter.sh"}"#;
    const STATUS: &str = r#"{"resource":"workspaces","subresource":"status","name":"w"}"#;

    #[test]
    fn a_watch_counts_once_though_it_is_logged_when_it_starts_and_ends() {
        let mut counter = Counter::default();
        let mut tally = Tally::default();
        for l in [
            line("a", "ResponseStarted", "wc", "watch", MACHINES),
            line("b", "ResponseComplete", "wc", "create", MACHINES),
            line("a", "ResponseComplete", "wc", "watch", MACHINES),
        ] {
            counter.count(l.as_bytes(), &mut tally);
        }
        assert_eq!(tally.total("wc"), 2);
        assert_eq!(tally.calls("wc").get("watch machines"), Some(&1));
        assert_eq!(tally.calls("wc").get("create machines"), Some(&1));
    }

    #[test]
    fn requests_are_kept_apart_by_user_and_subresource() {
        let mut counter = Counter::default();
        let mut tally = Tally::default();
        for l in [
            line("1", "ResponseComplete", "wc", "patch", STATUS),
            line("2", "ResponseComplete", "wc", "patch", STATUS),
            line("3", "ResponseComplete", "gp", "get", "null"),
        ] {
            counter.count(l.as_bytes(), &mut tally);
        }
        assert_eq!(tally.calls("wc").get("patch workspaces/status"), Some(&2));
        assert_eq!(tally.calls("gp").get("get /apis/x"), Some(&1));
        assert_eq!(tally.total("nobody"), 0);
    }

    #[test]
    fn a_failed_request_logged_only_when_it_completes_still_counts() {
        let mut counter = Counter::default();
        let mut tally = Tally::default();
        counter.count(
            line("z", "Panic", "gp", "list", MACHINES).as_bytes(),
            &mut tally,
        );
        counter.count(b"not json", &mut tally);
        counter.count(b"", &mut tally);
        assert_eq!(tally.total("gp"), 1);
    }

    #[test]
    fn the_log_is_read_in_windows_and_a_watch_spanning_two_counts_in_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let first = format!(
            "{}\n{}\n",
            line("w", "ResponseStarted", "wc", "watch", MACHINES),
            line("c", "ResponseComplete", "wc", "create", MACHINES)
        );
        std::fs::write(&path, &first).unwrap();
        let mut log = AuditLog::new(path.clone());
        assert_eq!(log.take().unwrap().total("wc"), 2);

        // The watch ends in the second window; half a line waits for the third.
        let second = line("w", "ResponseComplete", "wc", "watch", MACHINES);
        let third = line("d", "ResponseComplete", "wc", "delete", MACHINES);
        let (head, tail) = third.split_at(20);
        std::fs::write(&path, format!("{first}{second}\n{head}")).unwrap();
        assert_eq!(log.take().unwrap().total("wc"), 0);
        std::fs::write(&path, format!("{first}{second}\n{head}{tail}\n")).unwrap();
        let mut sum = log.take().unwrap();
        assert_eq!(sum.calls("wc").get("delete machines"), Some(&1));
        sum.add(&sum.clone());
        assert_eq!(sum.total("wc"), 2);
    }
}
