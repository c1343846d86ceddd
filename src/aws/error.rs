//! The errors of every IAM/STS call, mapped from the SDK's errors to a small set of kinds whose
//! PascalCase [`AwsError::reason`] is reused as condition reason, Event reason and metric label.
//! Pure: classification only, no I/O.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;

/// What went wrong with an AWS call, coarse enough to decide what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AwsErrorKind {
    /// The role, policy or instance profile does not exist.
    NoSuchEntity,
    /// The entity to create exists already.
    EntityAlreadyExists,
    /// IAM refused a policy document.
    MalformedPolicyDocument,
    /// A parameter IAM or STS refused (bad ARN, value out of range, policy not attachable).
    InvalidInput,
    /// An IAM quota is reached (e.g. attached policies per role).
    LimitExceeded,
    /// The credentials are not allowed to make the call.
    AccessDenied,
    /// AWS asked us to slow down.
    Throttling,
    /// AWS failed internally or is unavailable.
    ServiceFailure,
    /// The endpoint could not be reached or did not answer in time.
    Unreachable,
    /// No usable credentials: unknown or expired keys, unreadable web identity token, empty chain.
    InvalidCredentials,
    /// The role still has attached policies or instance profiles.
    DeleteConflict,
    /// The role is protected (service-linked).
    UnmodifiableEntity,
    /// Another request changed the same entity at the same time.
    ConcurrentModification,
    /// Anything else.
    Other,
}

impl AwsErrorKind {
    /// PascalCase name, used as condition reason, Event reason and metric label.
    pub fn reason(self) -> &'static str {
        match self {
            AwsErrorKind::NoSuchEntity => "NoSuchEntity",
            AwsErrorKind::EntityAlreadyExists => "EntityAlreadyExists",
            AwsErrorKind::MalformedPolicyDocument => "MalformedPolicyDocument",
            AwsErrorKind::InvalidInput => "InvalidInput",
            AwsErrorKind::LimitExceeded => "LimitExceeded",
            AwsErrorKind::AccessDenied => "AccessDenied",
            AwsErrorKind::Throttling => "Throttling",
            AwsErrorKind::ServiceFailure => "ServiceFailure",
            AwsErrorKind::Unreachable => "Unreachable",
            AwsErrorKind::InvalidCredentials => "InvalidCredentials",
            AwsErrorKind::DeleteConflict => "DeleteConflict",
            AwsErrorKind::UnmodifiableEntity => "UnmodifiableEntity",
            AwsErrorKind::ConcurrentModification => "ConcurrentModification",
            AwsErrorKind::Other => "Other",
        }
    }

    /// The kind of an AWS error code, falling back on the HTTP status for codes not listed.
    pub fn from_code(code: Option<&str>, status: Option<u16>) -> AwsErrorKind {
        let by_code = match code.unwrap_or_default() {
            "NoSuchEntity" | "NoSuchEntityException" => Some(AwsErrorKind::NoSuchEntity),
            "EntityAlreadyExists" | "EntityAlreadyExistsException" => {
                Some(AwsErrorKind::EntityAlreadyExists)
            }
            "MalformedPolicyDocument" | "MalformedPolicyDocumentException" => {
                Some(AwsErrorKind::MalformedPolicyDocument)
            }
            "InvalidInput"
            | "ValidationError"
            | "InvalidParameterValue"
            | "InvalidParameterCombination"
            | "MissingParameter"
            | "PolicyNotAttachable"
            | "MalformedQueryString" => Some(AwsErrorKind::InvalidInput),
            "LimitExceeded" | "PackedPolicyTooLarge" => Some(AwsErrorKind::LimitExceeded),
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
                Some(AwsErrorKind::AccessDenied)
            }
            "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "SlowDown"
            | "PriorRequestNotComplete" => Some(AwsErrorKind::Throttling),
            "ServiceFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "InternalFailure"
            | "InternalError"
            | "InternalServerError" => Some(AwsErrorKind::ServiceFailure),
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "UnrecognizedClientException"
            | "InvalidAccessKeyId"
            | "IncompleteSignature"
            | "AuthFailure"
            | "MissingAuthenticationToken"
            | "InvalidIdentityToken"
            | "IDPRejectedClaim"
            | "IDPCommunicationError"
            | "RequestExpired" => Some(AwsErrorKind::InvalidCredentials),
            "DeleteConflict" | "DeleteConflictException" => Some(AwsErrorKind::DeleteConflict),
            "UnmodifiableEntity" | "UnmodifiableEntityException" => {
                Some(AwsErrorKind::UnmodifiableEntity)
            }
            "ConcurrentModification" | "ConcurrentModificationException" => {
                Some(AwsErrorKind::ConcurrentModification)
            }
            _ => None,
        };
        by_code.unwrap_or(match status {
            Some(429) => AwsErrorKind::Throttling,
            Some(403) => AwsErrorKind::AccessDenied,
            Some(500..=599) => AwsErrorKind::ServiceFailure,
            _ => AwsErrorKind::Other,
        })
    }
}

