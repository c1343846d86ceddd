//! The reconciler's pure model: the planner of every IAM write ([`plan`], with the converging
//! [`diff`]), the status computed from an outcome ([`status`]), errors with their reasons and retry
//! policy ([`error`]), the drift interval ([`drift`]) and the reconciler's guardrail check
//! ([`guard`]). No I/O: the rest of
//! [`super`] observes, executes what these decide and reports.

pub mod diff;
pub mod drift;
pub mod error;
pub mod guard;
pub mod plan;
pub mod status;
