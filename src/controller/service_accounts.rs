//! The `eks.amazonaws.com/role-arn` annotation on the ServiceAccounts a role's `workloadIdentity`
//! lists (with `annotateServiceAccounts`). Only `patch` is needed on ServiceAccounts: every call is
//! a JSON patch, which never creates a missing ServiceAccount, and whose `test` operations make
//! each write conditional — the annotation is set only where it is absent (never over another
//! role's), and removed only while it still names this role. Talks to the Kubernetes API.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::api::ROLE_ARN_ANNOTATION;

/// How many times a write lost to a concurrent change of the ServiceAccount is retried.
const ATTEMPTS: usize = 3;

/// What annotating the listed ServiceAccounts came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotation {
    /// The ServiceAccounts whose annotation names the role.
    pub annotated: BTreeSet<String>,
    /// Why the others do not, one phrase each; empty when all do.
    pub problems: Vec<String>,
}

impl Annotation {
    /// Adds what annotating `name` came to.
    fn record(
        &mut self,
        name: &str,
        result: Result<Option<String>, kube::Error>,
        previously: &[String],
    ) {
        match result {
            Ok(None) => {
                self.annotated.insert(name.to_owned());
            }
            Ok(Some(problem)) => self.problems.push(problem),
            Err(error) => {
                if previously.iter().any(|p| p == name) {
                    self.annotated.insert(name.to_owned());
                }
                self.problems.push(format!(
                    "ServiceAccount {name} could not be annotated: {error}"
                ));
            }
        }
    }
}

/// The ServiceAccounts of one namespace, through patches only.
pub struct ServiceAccounts {
    api: Api<ServiceAccount>,
}

impl ServiceAccounts {
    /// The ServiceAccounts of `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        ServiceAccounts {
            api: Api::namespaced(client, namespace),
        }
    }

    /// Sets the annotation to `arn` on each of `names` where it is absent or already `arn`.
    /// A missing ServiceAccount, one naming another role, or a failed call is reported, not an
    /// error; `previously`: the names annotated before, still remembered when a call fails (their
    /// annotation may well be there, and releasing it later is conditional anyway).
    pub async fn annotate(&self, names: &[String], arn: &str, previously: &[String]) -> Annotation {
        let mut outcome = Annotation::default();
        for name in names {
            let result = self.annotate_one(name, arn).await;
            outcome.record(name, result, previously);
        }
        outcome
    }

    /// Removes the annotation from each of `names` where it still names `arn`.
    pub async fn release_all(&self, names: &[String], arn: &str) -> Result<(), kube::Error> {
        for name in names {
            self.release(name, arn).await?;
        }
        Ok(())
    }

    /// Removes the annotation from `name` if it still names `arn`; a missing ServiceAccount or an
    /// annotation naming something else is left alone.
    async fn release(&self, name: &str, arn: &str) -> Result<(), kube::Error> {
        let patch = json!([
            {"op": "test", "path": annotation_pointer(), "value": arn},
            {"op": "remove", "path": annotation_pointer()},
        ]);
        match self.patch(name, patch).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if matches!(status.code, 404 | 422) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `None` once `name` carries the annotation `arn`, or why it does not.
    async fn annotate_one(&self, name: &str, arn: &str) -> Result<Option<String>, kube::Error> {
        for _ in 0..ATTEMPTS {
            // A patch that only tests returns the object unchanged: a read with `patch` alone.
            let read = json!([{"op": "test", "path": "/metadata/name", "value": name}]);
            let account = match self.patch(name, read).await {
                Ok(account) => account,
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Ok(Some(format!("ServiceAccount {name} does not exist (yet)")));
                }
                Err(error) => return Err(error),
            };
            let annotations = account.metadata.annotations.as_ref();
            match annotations.and_then(|a| a.get(ROLE_ARN_ANNOTATION)) {
                Some(current) if current == arn => return Ok(None),
                Some(current) => {
                    return Ok(Some(format!(
                        "ServiceAccount {name} is annotated for another role ({current}); remove \
                         its {ROLE_ARN_ANNOTATION} annotation to let this role set it"
                    )));
                }
                None => {}
            }
            let version = account
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default();
            let add = match annotations {
                Some(_) => json!({"op": "add", "path": annotation_pointer(), "value": arn}),
                None => json!({
                    "op": "add",
                    "path": "/metadata/annotations",
                    "value": {ROLE_ARN_ANNOTATION: arn},
                }),
            };
            let write = json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": version},
                add,
            ]);
            match self.patch(name, write).await {
                Ok(_) => return Ok(None),
                // Changed since it was read: read it again.
                Err(kube::Error::Api(status)) if status.code == 422 => continue,
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Ok(Some(format!("ServiceAccount {name} does not exist (yet)")));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(Some(format!(
            "ServiceAccount {name} kept changing while it was being annotated; retried later"
        )))
    }

    async fn patch(&self, name: &str, patch: Value) -> Result<ServiceAccount, kube::Error> {
        let patch: json_patch::Patch =
            serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
        self.api
            .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
    }
}

/// The JSON pointer of the annotation (`/` in its key escaped as `~1`).
fn annotation_pointer() -> String {
    format!(
        "/metadata/annotations/{}",
        ROLE_ARN_ANNOTATION.replace('~', "~0").replace('/', "~1")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_keeps_what_was_annotated_before_in_memory() {
        let failed = || Err(kube::Error::LinesCodecMaxLineLengthExceeded);
        let previously = ["app".to_owned()];
        let mut outcome = Annotation::default();
        outcome.record("app", failed(), &previously);
        outcome.record("new", failed(), &previously);
        outcome.record("ok", Ok(None), &previously);
        outcome.record("taken", Ok(Some("another role".to_owned())), &previously);
        assert_eq!(
            outcome.annotated,
            BTreeSet::from(["app".to_owned(), "ok".to_owned()])
        );
        assert_eq!(outcome.problems.len(), 3, "{:?}", outcome.problems);
        assert!(outcome.problems[0].starts_with("ServiceAccount app could not be annotated"));
    }

    #[test]
    fn the_pointer_escapes_the_slash_of_the_key() {
        assert_eq!(
            annotation_pointer(),
            "/metadata/annotations/eks.amazonaws.com~1role-arn"
        );
    }
}
