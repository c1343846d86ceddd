//! How the tests and benchmarks reach moto directly, beside the operator: the region and the
//! static test credentials moto accepts.

use infra_operator::aws::{CredentialSource, ProviderSettings, SecretString};

/// Settings for IAM/STS clients of moto at `url`.
pub fn moto_settings(url: &str) -> ProviderSettings {
    ProviderSettings {
        region: "us-east-1".to_owned(),
        endpoint: Some(url.to_owned()),
        credentials: CredentialSource::Static {
            access_key_id: SecretString::new("test"),
            secret_access_key: SecretString::new("test"),
            session_token: None,
        },
    }
}
