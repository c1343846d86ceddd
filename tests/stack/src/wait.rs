//! Bounded polling and free loopback ports. Does network I/O.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::StackError;

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, StackError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| StackError::io("bind a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| StackError::io("read a free port", e))?
        .port();
    Ok(port)
}

/// Polls `ready` every 100 ms until it returns true, failing after `timeout` with `what` in the error.
pub fn until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Result<bool, StackError>,
) -> Result<(), StackError> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StackError::Timeout(format!("{what} after {timeout:?}")));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The status code of a plain-HTTP GET to 127.0.0.1:`port``path`, `None` when nothing answers.
pub fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}