/// A failed IAM or STS call. The message is AWS's (or the transport's); it never holds credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct AwsError {
    operation: &'static str,
    kind: AwsErrorKind,
    code: String,
    message: String,
}

impl AwsError {
    /// An error found before or after talking to AWS (e.g. a response missing a field).
    pub fn new(operation: &'static str, kind: AwsErrorKind, message: impl Into<String>) -> Self {
        AwsError {
            operation,
            kind,
            code: kind.reason().to_owned(),
            message: message.into(),
        }
    }

    /// Maps an SDK error of `operation`.
    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        match &err {
            SdkError::ServiceError(context) => {
                let status = context.raw().status().as_u16();
                let service_error = context.err();
                let kind = AwsErrorKind::from_code(service_error.code(), Some(status));
                let code = service_error
                    .code()
                    .map_or_else(|| kind.reason().to_owned(), str::to_owned);
                let message = service_error
                    .message()
                    .map_or_else(|| format!("HTTP status {status}"), str::to_owned);
                AwsError {
                    operation,
                    kind,
                    code,
                    message,
                }
            }
            SdkError::ResponseError(context) => {
                let status = context.raw().status().as_u16();
                let kind = AwsErrorKind::from_code(None, Some(status));
                AwsError::new(operation, kind, DisplayErrorContext(&err).to_string())
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                let kind = credentials_failure(&err).unwrap_or(AwsErrorKind::Unreachable);
                AwsError::new(operation, kind, DisplayErrorContext(&err).to_string())
            }
            _ => {
                let kind = credentials_failure(&err).unwrap_or(AwsErrorKind::Other);
                AwsError::new(operation, kind, DisplayErrorContext(&err).to_string())
            }
        }
    }

    /// The IAM or STS operation that failed, e.g. `GetRole`.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The kind of failure.
    pub fn kind(&self) -> AwsErrorKind {
        self.kind
    }

    /// PascalCase reason: condition reason, Event reason and metric label.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    /// AWS's error code (e.g. `NoSuchEntity`), or the reason when AWS sent none.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// AWS's (or the transport's) message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same call later may succeed: throttling, AWS failures, an unreachable
    /// endpoint, concurrent modification, and IAM refusing a trust policy whose principal was created
    /// moments ago ("Invalid principal in policy") until the principal has propagated.
    pub fn is_transient(&self) -> bool {
        match self.kind {
            AwsErrorKind::Throttling
            | AwsErrorKind::ServiceFailure
            | AwsErrorKind::Unreachable
            | AwsErrorKind::ConcurrentModification => true,
            AwsErrorKind::MalformedPolicyDocument => self
                .message
                .to_ascii_lowercase()
                .contains("invalid principal"),
            _ => false,
        }
    }
}

/// The kind of a credentials failure somewhere in `err`'s chain: the kind of the AWS call behind
/// it (STS AssumeRoleWithWebIdentity) when there is one, otherwise [`AwsErrorKind::InvalidCredentials`]
/// (or [`AwsErrorKind::Unreachable`] when the provider timed out).
fn credentials_failure(err: &(dyn StdError + 'static)) -> Option<AwsErrorKind> {
    let mut found = None;
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(aws) = e.downcast_ref::<AwsError>()
            && found.is_some()
        {
            return Some(aws.kind);
        }
        if let Some(credentials) = e.downcast_ref::<CredentialsError>() {
            found = Some(match credentials {
                CredentialsError::ProviderTimedOut(_) => AwsErrorKind::Unreachable,
                _ => AwsErrorKind::InvalidCredentials,
            });
        }
        current = e.source();
    }
    found
}

#[cfg(test)]
mod tests {
    use std::io;

