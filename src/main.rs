//! The `infra-operator` binary: parses the command line and runs the chosen subcommand.

use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use infra_operator::admission::{self, AdmissionMetrics, Limits, WebhookConfig};
use infra_operator::aws::{RateConfig, web_identity_token_file_from_env};
use infra_operator::cli::{
    CertsArgs, Cli, Command, ControllerArgs, ControllerOnlyArgs, RunArgs, ValidateArgs, WebhookArgs,
};
use infra_operator::controller::leader::LeaseSettings;
use infra_operator::controller::metrics::ControllerMetrics;
use infra_operator::controller::runner::{self, ControllerSettings};
use infra_operator::governance::{ClusterGuardrails, Guardrails};
use infra_operator::guardrails::{Config, Engine};
use infra_operator::serve::{self, AdminServer, Metrics, Readiness, Shutdown};
use infra_operator::{api, certs, telemetry, validate};

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_json);
    let command = cli.command_or_run().unwrap_or_else(|e| e.exit());
    let outcome = match command {
        Command::Validate(args) => run_validate(&args),
        Command::Crd => print_crds().map(|()| ExitCode::SUCCESS),
        Command::Certs(args) => write_certs(&args).map(|()| ExitCode::SUCCESS),
        Command::Webhook(args) => run_webhook(&args).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => run_all(&args).map(|()| ExitCode::SUCCESS),
        Command::Controller(args) => run_controller(&args).map(|()| ExitCode::SUCCESS),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("infra-operator: {e:#}");
        ExitCode::from(2)
    })
}

/// The guardrails to serve with: the `--guardrails` file for every namespace, or else the cluster's
/// GuardrailPolicies (watched by the returned task, which the caller runs until shutdown).
fn guardrails_source(
    file: Option<&Path>,
    client: Option<&kube::Client>,
) -> anyhow::Result<(Guardrails, Option<Arc<ClusterGuardrails>>)> {
    let engine = Arc::new(load_engine(file)?);
    match (file, client) {
        (None, Some(client)) => {
            let cluster = ClusterGuardrails::new(client.clone(), engine);
            Ok((Guardrails::Cluster(Arc::clone(&cluster)), Some(cluster)))
        }
        _ => Ok((Guardrails::Fixed(engine), None)),
    }
}

/// Watches the cluster's GuardrailPolicies (when they are the source) and waits until they are
/// read, so that nothing is reviewed or reconciled before.
async fn start_watching(cluster: Option<Arc<ClusterGuardrails>>, shutdown: &Shutdown) {
    if let Some(cluster) = cluster {
        tokio::spawn(Arc::clone(&cluster).run(shutdown.clone()));
        tokio::select! {
            () = cluster.synced() => tracing::info!("GuardrailPolicies read"),
            () = shutdown.cancelled() => {}
        }
    }
}

async fn kube_client() -> anyhow::Result<kube::Client> {
    kube::Client::try_default()
        .await
        .context("cannot configure the Kubernetes client")
}

fn load_engine(guardrails: Option<&Path>) -> anyhow::Result<Engine> {
    let config = match guardrails {
        Some(path) => {
            let text = fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Config::from_yaml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => Config::builtin(),
    };
    Ok(Engine::new(config)?)
}

fn run_validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let engine = load_engine(args.guardrails.as_deref())?;
    let report = validate::validate_paths(&engine, &args.paths);
    let mut stdout = io::stdout().lock();
    report.write(args.format, &mut stdout)?;
    stdout.flush()?;
    eprintln!("{}", report.summary());
    Ok(ExitCode::from(report.exit_code()))
}

fn print_crds() -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    for (_, crd) in api::crds() {
        writeln!(stdout, "---\n{}", api::crd_yaml(&crd)?.trim_end())?;
    }
    Ok(())
}

fn write_certs(args: &CertsArgs) -> anyhow::Result<()> {
    let files = certs::write_certs(&args.dir, &args.hosts)?;
    eprintln!("wrote {files}");
    Ok(())
}

fn webhook_config(args: &WebhookArgs) -> WebhookConfig {
    WebhookConfig {
        cert_dir: args.cert_dir.clone(),
        bind: args.bind,
        limits: Limits {
            max_connections: args.max_connections,
            review_deadline: args.review_deadline,
            ..Limits::default()
        },
    }
}

