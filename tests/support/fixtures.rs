//! The guardrail fixture corpus under `tests/fixtures/`: finds the manifests, parses their YAML documents
//! and reads their header comments. Reads files; shared by every test that runs the corpus (library
//! engine, `infra-operator validate`, admission webhook).
//!
//! A fixture starts with header comment lines, one `key: value` per line:
//! - `# expect: <rule-id> <field.path>`: a DENY finding the fixture must produce (bad and update fixtures);
//! - `# good: <what it shows>`: the fixture must produce no DENY finding;
//! - `# why: <reason>`: why a bad fixture is bad;
//! - `# guardrails: <file>`: a guardrails file under `tests/fixtures/guardrails/` to check it with.
//!
//! Files under `updates/` hold two documents: the stored (old) object, then the new one. Bad fixtures
//! refused by the default guardrails live in `bad/`, those refused only under the stricter file their
//! `# guardrails:` line names in `bad-stricter/`.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// One fixture file.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Path relative to `tests/fixtures/`, e.g. `bad/role-name-space.yaml`.
    pub name: String,
    /// Absolute path of the file.
    pub path: PathBuf,
    /// The whole file, headers included.
    pub text: String,
    /// The YAML documents of the file, as JSON values (one object; two for updates: old, new).
    pub docs: Vec<Value>,
    /// `(rule id, field path)` of every `# expect:` header, in file order.
    pub expect: Vec<(String, String)>,
    /// The `# good:` header, if any.
    pub good: Option<String>,
    /// The `# why:` header, if any.
    pub why: Option<String>,
    /// Absolute path of the guardrails file named by `# guardrails:`, if any.
    pub guardrails: Option<PathBuf>,
}

/// The header comments of a fixture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// `(rule id, field path)` of every `# expect:` line.
    pub expect: Vec<(String, String)>,
    /// The `# good:` text.
    pub good: Option<String>,
    /// The `# why:` text.
    pub why: Option<String>,
    /// The `# guardrails:` file name.
    pub guardrails: Option<String>,
}

/// `tests/fixtures/` of this crate.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// Every bad fixture, sorted by name within each directory: `bad/` (refused by the default
/// guardrails) then `bad-stricter/` (refused only under the guardrails file its header names).
pub fn bad_fixtures() -> Vec<Fixture> {
    let mut fixtures = load_dir("bad");
    fixtures.extend(load_dir("bad-stricter"));
    fixtures
}

/// Every fixture under `good/`, sorted by name.
pub fn good_fixtures() -> Vec<Fixture> {
    load_dir("good")
}

/// Every two-document fixture under `updates/`, sorted by name.
pub fn update_fixtures() -> Vec<Fixture> {
    load_dir("updates")
}

/// Every guardrails file under `guardrails/`, sorted.
pub fn guardrails_files() -> Vec<PathBuf> {
    yaml_files(&fixtures_dir().join("guardrails"))
}

/// Every `*.yaml` fixture of one subdirectory of `tests/fixtures/`, sorted by name.
pub fn load_dir(sub: &str) -> Vec<Fixture> {
    yaml_files(&fixtures_dir().join(sub))
        .iter()
        .map(|p| load(p))
        .collect()
}

/// Loads one fixture file; panics with the file's name when it cannot be read or parsed.
pub fn load(path: &Path) -> Fixture {
    let root = fixtures_dir();
    let name = path
        .strip_prefix(&root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{name}: cannot read: {e}"));
    let header = parse_header(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let docs = parse_documents(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let guardrails = header.guardrails.map(|g| {
        let file = root.join("guardrails").join(&g);
        assert!(
            file.is_file(),
            "{name}: guardrails file `{g}` not found at {}",
            file.display()
        );
        file
    });
    Fixture {
        name,
        path: path.to_path_buf(),
        text,
        docs,
        expect: header.expect,
        good: header.good,
        why: header.why,
        guardrails,
    }
}

/// Reads the leading comment block of a fixture. Every line of it must be a known `key: value`, so a
/// misspelt header cannot silently drop an expectation.
pub fn parse_header(text: &str) -> Result<Header, String> {
    let mut header = Header::default();
    for line in text.lines() {
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        let comment = comment.trim();
        let (key, value) = comment
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| format!("header line `{line}` is not `# key: value`"))?;
        match key {
            "expect" => {
                let (rule, path) = value
                    .split_once(char::is_whitespace)
                    .map(|(r, p)| (r.trim(), p.trim()))
                    .filter(|(_, p)| !p.is_empty())
                    .ok_or_else(|| {
                        format!("`# expect: {value}` is not `<rule-id> <field.path>`")
                    })?;
                header.expect.push((rule.to_owned(), path.to_owned()));
            }
            "good" => set_once(&mut header.good, key, value)?,
            "why" => set_once(&mut header.why, key, value)?,
            "guardrails" => set_once(&mut header.guardrails, key, value)?,
            other => return Err(format!("unknown header `# {other}:`")),
        }
    }
    Ok(header)
}

/// Parses every YAML document of `text` into JSON values, skipping empty documents.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| format!("not YAML: {e}"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn set_once(slot: &mut Option<String>, key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("`# {key}:` is empty"));
    }
    if slot.replace(value.to_owned()).is_some() {
        return Err(format!("`# {key}:` given twice"));
    }
    Ok(())
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

/// Fixtures grouped by the guardrails file they need (`None`: the built-in defaults).
pub fn by_guardrails(
    all: Vec<Fixture>,
) -> std::collections::BTreeMap<Option<PathBuf>, Vec<Fixture>> {
    let mut groups: std::collections::BTreeMap<Option<PathBuf>, Vec<Fixture>> =
        std::collections::BTreeMap::new();
    for fixture in all {
        groups
            .entry(fixture.guardrails.clone())
            .or_default()
            .push(fixture);
    }
    groups
}
