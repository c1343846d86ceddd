//! IAM and STS clients for one provider, built from its [`ProviderSettings`]: rustls (ring) HTTPS
//! client, the provider's region and endpoint override, its credentials, bounded timeouts and
//! standard retries. Also STS GetCallerIdentity. Does network I/O.

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

use super::calls::{CallObserver, Recorder};
use super::error::AwsError;
use super::iam::IamApi;
use super::settings::{CredentialSource, ProviderSettings};
use super::web_identity::WebIdentityCredentials;

/// Longest wait for a TCP (and TLS) connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for one attempt of a call.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for a call, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts per call (standard retry mode: throttling, 5xx and transport errors are retried).
pub const MAX_ATTEMPTS: u32 = 3;

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
        let recorder = Recorder::new(observer);
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
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
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
                sts: aws_sdk_sts::Client::new(&anonymous),
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
            iam: aws_sdk_iam::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            recorder,
        }
    }

    /// The IAM operations, reporting to this client's observer.
    pub fn iam(&self) -> IamApi {
        IamApi::new(self.iam.clone(), self.recorder.clone())
    }

    /// STS GetCallerIdentity: proves the credentials work and names the account.
    pub async fn caller_identity(&self) -> Result<CallerIdentity, AwsError> {
        let output = self
            .recorder
            .call("GetCallerIdentity", self.sts.get_caller_identity().send())
            .await?;
        Ok(CallerIdentity {
            account: output.account().unwrap_or_default().to_owned(),
            arn: output.arn().unwrap_or_default().to_owned(),
            user_id: output.user_id().unwrap_or_default().to_owned(),
        })
    }
}
