//! Thin wrapper over the AWS SDK (IAM, STS): clients built from an AWSProvider's settings, calls
//! mapped to this crate's error kinds and reported to an optional observer. Does network I/O
//! (`clients`, `iam`, `web_identity`); `settings`, `error`, `document` and `calls` are pure.

mod calls;
mod clients;
mod document;
mod error;
mod iam;
mod settings;
mod web_identity;

pub use calls::{CallObserver, RESULT_OK, is_write};
pub use clients::{
    ATTEMPT_TIMEOUT, AwsClients, CONNECT_TIMEOUT, CallerIdentity, MAX_ATTEMPTS, OPERATION_TIMEOUT,
};
pub use document::decode_policy_document;
pub use error::{AwsError, AwsErrorKind};
pub use iam::IamApi;
pub use settings::{
    CredentialSource, ProviderSettings, SecretString, SettingsError, WEB_IDENTITY_SESSION_NAME,
    WEB_IDENTITY_TOKEN_FILE_ENV, web_identity_token_file_from_env,
};
