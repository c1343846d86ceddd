//! What the benchmarks that load the webhook from outside share: the `infra-operator webhook`
//! command line (committed default guardrails, quiet logs), pinning a thread to one CPU
//! (`sched_setaffinity`), finding a free port on 127.0.0.1 (binds and releases it), and a short
//! description of what a client's TLS session negotiated.

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;

/// `binary webhook` serving HTTPS on `https` with the certificate of `cert_dir` and its admin
/// endpoints on `admin`, with the committed default guardrails; stdout discarded.
pub fn webhook_command(
    binary: &OsStr,
    cert_dir: &Path,
    https: SocketAddr,
    admin: SocketAddr,
) -> Command {
    let guardrails = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/guardrails.yaml");
    let mut command = Command::new(binary);
    command
        .arg("webhook")
        .arg("--guardrails")
        .arg(&guardrails)
        .arg("--cert-dir")
        .arg(cert_dir)
        .arg("--bind")
        .arg(https.to_string())
        .arg("--admin-bind")
        .arg(admin.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    command
}

/// Pins the calling thread (and the threads and processes it starts later) to one CPU.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: the set is a plain bit mask initialised here; `sched_setaffinity` with pid 0 changes
    // only the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A free port on 127.0.0.1 (bound and released; a server binds it a moment later).
pub fn free_address() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    listener.local_addr().context("free port")
}

/// `version, cipher suite, key exchange group` of a client's TLS session.
pub fn describe_tls(session: &rustls::ClientConnection) -> String {
    format!(
        "{}, {}, {}",
        session
            .protocol_version()
            .map_or_else(|| "?".to_owned(), |v| format!("{v:?}")),
        session
            .negotiated_cipher_suite()
            .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite())),
        session
            .negotiated_key_exchange_group()
            .map_or_else(|| "?".to_owned(), |g| format!("{:?}", g.name())),
    )
}
