//! Accounting and pacing of AWS calls: every IAM/STS call first waits for a token of its account's
//! rate limiter (when there is one), then is reported to an optional observer by operation and
//! result — `ok` or the error's reason (`Throttling`, `AccessDenied`, …) — so the controller can
//! count calls (reads and writes apart) and see why they fail. No network I/O itself; waiting for
//! a token sleeps on the tokio timer.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::error::AwsError;
use super::rate_limit::Limiter;

/// Told about every AWS call once it finished: `(operation, result)` where operation is the API
/// name (`GetRole`, `TagRole`, …; one call per page of a list) and result is [`RESULT_OK`] or the
/// PascalCase reason of the error ([`super::AwsErrorKind::reason`]).
pub type CallObserver = Arc<dyn Fn(&'static str, &'static str) + Send + Sync>;

/// Result label of a call that succeeded.
pub const RESULT_OK: &str = "ok";

/// Whether an IAM/STS operation changes anything in AWS. Reads are the `Get…` and `List…` calls and
/// STS's `AssumeRole…` (which only hands out credentials); every other operation counts as a write.
pub fn is_write(operation: &str) -> bool {
    !["Get", "List", "AssumeRole"]
        .iter()
        .any(|prefix| operation.starts_with(prefix))
}

/// Paces calls with the limiter and reports them to the observer, each if any.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    observer: Option<CallObserver>,
    limiter: Option<Limiter>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("observer", &self.observer.is_some())
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl Recorder {
    /// A recorder reporting to `observer`, pacing calls with `limiter`.
    pub(crate) fn new(observer: Option<CallObserver>, limiter: Option<Limiter>) -> Self {
        Recorder { observer, limiter }
    }

    /// The limiter pacing the calls, if any.
    pub(crate) fn limiter(&self) -> Option<&Limiter> {
        self.limiter.as_ref()
    }

    /// Waits for the limiter's token for one call (one page of a list).
    pub(crate) async fn pace(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.acquire().await;
        }
    }

    /// Reports one finished call: [`RESULT_OK`] or the error's reason.
    pub(crate) fn record<T>(&self, operation: &'static str, result: &Result<T, AwsError>) {
        if let Some(observer) = &self.observer {
            observer(
                operation,
                result.as_ref().map_or_else(AwsError::reason, |_| RESULT_OK),
            );
        }
    }

    /// Reports the outcome of one SDK call and maps its error.
    pub(crate) fn outcome<T, E>(
        &self,
        operation: &'static str,
        result: Result<T, SdkError<E, HttpResponse>>,
    ) -> Result<T, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let result = result.map_err(|err| AwsError::from_sdk(operation, err));
        self.record(operation, &result);
        result
    }

    /// Gives back the token of a call that was not made after all.
    pub(crate) fn unpace(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.give_back();
        }
    }

    /// Waits for a token, awaits one SDK call (which sends nothing before it is awaited), reports
    /// it and maps its error.
    pub(crate) async fn call<T, E>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.pace().await;
        self.outcome(operation, call.await)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use aws_sdk_iam::operation::get_role::GetRoleError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;
    use crate::iam::Change;

    #[test]
    fn reads_and_writes() {
        for read in [
            "GetRole",
            "GetRolePolicy",
            "ListRoleTags",
            "ListAttachedRolePolicies",
            "ListRolePolicies",
            "ListInstanceProfilesForRole",
            "GetCallerIdentity",
            "AssumeRoleWithWebIdentity",
        ] {
            assert!(!is_write(read), "{read}");
        }
        let changes = [
            Change::UpdateRole {
                description: None,
                max_session_duration: 3600,
            },
            Change::UpdateTrustPolicy {
                document: String::new(),
            },
            Change::AttachPolicy { arn: String::new() },
            Change::DetachPolicy { arn: String::new() },
            Change::PutInlinePolicy {
                name: String::new(),
                document: String::new(),
            },
            Change::DeleteInlinePolicy {
                name: String::new(),
            },
            Change::PutBoundary { arn: String::new() },
            Change::DeleteBoundary,
            Change::TagRole {
                tags: Default::default(),
            },
            Change::UntagRole { keys: Vec::new() },
        ];
        for change in &changes {
            assert!(is_write(change.operation()), "{}", change.operation());
        }
        for write in ["CreateRole", "DeleteRole", "RemoveRoleFromInstanceProfile"] {
            assert!(is_write(write), "{write}");
        }
    }

    #[tokio::test]
    async fn calls_are_reported_with_their_result() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let recorder = Recorder::new(
            Some(Arc::new(move |operation, result| {
                sink.lock()
                    .expect("not poisoned")
                    .push(format!("{operation}={result}"));
            })),
            None,
        );
        let ok: Result<u8, SdkError<GetRoleError, HttpResponse>> = Ok(1);
        assert_eq!(recorder.call("GetRole", async { ok }).await, Ok(1));
        let failed: Result<u8, SdkError<GetRoleError, HttpResponse>> =
            Err(SdkError::service_error(
                GetRoleError::generic(ErrorMetadata::builder().code("Throttling").build()),
                HttpResponse::new(400.try_into().expect("status"), SdkBody::empty()),
            ));
        let err = recorder
            .call("TagRole", async { failed })
            .await
            .expect_err("fails");
        assert_eq!(err.reason(), "Throttling");
        assert_eq!(
            *seen.lock().expect("not poisoned"),
            vec!["GetRole=ok".to_owned(), "TagRole=Throttling".to_owned()]
        );
    }
}
