//! The `provider-config` rule: an AWSProvider's region, credential forms (web identity or Secret
//! references, never both or half of one), endpoint URL, roleARN, drift detection interval and the
//! cluster's OIDC issuer. Pure.

use std::sync::LazyLock;

use regex::Regex;

use crate::api::{AWSProviderSpec, SecretKeyRef};

use super::duration::parse_go_duration;
use super::excerpt::quote;
use super::{FieldPath, Finding, RuleId, arn};
use crate::iam::credential_form;
use crate::iam::workload_identity::issuer_name;

/// AWS region names: `us-east-1`, `ap-southeast-2`, `us-gov-west-1`.
static REGION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$").expect("constant pattern compiles")
});

/// Longest region name the CRD admits.
const MAX_REGION_LEN: usize = 64;

/// Longest Secret name or Secret key Kubernetes admits.
const MAX_SECRET_NAME_LEN: usize = 253;

/// Checks an AWSProvider spec.
pub fn check_provider(spec: &AWSProviderSpec, out: &mut Vec<Finding>) {
    let spec_path = FieldPath::root("spec");
    check_region(&spec.region, &spec_path.field("region"), out);
    check_credentials(spec, &spec_path, out);
    if let Some(endpoint) = &spec.endpoint {
        check_endpoint(endpoint, &spec_path.field("endpoint"), out);
    }
    if let Some(role_arn) = &spec.role_arn {
        check_role_arn(role_arn, &spec_path.field("roleARN"), out);
    }
    if let Some(interval) = spec
        .drift_detection
        .as_ref()
        .and_then(|d| d.interval.as_deref())
    {
        let path = spec_path.field("driftDetection").field("interval");
        check_interval(interval, &path, out);
    }
    if let Some(cluster) = &spec.cluster
        && let Err(why) = issuer_name(&cluster.oidc_issuer)
    {
        out.push(deny(
            &spec_path.field("cluster").field("oidcIssuer"),
            format!(
                "oidcIssuer {} {why}; use the URL `aws eks describe-cluster --query \
                 cluster.identity.oidc.issuer` prints, such as \
                 `https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE`",
                quote(&cluster.oidc_issuer)
            ),
        ));
    }
}

fn deny(path: &FieldPath, message: String) -> Finding {
    Finding::deny(RuleId::ProviderConfig, path, message)
}

fn check_region(region: &str, path: &FieldPath, out: &mut Vec<Finding>) {
    if region.len() > MAX_REGION_LEN || !REGION.is_match(region) {
        out.push(deny(
            path,
            format!(
                "region {} is not an AWS region name; use one such as `us-east-1` or `eu-west-2`",
                quote(region)
            ),
        ));
    }
}

fn check_credentials(spec: &AWSProviderSpec, spec_path: &FieldPath, out: &mut Vec<Finding>) {
    if let Err(error) = credential_form(spec) {
        out.push(deny(&spec_path.field(error.field()), error.to_string()));
    }
    let access = spec.access_key_id_ref.as_ref();
    let secret = spec.secret_access_key_ref.as_ref();
    let token = spec.session_token_ref.as_ref();
    let refs = [
        ("accessKeyIDRef", access),
        ("secretAccessKeyRef", secret),
        ("sessionTokenRef", token),
    ];
    for (field, secret_ref) in refs {
        if let Some(secret_ref) = secret_ref {
            check_secret_ref(field, secret_ref, &spec_path.field(field), out);
        }
    }
}

fn check_secret_ref(
    field: &str,
    secret_ref: &SecretKeyRef,
    path: &FieldPath,
    out: &mut Vec<Finding>,
) {
    let parts = [
        (
            "name",
            secret_ref.name.as_str(),
            "the Secret in the provider's namespace",
        ),
        (
            "key",
            secret_ref.key.as_str(),
            "the key within the Secret's data",
        ),
    ];
    for (part, value, what) in parts {
        if value.is_empty() {
            out.push(deny(
                &path.field(part),
                format!("{field}.{part} is empty; set it to {what}"),
            ));
        } else if value.len() > MAX_SECRET_NAME_LEN {
            out.push(deny(
                &path.field(part),
                format!(
                    "{field}.{part} {} is {} characters long; Kubernetes allows at most {MAX_SECRET_NAME_LEN}",
                    quote(value),
                    value.chars().count()
                ),
            ));
        }
    }
}

