//! One AdmissionReview in, one [`Verdict`] out: reads the request, runs the guardrail engine
//! (validate) or computes the defaults patch (mutate), and decides the response. Pure.
//!
//! The body is read in one pass ([`super::envelope`]): the object under review is taken as raw JSON,
//! as the API server sent it but for its managed fields and last-applied annotation, so the engine
//! (not the envelope parser) judges its shape; only the envelope must be a well-formed
//! `admission.k8s.io` AdmissionReview.

use std::time::Duration;

use kube::core::admission::Operation;
use serde::Deserialize;
use serde_json::Value;

use super::envelope::{self, Envelope};

use super::mutate::defaults_patch;
use super::response::{MAX_MESSAGE_BYTES, Verdict, bounded_join};
use crate::governance::Guardrails;
use crate::guardrails::{FieldPath, Finding, Kind, RuleId};
use crate::iam::json::at;

/// The API group of AdmissionReview.
const ADMISSION_GROUP: &str = "admission.k8s.io/";
/// The kind an admission body must declare.
const ADMISSION_KIND: &str = "AdmissionReview";
/// `status.code` of a denial: the API server answers the client with it.
pub const DENIAL_CODE: u16 = 403;
/// `status.reason` of a denial.
pub const DENIAL_REASON: &str = "Forbidden";
/// `status.code` of a review refused because its checks overran the deadline.
pub const OVERDUE_CODE: u16 = 504;
/// `status.reason` of a review refused because its checks overran the deadline.
pub const OVERDUE_REASON: &str = "Timeout";

/// Which webhook was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /mutate`: defaults as a JSONPatch.
    Mutate,
    /// `POST /validate`: the guardrails.
    Validate,
}

impl Endpoint {
    /// The endpoint's name as used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// Why a body was not answered with an AdmissionReview (the handler replies 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON at all.
    #[error("body is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// JSON, but not an AdmissionReview envelope.
    #[error("body is not an admission.k8s.io AdmissionReview: {0}")]
    NotAReview(String),
    /// An AdmissionReview without `request`.
    #[error("AdmissionReview has no request")]
    NoRequest,
    /// A CREATE or UPDATE without the object.
    #[error("{operation} request {uid} carries no object")]
    NoObject {
        /// The operation.
        operation: &'static str,
        /// The request's uid.
        uid: String,
    },
    /// The patch could not be encoded (not expected to happen for JSON values).
    #[error("cannot encode the patch: {0}")]
    Patch(serde_json::Error),
}

/// The response to one review, with what metrics and logs need to know about it.
#[derive(Debug)]
pub struct Answer {
    /// What to answer (uid echoed).
    pub verdict: Verdict,
    /// The kind reviewed (`IAMRole`, `AWSProvider`, or `other`).
    pub kind: &'static str,
    /// The operation (`CREATE`, `UPDATE`, `DELETE`, `CONNECT`).
    pub operation: &'static str,
    /// The rule of every DENY finding, in order.
    pub denied_rules: Vec<RuleId>,
    /// `namespace/name` of the object, for logs.
    pub object: String,
}

