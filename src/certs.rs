//! `infra-operator certs`: a self-signed CA and a serving certificate signed by it, for local use and
//! tests. Writes four PEM files (keys readable by their owner only), and reads the CA back as a
//! client's trust roots; nothing else does I/O here.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// File name of the CA certificate (what clients trust, e.g. a webhook configuration's `caBundle`).
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA's private key.
pub const CA_KEY_FILE: &str = "ca.key";
/// File name of the serving certificate, as the webhook reads it.
pub const TLS_CERT_FILE: &str = "tls.crt";
/// File name of the serving certificate's private key, as the webhook reads it.
pub const TLS_KEY_FILE: &str = "tls.key";

/// Start of the CA's common name; the rest tells one generated CA from another.
const CA_COMMON_NAME: &str = "infra-operator local CA";
const PRIVATE_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;

/// Where [`write_certs`] put the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// The CA certificate (`ca.crt`).
    pub ca_cert: PathBuf,
    /// The CA private key (`ca.key`, mode 0600).
    pub ca_key: PathBuf,
    /// The serving certificate (`tls.crt`).
    pub cert: PathBuf,
    /// The serving private key (`tls.key`, mode 0600).
    pub key: PathBuf,
}

impl fmt::Display for CertFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {}, {}, {}",
            self.ca_cert.display(),
            self.ca_key.display(),
            self.cert.display(),
            self.key.display()
        )
    }
}

/// Why the certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// No host was given, so the serving certificate would be valid for nothing.
    #[error("no host given: the serving certificate needs at least one host name or IP address")]
    NoHosts,
    /// A host is neither an IP address nor a valid DNS name, or signing failed.
    #[error("cannot make the {what}: {source}")]
    Generate {
        /// Which certificate or key.
        what: &'static str,
        /// The generator's complaint.
        source: rcgen::Error,
    },
    /// A directory or file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A CA file holds no usable certificate.
    #[error("cannot trust the CA in {}: {reason}", path.display())]
    Trust {
        /// The CA file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Writes `ca.crt`, `ca.key`, `tls.crt` and `tls.key` into `dir` (created when missing): a new
/// self-signed CA and a serving certificate signed by it, valid for every host (IP addresses become IP
/// SANs, names DNS SANs). Existing files are replaced atomically.
pub fn write_certs(dir: &Path, hosts: &[String]) -> Result<CertFiles, CertsError> {
    let Some(first_host) = hosts.first() else {
        return Err(CertsError::NoHosts);
    };
    let generate = |what| move |source| CertsError::Generate { what, source };

    let ca_key = KeyPair::generate().map_err(generate("CA key"))?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_common_name(ca_key.public_key_raw()));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(generate("CA certificate"))?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let key = KeyPair::generate().map_err(generate("serving key"))?;
    let mut params =
        CertificateParams::new(hosts.to_vec()).map_err(generate("serving certificate"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, first_host.as_str());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generate("serving certificate"))?;

    fs::create_dir_all(dir).map_err(|source| CertsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let files = CertFiles {
        ca_cert: dir.join(CA_CERT_FILE),
        ca_key: dir.join(CA_KEY_FILE),
        cert: dir.join(TLS_CERT_FILE),
        key: dir.join(TLS_KEY_FILE),
    };
    write_atomically(&files.ca_cert, ca_cert.pem().as_bytes(), PUBLIC_MODE)?;
    write_atomically(
        &files.ca_key,
        ca_key.serialize_pem().as_bytes(),
        PRIVATE_MODE,
    )?;
    write_atomically(&files.key, key.serialize_pem().as_bytes(), PRIVATE_MODE)?;
    write_atomically(&files.cert, cert.pem().as_bytes(), PUBLIC_MODE)?;
    Ok(files)
}

/// The CA's common name, unique per key, so clients trusting several generated CAs (e.g. across a
/// rotation) can tell them apart.
/// The certificates of the CA file `ca` (as [`write_certs`] writes it) as a rustls client's trust
/// roots; an error when the file cannot be read, is not PEM or holds no certificate.
pub fn trust_roots(ca: &Path) -> Result<RootCertStore, CertsError> {
    let untrusted = |reason: String| CertsError::Trust {
        path: ca.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| untrusted(e.to_string()))? {
        let cert = cert.map_err(|e| untrusted(e.to_string()))?;
        roots.add(cert).map_err(|e| untrusted(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(untrusted("no certificate in it".to_owned()));
    }
    Ok(roots)
}

fn ca_common_name(public_key: &[u8]) -> String {
    let id: String = public_key
        .iter()
        .rev()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{CA_COMMON_NAME} {id}")
}

/// Writes `contents` to a temporary file next to `path` with `mode`, then renames it over `path`, so
/// a reader never sees a half-written file.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertsError> {
    let error = |source| CertsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.tmp"));
    match fs::remove_file(&temporary) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(error(e)),
        _ => {}
    }
    let written = create_with_mode(&temporary, mode)
        .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_all()))
        .and_then(|()| fs::rename(&temporary, path));
    if let Err(e) = written {
        let _cleanup = fs::remove_file(&temporary);
        return Err(error(e));
    }
    Ok(())
}

