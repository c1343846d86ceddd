//! Child processes of the stack: started with their output in a log file, killed with their parent
//! (PR_SET_PDEATHSIG) and stopped (SIGTERM, then SIGKILL) when dropped. Does process and file I/O.

use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::StackError;

/// A running child process whose output goes to `<dir>/<name>.log`.
pub struct ManagedProcess {
    name: String,
    child: Child,
    log: PathBuf,
}

impl ManagedProcess {
    /// Starts `command`, logging to `<log_dir>/<name>.log` (appended, so restarts keep earlier output).
    pub fn spawn(name: &str, mut command: Command, log_dir: &Path) -> Result<Self, StackError> {
        let log = log_dir.join(format!("{name}.log"));
        let file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| StackError::io(format!("open {}", log.display()), e))?;
        let err_file = file
            .try_clone()
            .map_err(|e| StackError::io("clone log handle", e))?;
        command.stdin(Stdio::null()).stdout(file).stderr(err_file);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| {
            StackError::io(format!("start {name} ({:?})", command.get_program()), e)
        })?;
        Ok(ManagedProcess {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// The process's name in logs and errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operating-system process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has exited.
    pub fn ensure_running(&mut self) -> Result<(), StackError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(StackError::Exited {
                name: self.name.clone(),
                status: status.to_string(),
                log_tail: self.log_tail(30),
            }),
            Ok(None) => Ok(()),
            Err(e) => Err(StackError::io(format!("wait for {}", self.name), e)),
        }
    }

    /// The last `lines` lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends a signal (e.g. `libc::SIGKILL`) without waiting.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for the exit.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}
