//! How to reach AWS for one AWSProvider: region, endpoint and credential source, built from the
//! provider's spec and the values of the Secrets it references. Pure: the caller reads the Secrets
//! (through a resolver) and the token file path; only [`web_identity_token_file_from_env`] reads the
//! process environment.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::api::{AWSProviderSpec, SecretKeyRef};
use crate::iam::{CredentialForm, CredentialFormError, credential_form};

/// Environment variable naming the web identity token file (set by EKS IRSA).
pub const WEB_IDENTITY_TOKEN_FILE_ENV: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";

/// Session name of the role sessions assumed with a web identity token.
pub const WEB_IDENTITY_SESSION_NAME: &str = "infra-operator";

/// The web identity token file named by `AWS_WEB_IDENTITY_TOKEN_FILE`, if set and not empty.
pub fn web_identity_token_file_from_env() -> Option<PathBuf> {
    std::env::var_os(WEB_IDENTITY_TOKEN_FILE_ENV)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// A credential value. Its `Debug` output is redacted and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a credential value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The value itself, for handing to the SDK only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// Keys read from Secrets (`accessKeyIDRef`, `secretAccessKeyRef`, optional `sessionTokenRef`).
    Static {
        /// Access key ID.
        access_key_id: SecretString,
        /// Secret access key.
        secret_access_key: SecretString,
        /// Session token of temporary credentials.
        session_token: Option<SecretString>,
    },
    /// STS AssumeRoleWithWebIdentity with the token in `token_file` (IRSA), re-read on each refresh.
    WebIdentity {
        /// Role to assume (`roleARN`).
        role_arn: String,
        /// File holding the web identity token.
        token_file: PathBuf,
        /// Role session name.
        session_name: String,
    },
    /// The SDK's default chain: environment, profile files, web identity from the environment,
    /// container and instance metadata.
    DefaultChain,
}

/// Everything needed to build AWS clients for one provider. `Debug` never shows credential values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSettings {
    /// AWS region.
    pub region: String,
    /// Endpoint URL overriding AWS's (LocalStack, moto).
    pub endpoint: Option<String>,
    /// Where the credentials come from.
    pub credentials: CredentialSource,
}

/// Why a provider's settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The spec names no single credential form.
    #[error("spec.{field}: {0}", field = .0.field())]
    CredentialForm(CredentialFormError),
    /// `roleARN` is set but no web identity token file is configured.
    #[error(
        "spec.roleARN needs a web identity token, but {WEB_IDENTITY_TOKEN_FILE_ENV} is not set \
         (is the operator's ServiceAccount annotated for IRSA?)"
    )]
    MissingWebIdentityToken,
    /// A referenced Secret key could not be read.
    #[error("spec.{field}: cannot read key `{key}` of Secret `{secret}`: {source}")]
    SecretUnavailable {
        /// The spec field holding the reference.
        field: &'static str,
        /// Secret name.
        secret: String,
        /// Key within the Secret.
        key: String,
        /// Why it could not be read.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A referenced Secret key is empty.
    #[error("spec.{field}: key `{key}` of Secret `{secret}` is empty")]
    EmptySecretValue {
        /// The spec field holding the reference.
        field: &'static str,
        /// Secret name.
        secret: String,
        /// Key within the Secret.
        key: String,
    },
}

impl SettingsError {
    /// PascalCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            SettingsError::CredentialForm(_) => "InvalidProviderConfig",
            SettingsError::MissingWebIdentityToken => "MissingWebIdentityToken",
            SettingsError::SecretUnavailable { .. } => "SecretUnavailable",
            SettingsError::EmptySecretValue { .. } => "InvalidCredentials",
        }
    }
}

impl ProviderSettings {
    /// The Secret references of a spec, each with its field name, for reading them beforehand.
    pub fn secret_refs(spec: &AWSProviderSpec) -> Vec<(&'static str, &SecretKeyRef)> {
        [
            ("accessKeyIDRef", spec.access_key_id_ref.as_ref()),
            ("secretAccessKeyRef", spec.secret_access_key_ref.as_ref()),
            ("sessionTokenRef", spec.session_token_ref.as_ref()),
        ]
        .into_iter()
        .filter_map(|(field, reference)| reference.map(|r| (field, r)))
        .collect()
    }

