//! moto server: a real IAM/STS endpoint on 127.0.0.1 with AWS's managed policies loaded. Starts a process.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::StackError;
use crate::process::ManagedProcess;
use crate::tools::Tools;
use crate::wait::{self, free_port};

/// A running moto server.
pub struct Moto {
    process: ManagedProcess,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers.
    pub fn start(tools: &Tools, dir: &Path) -> Result<Moto, StackError> {
        let port = free_port()?;
        Self::start_on(tools, dir, port)
    }

    /// Starts moto on `port` (used to bring it back on the same address after a stop).
    pub fn start_on(tools: &Tools, dir: &Path, port: u16) -> Result<Moto, StackError> {
        let mut command = Command::new(&tools.moto_server);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true");
        let mut process = ManagedProcess::spawn("moto", command, dir)?;
        wait::until("moto server", Duration::from_secs(60), || {
            process.ensure_running()?;
            Ok(wait::http_get_status(port, "/moto-api/").is_some())
        })?;
        Ok(Moto { process, port })
    }

    /// The endpoint URL to give an AWSProvider.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last lines of moto's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}