    use aws_sdk_iam::operation::get_role::GetRoleError;
    use aws_sdk_iam::types::error::NoSuchEntityException;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().expect("valid status"), SdkBody::empty())
    }

    fn service_error(code: &str, message: &str, status: u16) -> AwsError {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let err = SdkError::service_error(GetRoleError::generic(meta), response(status));
        AwsError::from_sdk("GetRole", err)
    }

    #[test]
    fn modelled_no_such_entity_keeps_operation_code_and_message() {
        let meta = ErrorMetadata::builder()
            .code("NoSuchEntity")
            .message("The role with name x cannot be found.")
            .build();
        let exception = NoSuchEntityException::builder()
            .message("The role with name x cannot be found.")
            .meta(meta)
            .build();
        let err = SdkError::service_error(
            GetRoleError::NoSuchEntityException(exception),
            response(404),
        );
        let err = AwsError::from_sdk("GetRole", err);
        assert_eq!(err.kind(), AwsErrorKind::NoSuchEntity);
        assert_eq!(err.reason(), "NoSuchEntity");
        assert_eq!(
            err.to_string(),
            "GetRole: NoSuchEntity: The role with name x cannot be found."
        );
        assert!(!err.is_transient());
    }

    #[test]
    fn service_codes_map_to_kinds() {
        let cases = [
            (
                "EntityAlreadyExists",
                409,
                AwsErrorKind::EntityAlreadyExists,
            ),
            (
                "MalformedPolicyDocument",
                400,
                AwsErrorKind::MalformedPolicyDocument,
            ),
            ("ValidationError", 400, AwsErrorKind::InvalidInput),
            ("InvalidInput", 400, AwsErrorKind::InvalidInput),
            ("LimitExceeded", 409, AwsErrorKind::LimitExceeded),
            ("AccessDenied", 403, AwsErrorKind::AccessDenied),
            ("Throttling", 400, AwsErrorKind::Throttling),
            ("ServiceFailure", 500, AwsErrorKind::ServiceFailure),
            (
                "InvalidClientTokenId",
                403,
                AwsErrorKind::InvalidCredentials,
            ),
            ("ExpiredToken", 400, AwsErrorKind::InvalidCredentials),
            ("DeleteConflict", 409, AwsErrorKind::DeleteConflict),
            ("UnmodifiableEntity", 400, AwsErrorKind::UnmodifiableEntity),
            (
                "ConcurrentModification",
                409,
                AwsErrorKind::ConcurrentModification,
            ),
            ("SomethingNew", 400, AwsErrorKind::Other),
            ("SomethingNew", 503, AwsErrorKind::ServiceFailure),
            ("SomethingNew", 429, AwsErrorKind::Throttling),
        ];
        for (code, status, kind) in cases {
            let err = service_error(code, "m", status);
            assert_eq!(err.kind(), kind, "{code} {status}");
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn transient_kinds() {
        assert!(service_error("Throttling", "Rate exceeded", 400).is_transient());
        assert!(service_error("ServiceFailure", "oops", 500).is_transient());
        assert!(service_error("ConcurrentModification", "busy", 409).is_transient());
        assert!(!service_error("AccessDenied", "no", 403).is_transient());
        assert!(!service_error("MalformedPolicyDocument", "Syntax errors", 400).is_transient());
        let principal = service_error(
            "MalformedPolicyDocument",
            "Invalid principal in policy: \"AWS\":\"arn:aws:iam::123456789012:role/new\"",
            400,
        );
        assert!(principal.is_transient());
        assert_eq!(principal.reason(), "MalformedPolicyDocument");
    }

    #[test]
    fn connection_failures_are_unreachable_and_transient() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused");
        let err: SdkError<GetRoleError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        let err = AwsError::from_sdk("GetRole", err);
        assert_eq!(err.kind(), AwsErrorKind::Unreachable);
        assert!(err.is_transient());
        assert!(err.to_string().starts_with("GetRole: Unreachable: "));
        assert!(err.message().contains("connection refused"), "{err}");

        let timeout: SdkError<GetRoleError, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(
            AwsError::from_sdk("GetRole", timeout).kind(),
            AwsErrorKind::Unreachable
        );
    }

    #[test]
    fn credential_failures_are_invalid_credentials() {
        let missing = CredentialsError::not_loaded("no providers in chain provided credentials");
        let err: SdkError<GetRoleError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(Box::new(missing), None));
        let err = AwsError::from_sdk("GetRole", err);
        assert_eq!(err.kind(), AwsErrorKind::InvalidCredentials);
        assert!(!err.is_transient());
        assert!(err.message().contains("no providers in chain"), "{err}");
    }

    #[test]
    fn credential_failure_caused_by_sts_keeps_the_sts_kind() {
        let sts = AwsError::new(
            "AssumeRoleWithWebIdentity",
            AwsErrorKind::Throttling,
            "Rate exceeded",
        );
        let failure = CredentialsError::provider_error(sts);
        let err: SdkError<GetRoleError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(Box::new(failure), None));
        let err = AwsError::from_sdk("GetRole", err);
        assert_eq!(err.kind(), AwsErrorKind::Throttling);
        assert!(err.is_transient());
    }

    #[test]
    fn local_errors_use_the_reason_as_code() {
        let err = AwsError::new("CreateRole", AwsErrorKind::Other, "response has no Role");
        assert_eq!(err.code(), "Other");
        assert_eq!(err.operation(), "CreateRole");
        assert_eq!(err.to_string(), "CreateRole: Other: response has no Role");
    }
}
