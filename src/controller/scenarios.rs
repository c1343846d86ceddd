//! Scenario tests of a role's reconcile: observe → plan → execute against an in-memory IAM that
//! keeps roles, counts every call and fails the calls it is told to, and the whole reconcile
//! against a stand-in API server where the failure happens before IAM. Each scenario runs alone,
//! in milliseconds; the end-to-end tests prove the same against moto and a real API server.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::{Future, ready};
use std::sync::Mutex;

use super::model::error::ReconcileError;
use super::model::plan::{Intent, Memory};
use super::role_api::RoleApi;
use super::sync::{Deleted, Done, SyncFailure, Synced, delete_role, sync_role};
use crate::api::{IAMRoleSpec, InlinePolicy};
use crate::aws::{AwsError, AwsErrorKind};
use crate::iam::{
    Change, CreateRole, DesiredRole, OWNER_TAG_KEY, ObservedRole, RoleIdentity, owner_value,
};

/// IAM in memory.
#[derive(Default)]
struct FakeIam {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    roles: BTreeMap<String, ObservedRole>,
    profiles: BTreeMap<String, BTreeSet<String>>,
    calls: Vec<&'static str>,
    /// Calls to fail next: operation and the error kind.
    faults: VecDeque<(&'static str, AwsErrorKind)>,
    next_id: u32,
}

impl FakeIam {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("not poisoned"))
    }

    /// Fails the next call of `operation` with `kind`.
    fn fail_next(&self, operation: &'static str, kind: AwsErrorKind) {
        self.with(|s| s.faults.push_back((operation, kind)));
    }

    fn calls(&self) -> Vec<&'static str> {
        self.with(|s| std::mem::take(&mut s.calls))
    }

    fn writes(&self) -> Vec<&'static str> {
        self.calls()
            .into_iter()
            .filter(|op| crate::aws::is_write(op))
            .collect()
    }

    fn role(&self, name: &str) -> Option<ObservedRole> {
        self.with(|s| s.roles.get(name).cloned())
    }

    fn edit(&self, name: &str, f: impl FnOnce(&mut ObservedRole)) {
        self.with(|s| f(s.roles.get_mut(name).expect("role exists")));
    }

    /// Records a call; fails it when a fault is queued for it or when `role` is missing.
    fn call<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut State) -> Result<T, AwsError>,
    ) -> std::future::Ready<Result<T, AwsError>> {
        let result = self.with(|s| {
            s.calls.push(operation);
            if let Some(position) = s.faults.iter().position(|(op, _)| *op == operation) {
                let (_, kind) = s.faults.remove(position).expect("position exists");
                return Err(AwsError::new(operation, kind, "injected"));
            }
            f(s)
        });
        ready(result)
    }
}

fn missing(operation: &'static str) -> AwsError {
    AwsError::new(operation, AwsErrorKind::NoSuchEntity, "no such role")
}

fn role_mut<'a>(
    s: &'a mut State,
    operation: &'static str,
    name: &str,
) -> Result<&'a mut ObservedRole, AwsError> {
    s.roles.get_mut(name).ok_or_else(|| missing(operation))
}

