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
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::{env, io};

use infra_operator::admission::server::server_config;
use infra_operator::admission::tls::CertReloader;
use infra_operator::certs::write_certs;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, StreamOwned};

/// The argument that makes this executable the clients: `--client ADDR CONNECTIONS CA_FILE`.
const CLIENT_FLAG: &str = "--client";

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
    let mut clients = Command::new(env::current_exe()?)
        .arg(CLIENT_FLAG)
        .arg(listener.local_addr()?.to_string())
        .arg(connections.to_string())
        .arg(&files.ca_cert)
        .stdin(Stdio::null())
        .spawn()?;
    for _ in 0..connections {
        let (tcp, _) = listener.accept()?;
        answer_one(&config, tcp)?;
    }
    let status = clients.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!("the clients failed: {status}")));
    }
    println!("{connections} connections served");
    Ok(())
}

/// The server's side of one connection: handshake, a byte in, a byte out, close.
fn answer_one(config: &Arc<ServerConfig>, tcp: TcpStream) -> io::Result<()> {
    tcp.set_nodelay(true)?;
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
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(io::Error::other)? {
        roots
            .add(cert.map_err(io::Error::other)?)
            .map_err(io::Error::other)?;
    }
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
