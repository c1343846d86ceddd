//! The reconciler: makes AWS IAM match each IAMRole (observe → plan → apply → status).

pub mod change;
pub mod context;
pub mod desired;
pub mod drift;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod observed;
pub mod plan;
pub mod policy_eq;
pub mod provider;
pub mod role;
pub mod runner;
pub mod status;
pub mod status_patch;
