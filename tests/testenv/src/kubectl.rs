//! kubectl of the pinned Kubernetes version, run against a cluster's kubeconfig.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use crate::{Error, io_error, tools};

/// Runs kubectl with `kubeconfig` and `args`, feeding `stdin` when given, and returns what it
/// printed and how it exited.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<Output, Error> {
    let what = format!("running kubectl {}", args.join(" "));
    let mut child = Command::new(tools()?.kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_error(what.clone()))?;
    // Dropping the pipe after writing closes kubectl's stdin.
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes())
            .map_err(io_error(what.clone()))?;
    }
    child.wait_with_output().map_err(io_error(what))
}
