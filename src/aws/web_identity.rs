//! Web identity (IRSA) credentials: the token file is read on every refresh (the kubelet rotates it)
//! and exchanged with STS AssumeRoleWithWebIdentity through the provider's own STS client, so an
//! endpoint override (moto, LocalStack) applies to it too. The clients' identity cache decides when
//! to refresh. Does file and network I/O.

use std::path::PathBuf;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, future};

use super::calls::Recorder;
use super::error::{AwsError, AwsErrorKind};

/// Name the credentials carry, shown by the SDK in its debug output.
const PROVIDER_NAME: &str = "WebIdentityToken";

/// Credentials obtained by assuming `role_arn` with the token in `token_file`.
#[derive(Debug)]
pub(crate) struct WebIdentityCredentials {
    /// An STS client without credentials (AssumeRoleWithWebIdentity is not signed).
    pub(crate) sts: aws_sdk_sts::Client,
    pub(crate) recorder: Recorder,
    pub(crate) role_arn: String,
    pub(crate) token_file: PathBuf,
    pub(crate) session_name: String,
}

impl WebIdentityCredentials {
    async fn load(&self) -> provider::Result {
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|e| {
                CredentialsError::invalid_configuration(format!(
                    "cannot read the web identity token file {}: {e}",
                    self.token_file.display()
                ))
            })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(CredentialsError::invalid_configuration(format!(
                "the web identity token file {} is empty",
                self.token_file.display()
            )));
        }
        let operation = "AssumeRoleWithWebIdentity";
        let output = self
            .recorder
            .call(
                operation,
                self.sts
                    .assume_role_with_web_identity()
                    .role_arn(&self.role_arn)
                    .role_session_name(&self.session_name)
                    .web_identity_token(token)
                    .send(),
            )
            .await
            .map_err(CredentialsError::provider_error)?;
        let credentials = output.credentials().ok_or_else(|| {
            CredentialsError::provider_error(AwsError::new(
                operation,
                AwsErrorKind::Other,
                "the response holds no credentials",
            ))
        })?;
        Ok(Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_owned()),
            SystemTime::try_from(*credentials.expiration()).ok(),
            PROVIDER_NAME,
        ))
    }
}

impl ProvideCredentials for WebIdentityCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.load())
    }
}
