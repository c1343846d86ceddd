//! The planner: every IAM write the reconciler makes is decided here, from values only — what the
//! object asks for, what IAM holds, and what the object remembers. Pure, no I/O.
//!
//! - [`plan`]: create the role, or — for an existing role — decide whose it is (ours, to adopt,
//!   someone else's) and list the changes that converge it ([`super::diff`]).
//! - [`teardown`]: what deleting an object with `deletionPolicy: Delete` does to its role (nothing
//!   left, not ours, or the steps that empty and delete it); `Retain` writes nothing and needs no
//!   plan.
//! - [`Memory`]: the managed policies this object attached (the only ones it ever detaches), from
//!   its status and from the role's own managed-policies tag, so that it survives a lost status.

use std::collections::BTreeSet;

use super::diff::changes;
use crate::iam::{
    Change, CreateRole, DesiredRole, ObservedRole, Ownership, RoleIdentity, ownership,
    policies_in_tag,
};

pub use crate::api::ADOPT_ANNOTATION;

/// Why nothing may be written to an existing role.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The role exists under another path; IAM cannot move a role.
    #[error(
        "the IAM role exists with path `{observed}` but the spec asks for `{desired}`; IAM cannot \
         move a role: delete it in IAM or set spec.path to `{observed}`"
    )]
    PathMismatch {
        /// The path in the spec.
        desired: String,
        /// The path of the existing role.
        observed: String,
    },
    /// A role of that name exists in IAM without this operator's owner tag.
    #[error(
        "IAM role `{role_name}` already exists and was not created by this object; it is left \
         untouched. To manage it from this object, annotate the object with \
         `{ADOPT_ANNOTATION}: \"true\"`"
    )]
    RoleExists {
        /// The role name.
        role_name: String,
    },
    /// The role is managed by another IAMRole object.
    #[error(
        "IAM role `{role_name}` is managed by IAMRole `{owner}`; two objects cannot manage one \
         role, so it is left untouched"
    )]
    RoleConflict {
        /// The role name.
        role_name: String,
        /// The owning object, `namespace/name`.
        owner: String,
    },
    /// A role of that name carries this object's owner tag but is not the role it recorded: it
    /// was deleted and created again outside the operator.
    #[error(
        "IAM role `{role_name}` carries this object's owner tag but its RoleId `{found}` is not the \
         one this object recorded (`{recorded}`): it was replaced outside the operator and is left \
         untouched. To take it over, remove its owner tag in IAM and annotate the object with \
         `{ADOPT_ANNOTATION}: \"true\"`"
    )]
    RoleReplaced {
        /// The role name.
        role_name: String,
        /// The RoleId in the object's status.
        recorded: String,
        /// The RoleId found in IAM.
        found: String,
    },
}

impl PlanError {
    /// Whether a role of the spec's name exists and is not this object's.
    pub fn name_taken(&self) -> bool {
        matches!(
            self,
            PlanError::RoleExists { .. }
                | PlanError::RoleConflict { .. }
                | PlanError::RoleReplaced { .. }
        )
    }

    /// PascalCase reason, for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PlanError::PathMismatch { .. } => "PathMismatch",
            PlanError::RoleExists { .. } => "RoleExists",
            PlanError::RoleConflict { .. } | PlanError::RoleReplaced { .. } => "RoleConflict",
        }
    }
}

/// What the object asks of IAM.
#[derive(Clone, Copy, Debug)]
pub struct Intent<'a> {
    /// The role as the spec declares it.
    pub desired: &'a DesiredRole,
    /// The object, `namespace/name`, as the owner tag names it.
    pub owner: &'a str,
    /// Whether an existing role without an owner tag may be taken over.
    pub adopt: bool,
}

/// What the object remembers of its role.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// The role's ID as last recorded (the status' `roleId`): the role was seen before.
    pub role_id: Option<String>,
    /// A role of the spec's name was found not to be this object's (at the last reconcile).
    pub name_taken: bool,
    /// Managed policy ARNs the object attached, as its status lists them.
    pub attached: BTreeSet<String>,
}

impl Memory {
    /// Whether to look at IAM before writing. A role the object never recorded nor found in its
    /// way is most likely absent, so CreateRole comes first (and a name already taken is then read
    /// and planned as an existing role).
    pub fn observe_first(&self) -> bool {
        self.role_id.is_some() || self.name_taken
    }

