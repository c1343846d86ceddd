//! The `infra-operator` binary: parses the command line and runs the chosen subcommand.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use infra_operator::admission::{self, WebhookConfig};
use infra_operator::cli::{CertsArgs, Cli, Command, ValidateArgs, WebhookArgs};
use infra_operator::guardrails::{Config, Engine};
use infra_operator::{api, certs, telemetry, validate};

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_json);
    let outcome = match cli.command {
        Command::Validate(args) => run_validate(&args),
        Command::Crd => print_crds().map(|()| ExitCode::SUCCESS),
        Command::Certs(args) => write_certs(&args).map(|()| ExitCode::SUCCESS),
        Command::Webhook(args) => run_webhook(&args).map(|()| ExitCode::SUCCESS),
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("infra-operator: {e:#}");
        ExitCode::from(2)
    })
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

fn run_webhook(args: &WebhookArgs) -> anyhow::Result<()> {
    let engine = Arc::new(load_engine(args.guardrails.as_deref())?);
    let config = WebhookConfig {
        cert_dir: args.cert_dir.clone(),
        bind: args.bind,
        admin_bind: args.admin_bind,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let bound = admission::bind(&config, engine).await?;
        bound.serve(admission::shutdown_signal()).await?;
        anyhow::Ok(())
    })
}
