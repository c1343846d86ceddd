//! IAM and STS clients for one provider, built from its [`ProviderSettings`]: rustls (ring) HTTPS
//! client, the provider's region and endpoint override, its credentials, bounded timeouts, the
//! SDK's standard retries (jittered exponential backoff) and, when given, its account's rate
//! limiter and an observer of attempts. Also STS GetCallerIdentity. Does network I/O.

use std::time::Duration;

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::identity::IdentityCache;
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use super::attempts::{AttemptInterceptor, AttemptObserver};
use super::calls::{CallObserver, Recorder};
use super::error::AwsError;
use super::iam::IamApi;
use super::rate_limit::Limiter;
use super::settings::{CredentialSource, ProviderSettings};
use super::web_identity::WebIdentityCredentials;

/// Longest wait for a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for one attempt of a call.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for a call, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts per call. The SDK's standard retry mode retries throttling, 5xx and transport errors
/// (connection reset, timeout) after a full-jitter exponential backoff: a random wait up to
/// [`INITIAL_BACKOFF`] × 2^(attempt − 1), capped at [`MAX_BACKOFF`]. What still fails is the
/// reconciler's to retry later, with its own backoff.
pub const MAX_ATTEMPTS: u32 = 3;

/// Base of the retries' exponential backoff.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);

/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Name of static credentials, shown by the SDK in its debug output.
const STATIC_PROVIDER_NAME: &str = "AWSProvider";

/// Who the credentials belong to, as STS GetCallerIdentity reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    /// AWS account ID.
    pub account: String,
    /// ARN of the user or assumed role.
    pub arn: String,
    /// Unique ID of the caller.
    pub user_id: String,
}

/// What the clients of one provider report to and share with others.
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// Told about every call once it finished.
    pub calls: Option<CallObserver>,
    /// Told about retries and throttled attempts.
    pub attempts: Option<AttemptObserver>,
    /// Paces every call; moved to the account's bucket by [`AwsClients::caller_identity`].
    pub limiter: Option<Limiter>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("calls", &self.calls.is_some())
            .field("attempts", &self.attempts.is_some())
            .field("limiter", &self.limiter)
            .finish()
    }
}

/// IAM and STS clients of one provider. Cheap to clone; clones share connections and cached
/// credentials.
#[derive(Clone, Debug)]
pub struct AwsClients {
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    recorder: Recorder,
}

impl AwsClients {
    /// Builds the clients. Every call they make (including STS AssumeRoleWithWebIdentity when the
    /// credentials come from a web identity token) is reported to `observer`. Nothing is sent until
    /// the first call; credentials problems surface then, as [`AwsError`]s of kind
    /// `InvalidCredentials`.
    pub async fn new(settings: &ProviderSettings, observer: Option<CallObserver>) -> AwsClients {
        let options = ClientOptions {
            calls: observer,
            ..ClientOptions::default()
        };
        AwsClients::with_options(settings, options).await
    }

    /// Builds the clients like [`AwsClients::new`], every call paced by the options' limiter and
    /// its attempts reported to their observer.
    pub async fn with_options(settings: &ProviderSettings, options: ClientOptions) -> AwsClients {
        let recorder = Recorder::new(options.calls, options.limiter.clone());
        let interceptor = AttemptInterceptor::new(options.attempts, options.limiter);
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let region = Region::new(settings.region.clone());
        let mut builder = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region.clone())
            .http_client(http_client.clone())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(INITIAL_BACKOFF)
                    .with_max_backoff(MAX_BACKOFF),
            )
            .identity_cache(IdentityCache::lazy().build());
        builder.set_endpoint_url(settings.endpoint.clone());
        let anonymous = builder.build();
        let credentials = match &settings.credentials {
            CredentialSource::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => SharedCredentialsProvider::new(Credentials::new(
                access_key_id.expose(),
                secret_access_key.expose(),
                session_token.as_ref().map(|t| t.expose().to_owned()),
                None,
                STATIC_PROVIDER_NAME,
            )),
            CredentialSource::WebIdentity {
                role_arn,
                token_file,
                session_name,
            } => SharedCredentialsProvider::new(WebIdentityCredentials {
                sts: aws_sdk_sts::Client::from_conf(
                    aws_sdk_sts::config::Builder::from(&anonymous)
                        .interceptor(interceptor.clone())
                        .build(),
                ),
                recorder: recorder.clone(),
                role_arn: role_arn.clone(),
                token_file: token_file.clone(),
                session_name: session_name.clone(),
            }),
            CredentialSource::DefaultChain => {
                let provider_config = ProviderConfig::without_region()
                    .with_region(Some(region))
                    .with_http_client(http_client);
                SharedCredentialsProvider::new(
                    DefaultCredentialsChain::builder()
                        .configure(provider_config)
                        .build()
                        .await,
                )
            }
        };
        let config = anonymous
            .into_builder()
            .credentials_provider(credentials)
            .build();
        AwsClients {
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(&config)
                    .interceptor(interceptor.clone())
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(&config)
                    .interceptor(interceptor)
                    .build(),
            ),
            recorder,
        }
    }

    /// The IAM operations, reporting to this client's observer.
    pub fn iam(&self) -> IamApi {
        IamApi::new(self.iam.clone(), self.recorder.clone())
    }

    /// STS GetCallerIdentity: proves the credentials work and names the account, whose rate
    /// limiter bucket the clients use from then on.
    pub async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
        let output = self
            .recorder
            .call("GetCallerIdentity", self.sts.get_caller_identity().send())
            .await?;
        if let (Some(limiter), Some(account)) = (self.recorder.limiter(), output.account()) {
            limiter.bind(account);
        }
        Ok(CallerIdentity {
            account: output.account().unwrap_or_default().to_owned(),
            arn: output.arn().unwrap_or_default().to_owned(),
            user_id: output.user_id().unwrap_or_default().to_owned(),
        })
    }
}