    /// The managed policies of `observed` this object may detach: those its status lists, those
    /// the role's managed-policies tag names, and those the spec declares and the role already
    /// has (a policy declared and attached is this object's from then on).
    pub fn attached_to(&self, observed: &ObservedRole, desired: &DesiredRole) -> BTreeSet<String> {
        let mut attached: BTreeSet<String> = self
            .attached
            .intersection(&observed.managed_policies)
            .cloned()
            .collect();
        attached.extend(policies_in_tag(&observed.tags, &observed.managed_policies));
        attached.extend(
            desired
                .managed_policies
                .intersection(&observed.managed_policies)
                .cloned(),
        );
        attached
    }
}

/// The IAM writes of one reconcile of a live object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolePlan {
    /// No role of that name: create it with everything CreateRole takes, then `then`.
    Create {
        /// The CreateRole call.
        role: CreateRole,
        /// Attachments and inline policies, in order.
        then: Vec<Change>,
    },
    /// The role is this object's (or is adopted now): `changes` bring it to the spec.
    Converge {
        /// The role.
        identity: RoleIdentity,
        /// Whether the role is taken over now (it had no owner tag).
        adopting: bool,
        /// The managed policies this object attached before these changes.
        attached: BTreeSet<String>,
        /// The writes, in the order of [`super::diff`].
        changes: Vec<Change>,
    },
}

/// Plans one reconcile of a live object: `observed` is the role of the spec's name as IAM holds
/// it (`None`: there is none).
pub fn plan(
    intent: Intent<'_>,
    observed: Option<&ObservedRole>,
    memory: &Memory,
) -> Result<RolePlan, PlanError> {
    let desired = intent.desired;
    let Some(observed) = observed else {
        let then =
            desired
                .managed_policies
                .iter()
                .map(|arn| Change::AttachPolicy { arn: arn.clone() })
                .chain(desired.inline_policies.iter().map(|(name, document)| {
                    Change::PutInlinePolicy {
                        name: name.clone(),
                        document: document.clone(),
                    }
                }))
                .collect();
        return Ok(RolePlan::Create {
            role: desired.create_role(),
            then,
        });
    };
    let adopting = match ownership(&observed.tags, intent.owner) {
        Ownership::Ours => {
            if let Some(recorded) = &memory.role_id
                && *recorded != observed.role_id
            {
                return Err(PlanError::RoleReplaced {
                    role_name: desired.name.clone(),
                    recorded: recorded.clone(),
                    found: observed.role_id.clone(),
                });
            }
            false
        }
        Ownership::Unowned if intent.adopt => true,
        Ownership::Unowned => {
            return Err(PlanError::RoleExists {
                role_name: desired.name.clone(),
            });
        }
        Ownership::OwnedBy(owner) => {
            return Err(PlanError::RoleConflict {
                role_name: desired.name.clone(),
                owner,
            });
        }
    };
    let attached = memory.attached_to(observed, desired);
    Ok(RolePlan::Converge {
        identity: identity(observed),
        adopting,
        changes: changes(desired, observed, &attached)?,
        attached,
    })
}

/// The managed policies this object has attached once `applied` (a prefix of the planned changes)
/// went through, starting from `attached`.
pub fn attached_after(attached: &BTreeSet<String>, applied: &[Change]) -> BTreeSet<String> {
    let mut attached = attached.clone();
    for change in applied {
        match change {
            Change::AttachPolicy { arn } => {
                attached.insert(arn.clone());
            }
            Change::DetachPolicy { arn } => {
                attached.remove(arn);
            }
            _ => {}
        }
    }
    attached
}

/// The identity of an observed role.
pub fn identity(observed: &ObservedRole) -> RoleIdentity {
    RoleIdentity {
        arn: observed.arn.clone(),
        role_id: observed.role_id.clone(),
        create_date: observed.create_date.clone(),
    }
}

/// What deleting the object does to its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Teardown {
    /// There is no role of that name any more.
    Gone,
    /// The role is not this object's: it is left untouched.
    NotOurs,
    /// The role is this object's: these steps empty and delete it.
    Delete(Vec<TeardownStep>),
}

/// One IAM write of a role's deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TeardownStep {
    /// RemoveRoleFromInstanceProfile.
    LeaveInstanceProfile(String),
    /// DetachRolePolicy or DeleteRolePolicy.
    Change(Change),
    /// DeleteRole.
    DeleteRole,
}

