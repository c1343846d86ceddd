//! `infra-operator validate` as a user runs it: the binary over the seed examples and the fixture
//! corpus, its text and JSON reports and its exit codes.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn validate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_infra-operator"))
        .arg("validate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("infra-operator runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn arguments(guardrails: &Option<PathBuf>, group: &[fixtures::Fixture]) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    if let Some(g) = guardrails {
        args.push("--guardrails".into());
        args.push(g.display().to_string());
    }
    args.extend(group.iter().map(|f| f.path.display().to_string()));
    args
}

#[test]
fn every_seed_example_passes() {
    let output = validate(&["manifests/examples"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "examples denied:\n{text}");
    assert!(!text.contains(": DENY "), "{text}");
    // The Secret beside the localstack provider is listed as skipped, not checked.
    assert!(text.contains("skipped v1 Secret aws-credentials"), "{text}");
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(
        summary.contains("17 objects checked, 0 denied"),
        "{summary}"
    );
}

#[test]
fn every_bad_fixture_is_denied_with_its_rule_and_path() {
    for (guardrails, group) in fixtures::by_guardrails(fixtures::bad_fixtures()) {
        let args = arguments(&guardrails, &group);
        let output = validate(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(output.status.code(), Some(1), "guardrails {guardrails:?}");
        let text = stdout(&output);
        for fixture in &group {
            let file = fixture.path.display().to_string();
            for (rule, path) in &fixture.expect {
                let wanted = format!(" DENY {rule} {path}: ");
                assert!(
                    text.lines()
                        .any(|l| l.starts_with(&format!("{file}: ")) && l.contains(&wanted)),
                    "{}: expected `{wanted}` in:\n{}",
                    fixture.name,
                    text.lines()
                        .filter(|l| l.starts_with(&file))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
        }
    }
}

#[test]
fn good_fixtures_pass() {
    for (guardrails, group) in fixtures::by_guardrails(fixtures::good_fixtures()) {
        let args = arguments(&guardrails, &group);
        let output = validate(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            output.status.code(),
            Some(0),
            "guardrails {guardrails:?}:\n{}",
            stdout(&output)
        );
        assert!(!stdout(&output).contains(": DENY "));
    }
}

#[test]
fn json_report_lists_findings_and_exit_codes_follow_the_contract() {
    let bad = fixtures::bad_fixtures()
        .into_iter()
        .find(|f| f.guardrails.is_none())
        .expect("a bad fixture with default guardrails");
    let output = validate(&["--format", "json", &bad.path.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    let findings = report["objects"][0]["findings"]
        .as_array()
        .expect("findings");
    let (rule, path) = &bad.expect[0];
    assert!(
        findings.iter().any(|f| f["rule"] == rule.as_str()
            && f["path"] == path.as_str()
            && f["severity"] == "DENY"),
        "{report:#}"
    );

    assert_eq!(validate(&["no/such/file.yaml"]).status.code(), Some(2));
    assert_eq!(
        validate(&["--format", "xml", "manifests/examples"])
            .status
            .code(),
        Some(2)
    );
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "kind: [unclosed\n").unwrap();
    let output = validate(&[&broken.display().to_string()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout(&output).contains("not valid YAML"));
    let missing_guardrails = validate(&[
        "--guardrails",
        "no/such/guardrails.yaml",
        "manifests/examples",
    ]);
    assert_eq!(missing_guardrails.status.code(), Some(2));
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("policies/guardrails.yaml")
            .exists()
    );
}
