//! The hostile mix against the real `infra-operator webhook` in a process of its own, pinned to
//! CPU 0, while this process (the loader, the probes and the held connections) runs pinned to
//! CPU 1: the webhook's latency and memory alone, without the loader's share of either. The
//! webhook uses the committed default guardrails (`--guardrails policies/guardrails.yaml`) and the
//! certificates of a temporary directory; it is stopped with SIGTERM at the end.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use infra_operator::certs::{trust_roots, write_certs};

use super::hostile_mix::{self, Measured, Worst};
use super::webhook_process::{free_address, pin_current_thread, webhook_command};
use super::{CLIENT_THREAD, Clients, Settings, Workload, runtime};

/// Longest wait for the webhook to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the two hostile-mix phases against a webhook process; fails on a wrong answer.
pub fn run(settings: &Settings, workload: Arc<Workload>) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        bail!(
            "the separate run needs 2 CPUs (one for the webhook, one for the loader); {cpus} here"
        );
    }
    // Before any other thread exists, so every thread of this process inherits it.
    pin_current_thread(1).context("pin the loader to CPU 1")?;
    let client_rt = runtime(CLIENT_THREAD, settings.client_threads)?;
    let certs = tempfile::tempdir().context("temporary directory")?;
    let files = write_certs(certs.path(), &["127.0.0.1".to_owned()]).context("certificates")?;
    let https = free_address()?;
    let admin = free_address()?;
    let mut webhook = start_webhook(certs.path(), https, admin)?;
    let outcome = (|| {
        wait_ready(admin, &mut webhook)?;
        let clients = Clients::new(https, &trust_roots(&files.ca_cert)?);
        let worst = Arc::new(Worst::new()?);
        let measured = Measured::Webhook(webhook.id());
        client_rt.block_on(hostile_mix::bench(
            settings.hostile_length,
            &clients,
            &workload,
            &worst,
            (admin, measured),
        ))
    })();
    stop(webhook)?;
    let wrong = outcome?;
    ensure!(
        wrong == 0,
        "{wrong} requests got a wrong answer (see the messages above)"
    );
    Ok(())
}

/// `infra-operator webhook` on `https` and `admin`, pinned to CPU 0.
fn start_webhook(cert_dir: &Path, https: SocketAddr, admin: SocketAddr) -> anyhow::Result<Child> {
    let binary = OsStr::new(env!("CARGO_BIN_EXE_infra-operator"));
    let mut command = webhook_command(binary, cert_dir, https, admin);
    command.stderr(Stdio::null());
    // SAFETY: between fork and exec only `sched_setaffinity` runs, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| pin_current_thread(0));
    }
    command.spawn().context("start infra-operator webhook")
}

/// Waits until the webhook's `/readyz` answers 200.
fn wait_ready(admin: SocketAddr, webhook: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = webhook.try_wait().context("webhook process")? {
            bail!("infra-operator webhook exited before it was ready: {status}");
        }
        if hostile_mix::get_ok(admin, "/readyz").is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("infra-operator webhook not ready within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, then wait for the process to end.
fn stop(mut webhook: Child) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(webhook.id()).context("pid")?;
    // SAFETY: `kill` takes no pointer; the pid is our own child's, not yet reaped.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    webhook.wait().context("wait for the webhook to stop")?;
    Ok(())
}
