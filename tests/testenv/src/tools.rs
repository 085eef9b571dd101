//! Paths of the pinned Go-built binaries that `scripts/tools.sh` puts in the tools cache.

use std::{
    env,
    path::{Path, PathBuf},
};

use crate::Error;

/// The pinned versions, shared with `scripts/tools.sh` so they have one source of truth.
const VERSIONS_ENV: &str = include_str!("../../../scripts/versions.env");

/// Resolved paths of every binary the tests and the demo run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tools {
    /// The directory the tools script builds into.
    pub cache_dir: PathBuf,
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub kube_controller_manager: PathBuf,
    /// `kube-scheduler`.
    pub kube_scheduler: PathBuf,
    /// `kubectl` of the same Kubernetes version as the control plane.
    pub kubectl: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kwok`, the simulated kubelet.
    pub kwok: PathBuf,
    /// `helm`.
    pub helm: PathBuf,
    /// `registry`, an OCI registry from the distribution project.
    pub registry: PathBuf,
}

/// Resolves every tool path and fails with a hint to run `make tools` when one is missing.
pub fn tools() -> Result<Tools, Error> {
    Tools::resolve()?.check()
}

impl Tools {
    /// Resolves the paths without checking that the binaries exist.
    pub fn resolve() -> Result<Self, Error> {
        Self::in_cache(cache_dir()?)
    }

    fn in_cache(cache_dir: PathBuf) -> Result<Self, Error> {
        let dir = |name: &str, key: &str| -> Result<PathBuf, Error> {
            Ok(cache_dir.join(format!("{name}-{}", version(key)?)))
        };
        let kubernetes = dir("kubernetes", "KUBERNETES_VERSION")?;
        Ok(Self {
            kube_apiserver: kubernetes.join("kube-apiserver"),
            kube_controller_manager: kubernetes.join("kube-controller-manager"),
            kube_scheduler: kubernetes.join("kube-scheduler"),
            kubectl: kubernetes.join("kubectl"),
            etcd: dir("etcd", "ETCD_VERSION")?.join("etcd"),
            kwok: dir("kwok", "KWOK_VERSION")?.join("kwok"),
            helm: dir("helm", "HELM_VERSION")?.join("helm"),
            registry: dir("distribution", "DISTRIBUTION_VERSION")?.join("registry"),
            cache_dir,
        })
    }

    /// Fails naming the first binary that is not there.
    pub fn check(self) -> Result<Self, Error> {
        let missing = self.binaries().into_iter().find(|path| !path.is_file());
        match missing.map(Path::to_path_buf) {
            Some(missing) => Err(Error::MissingTool(missing)),
            None => Ok(self),
        }
    }

    /// Every binary path, in a fixed order.
    pub fn binaries(&self) -> [&Path; 8] {
        [
            &self.kube_apiserver,
            &self.kube_controller_manager,
            &self.kube_scheduler,
            &self.kubectl,
            &self.etcd,
            &self.kwok,
            &self.helm,
            &self.registry,
        ]
    }
}

/// The pinned version of a tool, e.g. `version("KUBERNETES_VERSION")` is `v1.36.3`.
pub fn version(key: &str) -> Result<&'static str, Error> {
    parse_version(VERSIONS_ENV, key).ok_or_else(|| Error::MissingVersion(key.to_owned()))
}

fn parse_version<'a>(env_file: &'a str, key: &str) -> Option<&'a str> {
    env_file
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .find(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim().trim_matches('"'))
}

/// The tools cache, resolved exactly like the script:
/// `${KAITO_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kaito-rs/tools}`.
pub fn cache_dir() -> Result<PathBuf, Error> {
    // Like `${VAR:-default}` in the shell, a set but empty variable counts as unset.
    let non_empty = |name: &str| env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty("KAITO_TOOLS_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    let cache_home = match non_empty("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env::var_os("HOME").ok_or(Error::NoHome)?).join(".cache"),
    };
    Ok(cache_home.join("kaito-rs").join("tools"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pinned_tool_has_a_version() {
        for key in [
            "KUBERNETES_VERSION",
            "ETCD_VERSION",
            "KWOK_VERSION",
            "HELM_VERSION",
            "DISTRIBUTION_VERSION",
        ] {
            assert!(version(key).unwrap().starts_with('v'), "{key}");
        }
    }

    #[test]
    fn comments_and_unknown_keys_are_not_versions() {
        let file = "# KWOK_VERSION=v0\nKWOK_VERSION=v0.8.0\n";
        assert_eq!(parse_version(file, "KWOK_VERSION"), Some("v0.8.0"));
        assert_eq!(parse_version(file, "HELM_VERSION"), None);
    }

    #[test]
    fn a_missing_binary_is_named_with_the_command_that_builds_it() {
        let empty = tempfile::tempdir().unwrap();
        let error = Tools::in_cache(empty.path().to_path_buf())
            .unwrap()
            .check()
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("kube-apiserver") && message.contains("make tools"),
            "{message}"
        );
    }

    #[test]
    fn tool_paths_are_keyed_by_version() {
        let tools = Tools::resolve().unwrap();
        let kubernetes = format!("kubernetes-{}", version("KUBERNETES_VERSION").unwrap());
        assert!(tools.kubectl.parent().unwrap().ends_with(kubernetes));
        assert!(tools.registry.ends_with("registry"));
    }
}
