//! Child processes of a cluster: spawned from one long-lived thread, logged to files, stopped
//! with SIGTERM then SIGKILL.

use std::{
    fs::{self, File},
    io,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use rustix::process::{Pid, Signal, kill_process};

use crate::{Error, io_error};

/// How long stopped components get to exit after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How many trailing log lines an error about a failed component quotes.
const LOG_TAIL_LINES: usize = 30;

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns child processes from a dedicated thread that lives as long as the cluster.
///
/// Children ask the kernel for SIGKILL when their parent dies (PR_SET_PDEATHSIG), so a
/// killed test process leaves nothing behind. The kernel ties that signal to the *thread*
/// that forked the child, not to the process: spawning from a short-lived thread, such as a
/// worker of a test's runtime, would kill the components as soon as that thread ends.
#[derive(Debug)]
pub(crate) struct Launcher {
    requests: Option<mpsc::Sender<SpawnRequest>>,
    thread: Option<JoinHandle<()>>,
}

impl Launcher {
    /// Starts the spawning thread.
    pub(crate) fn new() -> Result<Self, Error> {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        let thread = thread::Builder::new()
            .name("kaito-testenv-launcher".to_owned())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    // The requester may have given up; the child is then dropped unwaited and
                    // still dies with this thread.
                    let _ = reply.send(command.spawn());
                }
            })
            .map_err(io_error("starting the launcher thread"))?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Spawns `command` as component `name`, its stdout and stderr going to `<log_dir>/<name>.log`.
    pub(crate) fn spawn(
        &self,
        name: &str,
        mut command: Command,
        log_dir: &Path,
    ) -> Result<Process, Error> {
        let log = log_dir.join(format!("{name}.log"));
        let stdout = File::create(&log).map_err(io_error(format!("creating {}", log.display())))?;
        let stderr = stdout
            .try_clone()
            .map_err(io_error(format!("opening {}", log.display())))?;
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        die_with_parent_thread(&mut command);

        let (reply, answer) = mpsc::channel();
        let spawn_failed = |source| Error::Spawn {
            component: name.to_owned(),
            source,
        };
        let requests = self.requests.as_ref().ok_or_else(launcher_gone)?;
        requests
            .send((command, reply))
            .map_err(|_| launcher_gone())?;
        let child = answer
            .recv()
            .map_err(|_| launcher_gone())?
            .map_err(spawn_failed)?;
        tracing::debug!(component = name, pid = child.id(), "Started component");
        Ok(Process {
            name: name.to_owned(),
            child,
            log,
            stopped: false,
        })
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn launcher_gone() -> Error {
    Error::Spawn {
        component: "launcher".to_owned(),
        source: io::Error::other("the launcher thread has stopped"),
    }
}

/// Asks the kernel to SIGKILL the child when the spawning thread ends.
// Unsafe because std offers no safe way to run code between fork and exec.
#[allow(unsafe_code)]
fn die_with_parent_thread(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec, where only async-signal-safe calls are
    // allowed; prctl is a plain system call and the closure allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A running component and the file its output goes to.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl Process {
    /// The component's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The operating system's id of the process.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the component's last log lines if it has exited.
    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status)),
            Err(source) => Err(Error::Spawn {
                component: self.name.clone(),
                source,
            }),
        }
    }

    /// Sends SIGTERM, waits up to the grace period, then kills and reaps the process.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        let started = Instant::now();
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            // The process may have exited already; the wait below reaps it either way.
            let _ = kill_process(pid, Signal::TERM);
        }
        while started.elapsed() < STOP_GRACE && matches!(self.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stopped = true;
        tracing::debug!(component = %self.name, "Stopped component");
    }

    fn exited(&self, status: ExitStatus) -> Error {
        Error::ComponentExited {
            component: self.name.clone(),
            status: status.to_string(),
            log: self.log.clone(),
            tail: log_tail(&self.log),
        }
    }
}

/// Stops every process, last started first: SIGTERM, a short grace period, then SIGKILL.
///
/// Clients go before the servers they use; the apiserver and etcd each shut down quickly
/// once nothing holds a watch on them.
pub(crate) fn stop_all(processes: &mut [Process]) {
    for process in processes.iter_mut().rev() {
        process.stop();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last lines of a log file, or a note that it could not be read.
pub(crate) fn log_tail(log: &Path) -> String {
    match fs::read_to_string(log) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(error) => format!("(could not read {}: {error})", log.display()),
    }
}

/// Distinct free TCP ports on 127.0.0.1.
///
/// Every listener is held until all ports are chosen so that one call never returns the same
/// port twice; another process may still take a port before a component binds it, which the
/// cluster start detects and retries.
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error("finding a free port"))?;
        *port = listener
            .local_addr()
            .map_err(io_error("finding a free port"))?
            .port();
        listeners.push(listener);
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports::<3>().unwrap();
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn a_stopped_process_is_reaped_and_an_exited_one_reports_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = Launcher::new().unwrap();
        let mut sleeper = Command::new("sleep");
        sleeper.arg("60");
        let mut sleeping = launcher.spawn("sleeper", sleeper, dir.path()).unwrap();
        sleeping.check_running().unwrap();
        sleeping.stop();

        let mut failing = Command::new("sh");
        failing.args(["-c", "echo broken; exit 3"]);
        let mut failed = launcher.spawn("failing", failing, dir.path()).unwrap();
        let error = loop {
            if let Err(error) = failed.check_running() {
                break error;
            }
            thread::sleep(Duration::from_millis(10));
        };
        assert!(error.to_string().contains("broken"), "{error}");
    }
}
