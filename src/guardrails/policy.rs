//! A GuardrailPolicy's own settings, checked before it may govern anything: a selector that
//! selects nothing, settings the engine cannot read, IAM limits it would widen, patterns it cannot
//! match. Reported as `schema` findings
//! at the offending field of the spec. Pure.

use serde_json::Value;

use super::{Config, ConfigError, FieldPath, Finding, RuleId};
use crate::governance::select::NamespaceSelector;

/// Checks a GuardrailPolicy's spec; the `schema` rule has already checked its shape.
pub fn check_policy(spec: &Value, out: &mut Vec<Finding>) {
    if out.iter().any(|f| f.rule == RuleId::Schema) {
        return;
    }
    let spec_path = FieldPath::root("spec");
    let selector = spec
        .get("namespaceSelector")
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    if let NamespaceSelector::Unreadable(why) = NamespaceSelector::of(selector.as_ref()) {
        out.push(Finding::deny(
            RuleId::Schema,
            &spec_path.field("namespaceSelector"),
            format!("is not a label selector Kubernetes can use: {why}"),
        ));
    }
    match Config::from_spec(spec) {
        Ok(_) => {}
        Err(ConfigError::Invalid { field, message }) => out.push(Finding::deny(
            RuleId::Schema,
            &spec_path.field(&field),
            message,
        )),
        Err(ConfigError::Parse(message)) => {
            out.push(Finding::deny(RuleId::Schema, &spec_path, message));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn findings(spec: serde_json::Value) -> Vec<String> {
        let mut out = Vec::new();
        check_policy(&spec, &mut out);
        out.iter().map(|f| f.path.clone()).collect()
    }

    #[test]
    fn hostile_policies_are_refused_at_their_field() {
        assert!(
            findings(json!({"priority": 3, "namespaceSelector": {"matchLabels": {"team": "a"}}}))
                .is_empty()
        );
        let near = json!({"namespaceSelector": {"matchExpressions": [
            {"key": "team", "operator": "Near", "values": ["a"]}]}});
        assert_eq!(findings(near), ["spec.namespaceSelector"]);
        let placeholder = json!({"tenancy": {"providers": {"endpoints": ["http://{team}:1"]}}});
        assert_eq!(
            findings(placeholder),
            ["spec.tenancy.providers.endpoints[0]"]
        );
        let many: Vec<String> = (0..65).map(|i| format!("r{i}-*")).collect();
        assert_eq!(
            findings(json!({"tenancy": {"roleNames": many}})),
            ["spec.tenancy.roleNames"]
        );
        let long = "x".repeat(513);
        assert_eq!(
            findings(json!({"tenancy": {"rolePaths": [long]}})),
            ["spec.tenancy.rolePaths[0]"]
        );
        assert_eq!(
            findings(json!({"severities": {"action-wildcard": "off"}})),
            ["spec.severities.action-wildcard"]
        );
    }
}
