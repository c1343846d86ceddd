//! Where the stack's programs are: etcd from the `etcd-bin-vendored` crate, kube-apiserver and
//! kube-controller-manager built by `build-kube.sh`, kubectl and moto from the Python environment made by `make tools`, all
//! cached under `~/.cache/infra-operator` (or `$INFRA_OPERATOR_CACHE`). Reads the file system only.

use std::env;
use std::path::PathBuf;

use crate::StackError;

/// The Kubernetes release the local API server is built from.
pub const KUBE_VERSION: &str = "v1.34.4";

/// Paths of every program the stack runs.
#[derive(Clone, Debug)]
pub struct Tools {
    /// etcd.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
    /// kube-controller-manager (namespace deletion, garbage collection).
    pub kube_controller_manager: PathBuf,
    /// kubectl.
    pub kubectl: PathBuf,
    /// moto's `moto_server`.
    pub moto_server: PathBuf,
}

/// The cache directory of built and installed tools.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = env::var_os("INFRA_OPERATOR_CACHE") {
        return PathBuf::from(dir);
    }
    let home = env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache/infra-operator")
}

impl Tools {
    /// Finds every tool, failing with the command that installs a missing one.
    pub fn locate() -> Result<Tools, StackError> {
        let cache = cache_dir();
        let etcd = etcd_bin_vendored::etcd_bin_path()
            .map_err(|e| StackError::MissingTool(format!("etcd: {e}")))?
            .to_path_buf();
        let version = env::var("KUBE_VERSION").unwrap_or_else(|_| KUBE_VERSION.to_owned());
        let tools = Tools {
            etcd,
            kube_apiserver: cache.join(format!("bin/kube-apiserver-{version}")),
            kube_controller_manager: cache.join(format!("bin/kube-controller-manager-{version}")),
            kubectl: cache.join("venv/bin/kubectl"),
            moto_server: cache.join("venv/bin/moto_server"),
        };
        for path in [
            &tools.etcd,
            &tools.kube_apiserver,
            &tools.kube_controller_manager,
            &tools.kubectl,
            &tools.moto_server,
        ] {
            if !path.is_file() {
                return Err(StackError::MissingTool(format!(
                    "{} not found; run `make tools` to build and install the local stack's programs",
                    path.display()
                )));
            }
        }
        Ok(tools)
    }
}
