//! The serving certificate: reads `tls.crt` + `tls.key` from the cert directory, hands them to rustls
//! through a resolver whose pair can be swapped while serving (new connections get the new pair, open
//! ones keep theirs), and watches the directory to reload. Does file I/O and runs the watcher task.
//!
//! Kubernetes updates a mounted Secret by writing a new timestamped directory and renaming a `..data`
//! symlink over the old one, so the directory is watched rather than the files. A pair that cannot be
//! read, parsed or matched is reported and the current one keeps serving.

use std::fs;
use std::hash::{DefaultHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::metrics::AdmissionMetrics;
use crate::certs::{TLS_CERT_FILE, TLS_KEY_FILE};
use crate::serve::Shutdown;

/// How long the directory must be quiet after a change before the pair is re-read.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest a stream of changes can delay a reload.
const MAX_SETTLE: Duration = Duration::from_secs(2);
/// How often the pair is re-read even without a change event, in case one was missed.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Why a certificate pair could not be loaded. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file is missing or unreadable.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no PEM certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The certificate file is not a PEM certificate chain.
    #[error("{} is not a PEM certificate chain: {message}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key file holds no private key that can be used.
    #[error("{} holds no usable PEM private key: {message}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the key itself).
        message: String,
    },
    /// The key does not belong to the certificate.
    #[error("the key in {} does not belong to the certificate in {}: {message}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls found.
        message: String,
    },
}

/// A rustls certificate resolver serving one swappable certificate pair.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    /// A resolver serving `initial`.
    pub fn new(initial: Arc<CertifiedKey>) -> Self {
        CertResolver {
            current: ArcSwap::new(initial),
        }
    }

    /// The pair new connections are given.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    fn replace(&self, pair: Arc<CertifiedKey>) {
        self.current.store(pair);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// What one reload attempt did.
#[derive(Debug)]
pub enum Reload {
    /// The files are as last seen; nothing was swapped.
    Unchanged,
    /// A new pair was loaded and is served to new connections.
    Reloaded,
    /// The new files could not be used; the current pair keeps serving.
    Failed(CertError),
}

/// Re-reads the pair in a cert directory and swaps it into a [`CertResolver`] when it changed.
#[derive(Debug)]
pub struct CertReloader {
    dir: PathBuf,
    provider: Arc<CryptoProvider>,
    resolver: Arc<CertResolver>,
    seen: u64,
}

impl CertReloader {
    /// Loads the pair in `dir`; fails when it cannot be used, so a server never starts without one.
    pub fn start(dir: &Path, provider: Arc<CryptoProvider>) -> Result<Self, CertError> {
        let files = read_pair(dir)?;
        let pair = files.parse(&provider)?;
        Ok(CertReloader {
            dir: dir.to_path_buf(),
            provider,
            resolver: Arc::new(CertResolver::new(Arc::new(pair))),
            seen: files.fingerprint(),
        })
    }

    /// The resolver this reloader updates.
    pub fn resolver(&self) -> Arc<CertResolver> {
        Arc::clone(&self.resolver)
    }

    /// The directory being read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads the pair; swaps it in when the files changed and are valid.
    pub fn reload(&mut self) -> Reload {
        let files = match read_pair(&self.dir) {
            Ok(files) => files,
            Err(e) => return Reload::Failed(e),
        };
        let fingerprint = files.fingerprint();
        if fingerprint == self.seen {
            return Reload::Unchanged;
        }
        self.seen = fingerprint;
        match files.parse(&self.provider) {
            Ok(pair) => {
                self.resolver.replace(Arc::new(pair));
                Reload::Reloaded
            }
            Err(e) => Reload::Failed(e),
        }
    }
}

/// A cert directory being watched: changes are queued from the moment it is created (before the
/// first load, so none is missed), and acted on once [`CertWatch::spawn`] runs.
#[derive(Debug)]
pub struct CertWatch {
    reloader: CertReloader,
    events: mpsc::UnboundedReceiver<()>,
    watcher: Option<RecommendedWatcher>,
}

impl CertWatch {
    /// Starts watching `dir`, then loads its pair; fails when the pair cannot be used. When the
    /// directory cannot be watched, a warning is logged and only the periodic re-check will run.
    pub fn start(dir: &Path, provider: Arc<CryptoProvider>) -> Result<Self, CertError> {
        let (sender, events) = mpsc::unbounded_channel();
        let watcher = watch_directory(dir, sender);
        let reloader = CertReloader::start(dir, provider)?;
        Ok(CertWatch {
            reloader,
            events,
            watcher,
        })
    }

