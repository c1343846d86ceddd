//! The two servers measured, each a child process: the real `infra-operator webhook` (committed
//! default guardrails, `--guardrails policies/guardrails.yaml`) and the floor (this executable with
//! `--serve-floor`), optionally pinned to one CPU. Starts them, waits until they serve, reads their
//! CPU time from `/proc/<pid>/stat` and stops them. Both die with this process (`PR_SET_PDEATHSIG`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs};

use anyhow::{Context, bail};

use super::corpus::Endpoint;
use super::floor::SERVE_FLAG;
use super::noise::CLOCK_TICKS;
use super::webhook_process::{free_address, pin_current_thread, webhook_command};

/// Longest wait for a server to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A server in a child process, serving HTTPS on `addr`.
pub struct Server {
    /// `webhook` or `floor`.
    pub name: &'static str,
    pub addr: SocketAddr,
    /// The endpoints whose answers are checked around the load.
    pub endpoints: &'static [Endpoint],
    child: Child,
}

impl Server {
    /// `infra-operator webhook` with the certificate of `cert_dir`, ready (its `/readyz` answers 200).
    /// `FLOOR_WEBHOOK_BIN` names another build of it to measure (an earlier one, say).
    pub fn webhook(cert_dir: &Path, cpu: Option<usize>) -> anyhow::Result<Server> {
        let addr = free_address()?;
        let admin = free_address()?;
        let binary = env::var_os("FLOOR_WEBHOOK_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_infra-operator").into());
        let mut command = webhook_command(&binary, cert_dir, addr, admin);
        let mut child = spawn(&mut command, cpu).context("start infra-operator webhook")?;
        let deadline = Instant::now() + START_TIMEOUT;
        while !ready(admin) {
            if let Some(status) = child.try_wait().context("webhook process")? {
                bail!("infra-operator webhook exited before it was ready: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("infra-operator webhook not ready within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Server {
            name: "webhook",
            addr,
            endpoints: &[Endpoint::Validate, Endpoint::Mutate],
            child,
        })
    }

    /// The floor with the certificate of `cert_dir`, listening (it prints its address once bound).
    pub fn floor(cert_dir: &Path, cpu: Option<usize>) -> anyhow::Result<Server> {
        let mut command = Command::new(env::current_exe().context("own path")?);
        command.arg(SERVE_FLAG).arg(cert_dir).stdout(Stdio::piped());
        let mut child = spawn(&mut command, cpu).context("start the floor")?;
        let stdout = child.stdout.take().context("floor stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("read the floor's address")?;
        let Ok(addr) = line.trim().parse() else {
            let _ = child.kill();
            let status = child.wait().context("floor process")?;
            bail!("the floor did not start ({status}; it printed {line:?})");
        };
        Ok(Server {
            name: "floor",
            addr,
            endpoints: &[Endpoint::Validate],
            child,
        })
    }

    /// User + system CPU time of the whole process so far, ended threads included.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        // Fields after the parenthesized command name start at field 3 (state); utime and stime
        // are fields 14 and 15.
        let rest = &stat[stat.rfind(')').context("stat format")? + 1..];
        let mut fields = rest.split_whitespace().skip(11);
        let mut ticks = 0;
        for _ in 0..2 {
            ticks += fields
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .context("stat format")?;
        }
        Ok(Duration::from_nanos(ticks * (1_000_000_000 / CLOCK_TICKS)))
    }

    /// Fails when the process has ended.
    pub fn alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            Some(status) => bail!("the {} exited during the run: {status}", self.name),
            None => Ok(()),
        }
    }

    /// SIGTERM, then waits for the process to end.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid")?;
        // SAFETY: `kill` takes no pointer; the pid is our own child's, not yet reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        self.child.wait().context("wait for the server to stop")?;
        Ok(())
    }
}

/// Starts `command`, pinned to `cpu` when one is given; the child is killed when this process dies.
pub fn spawn(command: &mut Command, cpu: Option<usize>) -> std::io::Result<Child> {
    // SAFETY: between fork and exec only `prctl` and `sched_setaffinity` run, both
    // async-signal-safe, on memory of their own.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            match cpu {
                Some(cpu) => pin_current_thread(cpu),
                None => Ok(()),
            }
        });
    }
    command.spawn()
}

/// Whether `GET /readyz` on the plain-HTTP admin address answers 200.
fn ready(admin: SocketAddr) -> bool {
    let answer = (|| -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        write!(
            stream,
            "GET /readyz HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })();
    answer.is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
}
