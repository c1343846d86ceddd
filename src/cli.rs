//! Command-line interface of `infra-operator`: the subcommands and their flags (each also settable from
//! the environment). Parsing only; `main.rs` runs what was asked.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

use crate::admission::limits::DEFAULT_MAX_CONNECTIONS;
use crate::guardrails::duration::parse_go_duration;
use crate::validate::Format;

/// AWS IAM roles declared as Kubernetes objects.
#[derive(Debug, Parser)]
#[command(name = "infra-operator", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "INFRA_OPERATOR_LOG_JSON")]
    pub log_json: bool,
    /// What to run; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The subcommand given, or `run` with its flags taken from the environment and defaults.
    pub fn command_or_run(self) -> Result<Command, clap::Error> {
        match self.command {
            Some(command) => Ok(command),
            None => Cli::try_parse_from(["infra-operator", "run"])?
                .command
                .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::MissingSubcommand)),
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the webhook and run the reconciler in one process (the default).
    Run(RunArgs),
    /// Serve the HTTPS admission webhook (mutate + validate) and the admin endpoints.
    Webhook(WebhookArgs),
    /// Run the reconciler only (with the admin endpoints).
    Controller(ControllerOnlyArgs),
    /// Check manifests offline with the same guardrails as the webhook.
    Validate(ValidateArgs),
    /// Print the CRD manifests generated from the API types.
    Crd,
    /// Write a self-signed CA and a serving certificate for local use.
    Certs(CertsArgs),
}

/// Flags of `webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Directory holding `tls.crt` and `tls.key`; watched, and reloaded when they change.
    #[arg(long, env = "INFRA_OPERATOR_CERT_DIR", default_value = "webhook-certs")]
    pub cert_dir: PathBuf,
    /// Address of the HTTPS webhook server.
    #[arg(long, env = "INFRA_OPERATOR_BIND", default_value = "0.0.0.0:8443")]
    pub bind: SocketAddr,
    /// Address of the plain-HTTP admin server (/healthz, /readyz, /metrics).
    #[arg(
        long,
        env = "INFRA_OPERATOR_ADMIN_BIND",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_bind: SocketAddr,
    /// A GuardrailPolicy file (the document or its spec) applied to every namespace instead of the
    /// cluster's GuardrailPolicy objects (a cluster of one team; no tenancy between namespaces).
    #[arg(long, env = "INFRA_OPERATOR_GUARDRAILS")]
    pub guardrails: Option<PathBuf>,
    /// Webhook connections served at once; further clients wait.
    #[arg(
        long,
        env = "INFRA_OPERATOR_MAX_CONNECTIONS",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..).map(|n| n as usize)
    )]
    pub max_connections: usize,
    /// Longest time the checks of a review over 8 KiB may take before the review is refused (Go
    /// duration); keep it below the webhook configurations' `timeoutSeconds`.
    #[arg(
        long,
        env = "INFRA_OPERATOR_REVIEW_DEADLINE",
        default_value = "3s",
        value_parser = review_deadline
    )]
    pub review_deadline: Duration,
}

/// A review deadline: a Go duration from 100ms to 29s (the API server waits at most 30 s).
fn review_deadline(text: &str) -> Result<Duration, String> {
    let duration = parse_go_duration(text).map_err(|e| e.to_string())?;
    if !(Duration::from_millis(100)..Duration::from_secs(30)).contains(&duration) {
        return Err("the review deadline must be from 100ms to 29s".to_owned());
    }
    Ok(duration)
}

/// Flags of `run`: the webhook's and the reconciler's.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Webhook flags.
    #[command(flatten)]
    pub webhook: WebhookArgs,
    /// Reconciler flags.
    #[command(flatten)]
    pub controller: ControllerArgs,
}

/// Flags of `controller`.
#[derive(Debug, Args)]
pub struct ControllerOnlyArgs {
    /// Address of the plain-HTTP admin server (/healthz, /readyz, /metrics).
    #[arg(
        long,
        env = "INFRA_OPERATOR_ADMIN_BIND",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_bind: SocketAddr,
    /// A GuardrailPolicy file (the document or its spec) applied to every namespace instead of the
    /// cluster's GuardrailPolicy objects.
    #[arg(long, env = "INFRA_OPERATOR_GUARDRAILS")]
    pub guardrails: Option<PathBuf>,
    /// Reconciler flags.
    #[command(flatten)]
    pub controller: ControllerArgs,
}

/// Flags of the reconciler (`run`, `controller`). The Kubernetes API is reached through
/// `KUBECONFIG` or the in-cluster configuration.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "infra-operator-system")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "INFRA_OPERATOR_LEASE_NAME",
        default_value = "infra-operator-leader"
    )]
    pub lease_name: String,
    /// This replica's identity in the Lease; the host name and process ID when not given.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How long the Lease stays valid without renewal (Go duration, e.g. `15s`).
    #[arg(
        long,
        env = "INFRA_OPERATOR_LEASE_DURATION",
        default_value = "15s",
        value_parser = lease_duration
    )]
    pub lease_duration: Duration,
    /// How many objects of each kind are reconciled at once.
    #[arg(
        long,
        env = "INFRA_OPERATOR_CONCURRENCY",
        default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub concurrency: u16,
    /// IAM and STS calls per second sustained, per AWS account (shared by every provider of the
    /// account; halved for a while when IAM throttles anyway).
    #[arg(
        long,
        env = "INFRA_OPERATOR_IAM_RATE",
        default_value_t = 20.0,
        value_parser = iam_rate
    )]
    pub iam_rate: f64,
    /// IAM and STS calls allowed at once per AWS account after a quiet time.
    #[arg(
        long,
        env = "INFRA_OPERATOR_IAM_BURST",
        default_value_t = 40,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub iam_burst: u32,
}

