//! How the tests and benchmarks reach moto directly, beside the operator: the region and the
//! static test credentials moto accepts, and a raw SDK client for what the crate's AWS layer does
//! not do itself (listing roles, instance profiles).

// Each includer uses its own subset of these helpers.
#![allow(dead_code)]

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

/// A raw IAM client of moto at `url` (plain HTTP), with the same credentials.
pub fn raw_iam(url: &str) -> aws_sdk_iam::Client {
    let config = aws_sdk_iam::Config::builder()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_iam::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_iam::Client::from_conf(config)
}
