//! The credential forms of an AWSProvider and the one rule that picks among them: `roleARN` (web
//! identity), Secret references for static keys (access key ID and secret access key, optionally
//! a session token), or nothing (the default chain) — never two forms, never half of the static
//! one. Used by the `provider-config` guardrail and by the AWS layer that builds clients. Pure.

use crate::api::{AWSProviderSpec, SecretKeyRef};

/// The credential form a provider's spec asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CredentialForm<'a> {
    /// `roleARN`: the operator's web identity token exchanged for that role.
    WebIdentity {
        /// The role to assume.
        role_arn: &'a str,
    },
    /// Keys read from Secrets in the provider's namespace.
    Static {
        /// `accessKeyIDRef`.
        access_key_id: &'a SecretKeyRef,
        /// `secretAccessKeyRef`.
        secret_access_key: &'a SecretKeyRef,
        /// `sessionTokenRef`.
        session_token: Option<&'a SecretKeyRef>,
    },
    /// No credentials named: the operator's own default chain.
    DefaultChain,
}

/// Why a spec names no single credential form. Each names the spec field to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialFormError {
    /// `roleARN` and Secret references are both set.
    #[error(
        "roleARN and static credentials (accessKeyIDRef/secretAccessKeyRef) are both set; keep one \
         credential form: roleARN for web identity (IRSA) or the Secret references"
    )]
    Both,
    /// One of the two static keys is missing.
    #[error(
        "{present} is set without {missing}; static credentials need both: add {missing} naming \
         the Secret key that holds the {what}"
    )]
    HalfStatic {
        /// The reference that is set.
        present: &'static str,
        /// The reference that is missing (the field to fix).
        missing: &'static str,
        /// What the missing key holds, for people.
        what: &'static str,
    },
    /// A session token without the keys it goes with.
    #[error(
        "sessionTokenRef is only used with accessKeyIDRef and secretAccessKeyRef; add both or \
         remove sessionTokenRef"
    )]
    TokenAlone,
}

impl CredentialFormError {
    /// The spec field (camelCase) the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            CredentialFormError::Both => "roleARN",
            CredentialFormError::HalfStatic { missing, .. } => missing,
            CredentialFormError::TokenAlone => "sessionTokenRef",
        }
    }
}

/// The one credential form `spec` names.
pub fn credential_form(spec: &AWSProviderSpec) -> Result<CredentialForm<'_>, CredentialFormError> {
    let access = spec.access_key_id_ref.as_ref();
    let secret = spec.secret_access_key_ref.as_ref();
    let token = spec.session_token_ref.as_ref();
    let any_static = access.is_some() || secret.is_some() || token.is_some();
    match (spec.role_arn.as_deref(), access, secret) {
        (Some(_), _, _) if any_static => Err(CredentialFormError::Both),
        (Some(role_arn), _, _) => Ok(CredentialForm::WebIdentity { role_arn }),
        (None, Some(access_key_id), Some(secret_access_key)) => Ok(CredentialForm::Static {
            access_key_id,
            secret_access_key,
            session_token: token,
        }),
        (None, Some(_), None) => Err(CredentialFormError::HalfStatic {
            present: "accessKeyIDRef",
            missing: "secretAccessKeyRef",
            what: "secret access key",
        }),
        (None, None, Some(_)) => Err(CredentialFormError::HalfStatic {
            present: "secretAccessKeyRef",
            missing: "accessKeyIDRef",
            what: "access key ID",
        }),
        (None, None, None) if token.is_some() => Err(CredentialFormError::TokenAlone),
        (None, None, None) => Ok(CredentialForm::DefaultChain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Option<SecretKeyRef> {
        Some(SecretKeyRef {
            name: name.to_owned(),
            key: "k".to_owned(),
        })
    }

    fn spec(role: bool, access: bool, secret: bool, token: bool) -> AWSProviderSpec {
        AWSProviderSpec {
            role_arn: role.then(|| "arn:aws:iam::123456789012:role/r".to_owned()),
            access_key_id_ref: access.then(|| key("a")).flatten(),
            secret_access_key_ref: secret.then(|| key("s")).flatten(),
            session_token_ref: token.then(|| key("t")).flatten(),
            ..AWSProviderSpec::default()
        }
    }

    #[test]
    fn exactly_one_form_is_accepted() {
        assert_eq!(
            credential_form(&spec(false, false, false, false)),
            Ok(CredentialForm::DefaultChain)
        );
        assert!(matches!(
            credential_form(&spec(true, false, false, false)),
            Ok(CredentialForm::WebIdentity { .. })
        ));
        assert!(matches!(
            credential_form(&spec(false, true, true, true)),
            Ok(CredentialForm::Static {
                session_token: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn every_bad_combination_names_the_field_to_fix() {
        let field = |s: AWSProviderSpec| credential_form(&s).map(|_| ()).map_err(|e| e.field());
        for (role, access, secret, token, expected) in [
            (true, true, false, false, "roleARN"),
            (true, false, false, true, "roleARN"),
            (false, true, false, false, "secretAccessKeyRef"),
            (false, true, false, true, "secretAccessKeyRef"),
            (false, false, true, false, "accessKeyIDRef"),
            (false, false, false, true, "sessionTokenRef"),
        ] {
            assert_eq!(
                field(spec(role, access, secret, token)),
                Err(expected),
                "{role} {access} {secret} {token}"
            );
        }
    }
}
