//! A real local control plane for infra-operator on 127.0.0.1: etcd, kube-apiserver, moto (IAM/STS)
//! with an optional fault-injecting proxy in front of it ([`FaultProxy`]), kubectl and the operator
//! itself, with the operator's webhooks registered. Used by the end-to-end tests and by `make run`. Every process is stopped when the [`Stack`] is dropped — also when a test
//! panics, in which case the stack directory (logs included) is kept and its path printed.

mod controlplane;
mod faults;
mod moto;
mod operator;
mod process;
pub mod tools;
mod wait;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub use controlplane::ControlPlane;
pub use faults::{Call, Fault, FaultProxy, OUTCOME_OK, Rule, busiest};
pub use moto::Moto;
pub use operator::{Operator, OperatorOptions};
pub use tools::Tools;
pub use wait::{free_port, until};

/// Why the stack could not be brought up or driven.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A program of the stack is not installed.
    #[error("missing tool: {0}")]
    MissingTool(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A process of the stack exited.
    #[error("{name} exited ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// Which process.
        name: String,
        /// Its exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// Something did not become ready in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// A command of the stack failed.
    #[error("{0}")]
    Command(String),
}

impl StackError {
    fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        StackError::Io {
            what: what.into(),
            source,
        }
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// The repository root (for `manifests/`).
    pub repo_root: PathBuf,
    /// The `infra-operator` binary.
    pub operator_bin: PathBuf,
    /// Operator subcommand and flags (e.g. `["webhook"]`); `None` starts no operator.
    pub operator_args: Option<Vec<String>>,
    /// Whether to start moto.
    pub moto: bool,
    /// Keep the stack directory here instead of a temporary one.
    pub dir: Option<PathBuf>,
}

/// The running stack. Fields drop in order: operator, moto, control plane.
pub struct Stack {
    operator: Option<Operator>,
    moto: Option<Moto>,
    control_plane: ControlPlane,
    tools: Tools,
    options: StackOptions,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Stack {
    /// Starts the control plane, installs the CRDs, then moto and the operator as asked, and registers
    /// the operator's webhooks.
    pub fn start(options: StackOptions) -> Result<Stack, StackError> {
        let tools = Tools::locate()?;
        let (dir, path) = match &options.dir {
            Some(path) => {
                std::fs::create_dir_all(path)
                    .map_err(|e| StackError::io(format!("create {}", path.display()), e))?;
                // Absolute, since kubectl resolves a kubeconfig's relative paths against its own directory.
                let path = std::fs::canonicalize(path)
                    .map_err(|e| StackError::io(format!("resolve {}", path.display()), e))?;
                (None, path)
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("infra-operator-stack-")
                    .tempdir()
                    .map_err(|e| StackError::io("create the stack directory", e))?;
                let path = dir.path().to_path_buf();
                (Some(dir), path)
            }
        };
        let control_plane = ControlPlane::start(&tools, &path, &options.operator_bin)?;
        let mut stack = Stack {
            operator: None,
            moto: None,
            control_plane,
            tools,
            options,
            dir,
            path,
        };
        stack.install_crds()?;
        if stack.options.moto {
            stack.moto = Some(Moto::start(&stack.tools, &stack.path)?);
        }
        if stack.options.operator_args.is_some() {
            stack.start_operator()?;
        }
        Ok(stack)
    }

    /// The stack's working directory (logs, kubeconfig, certificates).
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.control_plane.kubeconfig
    }

    /// The kubeconfig of the operator's ServiceAccount (bound to `manifests/deploy/rbac.yaml`).
    pub fn operator_kubeconfig(&self) -> &Path {
        &self.control_plane.operator_kubeconfig
    }

    /// The kubectl binary.
    pub fn kubectl_bin(&self) -> &Path {
        &self.tools.kubectl
    }