impl RoleApi for FakeIam {
    fn observe_role(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ObservedRole>, AwsError>> + Send {
        let name = name.to_owned();
        self.call("GetRole", move |s| Ok(s.roles.get(&name).cloned()))
    }

    fn create_role(
        &self,
        role: &CreateRole,
    ) -> impl Future<Output = Result<RoleIdentity, AwsError>> + Send {
        let role = role.clone();
        self.call("CreateRole", move |s| {
            if s.roles.contains_key(&role.name) {
                return Err(AwsError::new(
                    "CreateRole",
                    AwsErrorKind::EntityAlreadyExists,
                    "exists",
                ));
            }
            s.next_id += 1;
            let observed = ObservedRole {
                arn: format!("arn:aws:iam::123456789012:role{}{}", role.path, role.name),
                role_id: format!("AROA{}", s.next_id),
                create_date: "2026-01-01T00:00:00Z".to_owned(),
                path: role.path,
                description: role.description,
                max_session_duration: role.max_session_duration,
                trust_policy: role.trust_policy,
                permissions_boundary: role.permissions_boundary,
                tags: role.tags,
                ..ObservedRole::default()
            };
            let identity = super::model::plan::identity(&observed);
            s.roles.insert(role.name, observed);
            Ok(identity)
        })
    }

    fn apply(
        &self,
        role_name: &str,
        change: &Change,
    ) -> impl Future<Output = Result<(), AwsError>> + Send {
        let (name, change) = (role_name.to_owned(), change.clone());
        self.call(change.operation(), move |s| {
            let role = role_mut(s, change.operation(), &name)?;
            match change {
                Change::UpdateRole {
                    description,
                    max_session_duration,
                } => {
                    role.description = description.filter(|d| !d.is_empty());
                    role.max_session_duration = max_session_duration;
                }
                Change::UpdateTrustPolicy { document } => role.trust_policy = document,
                Change::AttachPolicy { arn } => {
                    role.managed_policies.insert(arn);
                }
                Change::DetachPolicy { arn } => {
                    if !role.managed_policies.remove(&arn) {
                        return Err(missing("DetachRolePolicy"));
                    }
                }
                Change::PutInlinePolicy { name, document } => {
                    role.inline_policies.insert(name, document);
                }
                Change::DeleteInlinePolicy { name } => {
                    role.inline_policies.remove(&name);
                }
                Change::PutBoundary { arn } => role.permissions_boundary = Some(arn),
                Change::DeleteBoundary => role.permissions_boundary = None,
                Change::TagRole { tags } => role.tags.extend(tags),
                Change::UntagRole { keys } => role.tags.retain(|k, _| !keys.contains(k)),
            }
            Ok(())
        })
    }

    fn instance_profiles_for_role(
        &self,
        role_name: &str,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send {
        let name = role_name.to_owned();
        self.call("ListInstanceProfilesForRole", move |s| {
            Ok(s.profiles
                .get(&name)
                .into_iter()
                .flatten()
                .cloned()
                .collect())
        })
    }

    fn remove_role_from_instance_profile(
        &self,
        instance_profile: &str,
        role_name: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send {
        let (profile, name) = (instance_profile.to_owned(), role_name.to_owned());
        self.call("RemoveRoleFromInstanceProfile", move |s| {
            s.profiles.entry(name).or_default().remove(&profile);
            Ok(())
        })
    }

    fn delete_role(&self, role_name: &str) -> impl Future<Output = Result<(), AwsError>> + Send {
        let name = role_name.to_owned();
        self.call("DeleteRole", move |s| {
            let in_profiles = s.profiles.get(&name).is_some_and(|p| !p.is_empty());
            let role = role_mut(s, "DeleteRole", &name)?;
            if !role.managed_policies.is_empty() || !role.inline_policies.is_empty() || in_profiles
            {
                return Err(AwsError::new(
                    "DeleteRole",
                    AwsErrorKind::DeleteConflict,
                    "not empty",
                ));
            }
            s.roles.remove(&name);
            Ok(())
        })
    }
}

const OWNER_NS: &str = "team-a";
const OWNER_NAME: &str = "app";
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const S3: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
const LOGS: &str = "arn:aws:iam::aws:policy/CloudWatchLogsFullAccess";
const FOREIGN: &str = "arn:aws:iam::123456789012:policy/AttachedByHand";

fn spec(managed: &[&str]) -> IAMRoleSpec {
    IAMRoleSpec {
        role_name: "app-role".to_owned(),
        assume_role_policy_document: Some(TRUST.to_owned()),
        description: Some("application role".to_owned()),
        managed_policy_arns: Some(managed.iter().map(|s| (*s).to_owned()).collect()),
        inline_policies: Some(vec![InlinePolicy {
            policy_name: "read".to_owned(),
            policy_document: READ.to_owned(),
        }]),
        ..IAMRoleSpec::default()
    }
}

fn owner() -> String {
    owner_value(OWNER_NS, OWNER_NAME)
}

fn desired(spec: &IAMRoleSpec) -> DesiredRole {
    let trust = spec.assume_role_policy_document.clone().unwrap_or_default();
    DesiredRole::new(spec, trust, None, &owner())
}

fn intent<'a>(desired: &'a DesiredRole, owner: &'a str, adopt: bool) -> Intent<'a> {
    Intent {
        desired,
        owner,
        adopt,
    }
}

/// The memory a status would hold after `synced`.
fn remembered(role_id: &str, attached: &BTreeSet<String>) -> Memory {
    Memory {
        role_id: Some(role_id.to_owned()),
        attached: attached.clone(),
        name_taken: false,
    }
}

/// Lets any role found be adopted.
fn any_role(_: &ObservedRole) -> Result<(), ReconcileError> {
    Ok(())
}

/// [`sync_role`] of `desired` for `owner`, adopting any role found when `adopt`.
async fn sync(
    iam: &FakeIam,
    desired: &DesiredRole,
    owner: &str,
    adopt: bool,
    memory: &Memory,
) -> Result<Synced, SyncFailure> {
    sync_role(iam, intent(desired, owner, adopt), memory, &any_role).await
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A role made outside the operator (no owner tag), holding a policy attached by hand.
fn unowned_role(iam: &FakeIam) {
    iam.with(|s| {
        s.roles.insert(
            "app-role".to_owned(),
            ObservedRole {
                arn: "arn:aws:iam::123456789012:role/app-role".to_owned(),
                role_id: "AROAOUTSIDE".to_owned(),
                path: "/".to_owned(),
                max_session_duration: 3600,
                trust_policy: TRUST.to_owned(),
                managed_policies: set(&[FOREIGN]),
                ..ObservedRole::default()
            },
        );
    });
}

#[tokio::test]
async fn a_new_role_is_created_in_one_pass_and_a_resync_writes_nothing() {
    let iam = FakeIam::default();
    let desired = desired(&spec(&[S3]));
    let owner = owner();
    let synced = sync(&iam, &desired, &owner, false, &Memory::default())
        .await
        .expect("synced");
    assert!(matches!(synced.done, Done::Created(_)));
    assert_eq!(
        iam.calls(),
        ["CreateRole", "AttachRolePolicy", "PutRolePolicy"],
        "no read before creating a role never seen"
    );
    assert_eq!(synced.attached, set(&[S3]));
    let role = iam.role("app-role").expect("created");
    assert_eq!(role.tags.get(OWNER_TAG_KEY), Some(&owner));

    let memory = remembered(&synced.identity.role_id, &synced.attached);
    let again = sync(&iam, &desired, &owner, false, &memory)
        .await
        .expect("synced");
    assert_eq!(again.done, Done::Unchanged);
    assert_eq!(iam.writes(), Vec::<&str>::new());
}

#[tokio::test]
async fn a_crash_after_create_role_converges_on_the_existing_own_role() {
    let iam = FakeIam::default();
    let desired = desired(&spec(&[S3]));
    let owner = owner();
    iam.fail_next("AttachRolePolicy", AwsErrorKind::ServiceFailure);
    let failure = sync(&iam, &desired, &owner, false, &Memory::default())
        .await
        .expect_err("attach fails");
    assert!(failure.identity.is_some(), "the created role is reported");
    assert_eq!(failure.attached, Some(set(&[])));
    assert_eq!(failure.error.reason(), "ServiceFailure");
    iam.calls();
    // The status was not written (a crash): nothing is remembered.
    let synced = sync(&iam, &desired, &owner, false, &Memory::default())
        .await
        .expect("converges");
    assert_eq!(
        iam.calls(),
        ["CreateRole", "GetRole", "AttachRolePolicy", "PutRolePolicy"]
    );
    assert!(matches!(synced.done, Done::Updated(_)));
    assert_eq!(iam.with(|s| s.roles.len()), 1, "never two roles");
}

#[tokio::test]
async fn an_unowned_role_is_left_alone_unless_adoption_is_asked() {
    let iam = FakeIam::default();
    unowned_role(&iam);
    let desired = desired(&spec(&[S3]));
    let owner = owner();
    let refused = sync(&iam, &desired, &owner, false, &Memory::default())
        .await
        .expect_err("not ours");
    assert_eq!(refused.error.reason(), "RoleExists");
    assert_eq!(iam.writes(), ["CreateRole"], "only the refused CreateRole");
    assert_eq!(iam.role("app-role").map(|r| r.tags.len()), Some(0));
    let taken = Memory {
        name_taken: true,
        ..Memory::default()
    };
    let again = sync(&iam, &desired, &owner, false, &taken)
        .await
        .expect_err("still not ours");
    assert_eq!(again.error.reason(), "RoleExists");
    assert_eq!(
        iam.calls(),
        ["GetRole"],
        "a name found taken is read, not created again"
    );

    let adopted = sync(&iam, &desired, &owner, true, &Memory::default())
        .await
        .expect("adopted");
    assert!(matches!(adopted.done, Done::Adopted(_)));
    let role = iam.role("app-role").expect("kept");
    assert_eq!(role.role_id, "AROAOUTSIDE");
    assert_eq!(role.tags.get(OWNER_TAG_KEY), Some(&owner));
    assert!(
        role.managed_policies.contains(FOREIGN),
        "a policy attached by hand is never detached"
    );
    assert_eq!(adopted.attached, set(&[S3]));
}

#[tokio::test]
async fn an_adoption_the_guardrails_refuse_writes_nothing() {
    let iam = FakeIam::default();
    unowned_role(&iam);
    let desired = desired(&spec(&[S3]));
    let owner = owner();
    let refuse = |found: &ObservedRole| {
        Err(ReconcileError::GuardrailDenied {
            namespace: "team-a".to_owned(),
            findings: format!("[managed-policy] {:?}", found.managed_policies),
        })
    };
    let refused = sync_role(
        &iam,
        intent(&desired, &owner, true),
        &Memory::default(),
        &refuse,
    )
    .await
    .expect_err("refused");
    assert_eq!(refused.error.reason(), "GuardrailDenied");
    assert!(
        refused.error.to_string().contains(FOREIGN),
        "{}",
        refused.error
    );
    assert_eq!(iam.writes(), ["CreateRole"], "only the refused CreateRole");
    assert_eq!(iam.role("app-role").map(|r| r.tags.len()), Some(0));
}

#[tokio::test]
async fn a_role_replaced_outside_the_operator_is_not_taken_over() {
    let (iam, _) = with_own_role().await;
    let desired = desired(&spec(&[S3]));
    let owner = owner();
    iam.calls();
    let memory = remembered("AROAOLDROLE", &set(&[S3]));
    let refused = sync(&iam, &desired, &owner, false, &memory)
        .await
        .expect_err("replaced");
    assert_eq!(refused.error.reason(), "RoleConflict");
    assert!(
        refused.error.to_string().contains("AROAOLDROLE"),
        "{}",
        refused.error
    );
    assert_eq!(iam.writes(), Vec::<&str>::new(), "read only");
}

#[tokio::test]
async fn a_role_owned_by_another_object_is_a_conflict_with_no_write() {
    let iam = FakeIam::default();
    let other = owner_value("team-b", "app");
    let theirs = DesiredRole::new(&spec(&[]), TRUST.to_owned(), None, &other);
    sync(&iam, &theirs, &other, false, &Memory::default())
        .await
        .expect("created by team-b");
    iam.calls();
    let ours = desired(&spec(&[S3]));
    let owner = owner();
    for adopt in [false, true] {
        let failure = sync(&iam, &ours, &owner, adopt, &remembered("x", &set(&[])))
            .await
            .expect_err("conflict");
        assert_eq!(failure.error.reason(), "RoleConflict");
        assert!(failure.error.to_string().contains("team-b/app"));
    }
    assert_eq!(iam.writes(), Vec::<&str>::new());
}

#[tokio::test]
async fn spec_changes_and_drift_are_written_and_nothing_else() {
    let iam = FakeIam::default();
    let owner = owner();
    let first = desired(&spec(&[S3, LOGS]));
    let synced = sync(&iam, &first, &owner, false, &Memory::default())
        .await
        .expect("created");
    let memory = remembered(&synced.identity.role_id, &synced.attached);
    iam.calls();

    // Drift in IAM: a description changed by hand and a policy attached by hand.
    iam.edit("app-role", |role| {
        role.description = Some("changed by hand".to_owned());
        role.managed_policies.insert(FOREIGN.to_owned());
    });
    let mut changed = spec(&[S3]);
    changed.assume_role_policy_document = Some(TRUST.replace("ec2", "lambda"));
    let changed = desired(&changed);
    let synced = sync(&iam, &changed, &owner, false, &memory)
        .await
        .expect("converged");
    assert_eq!(
        iam.writes(),
        [
            "UpdateRole",
            "UpdateAssumeRolePolicy",
            "DetachRolePolicy",
            "TagRole"
        ]
    );
    let role = iam.role("app-role").expect("exists");
    assert_eq!(role.description.as_deref(), Some("application role"));
    assert_eq!(role.managed_policies, set(&[FOREIGN, S3]));
    assert_eq!(synced.attached, set(&[S3]));
}

#[tokio::test]
async fn a_policy_removed_from_the_spec_is_detached_after_the_status_was_lost() {
    let iam = FakeIam::default();
    let owner = owner();
    let first = desired(&spec(&[S3, LOGS]));
    sync(&iam, &first, &owner, false, &Memory::default())
        .await
        .expect("created");
    iam.edit("app-role", |role| {
        role.managed_policies.insert(FOREIGN.to_owned());
    });
    iam.calls();
    let fewer = desired(&spec(&[S3]));
    // A backup restored without its status: no roleId, no attachedPolicyArns.
    sync(&iam, &fewer, &owner, false, &Memory::default())
        .await
        .expect("converged");
    let role = iam.role("app-role").expect("exists");
    assert_eq!(
        role.managed_policies,
        set(&[FOREIGN, S3]),
        "LOGS detached, the policy attached by hand kept"
    );
}

#[tokio::test]
async fn a_throttled_call_is_transient_and_the_next_pass_finishes_the_rest() {
    let iam = FakeIam::default();
    let owner = owner();
    let first = desired(&spec(&[]));
    let synced = sync(&iam, &first, &owner, false, &Memory::default())
        .await
        .expect("created");
    let memory = remembered(&synced.identity.role_id, &synced.attached);
    iam.calls();
    let more = desired(&spec(&[S3, LOGS]));
    iam.fail_next("AttachRolePolicy", AwsErrorKind::Throttling);
    let failure = sync(&iam, &more, &owner, false, &memory)
        .await
        .expect_err("throttled");
    assert_eq!(failure.error.reason(), "Throttling");
    assert_eq!(
        failure.error.retry(),
        super::model::error::Retry::Backoff,
        "retried soon, never failed for good"
    );
    assert_eq!(failure.attached, Some(set(&[])));
    let synced = sync(&iam, &more, &owner, false, &memory)
        .await
        .expect("converged");
    assert_eq!(synced.attached, set(&[LOGS, S3]));
    assert_eq!(
        iam.writes(),
        [
            "AttachRolePolicy",
            "AttachRolePolicy",
            "AttachRolePolicy",
            "TagRole"
        ],
        "one failed attach, then the two attachments and the memory tag"
    );
}

/// An IAM holding the role `app-role` of [`owner`], created with the policy `S3`.
async fn with_own_role() -> (FakeIam, String) {
    let iam = FakeIam::default();
    let owner = owner();
    sync(
        &iam,
        &desired(&spec(&[S3])),
        &owner,
        false,
        &Memory::default(),
    )
    .await
    .expect("created");
    (iam, owner)
}

#[tokio::test]
async fn deletion_empties_the_role_and_leaves_foreign_ones() {
    let (iam, owner) = with_own_role().await;
    iam.with(|s| {
        s.profiles
            .insert("app-role".to_owned(), set(&["web-profile"]));
        s.roles
            .get_mut("app-role")
            .expect("exists")
            .managed_policies
            .insert(FOREIGN.to_owned());
    });
    iam.calls();
    let deleted = delete_role(&iam, "app-role", &owner)
        .await
        .expect("deleted");
    assert!(matches!(deleted, Deleted::Deleted(_)));
    assert_eq!(
        iam.writes(),
        [
            "RemoveRoleFromInstanceProfile",
            "DetachRolePolicy",
            "DetachRolePolicy",
            "DeleteRolePolicy",
            "DeleteRole"
        ]
    );
    assert!(iam.role("app-role").is_none());
    assert_eq!(
        delete_role(&iam, "app-role", &owner).await.expect("gone"),
        Deleted::Gone
    );

    unowned_role(&iam);
    iam.calls();
    assert_eq!(
        delete_role(&iam, "app-role", &owner).await.expect("left"),
        Deleted::NotOurs
    );
    assert_eq!(iam.writes(), Vec::<&str>::new());
    assert!(iam.role("app-role").is_some());
}

#[tokio::test]
async fn a_deletion_interrupted_by_a_fault_finishes_on_the_next_pass() {
    let (iam, owner) = with_own_role().await;
    iam.fail_next("DeleteRolePolicy", AwsErrorKind::ServiceFailure);
    let error = delete_role(&iam, "app-role", &owner)
        .await
        .expect_err("fault");
    assert_eq!(error.reason(), "ServiceFailure");
    assert!(iam.role("app-role").is_some());
    assert!(matches!(
        delete_role(&iam, "app-role", &owner).await,
        Ok(Deleted::Deleted(_))
    ));
    assert!(iam.role("app-role").is_none());
}

/// The reconcile of an IAMRole whose provider does not exist, against a stand-in API server that
/// answers each request as the real one would: the failure is reported once (a status patch with
/// the reason, then the error returned) and retried with backoff, without any AWS call.
#[tokio::test]
async fn a_missing_provider_is_reported_in_the_status_and_retried_with_backoff() {
    use std::sync::Arc;

    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use kube::runtime::controller::Action;
    use kube::runtime::events::{Recorder, Reporter};
    use kube::runtime::reflector;

    use super::backoff::{BACKOFF_BASE, Backoff};
    use super::clients::{ClientCache, ProviderClients};
    use super::context::Context;
    use super::events::Events;
    use super::metrics::ControllerMetrics;
    use super::role::{error_policy, reconcile};
    use super::stores::Stores;
    use crate::api::{FINALIZER, IAMRole, ProviderRef};
    use crate::aws::{RateConfig, RateLimits};

    let (service, mut api_server) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let (roles, mut role_writer) = reflector::store();
    let (providers, _) = reflector::store();
    let metrics =
        ControllerMetrics::register(&mut prometheus_client::registry::Registry::default());
    let (role_triggers, _requeued) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(Context {
        clients: ProviderClients::new(
            client.clone(),
            Arc::new(ClientCache::default()),
            &metrics,
            RateLimits::new(RateConfig::new(20.0, 40).expect("valid"), None),
            None,
        ),
        events: Events::start(Recorder::new(
            client.clone(),
            Reporter {
                controller: "test".to_owned(),
                instance: None,
            },
        )),
        client,
        stores: Stores { roles, providers },
        metrics,
        role_backoff: Backoff::default(),
        provider_backoff: Backoff::default(),
        names_taken: Default::default(),
        annotation_retries: Default::default(),
        role_triggers,
        provider_triggers: tokio::sync::mpsc::unbounded_channel().0,
        guardrails: crate::governance::Guardrails::Fixed(Arc::new(
            crate::guardrails::Engine::new(crate::guardrails::Config::default()).expect("engine"),
        )),
    });
    let mut role = IAMRole::new(
        "app",
        IAMRoleSpec {
            provider_ref: ProviderRef {
                name: "gone".to_owned(),
                namespace: None,
            },
            ..spec(&[])
        },
    );
    role.metadata.namespace = Some("team-a".to_owned());
    role.metadata.generation = Some(1);
    role.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    role_writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(role.clone()));
    let role = Arc::new(role);

    let answering = tokio::spawn(async move {
        let mut status_patch = None;
        while status_patch.is_none() {
            let Some((request, respond)) = api_server.next_request().await else {
                break;
            };
            let (method, path) = (request.method().clone(), request.uri().path().to_owned());
            let body = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let response = if method == Method::GET && path.ends_with("/awsproviders/gone") {
                let missing = serde_json::json!({"kind": "Status", "apiVersion": "v1",
                    "status": "Failure", "reason": "NotFound", "code": 404,
                    "message": "awsproviders \"gone\" not found"});
                (
                    StatusCode::NOT_FOUND,
                    serde_json::to_vec(&missing).unwrap_or_default(),
                )
            } else if method == Method::PATCH && path.ends_with("/iamroles/app/status") {
                status_patch = Some(String::from_utf8_lossy(&body).into_owned());
                (StatusCode::OK, br#"{"apiVersion":"aws-infra-operator.runner.codes/v1alpha1","kind":"IAMRole","metadata":{"name":"app","namespace":"team-a"},"spec":{"providerRef":{"name":"gone"},"roleName":"app-role","assumeRolePolicyDocument":"{}"}}"#.to_vec())
            } else {
                // Events (best effort) and anything else: created as asked.
                (StatusCode::CREATED, body.to_vec())
            };
            let mut answer = Response::new(Body::from(response.1));
            *answer.status_mut() = response.0;
            respond.send_response(answer);
        }
        status_patch
    });
    let error = reconcile(Arc::clone(&role), Arc::clone(&ctx))
        .await
        .expect_err("no provider");
    assert_eq!(error.reason(), "ProviderNotFound");
    let patch = answering.await.expect("answered").expect("status patched");
    assert!(patch.contains("ProviderNotFound"), "{patch}");
    assert!(patch.contains("\"ready\":false"), "{patch}");
    assert_eq!(
        error_policy(Arc::clone(&role), &error, Arc::clone(&ctx)),
        Action::requeue(BACKOFF_BASE)
    );
    assert_eq!(
        error_policy(role, &error, ctx),
        Action::requeue(BACKOFF_BASE * 2),
        "the backoff grows while the failure lasts"
    );
}
