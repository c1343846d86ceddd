//! The whole operator (`run`, as its ServiceAccount with the RBAC of `manifests/deploy`) on a real
//! kube-apiserver + etcd and moto, driven through kubectl: a [`World`] of named steps, each run to
//! the end and every failing one reported with the operator's log.

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use infra_operator::aws::{AwsClients, IamApi};
use infra_operator::iam::ObservedRole;
use local_stack::{Stack, StackOptions};
use serde_json::{Value, json};

use super::moto::moto_settings;

/// Upper bound of every wait; only a hang should hit it.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// Polls `check` every half second until it yields a value; panics with its last complaint.
pub fn poll<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match check() {
            Ok(value) => return value,
            Err(complaint) if Instant::now() >= deadline => {
                panic!("timed out after {TIMEOUT:?} waiting for {what}: {complaint}")
            }
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// One named step of an end-to-end test.
pub type Step<'a> = (&'a str, &'a dyn Fn(&World));

/// The stack, a direct IAM client to moto, and moto's URL.
pub struct World {
    pub stack: Stack,
    pub rt: tokio::runtime::Runtime,
    pub iam: IamApi,
    pub moto: String,
}

impl World {
    /// Starts the operator with `run` on a fresh stack with moto.
    pub fn start(operator_bin: &str) -> World {
        let stack = Stack::start(StackOptions {
            repo_root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            operator_bin: PathBuf::from(operator_bin),
            operator_args: Some(vec!["run".to_owned()]),
            moto: true,
            dir: None,
        })
        .unwrap_or_else(|e| panic!("local stack: {e}"));
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let moto = stack.moto_url().expect("moto runs");
        let iam = rt
            .block_on(AwsClients::new(&moto_settings(&moto), None))
            .iam();
        World {
            stack,
            rt,
            iam,
            moto,
        }
    }

    /// Runs each named step to its end, then fails with every failing step and the operator's log.
    pub fn run_steps(&self, steps: &[Step<'_>]) {
        let mut failures = Vec::new();
        for (name, step) in steps {
            let started = Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| step(self)));
            eprintln!("step `{name}` took {:?}", started.elapsed());
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{name}: {message}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} step(s) failed:\n\n{}\n--- operator log\n{}",
            failures.len(),
            failures.join("\n\n"),
            self.stack
                .operator()
                .map(|o| o.log_tail(60))
                .unwrap_or_default()
        );
    }

    /// `kubectl apply` of a JSON object: `Ok(stdout)` or `Err(stderr)`.
    pub fn apply(&self, object: &Value) -> Result<String, String> {
        let out = self
            .stack
            .kubectl_with_input(&["apply", "-f", "-"], &object.to_string())
            .expect("run kubectl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `kubectl apply` that must be admitted.
    pub fn applied(&self, object: &Value) {
        if let Err(error) = self.apply(object) {
            panic!("kubectl apply refused {object}: {error}");
        }
    }

    /// `kubectl apply` that must be refused with a finding `[rule] path`; returns the error.
    pub fn refused(&self, object: &Value, rule: &str, path: &str) -> String {
        match self.apply(object) {
            Ok(out) => panic!("kubectl apply admitted {object}: {out}"),
            Err(error) => {
                assert!(
                    error.contains(&format!("[{rule}] {path}")),
                    "expected [{rule}] {path} in: {error}"
                );
                error
            }
        }
    }

    /// `kubectl delete` of one object, waiting until it is gone.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        self.stack
            .kubectl_ok(&["delete", kind, "-n", namespace, name, "--wait=true"])
            .unwrap_or_else(|e| panic!("delete {kind} {namespace}/{name}: {e}"));
    }

    /// The object as JSON.
    pub fn get(&self, kind: &str, namespace: Option<&str>, name: &str) -> Value {
        let mut args = vec!["get", kind, name, "-o", "json"];
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        let text = self.stack.kubectl_ok(&args).expect("kubectl get");
        serde_json::from_str(&text).expect("JSON")
    }

    /// The condition `type_` of an object's status.
    pub fn condition(&self, namespace: &str, name: &str, kind: &str, type_: &str) -> Option<Value> {
        let object = self.get(kind, Some(namespace), name);
        object["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
    }

    /// Waits for the IAMRole's `Ready` condition to have `reason`; returns its message.
    pub fn ready_reason(&self, namespace: &str, name: &str, reason: &str) -> String {
        poll(&format!("{namespace}/{name} Ready reason {reason}"), || {
            let ready = self
                .condition(namespace, name, "iamrole", "Ready")
                .ok_or("no Ready condition")?;
            if ready["reason"] == reason {
                Ok(ready["message"].as_str().unwrap_or_default().to_owned())
            } else {
                Err(ready.to_string())
            }
        })
    }

    /// Waits for the AWSProvider to be Ready.
    pub fn provider_ready(&self, namespace: &str, name: &str) {
        poll(&format!("{namespace}/{name} Ready"), || {
            let provider = self.get("awsprovider", Some(namespace), name);
            if provider["status"]["ready"] == true {
                Ok(())
            } else {
                Err(provider["status"].to_string())
            }
        });
    }

    /// The role as IAM holds it.
    pub fn role_in_iam(&self, name: &str) -> Option<ObservedRole> {
        self.rt
            .block_on(self.iam.observe_role(name))
            .expect("read IAM")
    }

    /// The operator's `/metrics`.
    pub fn metrics(&self) -> String {
        let port = self.stack.operator().expect("operator").admin_port;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin port");
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("response");
        text
    }

    /// The IAM calls the operator made, by operation, from its `/metrics`.
    pub fn iam_calls(&self) -> std::collections::BTreeMap<String, f64> {
        let mut calls = std::collections::BTreeMap::new();
        for line in self.metrics().lines() {
            let Some(rest) = line.strip_prefix("infra_operator_aws_api_calls_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let operation = labels
                .split(',')
                .find_map(|pair| pair.strip_prefix("operation="))
                .map(|v| v.trim_matches('"').to_owned())
                .unwrap_or_default();
            *calls.entry(operation).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
        }
        calls
    }
}

/// A namespace labelled `team`.
pub fn namespace(name: &str, team: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": {"team": team}}})
}

/// The Secret with moto's static keys that [`provider`] references.
pub fn credentials(namespace: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "aws-credentials", "namespace": namespace},
        "stringData": {"id": "test", "secret": "test"}})
}

/// An AWSProvider with the keys of [`credentials`] towards `endpoint`.
pub fn provider(namespace: &str, name: &str, endpoint: &str) -> Value {
    json!({"apiVersion": "aws-infra-operator.runner.codes/v1alpha1", "kind": "AWSProvider",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"region": "us-east-1", "endpoint": endpoint,
                    "accessKeyIDRef": {"name": "aws-credentials", "key": "id"},
                    "secretAccessKeyRef": {"name": "aws-credentials", "key": "secret"}}})
}
