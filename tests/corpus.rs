//! The guardrail fixture corpus (`tests/fixtures/`) run through the library engine: every bad fixture is
//! denied by exactly the rules its `# expect:` headers name, at exactly those field paths; every good
//! fixture is admitted; updates are checked against their stored object; and the corpus covers every
//! rule. Reads the fixture files.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use fixtures::{
    Fixture, bad_fixtures, good_fixtures, guardrails_files, parse_header, update_fixtures,
};
use infra_operator::guardrails::{Config, Engine, Finding, Kind, RuleId};
use serde_json::Value;

/// Engines by guardrails file (`None` = default guardrails), built once each.
#[derive(Default)]
struct Engines(BTreeMap<Option<PathBuf>, Engine>);

impl Engines {
    fn for_file(&mut self, guardrails: Option<&PathBuf>) -> &Engine {
        self.0.entry(guardrails.cloned()).or_insert_with(|| {
            let config = match guardrails {
                Some(file) => {
                    let text = fs::read_to_string(file)
                        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
                    Config::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
                }
                None => Config::default(),
            };
            Engine::new(config).unwrap_or_else(|e| panic!("engine does not build: {e}"))
        })
    }

    fn for_fixture(&mut self, fixture: &Fixture) -> &Engine {
        self.for_file(fixture.guardrails.as_ref())
    }
}

fn check(engine: &Engine, fixture: &Fixture, object: &Value, old: Option<&Value>) -> Vec<Finding> {
    let kind = Kind::of(object).unwrap_or_else(|| {
        panic!(
            "{}: not an IAMRole or AWSProvider of our API version",
            fixture.name
        )
    });
    engine.check(kind, object, old)
}

fn show_findings(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "    (no findings)\n".to_owned();
    }
    findings
        .iter()
        .map(|f| format!("    {} {f}\n", f.severity))
        .collect()
}

fn report(fixture: &Fixture, problem: &str, findings: &[Finding]) -> String {
    let mut out = format!("{}: {problem}\n", fixture.name);
    if let Some(why) = &fixture.why {
        out.push_str(&format!("  why: {why}\n"));
    }
    if let Some(file) = &fixture.guardrails {
        out.push_str(&format!("  guardrails: {}\n", file.display()));
    }
    out.push_str("  expected DENY:\n");
    if fixture.expect.is_empty() {
        out.push_str("    (none)\n");
    }
    for (rule, path) in &fixture.expect {
        out.push_str(&format!("    [{rule}] {path}\n"));
    }
    out.push_str("  actual:\n");
    out.push_str(&show_findings(findings));
    out
}

/// `Err` with a report unless every expected (rule, path) is a DENY finding and the DENY findings' rule
/// ids are exactly the expected ones.
fn expect_denied(fixture: &Fixture, findings: &[Finding]) -> Result<(), String> {
    let denies: Vec<&Finding> = findings.iter().filter(|f| f.is_deny()).collect();
    let missing: Vec<String> = fixture
        .expect
        .iter()
        .filter(|(rule, path)| {
            !denies
                .iter()
                .any(|d| d.rule.as_str() == rule && &d.path == path)
        })
        .map(|(rule, path)| format!("[{rule}] {path}"))
        .collect();
    let expected_rules: BTreeSet<&str> = fixture
        .expect
        .iter()
        .map(|(rule, _)| rule.as_str())
        .collect();
    let actual_rules: BTreeSet<&str> = denies.iter().map(|d| d.rule.as_str()).collect();
    let unexpected: Vec<&str> = actual_rules.difference(&expected_rules).copied().collect();
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing DENY {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        problems.push(format!("unexpected DENY rule(s) {}", unexpected.join(", ")));
    }
    Err(report(fixture, &problems.join("; "), findings))
}

fn expect_admitted(fixture: &Fixture, findings: &[Finding], context: &str) -> Result<(), String> {
    if findings.iter().any(Finding::is_deny) {
        return Err(report(
            fixture,
            &format!("{context}: DENY finding(s) where none was expected"),
            findings,
        ));
    }
    Ok(())
}

