//! Carries out the planner's decisions for one role against IAM: observe → plan → execute, for a
//! live object ([`sync_role`]) and for a deleted one ([`delete_role`]). Returns what was done, or
//! the failure with what is known by then (the role's identity, the policies attached so far), so
//! that the status can be computed from values. Does I/O only through [`RoleApi`].

use std::collections::BTreeSet;

use super::model::error::ReconcileError;
use super::model::plan::{
    Intent, Memory, RolePlan, Teardown, TeardownStep, attached_after, plan, teardown,
};
use super::role_api::RoleApi;
use crate::aws::{AwsError, AwsErrorKind};
use crate::iam::{Change, CreateRole, ObservedRole, RoleIdentity};

/// A role brought to its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synced {
    /// The role.
    pub identity: RoleIdentity,
    /// The managed policies this object attached (the status' `attachedPolicyArns`).
    pub attached: BTreeSet<String>,
    /// What it took.
    pub done: Done,
}

/// What a successful sync wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// CreateRole, then these attachments and inline policies.
    Created(Vec<Change>),
    /// The role had no owner tag and is this object's now, after these changes.
    Adopted(Vec<Change>),
    /// These changes to the object's own role.
    Updated(Vec<Change>),
    /// Nothing: the role matched its spec.
    Unchanged,
}

/// A sync that stopped, with what is known by then.
#[derive(Debug)]
pub struct SyncFailure {
    /// Why it stopped.
    pub error: ReconcileError,
    /// The role, when it was created or found to be this object's.
    pub identity: Option<RoleIdentity>,
    /// The managed policies this object attached by then; `None` when unknown (keep the status').
    pub attached: Option<BTreeSet<String>>,
}

impl From<ReconcileError> for SyncFailure {
    fn from(error: ReconcileError) -> Self {
        SyncFailure {
            error,
            identity: None,
            attached: None,
        }
    }
}

/// What must hold of an existing role before it is adopted (the guardrails, as found); the error
/// stops the adoption before any write.
pub type AdoptionCheck<'a> = &'a (dyn Fn(&ObservedRole) -> Result<(), ReconcileError> + Sync);

/// Brings the role of `intent` to its spec; an existing role is adopted only if `adoptable` says so.
pub async fn sync_role(
    iam: &impl RoleApi,
    intent: Intent<'_>,
    memory: &Memory,
    adoptable: AdoptionCheck<'_>,
) -> Result<Synced, SyncFailure> {
    if !memory.observe_first()
        && let RolePlan::Create { role, then } = plan(intent, None, memory).map_err(plan_failure)?
        && let Some(synced) = create(iam, &role, then).await?
    {
        return Ok(synced);
    }
    let observed = iam
        .observe_role(&intent.desired.name)
        .await
        .map_err(aws_failure)?;
    match plan(intent, observed.as_ref(), memory).map_err(plan_failure)? {
        RolePlan::Create { role, then } => create(iam, &role, then).await?.ok_or_else(|| {
            // Created by someone else since it was read: read it again soon.
            SyncFailure::from(ReconcileError::Aws {
                source: AwsError::new(
                    "CreateRole",
                    AwsErrorKind::EntityAlreadyExists,
                    "the role appeared while it was being created",
                ),
                transient: true,
            })
        }),
        RolePlan::Converge {
            identity,
            adopting,
            attached,
            changes,
        } => {
            if adopting && let Some(found) = &observed {
                adoptable(found)?;
            }
            let applied = execute(iam, &intent.desired.name, &changes, false).await;
            let attached_now = attached_after(&attached, &changes[..applied.count]);
            if let Some(error) = applied.error {
                return Err(SyncFailure {
                    error,
                    identity: Some(identity),
                    attached: Some(attached_now),
                });
            }
            let done = match (adopting, changes.is_empty()) {
                (true, _) => Done::Adopted(changes),
                (false, true) => Done::Unchanged,
                (false, false) => Done::Updated(changes),
            };
            Ok(Synced {
                identity,
                attached: attached_now,
                done,
            })
        }
    }
}