/// Answers one AdmissionReview body for `endpoint`, with the guardrails governing the object's
/// namespace. `dryRun` requests are answered like any other.
pub fn answer(
    guardrails: &Guardrails,
    endpoint: Endpoint,
    body: &[u8],
) -> Result<Answer, ReviewError> {
    let reviewed = parse(body)?;
    let kind = reviewed.kind();
    let object_name = reviewed.object_name();
    let mut verdict = Verdict::allow(reviewed.uid.clone());
    let mut denied_rules = Vec::new();
    let object = match kind {
        Some(_) => reviewed.object_to_review()?,
        None => None,
    };
    // The stored object, on UPDATE only.
    let old = match reviewed.operation {
        Operation::Update => reviewed.old_object.as_ref(),
        _ => None,
    };
    if let (Some(kind), Some(object)) = (kind, object) {
        let governed = match kind {
            Kind::GuardrailPolicy => Ok(guardrails.any_engine()),
            Kind::IAMRole | Kind::AWSProvider => guardrails
                .governing(reviewed.namespace().unwrap_or_default())
                .map(|governed| governed.engine),
        };
        match (endpoint, governed) {
            (Endpoint::Validate, Err(error)) => {
                verdict.refuse(
                    DENIAL_CODE,
                    DENIAL_REASON,
                    format!("{} {object_name} refused: {error}", kind.as_str()),
                );
            }
            (Endpoint::Validate, Ok(engine)) => {
                let object = reviewed.with_namespace(object);
                // Only a workload identity needs the role's provider (its cluster and account).
                let provider = match kind {
                    Kind::IAMRole if at(&object, &["spec", "workloadIdentity"]).is_some() => {
                        at(&object, &["spec", "providerRef", "name"])
                            .and_then(Value::as_str)
                            .and_then(|name| {
                                guardrails.provider(reviewed.namespace().unwrap_or_default(), name)
                            })
                    }
                    _ => None,
                };
                let mut findings =
                    engine.check_with_provider(kind, &object, old, provider.as_ref());
                if reviewed.operation == Operation::Update && old.is_none() {
                    findings.push(no_stored_object());
                }
                judge(&mut verdict, kind, &object_name, &findings);
                denied_rules = findings
                    .iter()
                    .filter(|f| f.is_deny())
                    .map(|f| f.rule)
                    .collect();
            }
            (Endpoint::Mutate, Ok(engine)) if kind == Kind::IAMRole => {
                let patch = defaults_patch(object, old, engine.config());
                if !patch.is_empty() {
                    verdict.patch = Some(serde_json::to_vec(&patch).map_err(ReviewError::Patch)?);
                }
            }
            // Nothing to default, or no guardrails to default with: validation refuses the latter.
            (Endpoint::Mutate, _) => {}
        }
    }
    Ok(Answer {
        kind: kind.map_or("other", Kind::as_str),
        operation: operation_name(&reviewed.operation),
        denied_rules,
        object: object_name,
        verdict,
    })
}

/// The finding for an UPDATE without the stored object: nothing to compare the immutable fields
/// with, so it is refused (fail closed).
fn no_stored_object() -> Finding {
    Finding::deny(
        RuleId::ImmutableField,
        &FieldPath::root("oldObject"),
        "the UPDATE carries no stored object, so the immutable fields (roleName, path, providerRef) \
         cannot be compared; refused",
    )
}

/// The `request.uid` of a body, read without building the document (for answering a review whose
/// checks did not finish); `None` when the body is not an AdmissionReview with a uid.
pub fn request_uid(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Envelope {
        request: Request,
    }
    #[derive(Deserialize)]
    struct Request {
        uid: String,
    }
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|envelope| envelope.request.uid)
}

/// The refusal of request `uid` whose checks did not finish within `deadline`.
pub fn overdue(uid: String, deadline: Duration) -> Verdict {
    let mut verdict = Verdict::allow(uid);
    verdict.refuse(
        OVERDUE_CODE,
        OVERDUE_REASON,
        format!(
            "refused: the guardrail checks did not finish within the review deadline of {} ms; \
             the object is too large or too complex to review",
            deadline.as_millis()
        ),
    );
    verdict
}

/// Turns findings into the verdict: every DENY in the refusal's message and every WARN in the
/// warnings, both bounded in size.
fn judge(verdict: &mut Verdict, kind: Kind, object: &str, findings: &[Finding]) {
    let denials = findings.iter().filter(|f| f.is_deny());
    let denied = denials.clone().count();
    let warnings = findings.iter().filter(|f| !f.is_deny());
    verdict.set_warnings(warnings, findings.len() - denied);
    if denied == 0 {
        return;
    }
    let message = bounded_join(
        &format!("{} {object} refused by guardrails: ", kind.as_str()),
        denials,
        denied,
        "; ",
        MAX_MESSAGE_BYTES,
    );
    verdict.refuse(DENIAL_CODE, DENIAL_REASON, message);
}