fn single_doc(fixture: &Fixture) -> &Value {
    assert_eq!(
        fixture.docs.len(),
        1,
        "{}: expected exactly one YAML document",
        fixture.name
    );
    &fixture.docs[0]
}

fn fail_if_any(failures: Vec<String>, total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {total} fixtures failed:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_fixtures_are_denied_by_exactly_their_expected_rules() {
    let mut engines = Engines::default();
    let fixtures = bad_fixtures();
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let object = single_doc(fixture);
        let findings = check(engines.for_fixture(fixture), fixture, object, None);
        if let Err(e) = expect_denied(fixture, &findings) {
            failures.push(e);
        }
    }
    fail_if_any(failures, fixtures.len());
}

#[test]
fn good_fixtures_are_admitted() {
    let mut engines = Engines::default();
    let fixtures = good_fixtures();
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let object = single_doc(fixture);
        let findings = check(engines.for_fixture(fixture), fixture, object, None);
        if let Err(e) = expect_admitted(fixture, &findings, "CREATE") {
            failures.push(e);
        }
    }
    fail_if_any(failures, fixtures.len());
}

#[test]
fn updates_are_checked_against_the_stored_object() {
    let mut engines = Engines::default();
    let fixtures = update_fixtures();
    let mut failures = Vec::new();
    for fixture in &fixtures {
        assert_eq!(
            fixture.docs.len(),
            2,
            "{}: an update fixture holds the old then the new object",
            fixture.name
        );
        let (old, new) = (&fixture.docs[0], &fixture.docs[1]);
        let engine = engines.for_fixture(fixture);
        let outcomes = [
            // Each object alone is a good CREATE, so the change is the only defect.
            expect_admitted(
                fixture,
                &check(engine, fixture, old, None),
                "old object on CREATE",
            ),
            expect_admitted(
                fixture,
                &check(engine, fixture, new, None),
                "new object on CREATE",
            ),
            expect_admitted(
                fixture,
                &check(engine, fixture, old, Some(old)),
                "UPDATE without change",
            ),
            {
                let findings = check(engine, fixture, new, Some(old));
                if fixture.expect.is_empty() {
                    expect_admitted(fixture, &findings, "UPDATE")
                } else {
                    expect_denied(fixture, &findings)
                }
            },
        ];
        failures.extend(outcomes.into_iter().filter_map(Result::err));
    }
    fail_if_any(failures, fixtures.len());
}

#[test]
fn guardrails_overrides_are_what_makes_those_fixtures_bad() {
    let mut engines = Engines::default();
    let fixtures: Vec<Fixture> = bad_fixtures()
        .into_iter()
        .filter(|f| f.guardrails.is_some())
        .collect();
    assert!(
        !fixtures.is_empty(),
        "no bad fixture uses a guardrails override"
    );
    let default_engine = engines.for_file(None);
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let findings = check(default_engine, fixture, single_doc(fixture), None);
        if let Err(e) = expect_admitted(fixture, &findings, "with the default guardrails") {
            failures.push(e);
        }
    }
    fail_if_any(failures, fixtures.len());
}

#[test]
fn every_rule_is_expected_by_at_least_two_fixtures() {
    let mut counts: BTreeMap<RuleId, usize> = RuleId::ALL.iter().map(|r| (*r, 0)).collect();
    for fixture in bad_fixtures().iter().chain(update_fixtures().iter()) {
        let rules: BTreeSet<RuleId> = fixture
            .expect
            .iter()
            .map(|(rule, _)| {
                rule.parse::<RuleId>()
                    .unwrap_or_else(|e| panic!("{}: `# expect:` names {e}", fixture.name))
            })
            .collect();
        for rule in rules {
            *counts.entry(rule).or_default() += 1;
        }
    }
    let thin: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n < 2)
        .map(|(rule, n)| format!("{rule} ({n})"))
        .collect();
    assert!(
        thin.is_empty(),
        "rules expected by fewer than two fixtures: {}",
        thin.join(", ")
    );
}