/// CreateRole, then `then`; `None` when a role of that name exists already (nothing written).
async fn create(
    iam: &impl RoleApi,
    role: &CreateRole,
    then: Vec<Change>,
) -> Result<Option<Synced>, SyncFailure> {
    let identity = match iam.create_role(role).await {
        Ok(identity) => identity,
        Err(source) if source.kind() == AwsErrorKind::EntityAlreadyExists => return Ok(None),
        Err(source) => return Err(aws_failure(source)),
    };
    let applied = execute(iam, &role.name, &then, true).await;
    let attached = attached_after(&BTreeSet::new(), &then[..applied.count]);
    match applied.error {
        Some(error) => Err(SyncFailure {
            error,
            identity: Some(identity),
            attached: Some(attached),
        }),
        None => Ok(Some(Synced {
            identity,
            attached,
            done: Done::Created(then),
        })),
    }
}

/// How far a list of changes went.
struct Applied {
    /// How many went through, from the first.
    count: usize,
    /// The failure that stopped the rest.
    error: Option<ReconcileError>,
}

/// Applies `changes` in order, stopping at the first failure. On a role created moments ago
/// (`just_created`) a `NoSuchEntity` is IAM's eventual consistency and is retried soon.
async fn execute(
    iam: &impl RoleApi,
    role_name: &str,
    changes: &[Change],
    just_created: bool,
) -> Applied {
    for (count, change) in changes.iter().enumerate() {
        if let Err(source) = iam.apply(role_name, change).await {
            let error = if just_created {
                ReconcileError::aws_after_create(source)
            } else {
                ReconcileError::aws(source)
            };
            return Applied {
                count,
                error: Some(error),
            };
        }
    }
    Applied {
        count: changes.len(),
        error: None,
    }
}

/// What a deletion with `deletionPolicy: Delete` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// The role was emptied and deleted.
    Deleted(String),
    /// There was no role of that name.
    Gone,
    /// The role is not this object's and was left untouched.
    NotOurs,
}

/// Empties and deletes the role `role_name` if it is `owner`'s. Anything already gone counts as
/// done.
pub async fn delete_role(
    iam: &impl RoleApi,
    role_name: &str,
    owner: &str,
) -> Result<Deleted, ReconcileError> {
    let observed = iam
        .observe_role(role_name)
        .await
        .map_err(ReconcileError::aws)?;
    let profiles = match &observed {
        Some(_) => gone_is_empty(iam.instance_profiles_for_role(role_name).await)?,
        None => Vec::new(),
    };
    let steps = match teardown(observed.as_ref(), owner, &profiles) {
        Teardown::Gone => return Ok(Deleted::Gone),
        Teardown::NotOurs => return Ok(Deleted::NotOurs),
        Teardown::Delete(steps) => steps,
    };
    for step in &steps {
        let result = match step {
            TeardownStep::LeaveInstanceProfile(profile) => {
                iam.remove_role_from_instance_profile(profile, role_name)
                    .await
            }
            TeardownStep::Change(change) => iam.apply(role_name, change).await,
            TeardownStep::DeleteRole => iam.delete_role(role_name).await,
        };
        gone_is_done(result)?;
    }
    let arn = observed.map(|o| o.arn).unwrap_or_default();
    Ok(Deleted::Deleted(arn))
}

fn gone_is_done(result: Result<(), AwsError>) -> Result<(), ReconcileError> {
    match result {
        Err(e) if e.kind() == AwsErrorKind::NoSuchEntity => Ok(()),
        other => other.map_err(ReconcileError::aws),
    }
}

fn gone_is_empty(result: Result<Vec<String>, AwsError>) -> Result<Vec<String>, ReconcileError> {
    match result {
        Err(e) if e.kind() == AwsErrorKind::NoSuchEntity => Ok(Vec::new()),
        other => other.map_err(ReconcileError::aws),
    }
}

fn aws_failure(source: AwsError) -> SyncFailure {
    SyncFailure::from(ReconcileError::aws(source))
}

fn plan_failure(error: super::model::plan::PlanError) -> SyncFailure {
    SyncFailure::from(ReconcileError::Plan(error))
}