/// A parsed review: the request's fields a decision reads, the objects as lean JSON.
type Reviewed<'b> = envelope::Request<'b>;

fn parse(body: &[u8]) -> Result<Reviewed<'_>, ReviewError> {
    let review: Envelope<'_> = envelope::parse(body).map_err(|e| {
        if envelope::not_json(&e) {
            ReviewError::NotJson(e)
        } else {
            ReviewError::NotAReview(e.to_string())
        }
    })?;
    if review.kind != ADMISSION_KIND || !review.api_version.starts_with(ADMISSION_GROUP) {
        return Err(ReviewError::NotAReview(format!(
            "apiVersion `{}` kind `{}`",
            review.api_version, review.kind
        )));
    }
    review.request.ok_or(ReviewError::NoRequest)
}

impl Reviewed<'_> {
    /// Our kind, when the request is about one of ours (and not about a subresource such as status).
    fn kind(&self) -> Option<Kind> {
        let gvk = &self.kind;
        if self.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
            return None;
        }
        Kind::from_group_version(&gvk.group, &gvk.version, &gvk.kind)
    }

    /// The object to check or default: present on CREATE and UPDATE, except on an UPDATE of an object
    /// already being deleted (so removing a finalizer is never refused). `None` means allow as is.
    fn object_to_review(&self) -> Result<Option<&Value>, ReviewError> {
        match self.operation {
            Operation::Create | Operation::Update => {}
            Operation::Delete | Operation::Connect => return Ok(None),
        }
        let Some(object) = self.object.as_ref() else {
            return Err(ReviewError::NoObject {
                operation: operation_name(&self.operation),
                uid: self.uid.clone(),
            });
        };
        let deleting = at(object, &["metadata", "deletionTimestamp"]).is_some_and(|t| !t.is_null());
        Ok((!deleting).then_some(object))
    }

    /// The namespace of the request, or else of the object.
    fn namespace(&self) -> Option<&str> {
        self.namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .or_else(|| {
                self.object
                    .as_ref()
                    .and_then(|o| at(o, &["metadata", "namespace"]))
                    .and_then(Value::as_str)
            })
    }

    /// `object` with the request's namespace in its metadata (the namespace the guardrails read),
    /// copied only when it does not say so already.
    fn with_namespace<'o>(&self, object: &'o Value) -> std::borrow::Cow<'o, Value> {
        let Some(namespace) = self.namespace.as_deref().filter(|n| !n.is_empty()) else {
            return std::borrow::Cow::Borrowed(object);
        };
        if at(object, &["metadata", "namespace"]).and_then(Value::as_str) == Some(namespace) {
            return std::borrow::Cow::Borrowed(object);
        }
        let mut copy = object.clone();
        if let Some(metadata) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("namespace".to_owned(), Value::String(namespace.to_owned()));
        }
        std::borrow::Cow::Owned(copy)
    }

    /// `namespace/name` (or `name`) of the object, from the request or else the object's metadata.
    fn object_name(&self) -> String {
        let from_object = |field: &str| {
            self.object
                .as_ref()
                .or(self.old_object.as_ref())
                .and_then(|o| at(o, &["metadata", field]))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let name = Some(self.name.to_string())
            .filter(|n| !n.is_empty())
            .or_else(|| from_object("name"))
            .or_else(|| from_object("generateName").map(|prefix| format!("{prefix}*")))
            .unwrap_or_else(|| "(unnamed)".to_owned());
        let namespace = self
            .namespace
            .as_deref()
            .map(str::to_owned)
            .filter(|n| !n.is_empty())
            .or_else(|| from_object("namespace"));
        match namespace {
            Some(namespace) => format!("{namespace}/{name}"),
            None => name,
        }
    }
}