/// An IAM rate: a positive, finite number of calls per second.
fn iam_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if !(rate.is_finite() && rate > 0.0) {
        return Err("the IAM rate must be a positive number of calls per second".to_owned());
    }
    Ok(rate)
}

/// A Lease duration: a Go duration of at least one second.
fn lease_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_go_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_secs(1) {
        return Err("the lease duration must be at least 1s".to_owned());
    }
    Ok(duration)
}

/// Flags of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A GuardrailPolicy file (the document or its spec) to check with; the built-in defaults
    /// (`policies/guardrails.yaml`) when not given.
    #[arg(long, env = "INFRA_OPERATOR_GUARDRAILS")]
    pub guardrails: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text, env = "INFRA_OPERATOR_VALIDATE_FORMAT")]
    pub format: Format,
    /// Manifest files or directories (searched for *.yaml, *.yml, *.json).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Flags of `certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write `ca.crt`, `ca.key`, `tls.crt` and `tls.key` into.
    #[arg(long, env = "INFRA_OPERATOR_CERT_DIR")]
    pub dir: PathBuf,
    /// Host names or IP addresses the serving certificate is valid for.
    #[arg(
        long = "host",
        required = true,
        env = "INFRA_OPERATOR_CERT_HOSTS",
        value_delimiter = ','
    )]
    pub hosts: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::admission::limits::DEFAULT_REVIEW_DEADLINE;

    #[test]
    fn command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn validate_takes_format_and_paths() {
        let cli = Cli::try_parse_from([
            "infra-operator",
            "validate",
            "--format",
            "json",
            "a.yaml",
            "dir",
        ])
        .unwrap();
        let Some(Command::Validate(args)) = cli.command else {
            panic!("validate expected")
        };
        assert_eq!(args.format, Format::Json);
        assert_eq!(args.paths.len(), 2);
        assert!(Cli::try_parse_from(["infra-operator", "validate"]).is_err());
    }

    #[test]
    fn run_takes_webhook_and_controller_flags() {
        let cli = Cli::try_parse_from([
            "infra-operator",
            "run",
            "--cert-dir",
            "certs",
            "--lease-namespace",
            "ops",
            "--identity",
            "replica-a",
            "--lease-duration",
            "1m30s",
            "--concurrency",
            "2",
        ])
        .unwrap();
        let Some(Command::Run(args)) = cli.command else {
            panic!("run expected")
        };
        assert_eq!(args.webhook.cert_dir, PathBuf::from("certs"));
        assert_eq!(args.controller.lease_namespace, "ops");
        assert_eq!(args.controller.identity.as_deref(), Some("replica-a"));
        assert_eq!(args.controller.lease_duration, Duration::from_secs(90));
        assert_eq!(args.controller.concurrency, 2);
        assert_eq!(args.controller.lease_name, "infra-operator-leader");
        assert_eq!(args.controller.iam_rate, 20.0);
        assert_eq!(args.controller.iam_burst, 40);
        assert_eq!(args.webhook.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(args.webhook.review_deadline, DEFAULT_REVIEW_DEADLINE);
    }

    #[test]
    fn webhook_limits_are_flags() {
        let cli = Cli::try_parse_from([
            "infra-operator",
            "webhook",
            "--max-connections",
            "64",
            "--review-deadline",
            "1500ms",
        ])
        .unwrap();
        let Some(Command::Webhook(args)) = cli.command else {
            panic!("webhook expected")
        };
        assert_eq!(args.max_connections, 64);
        assert_eq!(args.review_deadline, Duration::from_millis(1500));
        for (flag, value) in [
            ("--max-connections", "0"),
            ("--review-deadline", "30s"),
            ("--review-deadline", "10ms"),
        ] {
            let parsed = Cli::try_parse_from(["infra-operator", "webhook", flag, value]);
            assert!(parsed.is_err(), "{flag} {value} accepted");
        }
    }

    #[test]
    fn bad_reconciler_flags_are_refused() {
        for (flag, value) in [
            ("--lease-duration", "500ms"),
            ("--lease-duration", "soon"),
            ("--concurrency", "0"),
            ("--iam-rate", "0"),
            ("--iam-rate", "-1"),
            ("--iam-rate", "inf"),
            ("--iam-burst", "0"),
        ] {
            let parsed = Cli::try_parse_from(["infra-operator", "controller", flag, value]);
            assert!(parsed.is_err(), "{flag} {value} accepted");
        }
    }

    #[test]
    fn iam_rate_and_burst_are_flags() {
        let cli = Cli::try_parse_from([
            "infra-operator",
            "controller",
            "--iam-rate",
            "2.5",
            "--iam-burst",
            "5",
        ])
        .unwrap();
        let Some(Command::Controller(args)) = cli.command else {
            panic!("controller expected")
        };
        assert_eq!(args.controller.iam_rate, 2.5);
        assert_eq!(args.controller.iam_burst, 5);
    }

    #[test]
    fn no_subcommand_means_run() {
        let cli = Cli::try_parse_from(["infra-operator"]).unwrap();
        assert!(cli.command.is_none());
        let command = cli.command_or_run().unwrap();
        assert!(matches!(command, Command::Run(_)), "{command:?}");
    }
}
