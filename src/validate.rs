//! `infra-operator validate`: the guardrail engine run offline over manifest files (multi-document YAML
//! or JSON), for CI pipelines and GitOps repositories. Reads files; writes the report to a writer.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::guardrails::{Engine, Finding, Kind, Severity};

/// How the report is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per finding: `<file>: <Kind> <ns>/<name>: DENY|WARN <rule-id> <field.path>: <message>`.
    #[default]
    Text,
    /// One JSON document with every object, finding, skipped document and error.
    Json,
}

/// The verdict on one checked object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectReport {
    /// File the object came from.
    pub file: String,
    /// `IAMRole` or `AWSProvider`.
    pub kind: String,
    /// Namespace (`default` when the manifest names none).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Every finding, DENY and WARN.
    pub findings: Vec<Finding>,
}

/// A document that is not one of the operator's kinds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// File the document came from.
    pub file: String,
    /// Its `apiVersion`, empty when absent.
    pub api_version: String,
    /// Its `kind`, empty when absent.
    pub kind: String,
    /// Its name, empty when absent.
    pub name: String,
}

/// Everything `validate` found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Checked objects.
    pub objects: Vec<ObjectReport>,
    /// Documents of other kinds, not checked.
    pub skipped: Vec<Skipped>,
    /// Files that could not be read or parsed.
    pub errors: Vec<String>,
}

impl Report {
    /// Whether any object has a DENY finding.
    pub fn denied(&self) -> bool {
        self.objects
            .iter()
            .any(|o| o.findings.iter().any(Finding::is_deny))
    }

    /// 0 nothing denied, 1 something denied, 2 a file could not be read or parsed.
    pub fn exit_code(&self) -> u8 {
        if !self.errors.is_empty() {
            2
        } else if self.denied() {
            1
        } else {
            0
        }
    }

    /// Writes the report in the chosen format.
    pub fn write(&self, format: Format, out: &mut impl Write) -> io::Result<()> {
        match format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, self)?;
                writeln!(out)
            }
            Format::Text => self.write_text(out),
        }
    }

    fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        for object in &self.objects {
            let mut findings: Vec<&Finding> = object.findings.iter().collect();
            findings.sort_by_key(|f| f.severity);
            for f in findings {
                writeln!(
                    out,
                    "{}: {} {}/{}: {} {} {}: {}",
                    object.file,
                    object.kind,
                    object.namespace,
                    object.name,
                    f.severity,
                    f.rule,
                    f.path,
                    f.message
                )?;
            }
        }
        for s in &self.skipped {
            writeln!(
                out,
                "{}: skipped {} {} {} (not an infra-operator kind)",
                s.file, s.api_version, s.kind, s.name
            )?;
        }
        for e in &self.errors {
            writeln!(out, "{e}")?;
        }
        Ok(())
    }

    /// A one-line summary: objects checked, denied, warnings, skipped, errors.
    pub fn summary(&self) -> String {
        let denied = self
            .objects
            .iter()
            .filter(|o| o.findings.iter().any(Finding::is_deny))
            .count();
        let warnings: usize = self
            .objects
            .iter()
            .map(|o| {
                o.findings
                    .iter()
                    .filter(|f| f.severity == Severity::Warn)
                    .count()
            })
            .sum();
        format!(
            "{} objects checked, {denied} denied, {warnings} warnings, {} skipped, {} unreadable",
            self.objects.len(),
            self.skipped.len(),
            self.errors.len()
        )
    }
}

/// Checks every manifest under `paths` (files, or directories searched for `*.yaml`, `*.yml`, `*.json`).
pub fn validate_paths(engine: &Engine, paths: &[PathBuf]) -> Report {
    let mut report = Report::default();
    for file in collect_files(paths, &mut report.errors) {
        let shown = file.display().to_string();
        match fs::read_to_string(&file) {
            Ok(text) => check_text(engine, &shown, &text, &mut report),
            Err(e) => report.errors.push(format!("{shown}: cannot read: {e}")),
        }
    }
    report
}

/// Checks the documents of one manifest file's text, adding to `report`.
pub fn check_text(engine: &Engine, file: &str, text: &str, report: &mut Report) {
    let documents = match parse_documents(text) {
        Ok(documents) => documents,
        Err(e) => {
            report.errors.push(format!("{file}: not valid YAML: {e}"));
            return;
        }
    };
    for document in documents {
        if document.is_null() {
            continue;
        }
        let field = |pointer: &str| {
            document
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let Some(kind) = Kind::of(&document) else {
            report.skipped.push(Skipped {
                file: file.to_owned(),
                api_version: field("/apiVersion"),
                kind: field("/kind"),
                name: field("/metadata/name"),
            });
            continue;
        };
        let namespace = Some(field("/metadata/namespace")).filter(|n| !n.is_empty());
        report.objects.push(ObjectReport {
            file: file.to_owned(),
            kind: kind.as_str().to_owned(),
            namespace: namespace.unwrap_or_else(|| "default".to_owned()),
            name: field("/metadata/name"),
            findings: engine.check(kind, &document, None),
        });
    }
}

/// Splits multi-document YAML (JSON is YAML too) into JSON values.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, serde_norway::Error> {
    serde_norway::Deserializer::from_str(text)
        .map(Value::deserialize)
        .collect()
}

fn collect_files(paths: &[PathBuf], errors: &mut Vec<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files, errors);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            errors.push(format!("{}: no such file or directory", path.display()));
        }
    }
    files
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(format!("{}: cannot read directory: {e}", dir.display()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, files, errors);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guardrails::Config;

    fn engine() -> Engine {
        Engine::new(Config::default()).expect("engine builds")
    }

    #[test]
    fn other_kinds_are_skipped_and_listed() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n---\napiVersion: apps/v1\nkind: Deployment\n";
        let mut report = Report::default();
        check_text(&engine(), "f.yaml", text, &mut report);
        assert!(report.objects.is_empty());
        assert_eq!(report.skipped.len(), 2);
        assert_eq!(report.skipped[0].kind, "Secret");
        assert_eq!(report.exit_code(), 0);
    }

    #[test]
    fn unparsable_yaml_is_an_error_with_exit_code_2() {
        let mut report = Report::default();
        check_text(&engine(), "bad.yaml", "a: [unclosed\n", &mut report);
        assert_eq!(report.errors.len(), 1);
        assert!(report.errors[0].starts_with("bad.yaml: not valid YAML"));
        assert_eq!(report.exit_code(), 2);
    }

    #[test]
    fn missing_paths_are_errors() {
        let report = validate_paths(&engine(), &[PathBuf::from("/no/such/manifest.yaml")]);
        assert_eq!(report.exit_code(), 2);
    }

    #[test]
    fn text_lines_follow_the_documented_format() {
        let report = Report {
            objects: vec![ObjectReport {
                file: "r.yaml".into(),
                kind: "IAMRole".into(),
                namespace: "team-a".into(),
                name: "web".into(),
                findings: vec![Finding::deny(
                    crate::guardrails::RuleId::RoleName,
                    &crate::guardrails::FieldPath::root("spec").field("roleName"),
                    "bad",
                )],
            }],
            ..Report::default()
        };
        let mut out = Vec::new();
        report.write(Format::Text, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "r.yaml: IAMRole team-a/web: DENY role-name spec.roleName: bad\n"
        );
        assert_eq!(report.exit_code(), 1);
    }
}