/// The operation as Kubernetes spells it.
pub fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::guardrails::{Config, FieldPath, Severity};

    fn engine() -> Guardrails {
        Guardrails::Fixed(std::sync::Arc::new(
            crate::guardrails::Engine::new(Config::default()).unwrap(),
        ))
    }

    fn review(operation: &str, kind: Value, object: Value, old: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "uid-1",
                "kind": kind,
                "resource": {"group": "aws-infra-operator.runner.codes", "version": "v1alpha1", "resource": "iamroles"},
                "name": "foo",
                "namespace": "default",
                "operation": operation,
                "userInfo": {"username": "alice"},
                "object": object,
                "oldObject": old,
                "dryRun": false
            }
        }))
        .unwrap()
    }

    fn iamrole_kind() -> Value {
        json!({"group": "aws-infra-operator.runner.codes", "version": "v1alpha1", "kind": "IAMRole"})
    }

    #[test]
    fn only_our_group_and_version_are_our_kinds() {
        let kind_of = |group: &str, version: &str, kind: &str| {
            let gvk = json!({"group": group, "version": version, "kind": kind});
            let body = review("CREATE", gvk, json!({}), Value::Null);
            parse(&body).unwrap().kind()
        };
        let group = "aws-infra-operator.runner.codes";
        assert_eq!(kind_of(group, "v1alpha1", "IAMRole"), Some(Kind::IAMRole));
        assert_eq!(
            kind_of(group, "v1alpha1", "AWSProvider"),
            Some(Kind::AWSProvider)
        );
        for (group, version) in [
            (group, "v1"),
            (group, "v1alpha1 "),
            ("aws-infra-operator.runner.code", "sv1alpha1"),
            ("aws-infra-operator.runner.codes/v1", "lpha1"),
            ("aws-infra-operator.runner.codes/v1alpha1", ""),
            ("", "aws-infra-operator.runner.codes/v1alpha1"),
            ("other.example", "v1alpha1"),
        ] {
            assert_eq!(
                kind_of(group, version, "IAMRole"),
                None,
                "{group} {version}"
            );
        }
    }

    fn response(answer: &Answer) -> &Verdict {
        &answer.verdict
    }

    #[test]
    fn findings_become_message_and_warnings() {
        let deny = Finding::deny(
            RuleId::RoleName,
            &FieldPath::root("spec").field("roleName"),
            "bad",
        );
        let other = Finding::deny(
            RuleId::Tags,
            &FieldPath::root("spec").field("tags"),
            "too many",
        );
        let warn = Finding::new(
            RuleId::NotActionAllow,
            Severity::Warn,
            &FieldPath::root("spec"),
            "hm",
        );
        let mut judged = Verdict::allow("x");
        judge(
            &mut judged,
            Kind::IAMRole,
            "default/foo",
            &[deny, warn.clone(), other],
        );
        let refusal = judged.refusal.clone().unwrap();
        assert_eq!(
            refusal.message,
            "IAMRole default/foo refused by guardrails: [role-name] spec.roleName: bad; [tags] spec.tags: too many"
        );
        assert_eq!(refusal.code, 403);
        assert_eq!(
            judged.warnings,
            vec!["[not-action-allow] spec: hm".to_owned()]
        );

        let mut allowed = Verdict::allow("x");
        judge(&mut allowed, Kind::IAMRole, "default/foo", &[warn]);
        assert!(allowed.allowed());
        assert_eq!(allowed.warnings.len(), 1);
    }

    #[test]
    fn what_kubectl_and_the_api_server_add_changes_no_answer() {
        let spec = json!({
            "roleName": "app", "providerRef": {"name": "p"},
            "assumeRolePolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"sts:AssumeRole\"}]}",
            "maxSessionDuration": 99
        });
        let plain = json!({"metadata": {"name": "foo", "namespace": "default"}, "spec": spec});
        let mut applied = plain.clone();
        applied["metadata"]["managedFields"] = json!([{
            "manager": "kubectl-client-side-apply", "operation": "Update",
            "fieldsV1": {"f:spec": {"f:roleName": {}, "f:maxSessionDuration": {}}}
        }]);
        applied["metadata"]["annotations"] = json!({
            crate::admission::envelope::LAST_APPLIED_ANNOTATION: plain.to_string()
        });
        let engine = engine();
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let answered = |object: &Value| {
                let body = review("CREATE", iamrole_kind(), object.clone(), json!(null));
                answer(&engine, endpoint, &body).unwrap().verdict
            };
            let (plain, applied) = (answered(&plain), answered(&applied));
            assert_eq!(plain, applied, "{endpoint:?}");
            if endpoint == Endpoint::Validate {
                let message = plain.refusal.expect("refused").message;
                assert!(message.contains("spec.maxSessionDuration"), "{message}");
            }
        }
    }

    #[test]
    fn many_findings_make_a_bounded_answer() {
        let findings: Vec<Finding> = (0..75_000)
            .map(|i| {
                let path = FieldPath::root("spec").field("inlinePolicies").index(i);
                let severity = if i % 2 == 0 {
                    Severity::Deny
                } else {
                    Severity::Warn
                };
                Finding::new(
                    RuleId::PolicyGrammar,
                    severity,
                    &path,
                    "not a valid statement",
                )
            })
            .collect();
        let mut verdict = Verdict::allow("x");
        judge(&mut verdict, Kind::IAMRole, "default/foo", &findings);
        let message = &verdict.refusal.as_ref().unwrap().message;
        assert!(message.ends_with(" more"), "{message}");
        assert!(verdict.to_json().len() < 64 * 1024);
    }

    #[test]
    fn uids_are_read_without_parsing_the_object_and_overdue_reviews_are_refused() {
        let body = review("CREATE", iamrole_kind(), json!({"spec": {}}), json!(null));
        assert_eq!(request_uid(&body).as_deref(), Some("uid-1"));
        assert_eq!(request_uid(b"{\"request\": {}}"), None);
        assert_eq!(request_uid(b"[[["), None);
        let verdict = overdue("u".to_owned(), Duration::from_millis(2500));
        let refusal = verdict.refusal.unwrap();
        assert_eq!((refusal.code, refusal.reason), (504, "Timeout"));
        assert!(
            refusal.message.contains("review deadline of 2500 ms"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn delete_connect_and_foreign_kinds_are_allowed_without_looking() {
        let engine = engine();
        let delete = answer(
            &engine,
            Endpoint::Validate,
            &review("DELETE", iamrole_kind(), json!(null), json!({})),
        )
        .unwrap();
        assert!(response(&delete).allowed());
        assert_eq!((delete.kind, delete.operation), ("IAMRole", "DELETE"));
        let pod = json!({"group": "", "version": "v1", "kind": "Pod"});
        let foreign = answer(
            &engine,
            Endpoint::Validate,
            &review("CREATE", pod, json!({"spec": 1}), json!(null)),
        )
        .unwrap();
        assert!(response(&foreign).allowed());
        assert_eq!(foreign.kind, "other");
        assert_eq!(response(&foreign).uid, "uid-1");
    }

    #[test]
    fn an_update_without_a_readable_stored_object_is_refused() {
        let engine = engine();
        let role = json!({
            "apiVersion": "aws-infra-operator.runner.codes/v1alpha1", "kind": "IAMRole",
            "metadata": {"name": "foo", "namespace": "default"},
            "spec": {"providerRef": {"name": "aws"}, "roleName": "foo",
                     "assumeRolePolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"Service\":\"ec2.amazonaws.com\"},\"Action\":\"sts:AssumeRole\"}]}"}
        });
        let check = |old: Value| {
            answer(
                &engine,
                Endpoint::Validate,
                &review("UPDATE", iamrole_kind(), role.clone(), old),
            )
            .unwrap()
        };
        let same = check(role.clone());
        assert!(response(&same).allowed(), "{:?}", response(&same));
        for old in [
            json!(null),
            json!({"metadata": {"name": "foo"}, "spec": {"roleName": 7}}),
        ] {
            let refused = check(old.clone());
            assert!(!response(&refused).allowed(), "{old}");
            assert_eq!(refused.denied_rules, [RuleId::ImmutableField], "{old}");
        }
    }

    #[test]
    fn mutation_patches_iamroles_only() {
        let engine = engine();
        let object = json!({"metadata": {"name": "foo"}, "spec": {"roleName": "r"}});
        let mutated = answer(
            &engine,
            Endpoint::Mutate,
            &review("CREATE", iamrole_kind(), object.clone(), json!(null)),
        )
        .unwrap();
        let patch: json_patch::Patch =
            serde_json::from_slice(response(&mutated).patch.as_deref().unwrap()).unwrap();
        assert!(!patch.is_empty());
        let provider = json!({"group": "aws-infra-operator.runner.codes", "version": "v1alpha1", "kind": "AWSProvider"});
        let untouched = answer(
            &engine,
            Endpoint::Mutate,
            &review("CREATE", provider, object, json!(null)),
        )
        .unwrap();
        assert!(response(&untouched).patch.is_none());
        assert!(response(&untouched).allowed());
    }

    #[test]
    fn objects_being_deleted_and_subresources_are_not_checked() {
        let engine = engine();
        let dying = json!({"metadata": {"name": "foo", "deletionTimestamp": "2024-01-01T00:00:00Z"}, "spec": "broken"});
        let answered = answer(
            &engine,
            Endpoint::Validate,
            &review("UPDATE", iamrole_kind(), dying, json!({})),
        )
        .unwrap();
        assert!(response(&answered).allowed());
        assert!(answered.denied_rules.is_empty());

        let mut status = serde_json::from_slice::<Value>(&review(
            "UPDATE",
            iamrole_kind(),
            json!({"spec": 1}),
            json!({}),
        ))
        .unwrap();
        status["request"]["subResource"] = json!("status");
        let answered = answer(
            &engine,
            Endpoint::Mutate,
            &serde_json::to_vec(&status).unwrap(),
        )
        .unwrap();
        assert!(response(&answered).patch.is_none());
    }

    #[test]
    fn envelopes_that_are_not_reviews_are_errors() {
        let engine = engine();
        let check = |body: &[u8]| {
            answer(&engine, Endpoint::Validate, body)
                .map(|_| ())
                .unwrap_err()
        };
        assert!(matches!(check(b"{nope"), ReviewError::NotJson(_)));
        assert!(matches!(check(b"[]"), ReviewError::NotAReview(_)));
        assert!(matches!(
            check(br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}"#),
            ReviewError::NoRequest
        ));
        assert!(matches!(
            check(br#"{"apiVersion": "v1", "kind": "Pod", "request": null}"#),
            ReviewError::NotAReview(_)
        ));
        let mut wrong = serde_json::from_slice::<Value>(&review(
            "CREATE",
            iamrole_kind(),
            json!({}),
            json!(null),
        ))
        .unwrap();
        wrong["request"]["uid"] = json!(7);
        assert!(matches!(
            check(&serde_json::to_vec(&wrong).unwrap()),
            ReviewError::NotAReview(_)
        ));
        let missing = review("CREATE", iamrole_kind(), json!(null), json!(null));
        assert!(matches!(check(&missing), ReviewError::NoObject { .. }));
    }

    #[test]
    fn object_name_falls_back_to_metadata() {
        let mut body = serde_json::from_slice::<Value>(&review(
            "CREATE",
            iamrole_kind(),
            json!({"metadata": {"generateName": "role-", "namespace": "team-a"}}),
            json!(null),
        ))
        .unwrap();
        body["request"]["name"] = json!("");
        body["request"]["namespace"] = json!(null);
        let answered = answer(
            &engine(),
            Endpoint::Validate,
            &serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
        assert_eq!(answered.object, "team-a/role-*");
    }
}