    /// Builds the settings of a provider. `web_identity_token_file` is where the token for
    /// `roleARN` lives (see [`web_identity_token_file_from_env`]); `resolve_secret` returns the
    /// value of a Secret key in the provider's namespace. Values are trimmed of surrounding
    /// whitespace (a trailing newline is common in Secrets made from files).
    pub fn from_spec<F, E>(
        spec: &AWSProviderSpec,
        web_identity_token_file: Option<&Path>,
        mut resolve_secret: F,
    ) -> Result<ProviderSettings, SettingsError>
    where
        F: FnMut(&SecretKeyRef) -> Result<String, E>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let credentials = match credential_form(spec).map_err(SettingsError::CredentialForm)? {
            CredentialForm::WebIdentity { role_arn } => CredentialSource::WebIdentity {
                role_arn: role_arn.to_owned(),
                token_file: web_identity_token_file
                    .ok_or(SettingsError::MissingWebIdentityToken)?
                    .to_path_buf(),
                session_name: WEB_IDENTITY_SESSION_NAME.to_owned(),
            },
            CredentialForm::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                let mut read = |field, reference| resolve(field, reference, &mut resolve_secret);
                CredentialSource::Static {
                    access_key_id: read("accessKeyIDRef", access_key_id)?,
                    secret_access_key: read("secretAccessKeyRef", secret_access_key)?,
                    session_token: session_token
                        .map(|token| read("sessionTokenRef", token))
                        .transpose()?,
                }
            }
            CredentialForm::DefaultChain => CredentialSource::DefaultChain,
        };
        Ok(ProviderSettings {
            region: spec.region.clone(),
            endpoint: spec.endpoint.clone(),
            credentials,
        })
    }
}