/// Plans a deletion with policy `Delete`: `observed` is the role as IAM holds it and
/// `instance_profiles` the profiles holding it. Every managed policy is detached (IAM refuses to
/// delete a role with attached policies), every inline policy deleted, then the role.
pub fn teardown(
    observed: Option<&ObservedRole>,
    owner: &str,
    instance_profiles: &[String],
) -> Teardown {
    let Some(observed) = observed else {
        return Teardown::Gone;
    };
    if ownership(&observed.tags, owner) != Ownership::Ours {
        return Teardown::NotOurs;
    }
    let profiles = instance_profiles
        .iter()
        .map(|profile| TeardownStep::LeaveInstanceProfile(profile.clone()));
    let detach = observed
        .managed_policies
        .iter()
        .map(|arn| TeardownStep::Change(Change::DetachPolicy { arn: arn.clone() }));
    let inline = observed
        .inline_policies
        .keys()
        .map(|name| TeardownStep::Change(Change::DeleteInlinePolicy { name: name.clone() }));
    Teardown::Delete(
        profiles
            .chain(detach)
            .chain(inline)
            .chain([TeardownStep::DeleteRole])
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::iam::{OWNER_TAG_KEY, POLICIES_TAG_KEY, policies_tag_value};

    const OWNER: &str = "team-a/app";
    const S3: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
    const LOGS: &str = "arn:aws:iam::aws:policy/CloudWatchLogsFullAccess";
    const FOREIGN: &str = "arn:aws:iam::123456789012:policy/AttachedByHand";

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn desired(managed: &[&str]) -> DesiredRole {
        let mut tags = BTreeMap::from([(OWNER_TAG_KEY.to_owned(), OWNER.to_owned())]);
        let managed = set(managed);
        tags.insert(POLICIES_TAG_KEY.to_owned(), policies_tag_value(&managed));
        DesiredRole {
            name: "app".to_owned(),
            path: "/".to_owned(),
            max_session_duration: 3600,
            trust_policy: "{}".to_owned(),
            managed_policies: managed,
            inline_policies: BTreeMap::from([("read".to_owned(), "{}".to_owned())]),
            tags,
            ..DesiredRole::default()
        }
    }

    fn existing(desired: &DesiredRole, owner: Option<&str>) -> ObservedRole {
        let mut tags = desired.tags.clone();
        tags.remove(OWNER_TAG_KEY);
        if let Some(owner) = owner {
            tags.insert(OWNER_TAG_KEY.to_owned(), owner.to_owned());
        }
        ObservedRole {
            arn: "arn:aws:iam::123456789012:role/app".to_owned(),
            role_id: "AROA1".to_owned(),
            path: desired.path.clone(),
            max_session_duration: desired.max_session_duration,
            trust_policy: desired.trust_policy.clone(),
            managed_policies: desired.managed_policies.clone(),
            inline_policies: desired.inline_policies.clone(),
            tags,
            ..ObservedRole::default()
        }
    }

    fn intent(desired: &DesiredRole, adopt: bool) -> Intent<'_> {
        Intent {
            desired,
            owner: OWNER,
            adopt,
        }
    }

    #[test]
    fn an_absent_role_is_created_with_everything_then_attached_and_put() {
        let desired = desired(&[S3]);
        let plan = plan(intent(&desired, false), None, &Memory::default());
        assert_eq!(
            plan,
            Ok(RolePlan::Create {
                role: desired.create_role(),
                then: vec![
                    Change::AttachPolicy { arn: S3.to_owned() },
                    Change::PutInlinePolicy {
                        name: "read".to_owned(),
                        document: "{}".to_owned()
                    },
                ],
            })
        );
    }

    #[test]
    fn a_role_that_is_not_ours_is_refused_unless_adoption_is_asked() {
        let desired = desired(&[]);
        let unowned = existing(&desired, None);
        assert_eq!(
            plan(intent(&desired, false), Some(&unowned), &Memory::default())
                .map_err(|e| e.reason()),
            Err("RoleExists")
        );
        let adopted = plan(intent(&desired, true), Some(&unowned), &Memory::default());
        let Ok(RolePlan::Converge {
            adopting, changes, ..
        }) = adopted
        else {
            panic!("{adopted:?}");
        };
        assert!(adopting);
        assert_eq!(
            changes,
            [Change::TagRole {
                tags: BTreeMap::from([(OWNER_TAG_KEY.to_owned(), OWNER.to_owned())])
            }]
        );
        let foreign = existing(&desired, Some("team-b/app"));
        for adopt in [false, true] {
            assert_eq!(
                plan(intent(&desired, adopt), Some(&foreign), &Memory::default()),
                Err(PlanError::RoleConflict {
                    role_name: "app".to_owned(),
                    owner: "team-b/app".to_owned()
                })
            );
        }
    }

    #[test]
    fn an_own_unchanged_role_plans_nothing() {
        let desired = desired(&[S3]);
        let observed = existing(&desired, Some(OWNER));
        assert_eq!(
            plan(intent(&desired, false), Some(&observed), &Memory::default()),
            Ok(RolePlan::Converge {
                identity: identity(&observed),
                adopting: false,
                attached: set(&[S3]),
                changes: vec![],
            })
        );
    }

    #[test]
    fn a_policy_removed_from_the_spec_is_detached_even_without_a_status() {
        let before = desired(&[S3, LOGS]);
        let mut observed = existing(&before, Some(OWNER));
        observed.managed_policies.insert(FOREIGN.to_owned());
        let after = desired(&[S3]);
        let Ok(RolePlan::Converge { changes, .. }) =
            plan(intent(&after, false), Some(&observed), &Memory::default())
        else {
            panic!("converge");
        };
        assert_eq!(
            changes,
            [
                Change::DetachPolicy {
                    arn: LOGS.to_owned()
                },
                Change::TagRole {
                    tags: BTreeMap::from([(
                        POLICIES_TAG_KEY.to_owned(),
                        policies_tag_value(&set(&[S3]))
                    )])
                },
            ],
            "the policy attached by hand stays"
        );
        observed.tags.remove(POLICIES_TAG_KEY);
        let memory = Memory {
            attached: set(&[LOGS]),
            ..Memory::default()
        };
        let Ok(RolePlan::Converge { changes, .. }) =
            plan(intent(&after, false), Some(&observed), &memory)
        else {
            panic!("converge");
        };
        assert_eq!(
            changes.first(),
            Some(&Change::DetachPolicy {
                arn: LOGS.to_owned()
            }),
            "the status alone still remembers"
        );
    }

    #[test]
    fn attached_policies_follow_the_applied_changes() {
        let applied = [
            Change::AttachPolicy { arn: S3.to_owned() },
            Change::DetachPolicy {
                arn: LOGS.to_owned(),
            },
            Change::DeleteBoundary,
        ];
        assert_eq!(attached_after(&set(&[LOGS]), &applied), set(&[S3]));
        assert_eq!(
            attached_after(&set(&[LOGS]), &applied[..1]),
            set(&[LOGS, S3])
        );
    }

    #[test]
    fn only_a_recorded_role_is_read_before_writing() {
        assert!(!Memory::default().observe_first());
        let seen = Memory {
            role_id: Some("AROA1".to_owned()),
            ..Memory::default()
        };
        assert!(seen.observe_first());
        let taken = Memory {
            name_taken: true,
            ..Memory::default()
        };
        assert!(taken.observe_first());
        assert!(
            PlanError::RoleExists {
                role_name: String::new()
            }
            .name_taken()
        );
        assert!(
            !PlanError::PathMismatch {
                desired: String::new(),
                observed: String::new()
            }
            .name_taken()
        );
    }

    #[test]
    fn teardown_empties_and_deletes_only_an_own_role() {
        let desired = desired(&[S3]);
        let mut observed = existing(&desired, Some(OWNER));
        observed.managed_policies.insert(FOREIGN.to_owned());
        assert_eq!(teardown(None, OWNER, &[]), Teardown::Gone);
        assert_eq!(
            teardown(Some(&existing(&desired, None)), OWNER, &[]),
            Teardown::NotOurs
        );
        assert_eq!(
            teardown(Some(&observed), OWNER, &["profile".to_owned()]),
            Teardown::Delete(vec![
                TeardownStep::LeaveInstanceProfile("profile".to_owned()),
                TeardownStep::Change(Change::DetachPolicy {
                    arn: FOREIGN.to_owned()
                }),
                TeardownStep::Change(Change::DetachPolicy { arn: S3.to_owned() }),
                TeardownStep::Change(Change::DeleteInlinePolicy {
                    name: "read".to_owned()
                }),
                TeardownStep::DeleteRole,
            ])
        );
    }
}
