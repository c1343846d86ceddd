//! `local-stack`: brings up the whole product on this machine for `make run` — etcd, kube-apiserver,
//! moto and the operator — creates the `localstack` AWSProvider pointing at moto, writes
//! `<out>/kubeconfig`, `<out>/env` and `<out>/bin/kubectl`, then runs until SIGINT/SIGTERM and stops
//! everything it started.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use local_stack::{Stack, StackError, StackOptions};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Args {
    repo_root: PathBuf,
    operator_bin: PathBuf,
    out: PathBuf,
    operator_args: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        repo_root: PathBuf::from("."),
        operator_bin: PathBuf::from("target/release/infra-operator"),
        out: PathBuf::from("target/local"),
        operator_args: vec!["run".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--repo-root" => args.repo_root = PathBuf::from(value()?),
            "--operator-bin" => args.operator_bin = PathBuf::from(value()?),
            "--out" => args.out = PathBuf::from(value()?),
            "--operator-args" => {
                args.operator_args = value()?.split_whitespace().map(str::to_owned).collect()
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: local-stack [--repo-root DIR] [--operator-bin FILE] [--out DIR] [--operator-args \"run ...\"]"
                ));
            }
        }
    }
    Ok(args)
}

fn run(args: Args) -> Result<(), StackError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |e| StackError::Command(format!("{what}: {e}"))
    };
    let stack_dir = args.out.join("stack");
    if stack_dir.exists() {
        fs::remove_dir_all(&stack_dir).map_err(io("clear the previous stack directory"))?;
    }
    eprintln!("starting etcd, kube-apiserver, kube-controller-manager, moto and the operator ...");
    let stack = Stack::start(StackOptions {
        repo_root: args.repo_root.clone(),
        operator_bin: args.operator_bin.clone(),
        operator_args: Some(args.operator_args.clone()),
        moto: true,
        dir: Some(stack_dir),
    })?;
    let moto = stack.moto_url().unwrap_or_default();
    stack.create_local_provider()?;

    let out_dir = fs::canonicalize(&args.out).map_err(io("resolve the output directory"))?;
    let kubeconfig = out_dir.join("kubeconfig");
    fs::copy(stack.kubeconfig(), &kubeconfig).map_err(io("write kubeconfig"))?;
    let bin = out_dir.join("bin");
    fs::create_dir_all(&bin).map_err(io("create bin directory"))?;
    let kubectl = bin.join("kubectl");
    let _ = fs::remove_file(&kubectl);
    std::os::unix::fs::symlink(stack.kubectl_bin(), &kubectl).map_err(io("link kubectl"))?;
    let env_file = out_dir.join("env");
    fs::write(
        &env_file,
        format!(
            "export KUBECONFIG={}\nexport PATH={}:$PATH\nexport AWS_ENDPOINT_URL={moto}\nexport AWS_ACCESS_KEY_ID=test\n\
             export AWS_SECRET_ACCESS_KEY=test\nexport AWS_REGION=us-east-1\nexport AWS_DEFAULT_REGION=us-east-1\n",
            kubeconfig.display(),
            bin.display()
        ),
    )
    .map_err(io("write env"))?;

    let operator = stack
        .operator()
        .map(|o| (o.https_port, o.admin_port))
        .unwrap_or_default();
    println!(
        "\ninfra-operator is running on a local control plane.\n\n  source {}\n  kubectl get awsproviders\n  kubectl get guardrailpolicies\n  \
         kubectl apply -f manifests/examples/iamrole-e2e-ec2-role.yaml\n  kubectl get iamrole e2e-ec2-role -o yaml\n  \
         kubectl apply -f tests/fixtures/bad/   # refused, each with its rule\n\n  webhook  https://127.0.0.1:{}  \
         metrics http://127.0.0.1:{}/metrics\n  moto     {moto}\n  logs     {} (etcd, kube-apiserver, \
         kube-controller-manager, moto, operator)\n\nCtrl-C stops everything.",
        env_file.display(),
        operator.0,
        operator.1,
        stack.dir().display()
    );

    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    while !STOP.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(200));
    }
    eprintln!("stopping ...");
    drop(stack);
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("local-stack: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-stack: {e}");
            ExitCode::FAILURE
        }
    }
}