fn resolve<F, E>(
    field: &'static str,
    reference: &SecretKeyRef,
    resolve_secret: &mut F,
) -> Result<SecretString, SettingsError>
where
    F: FnMut(&SecretKeyRef) -> Result<String, E>,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let value = resolve_secret(reference).map_err(|source| SettingsError::SecretUnavailable {
        field,
        secret: reference.name.clone(),
        key: reference.key.clone(),
        source: source.into(),
    })?;
    let value = value.trim();
    if value.is_empty() {
        return Err(SettingsError::EmptySecretValue {
            field,
            secret: reference.name.clone(),
            key: reference.key.clone(),
        });
    }
    Ok(SecretString::new(value))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const ACCESS: &str = "AKIAEXAMPLEACCESSKEY";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN";

    fn key(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.to_owned(),
            key: key.to_owned(),
        }
    }

    fn secrets() -> BTreeMap<(String, String), String> {
        BTreeMap::from([
            (("aws".to_owned(), "id".to_owned()), format!("{ACCESS}\n")),
            (("aws".to_owned(), "secret".to_owned()), SECRET.to_owned()),
            (("aws".to_owned(), "token".to_owned()), TOKEN.to_owned()),
            (("aws".to_owned(), "blank".to_owned()), " \n".to_owned()),
        ])
    }

    fn lookup(reference: &SecretKeyRef) -> Result<String, String> {
        secrets()
            .get(&(reference.name.clone(), reference.key.clone()))
            .cloned()
            .ok_or_else(|| format!("Secret {} has no key {}", reference.name, reference.key))
    }

    fn static_spec() -> AWSProviderSpec {
        AWSProviderSpec {
            region: "eu-west-1".to_owned(),
            endpoint: Some("http://127.0.0.1:5000".to_owned()),
            access_key_id_ref: Some(key("aws", "id")),
            secret_access_key_ref: Some(key("aws", "secret")),
            session_token_ref: Some(key("aws", "token")),
            ..Default::default()
        }
    }

    #[test]
    fn static_credentials_are_read_and_trimmed() {
        let settings = ProviderSettings::from_spec(&static_spec(), None, lookup).expect("valid");
        assert_eq!(settings.region, "eu-west-1");
        assert_eq!(settings.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(
            settings.credentials,
            CredentialSource::Static {
                access_key_id: SecretString::new(ACCESS),
                secret_access_key: SecretString::new(SECRET),
                session_token: Some(SecretString::new(TOKEN)),
            }
        );
    }

    #[test]
    fn debug_never_shows_credentials() {
        let settings = ProviderSettings::from_spec(&static_spec(), None, lookup).expect("valid");
        let debug = format!("{settings:?} {:#?}", settings);
        for secret in [ACCESS, SECRET, TOKEN] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("<redacted>"));
        assert!(debug.contains("eu-west-1"));
    }

    #[test]
    fn web_identity_uses_the_token_file() {
        let spec = AWSProviderSpec {
            region: "us-east-1".to_owned(),
            role_arn: Some("arn:aws:iam::123456789012:role/operator".to_owned()),
            ..Default::default()
        };
        let file = Path::new("/var/run/secrets/eks.amazonaws.com/serviceaccount/token");
        let settings =
            ProviderSettings::from_spec(&spec, Some(file), lookup).expect("web identity");
        assert_eq!(
            settings.credentials,
            CredentialSource::WebIdentity {
                role_arn: "arn:aws:iam::123456789012:role/operator".to_owned(),
                token_file: file.to_path_buf(),
                session_name: WEB_IDENTITY_SESSION_NAME.to_owned(),
            }
        );
        let err = ProviderSettings::from_spec(&spec, None, lookup).expect_err("no token file");
        assert!(matches!(err, SettingsError::MissingWebIdentityToken));
        assert_eq!(err.reason(), "MissingWebIdentityToken");
    }

    #[test]
    fn nothing_set_means_the_default_chain() {
        let spec = AWSProviderSpec {
            region: "us-east-1".to_owned(),
            ..Default::default()
        };
        let settings = ProviderSettings::from_spec(&spec, None, lookup).expect("default");
        assert_eq!(settings.credentials, CredentialSource::DefaultChain);
        assert_eq!(settings.endpoint, None);
    }

    #[test]
    fn bad_credential_forms_are_refused() {
        let both = AWSProviderSpec {
            role_arn: Some("arn:aws:iam::123456789012:role/operator".to_owned()),
            ..static_spec()
        };
        let err = ProviderSettings::from_spec(&both, Some(Path::new("/t")), lookup);
        assert!(matches!(
            err,
            Err(SettingsError::CredentialForm(CredentialFormError::Both))
        ));

        let half = AWSProviderSpec {
            secret_access_key_ref: None,
            session_token_ref: None,
            ..static_spec()
        };
        let err = ProviderSettings::from_spec(&half, None, lookup).expect_err("half");
        assert_eq!(err.reason(), "InvalidProviderConfig");
        assert!(err.to_string().contains("secretAccessKeyRef"), "{err}");

        let token_only = AWSProviderSpec {
            access_key_id_ref: None,
            secret_access_key_ref: None,
            ..static_spec()
        };
        let err = ProviderSettings::from_spec(&token_only, None, lookup).expect_err("token only");
        assert!(err.to_string().contains("sessionTokenRef"), "{err}");
    }

    #[test]
    fn unreadable_and_empty_secrets_name_the_reference_not_the_value() {
        let missing = AWSProviderSpec {
            secret_access_key_ref: Some(key("aws", "nope")),
            ..static_spec()
        };
        let err = ProviderSettings::from_spec(&missing, None, lookup).expect_err("missing key");
        assert_eq!(err.reason(), "SecretUnavailable");
        let message = err.to_string();
        assert!(message.contains("secretAccessKeyRef"), "{message}");
        assert!(message.contains("`nope`"), "{message}");
        assert!(!message.contains(ACCESS), "{message}");

        let blank = AWSProviderSpec {
            session_token_ref: Some(key("aws", "blank")),
            ..static_spec()
        };
        let err = ProviderSettings::from_spec(&blank, None, lookup).expect_err("blank");
        assert!(matches!(
            err,
            SettingsError::EmptySecretValue {
                field: "sessionTokenRef",
                ..
            }
        ));
    }

    #[test]
    fn secret_refs_lists_every_reference() {
        let spec = static_spec();
        let refs = ProviderSettings::secret_refs(&spec);
        assert_eq!(
            refs,
            vec![
                ("accessKeyIDRef", &key("aws", "id")),
                ("secretAccessKeyRef", &key("aws", "secret")),
                ("sessionTokenRef", &key("aws", "token")),
            ]
        );
        let none = AWSProviderSpec::default();
        assert!(ProviderSettings::secret_refs(&none).is_empty());
    }
}