fn check_endpoint(endpoint: &str, path: &FieldPath, out: &mut Vec<Finding>) {
    let absolute = endpoint.parse::<http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|host| !host.is_empty())
    });
    if !absolute {
        out.push(deny(
            path,
            format!(
                "endpoint {} is not an absolute http(s) URL with a host; write it like `http://localhost:4566`",
                quote(endpoint)
            ),
        ));
    }
}

fn check_role_arn(role_arn: &str, path: &FieldPath, out: &mut Vec<Finding>) {
    let why = match arn::parse(role_arn) {
        Ok(parsed) if parsed.is_role() => return,
        Ok(_) => "it does not name an IAM role".to_owned(),
        Err(e) => e.to_string(),
    };
    out.push(deny(
        path,
        format!(
            "roleARN {} is not an IAM role ARN ({why}); use arn:aws:iam::ACCOUNT_ID:role/NAME",
            quote(role_arn)
        ),
    ));
}

fn check_interval(interval: &str, path: &FieldPath, out: &mut Vec<Finding>) {
    let message = match parse_go_duration(interval) {
        Ok(d) if !d.is_zero() => return,
        Ok(_) => format!(
            "driftDetection.interval {} is zero; use a positive duration such as `10m`, or set enabled: false",
            quote(interval)
        ),
        Err(e) => format!("driftDetection.interval: {e}; use a positive duration such as `10m`"),
    };
    out.push(deny(path, message));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DriftDetection;

    fn secret(name: &str, key: &str) -> Option<SecretKeyRef> {
        Some(SecretKeyRef {
            name: name.to_owned(),
            key: key.to_owned(),
        })
    }

    fn irsa() -> AWSProviderSpec {
        AWSProviderSpec {
            region: "us-east-1".to_owned(),
            role_arn: Some("arn:aws:iam::123456789012:role/infra-operator-role".to_owned()),
            ..AWSProviderSpec::default()
        }
    }

    fn static_keys() -> AWSProviderSpec {
        AWSProviderSpec {
            region: "us-east-1".to_owned(),
            access_key_id_ref: secret("aws-credentials", "access-key-id"),
            secret_access_key_ref: secret("aws-credentials", "secret-access-key"),
            ..AWSProviderSpec::default()
        }
    }

    fn findings(spec: &AWSProviderSpec) -> Vec<(RuleId, String)> {
        let mut out = Vec::new();
        check_provider(spec, &mut out);
        assert!(out.iter().all(Finding::is_deny));
        out.into_iter().map(|f| (f.rule, f.path)).collect()
    }

    fn one(path: &str) -> Vec<(RuleId, String)> {
        vec![(RuleId::ProviderConfig, path.to_owned())]
    }

    #[test]
    fn the_cluster_issuer_must_be_an_https_url_iam_accepts() {
        let with_issuer = |issuer: &str| AWSProviderSpec {
            cluster: Some(crate::api::ClusterIdentity {
                oidc_issuer: issuer.to_owned(),
            }),
            ..irsa()
        };
        assert!(
            findings(&with_issuer(
                "https://oidc.eks.us-east-1.amazonaws.com/id/AB12"
            ))
            .is_empty()
        );
        for bad in [
            "http://oidc.eks.us-east-1.amazonaws.com/id/AB12",
            "https://evil.example.com@oidc.eks.us-east-1.amazonaws.com/id/AB12",
            "https://oidc.example.com/id?x",
        ] {
            assert_eq!(
                findings(&with_issuer(bad)),
                one("spec.cluster.oidcIssuer"),
                "{bad}"
            );
        }
    }

    #[test]
    fn seed_providers_and_the_default_chain_pass() {
        assert!(findings(&irsa()).is_empty());
        assert!(findings(&static_keys()).is_empty());
        let default_chain = AWSProviderSpec {
            region: "eu-west-2".to_owned(),
            ..AWSProviderSpec::default()
        };
        assert!(findings(&default_chain).is_empty());
        let with_token = AWSProviderSpec {
            session_token_ref: secret("aws-credentials", "session-token"),
            endpoint: Some("http://127.0.0.1:5000".to_owned()),
            drift_detection: Some(DriftDetection {
                enabled: Some(true),
                interval: Some("1h30m".to_owned()),
            }),
            ..static_keys()
        };
        assert!(findings(&with_token).is_empty());
    }

    #[test]
    fn region_must_be_an_aws_region_name() {
        for ok in ["us-east-1", "us-gov-west-1", "ap-southeast-2"] {
            let spec = AWSProviderSpec {
                region: ok.to_owned(),
                ..irsa()
            };
            assert!(findings(&spec).is_empty(), "{ok}");
        }
        for bad in [
            "",
            "US-EAST-1",
            "useast1",
            "us-east",
            "us-east-1 ",
            "u-east-1",
            "us-east-١",
        ] {
            let spec = AWSProviderSpec {
                region: bad.to_owned(),
                ..irsa()
            };
            assert_eq!(findings(&spec), one("spec.region"), "{bad}");
        }
        let long = format!("us-{}-1", "a".repeat(60));
        assert_eq!(
            findings(&AWSProviderSpec {
                region: long,
                ..irsa()
            }),
            one("spec.region")
        );
    }

    #[test]
    fn role_arn_and_static_keys_are_exclusive() {
        let both = AWSProviderSpec {
            role_arn: irsa().role_arn,
            ..static_keys()
        };
        assert_eq!(findings(&both), one("spec.roleARN"));
    }

    #[test]
    fn half_of_the_static_form_names_the_missing_field() {
        let access_only = AWSProviderSpec {
            secret_access_key_ref: None,
            ..static_keys()
        };
        assert_eq!(findings(&access_only), one("spec.secretAccessKeyRef"));
        let secret_only = AWSProviderSpec {
            access_key_id_ref: None,
            ..static_keys()
        };
        assert_eq!(findings(&secret_only), one("spec.accessKeyIDRef"));
        let token_only = AWSProviderSpec {
            region: "us-east-1".to_owned(),
            session_token_ref: secret("aws-credentials", "token"),
            ..AWSProviderSpec::default()
        };
        assert_eq!(findings(&token_only), one("spec.sessionTokenRef"));
    }

    #[test]
    fn secret_refs_need_a_name_and_a_key() {
        let spec = AWSProviderSpec {
            access_key_id_ref: secret("", "access-key-id"),
            secret_access_key_ref: secret("aws-credentials", ""),
            ..static_keys()
        };
        let mut expected = one("spec.accessKeyIDRef.name");
        expected.extend(one("spec.secretAccessKeyRef.key"));
        assert_eq!(findings(&spec), expected);
        let long = AWSProviderSpec {
            access_key_id_ref: secret(&"a".repeat(254), "k"),
            ..static_keys()
        };
        assert_eq!(findings(&long), one("spec.accessKeyIDRef.name"));
    }

    #[test]
    fn endpoint_must_be_an_absolute_http_url() {
        for ok in [
            "http://localhost:4566",
            "https://iam.amazonaws.com",
            "http://127.0.0.1:5000/",
        ] {
            let spec = AWSProviderSpec {
                endpoint: Some(ok.to_owned()),
                ..irsa()
            };
            assert!(findings(&spec).is_empty(), "{ok}");
        }
        for bad in [
            "",
            "localhost:4566",
            "ftp://example.com",
            "/relative",
            "http://",
            "http:// spaces",
        ] {
            let spec = AWSProviderSpec {
                endpoint: Some(bad.to_owned()),
                ..irsa()
            };
            assert_eq!(findings(&spec), one("spec.endpoint"), "{bad}");
        }
    }

    #[test]
    fn role_arn_must_name_an_iam_role() {
        for bad in [
            "",
            "infra-operator-role",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "arn:aws:iam::123456789012:user/someone",
            "arn:aws:iam::123456789012:role/*",
        ] {
            let spec = AWSProviderSpec {
                role_arn: Some(bad.to_owned()),
                ..irsa()
            };
            assert_eq!(findings(&spec), one("spec.roleARN"), "{bad}");
        }
    }

    #[test]
    fn drift_interval_must_be_a_positive_go_duration() {
        let with = |interval: &str| AWSProviderSpec {
            drift_detection: Some(DriftDetection {
                enabled: None,
                interval: Some(interval.to_owned()),
            }),
            ..irsa()
        };
        for ok in ["30s", "10m", "1h30m", "1.5h"] {
            assert!(findings(&with(ok)).is_empty(), "{ok}");
        }
        for bad in ["0s", "0", "10", "10d", "-5m", "soon", ""] {
            assert_eq!(
                findings(&with(bad)),
                one("spec.driftDetection.interval"),
                "{bad}"
            );
        }
    }

    #[test]
    fn messages_name_the_value_and_stay_on_one_line() {
        let spec = AWSProviderSpec {
            region: "mars-1\nx".to_owned(),
            ..irsa()
        };
        let mut out = Vec::new();
        check_provider(&spec, &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].message.contains("`mars-1\\nx`"),
            "{}",
            out[0].message
        );
        assert!(!out[0].message.contains('\n'));
    }
}
