//! What the out-of-process benchmarks share to run a server and its loader apart: pinning a thread
//! to one CPU (`sched_setaffinity`) and finding a free port on 127.0.0.1 (binds and releases it).

use std::net::{SocketAddr, TcpListener};

use anyhow::Context;

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
