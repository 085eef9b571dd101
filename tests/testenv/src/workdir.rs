//! Temp dirs of clusters: one per cluster, kept when something failed, swept once the test
//! process that made it is gone.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process,
};

use tempfile::TempDir;

use crate::{Error, io_error};

/// Every cluster dir is `<temp>/kaito-testenv-<pid>-<random>`.
const PREFIX: &str = "kaito-testenv-";

/// A file whose presence keeps a dir from being swept: its logs explain a failure.
const KEEP_MARKER: &str = "KEPT-FOR-LOGS";

/// The temp dir of one cluster.
#[derive(Debug)]
pub(crate) struct WorkDir {
    dir: Option<TempDir>,
    path: PathBuf,
}

impl WorkDir {
    /// Sweeps leftovers of dead test processes, then makes a fresh dir for this process.
    pub(crate) fn create() -> Result<Self, Error> {
        let parent = env::temp_dir();
        sweep(&parent);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", process::id()))
            .tempdir_in(&parent)
            .map_err(io_error(format!(
                "creating a temp dir in {}",
                parent.display()
            )))?;
        Ok(Self {
            path: dir.path().to_path_buf(),
            dir: Some(dir),
        })
    }

    /// The dir's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the dir (and marks it so no later sweep removes it), for its logs.
    pub(crate) fn keep(&mut self) {
        if let Some(dir) = self.dir.take() {
            mark_kept(dir.path());
            let _ = dir.keep();
        }
    }
}

/// Marks a cluster dir so that no sweep removes it.
pub(crate) fn mark_kept(dir: &Path) {
    // Best effort: failing to mark only means the logs go with the next sweep.
    let _ = fs::write(dir.join(KEEP_MARKER), "logs of a failed test\n");
}

/// Removes the dirs of test processes that no longer run, unless they were kept for logs.
///
/// A dir outlives its process when the cluster was shared by a test binary (statics are never
/// dropped) or when the process was killed.
fn sweep(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        let path = entry.path();
        if !process_runs(pid) && !path.join(KEEP_MARKER).exists() {
            tracing::debug!(dir = %path.display(), "Removing a stale cluster dir");
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// The pid in a cluster dir's name.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, _random) = name.strip_prefix(PREFIX)?.split_once('-')?;
    pid.parse().ok()
}

fn process_runs(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_pid_is_read_from_the_dir_name() {
        assert_eq!(owner_pid("kaito-testenv-4242-Ab3x9"), Some(4242));
        assert_eq!(owner_pid("kaito-testenv-shared"), None);
        assert_eq!(owner_pid("other-4242-Ab3x9"), None);
    }

    #[test]
    fn dirs_of_dead_processes_are_swept_unless_kept() {
        let parent = tempfile::tempdir().unwrap();
        // Pids are below 2^22 on Linux, so this one never runs.
        let dead = parent.path().join("kaito-testenv-99999999-abc");
        let kept = parent.path().join("kaito-testenv-99999998-abc");
        let alive = parent
            .path()
            .join(format!("kaito-testenv-{}-abc", process::id()));
        for dir in [&dead, &kept, &alive] {
            fs::create_dir(dir).unwrap();
        }
        fs::write(kept.join(KEEP_MARKER), "").unwrap();
        sweep(parent.path());
        assert!(!dead.exists());
        assert!(kept.exists());
        assert!(alive.exists());
    }
}
