//! A real Kubernetes control plane on 127.0.0.1: etcd and kube-apiserver with token authentication,
//! RBAC, and a kubeconfig for an admin user, and kube-controller-manager running the namespace and
//! garbage-collector controllers (so namespace deletion and owner references behave as in a
//! cluster). Starts processes and writes files in the stack directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::StackError;
use crate::process::ManagedProcess;
use crate::tools::Tools;
use crate::wait::{self, free_port};

const ADMIN_TOKEN: &str = "local-stack-admin-token";
const OPERATOR_TOKEN: &str = "local-stack-operator-token";
/// The user the operator authenticates as: its ServiceAccount of `manifests/deploy`, so that it runs
/// with exactly the RBAC that `manifests/deploy/rbac.yaml` grants it.
pub const OPERATOR_USER: &str =
    "system:serviceaccount:infra-operator-system:infra-operator-controller-manager";

/// etcd, kube-apiserver and kube-controller-manager, stopped when dropped (in reverse order).
pub struct ControlPlane {
    controller_manager: ManagedProcess,
    apiserver: ManagedProcess,
    etcd: ManagedProcess,
    /// HTTPS port of the API server.
    pub port: u16,
    /// kubeconfig of the admin user (system:masters).
    pub kubeconfig: PathBuf,
    /// kubeconfig of the operator's ServiceAccount ([`OPERATOR_USER`]).
    pub operator_kubeconfig: PathBuf,
}

impl ControlPlane {
    /// Starts etcd, then kube-apiserver, and waits until `/readyz` answers ok.
    pub fn start(
        tools: &Tools,
        dir: &Path,
        operator_bin: &Path,
    ) -> Result<ControlPlane, StackError> {
        let (client_port, peer_port, port) = (free_port()?, free_port()?, free_port()?);
        let mut etcd_cmd = Command::new(&tools.etcd);
        etcd_cmd
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!(
                "--listen-client-urls=http://127.0.0.1:{client_port}"
            ))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{client_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!(
                "--initial-cluster=default=http://127.0.0.1:{peer_port}"
            ))
            .arg("--unsafe-no-fsync");
        let mut etcd = ManagedProcess::spawn("etcd", etcd_cmd, dir)?;
        wait::until("etcd health", Duration::from_secs(30), || {
            etcd.ensure_running()?;
            Ok(wait::http_get_status(client_port, "/health") == Some(200))
        })?;

        let sa_dir = dir.join("service-account");
        let status = Command::new(operator_bin)
            .args(["certs", "--dir"])
            .arg(&sa_dir)
            .args(["--host", "127.0.0.1"])
            .output()
            .map_err(|e| {
                StackError::io("run `infra-operator certs` for the service-account key", e)
            })?;
        if !status.status.success() {
            return Err(StackError::Command(format!(
                "infra-operator certs: {}",
                String::from_utf8_lossy(&status.stderr)
            )));
        }
        let tokens = dir.join("tokens.csv");
        fs::write(
            &tokens,
            format!(
                "{ADMIN_TOKEN},admin,admin-uid,system:masters\n{OPERATOR_TOKEN},{OPERATOR_USER},\
                 operator-uid,\"system:serviceaccounts,system:serviceaccounts:infra-operator-system\"\n"
            ),
        )
        .map_err(|e| StackError::io("write tokens.csv", e))?;
        let cert_dir = dir.join("apiserver-certs");
        let mut apiserver_cmd = Command::new(&tools.kube_apiserver);
        apiserver_cmd
            .arg(format!("--etcd-servers=http://127.0.0.1:{client_port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg(format!("--cert-dir={}", cert_dir.display()))
            .arg(format!("--token-auth-file={}", tokens.display()))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!(
                "--service-account-key-file={}",
                sa_dir.join("ca.crt").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_dir.join("ca.key").display()
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/24")
            .arg("--allow-privileged=true");
        let mut apiserver = ManagedProcess::spawn("kube-apiserver", apiserver_cmd, dir)?;
        let kubeconfig = dir.join("kubeconfig");
        fs::write(
            &kubeconfig,
            kubeconfig_yaml(port, &cert_dir.join("apiserver.crt"), ADMIN_TOKEN),
        )
        .map_err(|e| StackError::io("write kubeconfig", e))?;
        let operator_kubeconfig = dir.join("operator-kubeconfig");
        fs::write(
            &operator_kubeconfig,
            kubeconfig_yaml(port, &cert_dir.join("apiserver.crt"), OPERATOR_TOKEN),
        )
        .map_err(|e| StackError::io("write the operator's kubeconfig", e))?;
        let kubectl = tools.kubectl.clone();
        wait::until("kube-apiserver /readyz", Duration::from_secs(90), || {
            apiserver.ensure_running()?;
            etcd.ensure_running()?;
            let out = Command::new(&kubectl)
                .arg(format!("--kubeconfig={}", kubeconfig.display()))
                .args(["get", "--raw", "/readyz"])
                .output()
                .map_err(|e| StackError::io("run kubectl", e))?;
            Ok(out.status.success() && out.stdout.starts_with(b"ok"))
        })?;
        let mut controller_manager_cmd = Command::new(&tools.kube_controller_manager);
        controller_manager_cmd
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                kubeconfig.display()
            ))
            .arg("--controllers=namespace-controller,garbage-collector-controller")
            .arg("--leader-elect=false")
            .arg("--use-service-account-credentials=false")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={}", free_port()?))
            .arg(format!(
                "--cert-dir={}",
                dir.join("controller-manager-certs").display()
            ));
        let controller_manager =
            ManagedProcess::spawn("kube-controller-manager", controller_manager_cmd, dir)?;
        Ok(ControlPlane {
            controller_manager,
            apiserver,
            etcd,
            port,
            kubeconfig,
            operator_kubeconfig,
        })
    }

    /// The last lines of the controller manager's, the API server's and etcd's logs.
    pub fn log_tails(&self, lines: usize) -> String {
        format!(
            "--- {}\n{}\n--- {}\n{}\n--- {}\n{}",
            self.controller_manager.name(),
            self.controller_manager.log_tail(lines),
            self.apiserver.name(),
            self.apiserver.log_tail(lines),
            self.etcd.name(),
            self.etcd.log_tail(lines)
        )
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.controller_manager.stop(Duration::from_secs(5));
        self.apiserver.stop(Duration::from_secs(10));
        self.etcd.stop(Duration::from_secs(5));
    }
}

fn kubeconfig_yaml(port: u16, ca: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:{port}\n    \
         certificate-authority: {}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: local\n  \
         context:\n    cluster: local\n    user: admin\n    namespace: default\ncurrent-context: local\n",
        ca.display()
    )
}
