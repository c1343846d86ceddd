//! `infra-operator validate`: the guardrail engine run offline over manifest files (multi-document YAML
//! or JSON), for CI pipelines and GitOps repositories. Reads files; writes the report to a writer.
//!
//! Whatever it is pointed at, it never hangs: directories reached through a symbolic link are
//! skipped (and listed), anything that is not a regular file (FIFO, device, socket) is refused
//! before it is opened, files over [`MAX_FILE_BYTES`] are refused, and YAML nested deeper than
//! [`MAX_NESTING`] levels is refused before it is parsed.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::AWSProvider;
use crate::guardrails::{Engine, Finding, Kind, Severity};
use crate::iam::workload_identity::ProviderFacts;

/// Largest manifest file read.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Deepest nesting of flow collections (`[`, `{`) in a manifest.
pub const MAX_NESTING: usize = 64;

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
    /// Directories reached through a symbolic link, not searched.
    #[serde(default)]
    pub skipped_links: Vec<String>,
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
        for link in &self.skipped_links {
            writeln!(
                out,
                "{link}: skipped (a symbolic link to a directory is not followed)"
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
    for file in collect_files(paths, &mut report) {
        let shown = file.display().to_string();
        match read_manifest(&file) {
            Ok(text) => check_text(engine, &shown, &text, &mut report),
            Err(e) => report.errors.push(format!("{shown}: {e}")),
        }
    }
    report
}

/// Reads a manifest: a regular file of at most [`MAX_FILE_BYTES`], as UTF-8.
fn read_manifest(path: &Path) -> Result<String, String> {
    let metadata = fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !metadata.is_file() {
        return Err("not a regular file (a FIFO, device or socket is never read)".to_owned());
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(format!(
            "larger than {} MiB; refused",
            MAX_FILE_BYTES / 1024 / 1024
        ));
    }
    let file = fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "larger than {} MiB; refused",
            MAX_FILE_BYTES / 1024 / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// Checks the documents of one manifest file's text, adding to `report`.
pub fn check_text(engine: &Engine, file: &str, text: &str, report: &mut Report) {
    if let Err(line) = check_nesting(text) {
        report.errors.push(format!(
            "{file}: line {line}: nested deeper than {MAX_NESTING} levels; refused"
        ));
        return;
    }
    let documents = match parse_documents(text) {
        Ok(documents) => documents,
        Err(e) => {
            report.errors.push(format!("{file}: not valid YAML: {e}"));
            return;
        }
    };
    let providers = providers_of(&documents);
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
        let namespace = Some(field("/metadata/namespace"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let provider = (kind == Kind::IAMRole)
            .then(|| providers.get(&(namespace.clone(), field("/spec/providerRef/name"))))
            .flatten();
        report.objects.push(ObjectReport {
            file: file.to_owned(),
            kind: kind.as_str().to_owned(),
            namespace,
            name: field("/metadata/name"),
            findings: engine.check_with_provider(kind, &document, None, provider),
        });
    }
}

/// The AWSProviders among `documents`, by namespace and name: a role's `workloadIdentity` is
/// checked against the provider of the same file.
fn providers_of(documents: &[Value]) -> HashMap<(String, String), ProviderFacts> {
    documents
        .iter()
        .filter(|d| Kind::of(d) == Some(Kind::AWSProvider))
        .filter_map(|d| serde_json::from_value::<AWSProvider>(d.clone()).ok())
        .map(|provider| {
            let namespace = provider
                .metadata
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".to_owned());
            let facts = ProviderFacts::of(&provider);
            ((namespace, facts.name.clone()), facts)
        })
        .collect()
}

/// Splits multi-document YAML (JSON is YAML too) into JSON values.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, serde_norway::Error> {
    serde_norway::Deserializer::from_str(text)
        .map(Value::deserialize)
        .collect()
}

/// Where flow collections nest deeper than [`MAX_NESTING`]: the line number. A cheap scan ahead of
/// the YAML parser, whose time grows fast with nesting depth. Brackets inside quoted scalars and
/// comments do not count.
fn check_nesting(text: &str) -> Result<(), usize> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    // The last character that was not a space or tab on this line, if any.
    let mut previous: Option<char> = None;
    for c in text.chars() {
        if c == '\n' {
            line += 1;
            comment = false;
            previous = None;
            continue;
        }
        if comment {
            continue;
        }
        if let Some(open) = quote {
            if escaped {
                escaped = false;
            } else if open == '"' && c == '\\' {
                escaped = true;
            } else if c == open {
                quote = None;
            }
            previous = Some(c);
            continue;
        }
        match c {
            '#' if matches!(previous, None | Some(' ')) => comment = true,
            '\'' | '"' if starts_scalar(previous) => quote = Some(c),
            '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(line);
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c != ' ' && c != '\t' {
            previous = Some(c);
        } else if previous.is_some() {
            previous = Some(' ');
        }
    }
    Ok(())
}

/// Whether a quote after `previous` opens a quoted scalar rather than being part of a plain one.
fn starts_scalar(previous: Option<char>) -> bool {
    matches!(
        previous,
        None | Some(' ' | ':' | '-' | '[' | '{' | ',' | '?')
    )
}

fn collect_files(paths: &[PathBuf], report: &mut Report) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files, report);
        } else if path.exists() || fs::symlink_metadata(path).is_ok() {
            files.push(path.clone());
        } else {
            report
                .errors
                .push(format!("{}: no such file or directory", path.display()));
        }
    }
    files
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, report: &mut Report) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            report
                .errors
                .push(format!("{}: cannot read directory: {e}", dir.display()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let link = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if path.is_dir() {
            if link {
                report.skipped_links.push(path.display().to_string());
            } else {
                walk(&path, files, report);
            }
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
    fn a_role_is_checked_with_the_provider_of_its_file() {
        let provider = |cluster: &str| {
            format!(
                "apiVersion: aws-infra-operator.runner.codes/v1alpha1\nkind: AWSProvider\n\
                 metadata: {{name: aws, namespace: apps}}\nspec: {{region: us-east-1{cluster}}}\n"
            )
        };
        let role = "apiVersion: aws-infra-operator.runner.codes/v1alpha1\nkind: IAMRole\n\
                    metadata: {name: pods, namespace: apps}\nspec: {providerRef: {name: aws}, \
                    roleName: pods, workloadIdentity: {serviceAccounts: [app]}}\n";
        let rules = |text: String| {
            let mut report = Report::default();
            check_text(&engine(), "f.yaml", &text, &mut report);
            report.objects[1]
                .findings
                .iter()
                .map(|f| f.rule.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            rules(format!("{}---\n{role}", provider(""))),
            ["workload-identity"]
        );
        let with_issuer =
            provider(", cluster: {oidcIssuer: 'https://oidc.eks.us-east-1.amazonaws.com/id/A1'}");
        assert!(rules(format!("{with_issuer}---\n{role}")).is_empty());
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
    fn symlinked_directories_are_skipped_and_listed() {
        let root = tempfile::tempdir().unwrap();
        let inside = root.path().join("inside");
        fs::create_dir(&inside).unwrap();
        fs::write(inside.join("s.yaml"), "apiVersion: v1\nkind: Secret\n").unwrap();
        // A link back up would make the walk endless if it were followed.
        std::os::unix::fs::symlink(root.path(), inside.join("loop")).unwrap();
        let report = validate_paths(&engine(), &[root.path().to_path_buf()]);
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(
            report.skipped_links,
            vec![inside.join("loop").display().to_string()]
        );
        assert_eq!(report.exit_code(), 0);
        let mut out = Vec::new();
        report.write(Format::Text, &mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("loop: skipped (a symbolic link")
        );
    }

    #[test]
    fn what_is_not_a_regular_file_is_refused_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.yaml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let socket = dir.path().join("socket.yaml");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        for path in [fifo, socket, PathBuf::from("/dev/zero")] {
            let report = validate_paths(&engine(), std::slice::from_ref(&path));
            assert_eq!(report.exit_code(), 2, "{path:?}");
            assert!(
                report.errors[0]
                    .ends_with("not a regular file (a FIFO, device or socket is never read)"),
                "{:?}",
                report.errors
            );
        }
    }

    #[test]
    fn large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let large = dir.path().join("large.yaml");
        let file = fs::File::create(&large).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let report = validate_paths(&engine(), &[large]);
        assert_eq!(report.exit_code(), 2);
        assert!(
            report.errors[0].ends_with("larger than 8 MiB; refused"),
            "{:?}",
            report.errors
        );
    }

    #[test]
    fn deep_nesting_is_refused_quickly_and_ordinary_brackets_are_not() {
        let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let mut report = Report::default();
        check_text(&engine(), "deep.yaml", &deep, &mut report);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            report.errors,
            vec![format!(
                "deep.yaml: line 1: nested deeper than {MAX_NESTING} levels; refused"
            )]
        );
        let block = format!("a: {}\n", "- ".repeat(100_000));
        let mut report = Report::default();
        check_text(&engine(), "dashes.yaml", &block, &mut report);
        assert_eq!(report.exit_code(), 2);

        let fine = "a: \"[[[[\"  # [[[[\nb: '{{{{'\nc: |\n  {\"Statement\": [{\"Action\": [\"s3:*\"]}]}\nd: [[1, [2]], {e: f}]\n";
        let within = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        assert_eq!(check_nesting(fine), Ok(()));
        assert_eq!(check_nesting(&within), Ok(()));
        assert_eq!(check_nesting(&format!("x: [{within}]")), Err(1));
        assert_eq!(
            check_nesting(&format!("a: 1\n# {within}[\nb: \"{within}[\"")),
            Ok(())
        );
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
