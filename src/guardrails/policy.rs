//! A GuardrailPolicy's own settings, checked before it may govern anything: settings the engine
//! cannot read, IAM limits it would widen, patterns it cannot match. Reported as `schema` findings
//! at the offending field of the spec. Pure.

use serde_json::Value;

use super::{Config, ConfigError, FieldPath, Finding, RuleId};

/// Checks a GuardrailPolicy's spec; the `schema` rule has already checked its shape.
pub fn check_policy(spec: &Value, out: &mut Vec<Finding>) {
    if out.iter().any(|f| f.rule == RuleId::Schema) {
        return;
    }
    let spec_path = FieldPath::root("spec");
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