    /// The resolver kept up to date.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.reloader.resolver()
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        self.reloader.dir()
    }

    /// Reloads until `shutdown` is cancelled: after every change in the directory (once it has been
    /// quiet for [`DEBOUNCE`]) and every [`RECHECK_INTERVAL`]. Each attempt to load a changed pair is
    /// counted in `metrics`.
    pub fn spawn(self, metrics: AdmissionMetrics, shutdown: Shutdown) -> JoinHandle<()> {
        let CertWatch {
            mut reloader,
            mut events,
            watcher,
        } = self;
        tokio::spawn(async move {
            let _keep_watching = watcher;
            let mut recheck =
                tokio::time::interval_at(Instant::now() + RECHECK_INTERVAL, RECHECK_INTERVAL);
            recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    Some(()) = events.recv() => settle(&mut events).await,
                    _ = recheck.tick() => {}
                }
                let outcome = reloader.reload();
                report(reloader.dir(), &metrics, outcome);
            }
        })
    }
}

fn watch_directory(dir: &Path, sender: mpsc::UnboundedSender<()>) -> Option<RecommendedWatcher> {
    let handler = move |event: notify::Result<Event>| {
        let relevant = match &event {
            Ok(event) => is_change(&event.kind),
            Err(_) => true,
        };
        if relevant {
            let _closed = sender.send(());
        }
    };
    let watched = notify::recommended_watcher(handler).and_then(|mut watcher| {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    match watched {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "cannot watch the certificate directory; re-reading it every {} s instead",
                RECHECK_INTERVAL.as_secs()
            );
            None
        }
    }
}

/// Whether an event may mean new files: anything but opening, reading or closing without writing
/// (which the reloader's own reads cause).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Waits until no event arrived for [`DEBOUNCE`] (at most [`MAX_SETTLE`]).
async fn settle(events: &mut mpsc::UnboundedReceiver<()>) {
    let deadline = Instant::now() + MAX_SETTLE;
    loop {
        let quiet_until = (Instant::now() + DEBOUNCE).min(deadline);
        match tokio::time::timeout_at(quiet_until, events.recv()).await {
            Ok(Some(())) if Instant::now() < deadline => {}
            _ => return,
        }
    }
}

fn report(dir: &Path, metrics: &AdmissionMetrics, outcome: Reload) {
    match outcome {
        Reload::Unchanged => tracing::debug!(dir = %dir.display(), "serving certificate unchanged"),
        Reload::Reloaded => {
            metrics.observe_reload(true);
            tracing::info!(dir = %dir.display(), "reloaded the serving certificate");
        }
        Reload::Failed(e) => {
            metrics.observe_reload(false);
            tracing::warn!(error = %e, "keeping the current serving certificate");
        }
    }
}

/// The two files of a pair as read from disk.
struct PairFiles {
    cert_path: PathBuf,
    key_path: PathBuf,
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn read_pair(dir: &Path) -> Result<PairFiles, CertError> {
    let read = |path: PathBuf| match fs::read(&path) {
        Ok(bytes) => Ok((path, bytes)),
        Err(source) => Err(CertError::Read { path, source }),
    };
    let (cert_path, cert) = read(dir.join(TLS_CERT_FILE))?;
    let (key_path, key) = read(dir.join(TLS_KEY_FILE))?;
    Ok(PairFiles {
        cert_path,
        key_path,
        cert,
        key,
    })
}

impl PairFiles {
    /// A digest of both files, to tell whether they changed without keeping the key around.
    fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        hasher.write(&self.cert);
        hasher.write_u8(0);
        hasher.write(&self.key);
        hasher.finish()
    }

    fn parse(&self, provider: &CryptoProvider) -> Result<CertifiedKey, CertError> {
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertError::BadCertificate {
                path: self.cert_path.clone(),
                message: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(CertError::NoCertificate {
                path: self.cert_path.clone(),
            });
        }
        let bad_key = |message: String| CertError::BadKey {
            path: self.key_path.clone(),
            message,
        };
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .map_err(|e| bad_key(describe_key_error(&e)))?;
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| bad_key(e.to_string()))?;
        let pair = CertifiedKey::new(chain, signing_key);
        pair.keys_match().map_err(|e| CertError::Mismatch {
            cert: self.cert_path.clone(),
            key: self.key_path.clone(),
            message: e.to_string(),
        })?;
        Ok(pair)
    }
}

