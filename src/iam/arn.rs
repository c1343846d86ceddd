//! Amazon Resource Names: the shape check shared by `policy-arn`, `managed-policy`,
//! `permissions-boundary` and `provider-config`. Pure.

use std::fmt;

/// Partitions IAM knows.
pub const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// An ARN split into its six parts (`arn:partition:service:region:account:resource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    /// `aws`, `aws-cn`, ...
    pub partition: &'a str,
    /// `iam`, `s3`, ...
    pub service: &'a str,
    /// Region, possibly empty or a wildcard.
    pub region: &'a str,
    /// Account ID, `aws` for AWS-managed policies, possibly empty or a wildcard.
    pub account: &'a str,
    /// Everything after the fifth colon, e.g. `role/path/name`.
    pub resource: &'a str,
}

/// Why a string is not an ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArnError {
    /// Does not start with `arn:`.
    NoPrefix,
    /// Fewer than six colon-separated parts.
    TooFewParts,
    /// A partition IAM does not know.
    Partition(String),
    /// An empty or malformed service.
    Service,
    /// An account that is not 12 digits, `aws`, empty or a wildcard pattern.
    Account(String),
    /// An empty resource part.
    Resource,
}

impl fmt::Display for ArnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArnError::NoPrefix => f.write_str("an ARN starts with `arn:`"),
            ArnError::TooFewParts => {
                f.write_str("an ARN has six parts: arn:partition:service:region:account:resource")
            }
            ArnError::Partition(p) => write!(
                f,
                "unknown partition `{p}` (expected one of {})",
                PARTITIONS.join(", ")
            ),
            ArnError::Service => {
                f.write_str("the service part must be lower-case letters, digits or `-`")
            }
            ArnError::Account(a) => write!(f, "account `{a}` is not a 12-digit account ID"),
            ArnError::Resource => f.write_str("the resource part is empty"),
        }
    }
}

/// Parses an ARN. Wildcards (`*`, `?`) are accepted in the region, account and resource parts, as
/// policies allow them there; callers that need a concrete ARN check [`Arn::has_wildcard`].
pub fn parse(text: &str) -> Result<Arn<'_>, ArnError> {
    let rest = text.strip_prefix("arn:").ok_or(ArnError::NoPrefix)?;
    let mut parts = rest.splitn(5, ':');
    let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(ArnError::TooFewParts);
    };
    if !PARTITIONS.contains(&partition) {
        return Err(ArnError::Partition(partition.to_owned()));
    }
    let service_ok = !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !service_ok {
        return Err(ArnError::Service);
    }
    let account_ok = account.is_empty()
        || account == "aws"
        || account
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'?')
            && (account.len() == 12 || account.contains('*') || account.contains('?'));
    if !account_ok {
        return Err(ArnError::Account(account.to_owned()));
    }
    if resource.is_empty() {
        return Err(ArnError::Resource);
    }
    Ok(Arn {
        partition,
        service,
        region,
        account,
        resource,
    })
}

impl Arn<'_> {
    /// Whether any part holds a wildcard.
    pub fn has_wildcard(&self) -> bool {
        [self.region, self.account, self.resource]
            .iter()
            .any(|p| p.contains('*') || p.contains('?'))
    }

    /// Whether this names an IAM managed policy (`arn:…:iam::ACCOUNT|aws:policy/…`) without wildcards.
    pub fn is_policy(&self) -> bool {
        self.service == "iam"
            && self.region.is_empty()
            && !self.account.is_empty()
            && self
                .resource
                .strip_prefix("policy/")
                .is_some_and(|name| !name.is_empty() && !name.ends_with('/'))
            && !self.has_wildcard()
    }

    /// Whether this names an IAM role (`arn:…:iam::ACCOUNT:role/…`) without wildcards.
    pub fn is_role(&self) -> bool {
        self.service == "iam"
            && self.region.is_empty()
            && self.account.len() == 12
            && self
                .resource
                .strip_prefix("role/")
                .is_some_and(|name| !name.is_empty() && !name.ends_with('/'))
            && !self.has_wildcard()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policy_role_and_resource_arns() {
        let p = parse("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole").unwrap();
        assert!(p.is_policy());
        assert!(!p.is_role());
        assert!(
            parse("arn:aws:iam::123456789012:role/infra-operator-role")
                .unwrap()
                .is_role()
        );
        let table = parse("arn:aws:dynamodb:*:*:table/e2e-*").unwrap();
        assert!(table.has_wildcard());
        assert_eq!(table.service, "dynamodb");
        assert!(parse("arn:aws:s3:::my-app-bucket/*").is_ok());
    }

    #[test]
    fn refuses_malformed_arns() {
        assert_eq!(parse("aws:iam::aws:policy/X"), Err(ArnError::NoPrefix));
        assert_eq!(parse("arn:aws:iam::aws"), Err(ArnError::TooFewParts));
        assert!(matches!(
            parse("arn:awz:iam::aws:policy/X"),
            Err(ArnError::Partition(_))
        ));
        assert!(matches!(
            parse("arn:aws:IAM::aws:policy/X"),
            Err(ArnError::Service)
        ));
        assert!(matches!(
            parse("arn:aws:iam::12345:role/x"),
            Err(ArnError::Account(_))
        ));
        assert_eq!(parse("arn:aws:iam::123456789012:"), Err(ArnError::Resource));
        assert!(!parse("arn:aws:iam::aws:policy/").unwrap().is_policy());
        assert!(!parse("arn:aws:iam::123456789012:role/*").unwrap().is_role());
    }
}
