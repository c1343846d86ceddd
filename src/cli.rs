//! Command-line interface of `infra-operator`: the subcommands and their flags (each also settable from
//! the environment). Parsing only; `main.rs` runs what was asked.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::validate::Format;

/// AWS IAM roles declared as Kubernetes objects.
#[derive(Debug, Parser)]
#[command(name = "infra-operator", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "INFRA_OPERATOR_LOG_JSON")]
    pub log_json: bool,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTPS admission webhook (mutate + validate) and the admin endpoints.
    Webhook(WebhookArgs),
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
    /// Guardrails file; the built-in defaults of `policies/guardrails.yaml` when not given.
    #[arg(long, env = "INFRA_OPERATOR_GUARDRAILS")]
    pub guardrails: Option<PathBuf>,
}

/// Flags of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Guardrails file; the built-in defaults of `policies/guardrails.yaml` when not given.
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
        let Command::Validate(args) = cli.command else {
            panic!("validate expected")
        };
        assert_eq!(args.format, Format::Json);
        assert_eq!(args.paths.len(), 2);
        assert!(Cli::try_parse_from(["infra-operator", "validate"]).is_err());
    }
}
