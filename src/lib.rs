//! infra-operator: AWS IAM roles declared as Kubernetes objects. The library behind the
//! `infra-operator` binary: API types, the guardrail engine, the admission webhook and the CLI.

pub mod admission;
pub mod api;
pub mod aws;
pub mod certs;
pub mod cli;
pub mod controller;
pub mod governance;
pub mod guardrails;
pub mod iam;
pub mod serve;
pub mod telemetry;
pub mod validate;
