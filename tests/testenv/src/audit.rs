//! The apiserver's audit policy: every request at the Metadata level (who, what verb, which
//! resource; no bodies), so a test can count the requests each identity makes.

use std::{fs, path::Path};

use crate::{Error, io_error};

/// `RequestReceived` is left out: each request is then logged once when it completes, and a
/// watch once more when its response starts, under the same `auditID`.
const POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
";

/// Writes the policy for `--audit-policy-file`.
pub(crate) fn write_policy(path: &Path) -> Result<(), Error> {
    fs::write(path, POLICY).map_err(io_error(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_logs_metadata_once_per_stage_after_receipt() {
        let policy: serde_json::Value = yaml_serde::from_str(POLICY).unwrap();
        assert_eq!(policy["kind"], "Policy");
        assert_eq!(policy["omitStages"][0], "RequestReceived");
        assert_eq!(policy["rules"][0]["level"], "Metadata");
    }
}