fn create_with_mode(path: &Path, mode: u32) -> io::Result<fs::File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|h| (*h).to_owned()).collect()
    }

    fn verifier(ca_pem: &Path) -> Arc<WebPkiServerVerifier> {
        let roots = trust_roots(ca_pem).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap()
    }

    #[test]
    fn a_ca_file_without_a_usable_certificate_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_certs(dir.path(), &hosts(&["127.0.0.1"])).unwrap();
        assert_eq!(trust_roots(&files.ca_cert).unwrap().len(), 1);
        let garbled = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        let not_a_certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        for (name, contents) in [
            ("empty.crt", ""),
            (
                "key-only.crt",
                fs::read_to_string(&files.ca_key).unwrap().as_str(),
            ),
            ("garbled.crt", garbled),
            ("not-a-certificate.crt", not_a_certificate),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, contents).unwrap();
            let error = trust_roots(&path).unwrap_err().to_string();
            assert!(error.contains(name), "{name}: {error}");
        }
        let missing = dir.path().join("missing.crt");
        assert!(matches!(
            trust_roots(&missing),
            Err(CertsError::Trust { .. })
        ));
    }

    #[test]
    fn serving_certificate_is_trusted_through_the_ca_for_every_host_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/certs");
        let files = write_certs(&out, &hosts(&["127.0.0.1", "localhost", "webhook.svc"])).unwrap();
        assert_eq!(files.cert, out.join("tls.crt"));
        let verifier = verifier(&files.ca_cert);
        let leaf = CertificateDer::from_pem_file(&files.cert).unwrap();
        let check = |name: &str| {
            let name = ServerName::try_from(name.to_owned()).unwrap();
            verifier.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        };
        assert!(check("127.0.0.1").is_ok());
        assert!(check("localhost").is_ok());
        assert!(check("webhook.svc").is_ok());
        assert!(check("other.example").is_err());
        assert!(check("127.0.0.2").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn private_keys_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = write_certs(dir.path(), &hosts(&["localhost"])).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.ca_key), 0o600);
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&files.cert), 0o644);
    }

    #[test]
    fn rewriting_replaces_the_pair_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_certs(dir.path(), &hosts(&["localhost"])).unwrap();
        let before = fs::read(&first.cert).unwrap();
        write_certs(dir.path(), &hosts(&["localhost"])).unwrap();
        assert_ne!(fs::read(&first.cert).unwrap(), before);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    }

    #[test]
    fn errors_name_the_path_or_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "not a directory").unwrap();
        let target = blocker.join("certs");
        let err = write_certs(&target, &hosts(&["localhost"])).unwrap_err();
        assert!(
            err.to_string().contains(&target.display().to_string()),
            "{err}"
        );
        assert!(matches!(
            write_certs(dir.path(), &[]),
            Err(CertsError::NoHosts)
        ));
        assert!(matches!(
            write_certs(dir.path(), &hosts(&["hőst.example"])),
            Err(CertsError::Generate { .. })
        ));
    }
}
