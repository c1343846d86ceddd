//! Serves a given number of new TLS connections with the webhook's rustls configuration
//! (`admission::server::server_config`, the ring provider, a certificate of `certs::write_certs`),
//! each as the API server's webhook client makes one: a full TLS 1.3 handshake with ALPN
//! `http/1.1` and no session resumption, a byte each way, and the close. The clients run in a child
//! process (this executable again, with [`CLIENT_FLAG`]), which `valgrind --tool=callgrind` does
//! not follow: run under it twice, with 0 and with N connections (`make bench-instructions`), the
//! difference over N is the instructions one new connection's TLS costs the webhook.
//!
//! Usage: `handshake_instructions <connections>`. Writes the certificates into a temporary
//! directory; network on 127.0.0.1 only; runs itself as the client.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{self, Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;
use std::{env, io, thread};

use infra_operator::admission::server::server_config;
use infra_operator::admission::tls::CertReloader;
use infra_operator::certs::{trust_roots, write_certs};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};

/// The argument that makes this executable the clients: `--client ADDR CONNECTIONS CA_FILE`.
const CLIENT_FLAG: &str = "--client";
/// Longest wait for the other side of a connection to read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [flag, addr, connections, ca] if flag == CLIENT_FLAG => {
            match (addr.parse(), connections.parse()) {
                (Ok(addr), Ok(connections)) => connect(addr, connections, Path::new(ca)),
                _ => Err(io::Error::other("unreadable client arguments")),
            }
        }
        [connections] => match connections.parse() {
            Ok(connections) => serve(connections),
            Err(_) => Err(io::Error::other("the count of connections is not a number")),
        },
        _ => Err(io::Error::other(
            "usage: handshake_instructions <connections>",
        )),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("handshake_instructions: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves `connections` new connections from a child process, one after another.
fn serve(connections: u64) -> io::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = write_certs(dir.path(), &["127.0.0.1".to_owned()]).map_err(io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certificates =
        CertReloader::start(dir.path(), Arc::clone(&provider)).map_err(io::Error::other)?;
    let config = server_config(provider, certificates.resolver()).map_err(io::Error::other)?;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let clients = Command::new(env::current_exe()?)
        .arg(CLIENT_FLAG)
        .arg(listener.local_addr()?.to_string())
        .arg(connections.to_string())
        .arg(&files.ca_cert)
        .stdin(Stdio::null())
        .spawn()?;
    // Clients that fail would leave this side waiting in `accept`: their end ends the run.
    let watcher = thread::spawn(move || watch(clients));
    for _ in 0..connections {
        let (tcp, _) = listener.accept()?;
        answer_one(&config, tcp)?;
    }
    watcher
        .join()
        .map_err(|_| io::Error::other("the clients' watcher panicked"))??;
    println!("{connections} connections served");
    Ok(())
}

/// Waits for the clients to end; ends the whole process when they failed.
fn watch(mut clients: Child) -> io::Result<()> {
    let status = clients.wait()?;
    if !status.success() {
        eprintln!("handshake_instructions: the clients failed: {status}");
        process::exit(1);
    }
    Ok(())
}

/// The server's side of one connection: handshake, a byte in, a byte out, close.
fn answer_one(config: &Arc<ServerConfig>, tcp: TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let session = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(session, tcp);
    let mut byte = [0];
    stream.read_exact(&mut byte)?;
    stream.write_all(&byte)?;
    stream.conn.send_close_notify();
    stream.flush()?;
    Ok(())
}

/// The clients: `connections` new connections to `addr`, one after another, trusting `ca` only.
fn connect(addr: SocketAddr, connections: u64, ca: &Path) -> io::Result<()> {
    let roots = trust_roots(ca).map_err(io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = Resumption::disabled();
    let config = Arc::new(config);
    for _ in 0..connections {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        let name = ServerName::IpAddress(addr.ip().into());
        let session = ClientConnection::new(Arc::clone(&config), name).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(session, tcp);
        stream.write_all(b"?")?;
        let mut byte = [0];
        stream.read_exact(&mut byte)?;
        // Wait for the server's close so that every connection is served before the next starts.
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e),
        }
        stream.sock.shutdown(Shutdown::Both)?;
    }
    Ok(())
}