/// Runs `work` on a multi-threaded runtime while the admin server answers on its own thread; both
/// stop on the one shutdown token, cancelled on SIGTERM or SIGINT (or once `work` returns).
fn serve_process<F, Fut>(
    admin_bind: SocketAddr,
    metrics: Metrics,
    readiness: Readiness,
    work: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let shutdown = Shutdown::new();
    let admin =
        AdminServer::bind(admin_bind)?.spawn(Arc::new(metrics), readiness, shutdown.clone())?;
    runtime.block_on(async move {
        serve::cancel_on_signal(shutdown.clone()).await;
        let outcome = work(shutdown.clone()).await;
        shutdown.cancel();
        admin.stopped().await;
        outcome
    })
}

fn run_webhook(args: &WebhookArgs) -> anyhow::Result<()> {
    let config = webhook_config(args);
    let mut metrics = Metrics::new();
    let admission_metrics = AdmissionMetrics::register(metrics.registry_mut());
    let readiness = Readiness::default();
    let ready = readiness.clone();
    let file = args.guardrails.clone();
    serve_process(args.admin_bind, metrics, readiness, |shutdown| async move {
        let client = match file {
            Some(_) => None,
            None => Some(kube_client().await?),
        };
        let (guardrails, cluster) = guardrails_source(file.as_deref(), client.as_ref())?;
        let webhook = admission::bind(&config, guardrails, admission_metrics).await?;
        start_watching(cluster, &shutdown).await;
        webhook.serve(ready, shutdown).await?;
        Ok(())
    })
}

/// The webhook and the reconciler in one process, sharing the metrics registry, the guardrails and
/// the shutdown token.
fn run_all(args: &RunArgs) -> anyhow::Result<()> {
    let config = webhook_config(&args.webhook);
    let settings = controller_settings(&args.controller)?;
    let mut metrics = Metrics::new();
    let admission_metrics = AdmissionMetrics::register(metrics.registry_mut());
    let controller_metrics = ControllerMetrics::register(metrics.registry_mut());
    let readiness = Readiness::default();
    let ready = readiness.clone();
    let file = args.webhook.guardrails.clone();
    serve_process(
        args.webhook.admin_bind,
        metrics,
        readiness,
        |shutdown| async move {
            let client = kube_client().await?;
            let (guardrails, cluster) = guardrails_source(file.as_deref(), Some(&client))?;
            let webhook = admission::bind(&config, guardrails.clone(), admission_metrics).await?;
            start_watching(cluster, &shutdown).await;
            let reconciler = tokio::spawn(runner::run(
                client,
                guardrails,
                settings,
                controller_metrics,
                shutdown.clone(),
            ));
            let served = webhook.serve(ready, shutdown.clone()).await;
            shutdown.cancel();
            reconciler
                .await
                .context("the reconciler ended abnormally")?;
            Ok(served?)
        },
    )
}

/// The reconciler alone, with the admin endpoints.
fn run_controller(args: &ControllerOnlyArgs) -> anyhow::Result<()> {
    let settings = controller_settings(&args.controller)?;
    let mut metrics = Metrics::new();
    let controller_metrics = ControllerMetrics::register(metrics.registry_mut());
    let readiness = Readiness::default();
    readiness.set(true);
    let file = args.guardrails.clone();
    serve_process(args.admin_bind, metrics, readiness, |shutdown| async move {
        let client = kube_client().await?;
        let (guardrails, cluster) = guardrails_source(file.as_deref(), Some(&client))?;
        start_watching(cluster, &shutdown).await;
        runner::run(client, guardrails, settings, controller_metrics, shutdown).await;
        Ok(())
    })
}

fn controller_settings(args: &ControllerArgs) -> anyhow::Result<ControllerSettings> {
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    Ok(ControllerSettings {
        lease: LeaseSettings {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity,
            lease_duration: args.lease_duration,
            renew_every: args.lease_duration / 3,
        },
        concurrency: args.concurrency,
        web_identity_token_file: web_identity_token_file_from_env(),
        iam_rate: RateConfig::new(args.iam_rate, args.iam_burst)?,
    })
}

/// `<host name>-<process ID>`, unique enough among replicas that were not given `POD_NAME`.
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "infra-operator".to_owned());
    format!("{host}-{}", std::process::id())
}
