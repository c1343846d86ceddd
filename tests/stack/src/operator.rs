//! The operator under test as a separate process: its serving certificate (from `infra-operator certs`),
//! its HTTPS and admin ports, and the registration of its webhooks with the API server using the
//! configurations of `manifests/deploy/webhooks.yaml`, with `clientConfig` pointing at 127.0.0.1.
//! Starts processes and runs kubectl.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::StackError;
use crate::process::ManagedProcess;
use crate::wait::{self, free_port};

/// How to run the operator.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    /// The `infra-operator` binary.
    pub bin: PathBuf,
    /// Subcommand and flags before the ones the stack adds, e.g. `["webhook"]`.
    pub args: Vec<String>,
}

/// A running operator.
pub struct Operator {
    process: ManagedProcess,
    /// HTTPS (webhook) port.
    pub https_port: u16,
    /// Plain-HTTP admin port.
    pub admin_port: u16,
    /// Directory of `ca.crt`, `tls.crt`, `tls.key`.
    pub cert_dir: PathBuf,
}

impl Operator {
    /// Writes certificates (once per directory), starts the operator and waits for `/readyz`.
    pub fn start(
        options: &OperatorOptions,
        dir: &Path,
        kubeconfig: &Path,
    ) -> Result<Operator, StackError> {
        let cert_dir = dir.join("webhook-certs");
        if !cert_dir.join("tls.crt").exists() {
            let out = Command::new(&options.bin)
                .args(["certs", "--dir"])
                .arg(&cert_dir)
                .args(["--host", "127.0.0.1", "--host", "localhost"])
                .output()
                .map_err(|e| StackError::io("run `infra-operator certs`", e))?;
            if !out.status.success() {
                return Err(StackError::Command(format!(
                    "infra-operator certs: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        let (https_port, admin_port) = (free_port()?, free_port()?);
        let mut command = Command::new(&options.bin);
        command
            .args(&options.args)
            .arg("--cert-dir")
            .arg(&cert_dir)
            .args(["--bind", &format!("127.0.0.1:{https_port}")])
            .args(["--admin-bind", &format!("127.0.0.1:{admin_port}")])
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            );
        let mut process = ManagedProcess::spawn("operator", command, dir)?;
        wait::until("operator /readyz", Duration::from_secs(30), || {
            process.ensure_running()?;
            Ok(wait::http_get_status(admin_port, "/readyz") == Some(200))
        })?;
        Ok(Operator {
            process,
            https_port,
            admin_port,
            cert_dir,
        })
    }

    /// The operator's OS process ID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Sends a signal to the operator (e.g. `libc::SIGKILL` to simulate a crash).
    pub fn signal(&self, signal: i32) {
        self.process.signal(signal);
    }

    /// The last lines of the operator's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Stops the operator (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(mut self) {
        self.process.stop(Duration::from_secs(10));
    }

    /// The webhook configurations of `manifests/deploy/webhooks.yaml` (already converted to a JSON list
    /// by kubectl) with `clientConfig` pointing at this operator and trusting its CA.
    pub fn local_webhook_configurations(&self, deployed: &Value) -> Result<Value, StackError> {
        let ca = fs::read(self.cert_dir.join("ca.crt"))
            .map_err(|e| StackError::io("read webhook ca.crt", e))?;
        let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca);
        let mut items = Vec::new();
        for item in deployed["items"].as_array().into_iter().flatten() {
            let mut item = item.clone();
            if let Some(meta) = item["metadata"].as_object_mut() {
                meta.remove("annotations");
                meta.remove("creationTimestamp");
            }
            for webhook in item["webhooks"].as_array_mut().into_iter().flatten() {
                let path = webhook["clientConfig"]["service"]["path"]
                    .as_str()
                    .unwrap_or("/validate")
                    .to_owned();
                webhook["clientConfig"] = json!({
                    "url": format!("https://127.0.0.1:{}{path}", self.https_port),
                    "caBundle": ca_bundle,
                });
            }
            items.push(item);
        }
        if items.is_empty() {
            return Err(StackError::Command(
                "manifests/deploy/webhooks.yaml holds no webhook configuration".into(),
            ));
        }
        Ok(json!({"apiVersion": "v1", "kind": "List", "items": items}))
    }
}
