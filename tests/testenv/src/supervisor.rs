//! Processes a test or the demo runs beside a cluster (the controllers under test), with the
//! same guarantees as the cluster's own: logs in files, nothing left behind.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    Error,
    process::{Launcher, Process, stop_all},
};

/// Named child processes, each logging to `<log_dir>/<name>.log`, stopped (last started
/// first) when the supervisor is dropped and killed by the kernel if the test process dies.
#[derive(Debug)]
pub struct Supervisor {
    // The processes stop before the launcher thread ends (its exit would kill them).
    processes: Vec<Process>,
    launcher: Launcher,
    log_dir: PathBuf,
}

impl Supervisor {
    /// A supervisor writing logs under `log_dir` (created if missing).
    pub fn new(log_dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(log_dir)
            .map_err(crate::io_error(format!("creating {}", log_dir.display())))?;
        Ok(Self {
            processes: Vec::new(),
            launcher: Launcher::new()?,
            log_dir: log_dir.to_owned(),
        })
    }

    /// Starts `command` as `name`.
    pub fn spawn(&mut self, name: &str, command: Command) -> Result<(), Error> {
        let process = self.launcher.spawn(name, command, &self.log_dir)?;
        self.processes.push(process);
        Ok(())
    }

    /// Fails with the last log lines of the first process that has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        self.processes
            .iter_mut()
            .try_for_each(Process::check_running)
    }

    /// The process id of process `name`, for reading its figures under `/proc`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.processes
            .iter()
            .find(|process| process.name() == name)
            .map(Process::pid)
    }

    /// Where the logs are.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The log file of process `name`.
    pub fn log_of(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        stop_all(&mut self.processes);
    }
}
