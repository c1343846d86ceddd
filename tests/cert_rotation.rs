//! Certificate rotation while serving: a Kubernetes-style `..data` symlink swap and files replaced in
//! place are picked up by new connections; unusable files keep the current certificate serving.

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

use infra_operator::certs::{CertFiles, write_certs};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use support::{
    Served, client_config, eventually, hosts, http_get, peer_certificate, sample, serve, serve_with,
};

const FAILED_RELOADS: &str =
    r#"infra_operator_webhook_certificate_reloads_total{result="failure"}"#;
const RELOADS: &str = r#"infra_operator_webhook_certificate_reloads_total{result="success"}"#;

fn leaf(cert_file: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(cert_file).unwrap().to_vec()
}

/// A client trusting every CA (PEM) written so far (each `write_certs` makes a new CA).
fn client_trusting(cas: &[String], scratch: &Path) -> Arc<ClientConfig> {
    let bundle = scratch.join("bundle.pem");
    fs::write(&bundle, cas.concat()).unwrap();
    client_config(
        &bundle,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &[],
    )
}

/// Writes a pair into `certs/..<generation>` and points `certs/..data` at it with an atomic rename,
/// the way the kubelet updates a mounted Secret; `tls.crt` and `tls.key` link through `..data`.
fn kubelet_update(certs: &Path, generation: &str) -> CertFiles {
    fs::create_dir_all(certs).unwrap();
    let files = write_certs(&certs.join(format!("..{generation}")), &hosts()).unwrap();
    let staged = certs.join("..data_tmp");
    symlink(format!("..{generation}"), &staged).unwrap();
    fs::rename(&staged, certs.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        let link = certs.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    files
}

async fn served_leaf_becomes(served: &Served, client: &Arc<ClientConfig>, expected: &[u8]) -> bool {
    eventually(|| async {
        let seen = peer_certificate(served.https, Arc::clone(client))
            .await
            .ok()?;
        (seen == expected).then_some(())
    })
    .await
    .is_some()
}

async fn metric(served: &Served, series: &str) -> f64 {
    let (_, text) = http_get(served.admin, "/metrics").await.unwrap();
    sample(&text, series).unwrap_or(0.0)
}

#[tokio::test]
async fn kubelet_symlink_swaps_reach_new_connections() {
    let scratch = tempfile::tempdir().unwrap();
    let mut generations = Vec::new();
    let served = serve_with(|root| {
        let files = kubelet_update(&root.join("certs"), "2024_01_01_00_00_00.1");
        generations.push(files.clone());
        files.ca_cert
    })
    .await;
    let first = &generations[0];
    let mut cas = vec![fs::read_to_string(&first.ca_cert).unwrap()];
    let client = client_trusting(&cas, scratch.path());
    let served_now = peer_certificate(served.https, Arc::clone(&client))
        .await
        .unwrap();
    assert_eq!(served_now, leaf(&first.cert));

    for generation in ["2024_01_01_00_10_00.2", "2024_01_01_00_20_00.3"] {
        let previous = generations.last().unwrap().clone();
        let files = kubelet_update(&served.cert_dir, generation);
        generations.push(files.clone());
        cas.push(fs::read_to_string(&files.ca_cert).unwrap());
        let client = client_trusting(&cas, scratch.path());
        assert!(
            served_leaf_becomes(&served, &client, &leaf(&files.cert)).await,
            "the certificate of generation {generation} was never served"
        );
        // The kubelet removes the old generation once `..data` points at the new one.
        fs::remove_dir_all(previous.cert.parent().unwrap()).unwrap();
    }
    assert!(metric(&served, RELOADS).await >= 2.0);
    served.stop().await.unwrap();
}

#[tokio::test]
async fn files_replaced_in_place_are_reloaded_and_garbage_keeps_the_current_pair() {
    let scratch = tempfile::tempdir().unwrap();
    let served = serve().await;
    let mut cas = vec![fs::read_to_string(&served.ca_cert).unwrap()];

    let renewed = write_certs(&served.cert_dir, &hosts()).unwrap();
    cas.push(fs::read_to_string(&renewed.ca_cert).unwrap());
    let client = client_trusting(&cas, scratch.path());
    let current = leaf(&renewed.cert);
    assert!(
        served_leaf_becomes(&served, &client, &current).await,
        "renewed pair never served"
    );

    let failures = metric(&served, FAILED_RELOADS).await;
    fs::write(
        &renewed.cert,
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let failed =
        eventually(|| async { (metric(&served, FAILED_RELOADS).await > failures).then_some(()) })
            .await;
    assert!(failed.is_some(), "the garbage certificate was never read");
    assert_eq!(
        peer_certificate(served.https, Arc::clone(&client))
            .await
            .unwrap(),
        current
    );

    let other = tempfile::tempdir().unwrap();
    let stranger = write_certs(other.path(), &hosts()).unwrap();
    let failures = metric(&served, FAILED_RELOADS).await;
    fs::copy(&stranger.cert, &renewed.cert).unwrap();
    let failed =
        eventually(|| async { (metric(&served, FAILED_RELOADS).await > failures).then_some(()) })
            .await;
    assert!(
        failed.is_some(),
        "the certificate not matching the key was never read"
    );
    assert_eq!(
        peer_certificate(served.https, Arc::clone(&client))
            .await
            .unwrap(),
        current
    );

    let recovered = write_certs(&served.cert_dir, &hosts()).unwrap();
    cas.push(fs::read_to_string(&recovered.ca_cert).unwrap());
    let client = client_trusting(&cas, scratch.path());
    assert!(
        served_leaf_becomes(&served, &client, &leaf(&recovered.cert)).await,
        "a valid pair after garbage was never served"
    );
    served.stop().await.unwrap();
}