#[test]
fn corpus_is_large_enough() {
    let bad = bad_fixtures().len();
    let good = good_fixtures().len();
    let updates = update_fixtures();
    assert!(bad >= 60, "only {bad} bad fixtures");
    assert!(good >= 20, "only {good} good fixtures");
    let denied = updates.iter().filter(|f| !f.expect.is_empty()).count();
    let admitted = updates.iter().filter(|f| f.good.is_some()).count();
    assert!(
        denied >= 3 && admitted >= 1,
        "updates: {denied} denied and {admitted} admitted"
    );
}

#[test]
fn headers_say_what_each_fixture_is() {
    for fixture in bad_fixtures() {
        assert!(
            !fixture.expect.is_empty(),
            "{}: a bad fixture needs `# expect:` lines",
            fixture.name
        );
        assert!(
            fixture.why.is_some(),
            "{}: a bad fixture needs a `# why:` line",
            fixture.name
        );
        assert!(
            fixture.good.is_none(),
            "{}: a bad fixture has no `# good:` line",
            fixture.name
        );
    }
    for fixture in good_fixtures() {
        assert!(
            fixture.good.is_some(),
            "{}: a good fixture needs a `# good:` line",
            fixture.name
        );
        assert!(
            fixture.expect.is_empty(),
            "{}: a good fixture expects nothing",
            fixture.name
        );
    }
    for fixture in update_fixtures() {
        assert!(
            fixture.good.is_some() == fixture.expect.is_empty(),
            "{}: an update fixture is either `# good:` or has `# expect:` lines",
            fixture.name
        );
    }
    for fixture in bad_fixtures() {
        assert_eq!(
            fixture.name.starts_with("bad-stricter/"),
            fixture.guardrails.is_some(),
            "{}: fixtures refused only under a stricter guardrails file (`# guardrails:`) live in \
             bad-stricter/, the others in bad/, so that `kubectl apply -f tests/fixtures/bad/` is refused whole",
            fixture.name
        );
    }
    for fixture in bad_fixtures()
        .iter()
        .chain(&good_fixtures())
        .chain(&update_fixtures())
    {
        for doc in &fixture.docs {
            assert_eq!(
                doc.pointer("/metadata/namespace").and_then(Value::as_str),
                Some("default"),
                "{}: fixtures live in namespace default",
                fixture.name
            );
            // `kubectl delete -f tests/fixtures/...` must never remove what the local stack made.
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
            let name = doc.pointer("/metadata/name").and_then(Value::as_str);
            for (stack_kind, stack_name) in STACK_OBJECTS {
                assert!(
                    !(kind == stack_kind && name == Some(stack_name)),
                    "{}: a {kind} named {stack_name} is the local stack's own",
                    fixture.name
                );
            }
        }
    }
}

/// The objects `make run` creates in namespace `default` (`tests/stack/src/main.rs`).
const STACK_OBJECTS: [(&str, &str); 2] =
    [("AWSProvider", "localstack"), ("Secret", "aws-credentials")];

#[test]
fn every_guardrails_file_is_valid_and_used() {
    let used: BTreeSet<PathBuf> = bad_fixtures()
        .into_iter()
        .chain(good_fixtures())
        .filter_map(|f| f.guardrails)
        .collect();
    let files = guardrails_files();
    assert!(!files.is_empty(), "no guardrails files");
    for file in files {
        let text = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let config = Config::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_ne!(
            config,
            Config::default(),
            "{} changes nothing",
            file.display()
        );
        assert!(
            used.contains(&file),
            "{} is used by no fixture",
            file.display()
        );
    }
}

#[test]
fn header_parser_reads_expectations_and_refuses_typos() {
    let header = parse_header(
        "# expect: tags spec.tags[Cost Center]\n# guardrails: strict.yaml\n# why: spaces in keys\n\
         apiVersion: v1\n# expect: not-a-header-any-more x\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        header.expect,
        vec![("tags".to_owned(), "spec.tags[Cost Center]".to_owned())]
    );
    assert_eq!(header.guardrails.as_deref(), Some("strict.yaml"));
    assert_eq!(header.why.as_deref(), Some("spaces in keys"));
    assert!(parse_header("# expct: tags spec.tags\n").is_err());
    assert!(parse_header("# expect: tags\n").is_err());
    assert!(parse_header("# good: a\n# good: b\n").is_err());
}