/// Names a PEM problem in a key file without quoting any of the file.
fn describe_key_error(error: &pem::Error) -> String {
    match error {
        pem::Error::NoItemsFound => "no private key section found".to_owned(),
        _ => "malformed PEM".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::write_certs;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn leaf(resolver: &CertResolver) -> Vec<u8> {
        resolver.current().cert[0].to_vec()
    }

    fn file_leaf(dir: &Path) -> Vec<u8> {
        CertificateDer::from_pem_file(dir.join(TLS_CERT_FILE))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn reload_swaps_a_new_valid_pair_and_reports_unchanged_files() {
        let dir = tempfile::tempdir().unwrap();
        write_certs(dir.path(), &["localhost".to_owned()]).unwrap();
        let mut reloader = CertReloader::start(dir.path(), provider()).unwrap();
        let resolver = reloader.resolver();
        let first = leaf(&resolver);
        assert_eq!(first, file_leaf(dir.path()));
        assert!(matches!(reloader.reload(), Reload::Unchanged));

        write_certs(dir.path(), &["localhost".to_owned()]).unwrap();
        assert!(matches!(reloader.reload(), Reload::Reloaded));
        assert_ne!(leaf(&resolver), first);
        assert_eq!(leaf(&resolver), file_leaf(dir.path()));
    }

    #[test]
    fn bad_new_files_keep_the_current_pair() {
        let dir = tempfile::tempdir().unwrap();
        write_certs(dir.path(), &["localhost".to_owned()]).unwrap();
        let mut reloader = CertReloader::start(dir.path(), provider()).unwrap();
        let resolver = reloader.resolver();
        let serving = leaf(&resolver);

        let other = tempfile::tempdir().unwrap();
        write_certs(other.path(), &["localhost".to_owned()]).unwrap();
        fs::copy(
            other.path().join(TLS_KEY_FILE),
            dir.path().join(TLS_KEY_FILE),
        )
        .unwrap();
        assert!(matches!(
            reloader.reload(),
            Reload::Failed(CertError::Mismatch { .. })
        ));

        fs::write(dir.path().join(TLS_CERT_FILE), "garbage").unwrap();
        assert!(matches!(
            reloader.reload(),
            Reload::Failed(CertError::NoCertificate { .. })
        ));

        fs::write(
            dir.path().join(TLS_KEY_FILE),
            "-----BEGIN PRIVATE KEY-----\n!!\n",
        )
        .unwrap();
        fs::copy(
            other.path().join(TLS_CERT_FILE),
            dir.path().join(TLS_CERT_FILE),
        )
        .unwrap();
        let failed = reloader.reload();
        assert!(
            matches!(failed, Reload::Failed(CertError::BadKey { .. })),
            "{failed:?}"
        );

        fs::remove_file(dir.path().join(TLS_KEY_FILE)).unwrap();
        assert!(matches!(
            reloader.reload(),
            Reload::Failed(CertError::Read { .. })
        ));
        assert_eq!(leaf(&resolver), serving);

        fs::copy(
            other.path().join(TLS_KEY_FILE),
            dir.path().join(TLS_KEY_FILE),
        )
        .unwrap();
        assert!(matches!(reloader.reload(), Reload::Reloaded));
        assert_eq!(leaf(&resolver), file_leaf(other.path()));
    }

    #[test]
    fn start_refuses_a_directory_without_a_usable_pair() {
        let dir = tempfile::tempdir().unwrap();
        let err = CertReloader::start(dir.path(), provider()).unwrap_err();
        assert!(err.to_string().contains("tls.crt"), "{err}");
    }

    #[test]
    fn key_errors_never_quote_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_certs(dir.path(), &["localhost".to_owned()]).unwrap();
        for key in [
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n",
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldA==\n-----END PRIVATE KEY-----\n",
        ] {
            let files = PairFiles {
                cert_path: written.cert.clone(),
                key_path: written.key.clone(),
                cert: fs::read(&written.cert).unwrap(),
                key: key.as_bytes().to_vec(),
            };
            let err = files.parse(&provider()).err().map(|e| e.to_string());
            let err = err.unwrap_or_default();
            assert!(err.contains("tls.key"), "{err}");
            assert!(!err.contains("c2VjcmV0"), "{err}");
        }
    }

    #[test]
    fn own_reads_are_not_changes_but_writes_and_renames_are() {
        use notify::event::{CreateKind, ModifyKind, RenameMode};
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
    }
}
