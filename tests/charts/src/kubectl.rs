//! kubectl of the pinned Kubernetes version.

use std::path::Path;

use crate::{Error, Output};

/// Runs kubectl with `kubeconfig` and `args`, feeding `stdin` when given.
pub fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<Output, Error> {
    let out = kaito_testenv::kubectl(kubeconfig, args, stdin)?;
    Ok(Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Applies `yaml` and waits until each of `crds` (`crd/<name>`) is established, so objects of
/// their kinds can be created next.
pub fn apply_and_establish(kubeconfig: &Path, yaml: &str, crds: &[&str]) -> Result<(), Error> {
    kubectl(kubeconfig, &["apply", "-f", "-"], Some(yaml))?.ok("kubectl apply")?;
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    wait.extend_from_slice(crds);
    kubectl(kubeconfig, &wait, None)?.ok("kubectl wait")?;
    Ok(())
}
