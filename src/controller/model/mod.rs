//! The reconciler's pure model: the planner of every IAM write ([`plan`], with the converging
//! [`diff`]), the status computed from an outcome ([`status`]), errors with their reasons and retry
//! policy ([`error`]), and the drift interval ([`drift`]). No I/O: the rest of
//! [`super`] observes, executes what these decide and reports.

pub mod diff;
pub mod drift;
pub mod error;
pub mod plan;
pub mod status;
