//! Thin wrapper over the AWS SDK (IAM, STS): clients built from an AWSProvider's settings, calls
//! paced by their account's rate limiter, mapped to this crate's error kinds and reported to
//! optional observers. Does network I/O (`clients`, `iam`, `web_identity`); `settings`, `error`,
//! `document`, `attempts` and `calls` are pure; `rate_limit` only sleeps on the tokio timer.

mod attempts;
mod calls;
mod clients;
mod document;
mod error;
mod iam;
mod rate_limit;
mod settings;
mod web_identity;

pub use attempts::{Attempt, AttemptObserver};
pub use calls::{CallObserver, RESULT_OK, is_write};
pub use clients::{
    ATTEMPT_TIMEOUT, AwsClients, CONNECT_TIMEOUT, CallerIdentity, ClientOptions, INITIAL_BACKOFF,
    MAX_ATTEMPTS, MAX_BACKOFF, OPERATION_TIMEOUT,
};
pub use document::decode_policy_document;
pub use error::{AwsError, AwsErrorKind};
pub use iam::IamApi;
pub use rate_limit::{
    DECREASE_SPACING, Limiter, MIN_RATE, RECOVERY_HOLD, RateConfig, RateLimitError, RateLimits,
    RateObserver, TokenBucket, provisional_key,
};
pub use settings::{
    CredentialSource, ProviderSettings, SecretString, SettingsError, WEB_IDENTITY_SESSION_NAME,
    WEB_IDENTITY_TOKEN_FILE_ENV, web_identity_token_file_from_env,
};
