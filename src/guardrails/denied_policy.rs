//! Which managed policies the guardrails deny (`managed-policy`): an entry of
//! `deniedManagedPolicies` is either a policy name, denied in every partition and account whatever
//! its path, or a policy ARN, denied in every partition. Names compare ignoring case, as IAM keeps
//! them unique ignoring case. Pure.

use super::arn;

/// The first of the `deniedManagedPolicies` entries that names the managed policy `policy_arn`.
pub fn denied_by<'e>(entries: &'e [String], policy_arn: &str) -> Option<&'e str> {
    let policy = arn::parse(policy_arn)
        .ok()
        .filter(|p| p.service.eq_ignore_ascii_case("iam"))?;
    let name = policy_name(policy.resource)?;
    entries
        .iter()
        .map(String::as_str)
        .find(|entry| match arn::parse(entry) {
            Ok(denied) => {
                denied.service.eq_ignore_ascii_case(policy.service)
                    && denied.region == policy.region
                    && denied.account.eq_ignore_ascii_case(policy.account)
                    && denied.resource.eq_ignore_ascii_case(policy.resource)
            }
            Err(_) => name.eq_ignore_ascii_case(entry),
        })
}

/// Why `entry` cannot be a `deniedManagedPolicies` entry, or `None` when it can.
pub fn entry_problem(entry: &str) -> Option<&'static str> {
    if entry.starts_with("arn:") {
        let policy = arn::parse(entry).ok().filter(arn::Arn::is_policy);
        return policy.is_none().then_some(
            "is not a managed policy ARN such as arn:aws:iam::aws:policy/AdministratorAccess",
        );
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    (entry.is_empty() || entry.len() > 128 || !entry.chars().all(name_char))
        .then_some("is not a policy name (1–128 letters, digits or `_+=,.@-`) or a policy ARN")
}

/// The name of a policy from its ARN's resource part: `policy/path/Name` → `Name`.
fn policy_name(resource: &str) -> Option<&str> {
    resource.strip_prefix("policy/")?.rsplit('/').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_denied(entry: &str, policy_arn: &str) -> bool {
        denied_by(&[entry.to_owned()], policy_arn).is_some()
    }

    #[test]
    fn names_are_denied_in_every_partition_account_and_path() {
        for denied in [
            "arn:aws:iam::aws:policy/AdministratorAccess",
            "arn:aws-us-gov:iam::aws:policy/AdministratorAccess",
            "arn:aws-cn:iam::aws:policy/administratoraccess",
            "arn:aws:iam::123456789012:policy/team/AdministratorAccess",
        ] {
            assert!(is_denied("AdministratorAccess", denied), "{denied}");
        }
        for allowed in [
            "arn:aws:iam::aws:policy/AdministratorAccess-Amplify",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "arn:aws:iam::aws:policy/AdministratorAccess/x",
            "arn:aws:s3:::policy/AdministratorAccess",
            "AdministratorAccess",
        ] {
            assert!(!is_denied("AdministratorAccess", allowed), "{allowed}");
        }
    }

    #[test]
    fn arns_are_denied_in_every_partition() {
        let entry = "arn:aws:iam::123456789012:policy/Break-Glass";
        assert!(is_denied(
            entry,
            "arn:aws:iam::123456789012:policy/break-glass"
        ));
        assert!(is_denied(
            entry,
            "arn:aws-cn:iam::123456789012:policy/Break-Glass"
        ));
        assert!(!is_denied(
            entry,
            "arn:aws:iam::210987654321:policy/Break-Glass"
        ));
        assert!(!is_denied(
            entry,
            "arn:aws:iam::123456789012:policy/ops/Break-Glass"
        ));
    }

    #[test]
    fn entries_are_names_or_policy_arns() {
        assert_eq!(entry_problem("IAMFullAccess"), None);
        assert_eq!(entry_problem("arn:aws:iam::aws:policy/IAMFullAccess"), None);
        assert!(entry_problem("").is_some());
        assert!(entry_problem("Admin Access").is_some());
        assert!(entry_problem("arn:aws:iam::aws:role/Admin").is_some());
    }
}