    /// A kubectl command using the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(&self.tools.kubectl);
        command.arg(format!("--kubeconfig={}", self.kubeconfig().display()));
        command
    }

    /// Runs kubectl with `args`, feeding `stdin`.
    pub fn kubectl_with_input(&self, args: &[&str], stdin: &str) -> Result<Output, StackError> {
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| StackError::io("run kubectl", e))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .map_err(|e| StackError::io("write kubectl's input", e))?;
        }
        child
            .wait_with_output()
            .map_err(|e| StackError::io("wait for kubectl", e))
    }

    /// Runs kubectl with `args`; fails unless it succeeds, returning its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String, StackError> {
        let out = self
            .kubectl()
            .args(args)
            .output()
            .map_err(|e| StackError::io("run kubectl", e))?;
        if !out.status.success() {
            return Err(StackError::Command(format!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// moto's endpoint URL, when moto runs.
    pub fn moto_url(&self) -> Option<String> {
        self.moto.as_ref().map(Moto::url)
    }

    /// Stops moto (to simulate an AWS outage); [`Stack::start_moto`] brings it back on the same port.
    pub fn stop_moto(&mut self) {
        self.moto = None;
    }

    /// Starts moto again on its previous port (or a new one if it never ran).
    pub fn start_moto(&mut self, port: Option<u16>) -> Result<(), StackError> {
        let moto = match port {
            Some(port) => Moto::start_on(&self.tools, &self.path, port)?,
            None => Moto::start(&self.tools, &self.path)?,
        };
        self.moto = Some(moto);
        Ok(())
    }

    /// The running operator, if any.
    pub fn operator(&self) -> Option<&Operator> {
        self.operator.as_ref()
    }

    /// Starts the operator (again) and registers its webhooks for its new ports.
    pub fn start_operator(&mut self) -> Result<(), StackError> {
        let args = self
            .options
            .operator_args
            .clone()
            .unwrap_or_else(|| vec!["webhook".into()]);
        let options = OperatorOptions {
            bin: self.options.operator_bin.clone(),
            args,
        };
        self.operator = Some(Operator::start(
            &options,
            &self.path,
            &self.control_plane.operator_kubeconfig,
        )?);
        self.register_webhooks()
    }

    /// Restarts the operator with other subcommand and flags (e.g. another `--guardrails` file).
    pub fn restart_operator_with(&mut self, args: Vec<String>) -> Result<(), StackError> {
        self.stop_operator();
        self.options.operator_args = Some(args);
        self.start_operator()
    }

    /// Stops the operator, leaving its webhook configurations registered.
    pub fn stop_operator(&mut self) {
        if let Some(operator) = self.operator.take() {
            operator.stop();
        }
    }

    /// Registers the operator's webhooks and waits until the API server calls them.
    pub fn register_webhooks(&self) -> Result<(), StackError> {
        let operator = self
            .operator
            .as_ref()
            .ok_or_else(|| StackError::Command("no operator is running".into()))?;
        let file = self
            .options
            .repo_root
            .join("manifests/deploy/webhooks.yaml");
        let deployed = self.kubectl_ok(&[
            "create",
            "--dry-run=client",
            "-o",
            "json",
            "-f",
            &file.display().to_string(),
        ])?;
        // kubectl prints one JSON object per document.
        let items = serde_json::Deserializer::from_str(&deployed)
            .into_iter::<serde_json::Value>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                StackError::Command(format!("kubectl's JSON for {}: {e}", file.display()))
            })?;
        let deployed = serde_json::json!({ "items": items });
        let local = operator.local_webhook_configurations(&deployed)?;
        let out = self.kubectl_with_input(&["apply", "-f", "-"], &local.to_string())?;
        if !out.status.success() {
            return Err(StackError::Command(format!(
                "registering webhooks: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        // The API server picks up new configurations asynchronously: wait until it refuses a role that
        // only the validating webhook refuses.
        let probe = PROBE_ROLE;
        until(
            "the API server to call the webhooks",
            Duration::from_secs(30),
            || {
                let out =
                    self.kubectl_with_input(&["create", "--dry-run=server", "-f", "-"], probe)?;
                Ok(!out.status.success()
                    && String::from_utf8_lossy(&out.stderr).contains("[action-wildcard]"))
            },
        )
    }

    /// Creates what `make run` offers a newcomer: the Secret `aws-credentials` and the AWSProvider
    /// `localstack` pointing at moto (with default tags), in namespace `default`.
    pub fn create_local_provider(&self) -> Result<(), StackError> {
        let moto = self
            .moto_url()
            .ok_or_else(|| StackError::Command("moto is not running".into()))?;
        let out = self.kubectl_with_input(&["apply", "-f", "-"], &local_provider(&moto))?;
        if !out.status.success() {
            return Err(StackError::Command(format!(
                "creating the localstack AWSProvider: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Removes the operator's webhook configurations (so only the CRD schema guards the API).
    pub fn unregister_webhooks(&self) -> Result<(), StackError> {
        let file = self
            .options
            .repo_root
            .join("manifests/deploy/webhooks.yaml");
        self.kubectl_ok(&[
            "delete",
            "--ignore-not-found",
            "--wait",
            "-f",
            &file.display().to_string(),
        ])?;
        until(
            "the API server to stop calling the webhooks",
            Duration::from_secs(30),
            || {
                let out = self
                    .kubectl_with_input(&["create", "--dry-run=server", "-f", "-"], PROBE_ROLE)?;
                Ok(out.status.success())
            },
        )
    }

    /// Log tails of every process, for failure reports.
    pub fn diagnostics(&self, lines: usize) -> String {
        let mut text = self.control_plane.log_tails(lines);
        if let Some(moto) = &self.moto {
            text.push_str(&format!("\n--- moto\n{}", moto.log_tail(lines)));
        }
        if let Some(operator) = &self.operator {
            text.push_str(&format!("\n--- operator\n{}", operator.log_tail(lines)));
        }
        text
    }

    /// Installs the CRDs, the operator's namespace, ServiceAccount and RBAC of `manifests/deploy`
    /// (what the operator runs with), and the GuardrailPolicy that lets providers reach the local
    /// IAM emulator.
    fn install_crds(&self) -> Result<(), StackError> {
        let root = &self.options.repo_root;
        let crds = root.join("manifests/crds");
        self.kubectl_ok(&["apply", "-k", &crds.display().to_string()])?;
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/iamroles.aws-infra-operator.runner.codes",
            "crd/awsproviders.aws-infra-operator.runner.codes",
            "crd/guardrailpolicies.aws-infra-operator.runner.codes",
        ])?;
        for file in [
            "manifests/deploy/namespace.yaml",
            "manifests/deploy/serviceaccount.yaml",
            "manifests/deploy/rbac.yaml",
            "policies/local-emulator.yaml",
        ] {
            self.kubectl_ok(&["apply", "-f", &root.join(file).display().to_string()])?;
        }
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "=== local stack logs ({}):\n{}",
                self.path.display(),
                self.diagnostics(40)
            );
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("=== stack directory kept at {}", kept.display());
            }
        }
    }
}

/// A role the CRD schema accepts and only the validating webhook refuses (`[action-wildcard]`).
const PROBE_ROLE: &str = r#"{
  "apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
  "kind": "IAMRole",
  "metadata": {"name": "webhook-probe", "namespace": "default"},
  "spec": {
    "providerRef": {"name": "localstack"},
    "roleName": "webhook-probe",
    "assumeRolePolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"ec2.amazonaws.com\"},\"Action\":\"sts:AssumeRole\"}]}",
    "inlinePolicies": [{"policyName": "probe", "policyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"iam:*\",\"Resource\":\"*\"}]}"}]
  }
}"#;

/// The Secret and AWSProvider of [`Stack::create_local_provider`].
fn local_provider(endpoint: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: aws-credentials
  namespace: default
type: Opaque
stringData:
  access-key-id: test
  secret-access-key: test
---
apiVersion: aws-infra-operator.runner.codes/v1alpha1
kind: AWSProvider
metadata:
  name: localstack
  namespace: default
spec:
  region: us-east-1
  endpoint: {endpoint}
  accessKeyIDRef:
    name: aws-credentials
    key: access-key-id
  secretAccessKeyRef:
    name: aws-credentials
    key: secret-access-key
  defaultTags:
    managed-by: infra-operator
    environment: test
"#
    )
}
