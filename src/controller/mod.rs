//! The reconciler: makes AWS IAM match each IAMRole. The pure [`model`] decides (planner, status,
//! errors); the rest does I/O: [`role`] and [`provider`] reconcile one object each (observe →
//! plan → execute in [`sync`], through the [`role_api::RoleApi`] trait, then one report step),
//! [`runner`] and [`leader`] run the controllers while this replica leads, and the reconciles share
//! a [`context::Context`] made of the watch caches ([`stores`]), the providers' AWS clients
//! ([`clients`]), the Event queue ([`events`]), [`metrics`], per-object [`backoff`] and what
//! else is remembered per object between reconciles ([`per_object`]); [`service_accounts`] sets the
//! IRSA annotation of a workload identity.

pub mod backoff;
pub mod clients;
pub mod context;
pub mod events;
pub mod finalizer;
pub mod leader;
pub mod metrics;
pub mod model;
pub mod per_object;
pub mod policies;
pub mod provider;
pub mod role;
pub mod role_api;
pub mod runner;
#[cfg(test)]
mod scenarios;
pub mod service_accounts;
pub mod status_patch;
pub mod stores;
pub mod sync;
