//! The webhook proven where users meet it: `kubectl apply` against a real kube-apiserver + etcd with the
//! operator's webhooks registered as in `manifests/deploy/webhooks.yaml`. One test drives every step
//! on one local stack and reports every failing step together.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Output;

use infra_operator::api::FINALIZER;
use infra_operator::guardrails::RuleId;
use local_stack::{Stack, StackOptions};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn apply_file(stack: &Stack, file: &Path, extra: &[&str]) -> Output {
    stack
        .kubectl()
        .arg("apply")
        .args(extra)
        .arg("-f")
        .arg(file)
        .output()
        .expect("kubectl runs")
}

fn get_json(stack: &Stack, args: &[&str]) -> Value {
    let out = stack.kubectl_ok(args).expect("kubectl get");
    serde_json::from_str(&out).expect("kubectl JSON")
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("manifests/examples"))
        .expect("examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
}

/// Every seed example is admitted; the stored objects carry the webhook's defaults.
fn seed_examples_are_admitted_with_defaults(stack: &Stack) {
    for file in examples() {
        let out = apply_file(stack, &file, &[]);
        assert!(
            out.status.success(),
            "{} refused:\n{}",
            file.display(),
            text(&out)
        );
        if file.ends_with("iamrole-eks-app-role.yaml") {
            // The seed's `s3:*` is a WARN: admitted, with kubectl's `Warning:` line.
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("Warning: [action-wildcard]"),
                "no warning:\n{stderr}"
            );
        }
    }
    // e2e-lambda-role: singular inlinePolicy folded, defaults set, user tag wins over default tag.
    let role = get_json(stack, &["get", "iamrole", "e2e-lambda-role", "-o", "json"]);
    let spec = &role["spec"];
    assert!(
        spec.get("inlinePolicy").is_none(),
        "inlinePolicy not folded: {spec:#}"
    );
    assert_eq!(
        spec["inlinePolicies"][0]["policyName"],
        "CustomDynamoDBAccess"
    );
    assert_eq!(spec["deletionPolicy"], "Delete");
    assert_eq!(
        spec["tags"]["environment"], "test",
        "the role's own tag must win"
    );
    assert_eq!(spec["tags"]["cost-center"], "platform", "default tag added");
    // lambda-data-processor names no path, duration or deletion policy.
    let role = get_json(
        stack,
        &["get", "iamrole", "lambda-data-processor", "-o", "json"],
    );
    assert_eq!(role["spec"]["path"], "/");
    assert_eq!(role["spec"]["maxSessionDuration"], 3600);
    assert_eq!(role["spec"]["deletionPolicy"], "Delete");
    assert_eq!(role["spec"]["tags"]["environment"], "default-environment");
    // The seed's Retain is kept.
    let role = get_json(
        stack,
        &["get", "iamrole", "lambda-execution-role", "-o", "json"],
    );
    assert_eq!(role["spec"]["deletionPolicy"], "Retain");
}

/// A WARN finding is printed by kubectl as a `Warning:` line while the apply succeeds, in a
/// server-side dry run as for real.
fn warnings_reach_kubectl(stack: &Stack) {
    let file = repo().join("manifests/examples/iamrole-eks-app-role.yaml");
    let manifest = std::fs::read_to_string(&file)
        .expect("example")
        .replace("name: eks-app-role\n", "name: eks-app-role-dry-run\n");
    let out = stack
        .kubectl_with_input(&["apply", "--dry-run=server", "-f", "-"], &manifest)
        .expect("kubectl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("eks-app-role-dry-run created (server dry run)"),
        "{}",
        text(&out)
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("Warning: [action-wildcard]") && l.contains("Action[0]")),
        "no Warning line for s3:*:\n{stderr}"
    );
}

/// Every bad fixture is refused with its field path, and with its rule ID when the webhook refused it.
fn bad_fixtures_are_refused(stack: &Stack, group: &[fixtures::Fixture]) -> BTreeSet<String> {
    let mut proven = BTreeSet::new();
    for fixture in group {
        for dry_run in [true, false] {
            let extra: &[&str] = if dry_run { &["--dry-run=server"] } else { &[] };
            let out = apply_file(stack, &fixture.path, extra);
            let output = text(&out);
            assert!(
                !out.status.success(),
                "{} admitted (dry run {dry_run}):\n{output}",
                fixture.name
            );
            let by_webhook =
                output.contains("admission webhook") && output.contains("denied the request");
            // The mutating webhook appends the singular form to the list before validation.
            let folded_index = fixture
                .docs
                .iter()
                .find_map(|d| d["spec"]["inlinePolicies"].as_array().map(Vec::len))
                .unwrap_or(0);
            for (rule, path) in &fixture.expect {
                if by_webhook {
                    let path = match path.strip_prefix("spec.inlinePolicy.") {
                        Some(rest) => format!("spec.inlinePolicies[{folded_index}].{rest}"),
                        None => path.clone(),
                    };
                    let wanted = format!("[{rule}] {path}:");
                    assert!(
                        output.contains(&wanted),
                        "{}: `{wanted}` missing from:\n{output}",
                        fixture.name
                    );
                    proven.insert(rule.clone());
                } else {
                    // The CRD schema refused it first; the API server names the field its own way
                    // (`spec.tags[aws:x]` is `spec.tags.aws:x` there), so compare the path's first field.
                    let field = path.split(['[', '.']).take(2).collect::<Vec<_>>().join(".");
                    assert!(
                        output.contains(&field),
                        "{}: `{field}` missing from:\n{output}",
                        fixture.name
                    );
                }
            }
        }
    }
    proven
}

/// Every good fixture is admitted (in a server-side dry run, so they can share names).
fn good_fixtures_are_admitted(stack: &Stack, group: &[fixtures::Fixture]) {
    for fixture in group {
        let out = apply_file(stack, &fixture.path, &["--dry-run=server"]);
        assert!(
            out.status.success(),
            "{} refused:\n{}",
            fixture.name,
            text(&out)
        );
    }
}

/// The operator's arguments with a guardrails file, or the built-in defaults.
fn operator_args(guardrails: Option<&Path>) -> Vec<String> {
    let mut args = vec!["webhook".to_owned()];
    if let Some(file) = guardrails {
        args.extend(["--guardrails".to_owned(), file.display().to_string()]);
    }
    args
}

/// UPDATE of an immutable field is refused, for real and in a server-side dry run.
fn immutable_fields_are_refused_on_update(stack: &Stack) -> BTreeSet<String> {
    let mut proven = BTreeSet::new();
    let dir = tempfile::tempdir().expect("tempdir");
    for fixture in fixtures::update_fixtures() {
        let [old, new] = &fixture.docs[..] else {
            panic!("{}: two documents expected", fixture.name)
        };
        let old_file = dir.path().join("old.json");
        let new_file = dir.path().join("new.json");
        std::fs::write(&old_file, old.to_string()).expect("write");
        std::fs::write(&new_file, new.to_string()).expect("write");
        let created = apply_file(stack, &old_file, &[]);
        assert!(
            created.status.success(),
            "{}: old object refused:\n{}",
            fixture.name,
            text(&created)
        );
        for extra in [&["--dry-run=server"][..], &[][..]] {
            let out = apply_file(stack, &new_file, extra);
            let output = text(&out);
            if fixture.expect.is_empty() {
                assert!(
                    out.status.success(),
                    "{}: good update refused:\n{output}",
                    fixture.name
                );
            } else {
                assert!(
                    !out.status.success(),
                    "{}: update admitted:\n{output}",
                    fixture.name
                );
                for (rule, path) in &fixture.expect {
                    let wanted = format!("[{rule}] {path}:");
                    assert!(
                        output.contains(&wanted),
                        "{}: `{wanted}` missing:\n{output}",
                        fixture.name
                    );
                    proven.insert(rule.clone());
                }
            }
        }
        let name = old["metadata"]["name"].as_str().expect("name");
        delete_without_reconciler(stack, name);
    }
    proven
}

/// Under stricter guardrails (a boundary now required), an object admitted earlier without one can
/// still be labelled and annotated — the webhooks only review UPDATEs that change the spec — but a
/// change of its spec is refused until it complies.
fn metadata_changes_pass_stricter_guardrails(stack: &Stack) -> BTreeSet<String> {
    let name = "e2e-ec2-role";
    let role = get_json(stack, &["get", "iamrole", name, "-o", "json"]);
    assert!(
        role["spec"].get("permissionsBoundary").is_none(),
        "{name} has a boundary"
    );
    stack
        .kubectl_ok(&["label", "iamrole", name, "team=platform"])
        .expect("a label on an object that predates the guardrails");
    stack
        .kubectl_ok(&["annotate", "iamrole", name, "example.com/owner=platform"])
        .expect("an annotation on an object that predates the guardrails");
    let out = stack
        .kubectl()
        .args([
            "patch",
            "iamrole",
            name,
            "--type=merge",
            "-p",
            r#"{"spec":{"description":"changed"}}"#,
        ])
        .output()
        .expect("run kubectl patch");
    let output = text(&out);
    assert!(!out.status.success(), "spec change admitted:\n{output}");
    assert!(
        output.contains("[permissions-boundary] spec.permissionsBoundary:"),
        "{output}"
    );
    BTreeSet::from(["permissions-boundary".to_owned()])
}

/// Deletes an IAMRole where no reconciler runs: once the deletion started, its finalizer can be
/// removed by hand (the webhook never puts it back on an object being deleted), and it is gone.
fn delete_without_reconciler(stack: &Stack, name: &str) {
    stack
        .kubectl_ok(&["delete", "iamrole", name, "--wait=false"])
        .expect("kubectl delete");
    drop_finalizers(stack, name);
    stack
        .kubectl_ok(&[
            "wait",
            "--for=delete",
            &format!("iamrole/{name}"),
            "--timeout=30s",
        ])
        .expect("the object is gone");
}

/// Removes every finalizer of the IAMRole `name` (`kubectl patch`).
fn drop_finalizers(stack: &Stack, name: &str) {
    stack
        .kubectl_ok(&[
            "patch",
            "iamrole",
            name,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ])
        .unwrap_or_else(|e| panic!("remove the finalizers of {name}: {e}"));
}

fn finalizers(stack: &Stack, name: &str) -> Value {
    get_json(stack, &["get", "iamrole", name, "-o", "json"])["metadata"]["finalizers"].clone()
}

/// The mutating webhook puts the operator's finalizer on every IAMRole (no reconciler runs in this
/// test), and puts it back when an UPDATE that leaves the spec alone would drop it: removed by
/// hand, or by a server-side apply whose field manager owns it.
fn the_finalizer_stays_on_live_objects(stack: &Stack) {
    let wanted = serde_json::json!([FINALIZER]);
    assert_eq!(finalizers(stack, "lambda-data-processor"), wanted);
    drop_finalizers(stack, "lambda-data-processor");
    assert_eq!(
        finalizers(stack, "lambda-data-processor"),
        wanted,
        "removed by hand"
    );

    let manifest =
        std::fs::read_to_string(repo().join("manifests/examples/iamrole-e2e-ec2-role.yaml"))
            .expect("example")
            .replace("name: e2e-ec2-role\n", "name: e2e-ssa-role\n");
    for labelled in [false, true] {
        let manifest = if labelled {
            manifest.replace(
                "  namespace: default\n",
                "  namespace: default\n  labels:\n    team: platform\n",
            )
        } else {
            manifest.clone()
        };
        let out = stack
            .kubectl_with_input(&["apply", "--server-side", "-f", "-"], &manifest)
            .expect("kubectl apply --server-side");
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            finalizers(stack, "e2e-ssa-role"),
            wanted,
            "server-side apply (label added: {labelled})"
        );
    }
    delete_without_reconciler(stack, "e2e-ssa-role");
}

/// `kubectl get iamroles` prints the printer columns.
fn printer_columns_are_shown(stack: &Stack) {
    let table = stack
        .kubectl_ok(&["get", "iamroles"])
        .expect("get iamroles");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "ROLE", "NAME", "READY", "ARN", "AGE"],
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("e2e-ec2-role") && l.contains("e2e-ec2-service-role")),
        "{table}"
    );
    let providers = stack.kubectl_ok(&["get", "awsp"]).expect("get awsp");
    assert!(
        providers
            .lines()
            .next()
            .unwrap_or_default()
            .contains("REGION"),
        "{providers}"
    );
}

/// With the webhooks unregistered, the CRD schema alone still refuses the static limits.
fn crd_schema_guards_without_the_webhook(stack: &Stack) {
    stack.unregister_webhooks().expect("unregister webhooks");
    let role = repo().join("tests/fixtures/schema-only/max-session-duration-50000.yaml");
    let out = apply_file(stack, &role, &[]);
    let output = text(&out);
    stack.register_webhooks().expect("register webhooks again");
    assert!(
        !out.status.success(),
        "admitted without the webhook:\n{output}"
    );
    assert!(output.contains("spec.maxSessionDuration"), "{output}");
    assert!(output.contains("43200"), "{output}");
    assert!(!output.contains("admission webhook"), "{output}");
}

/// The deployment manifests are valid objects for this API server.
fn deploy_manifests_pass_server_dry_run(stack: &Stack) {
    // cert-manager is not part of the local stack: its two kinds are registered with open schemas so
    // that the Issuer and Certificate can be checked for kind and shape by the API server.
    let cert_manager = repo().join("tests/fixtures/schema-only/cert-manager-kinds.yaml");
    stack
        .kubectl_ok(&["apply", "-f", &cert_manager.display().to_string()])
        .expect("register cert-manager kinds");
    stack
        .kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/issuers.cert-manager.io",
            "crd/certificates.cert-manager.io",
        ])
        .expect("cert-manager kinds established");
    stack
        .kubectl_ok(&[
            "apply",
            "-f",
            &repo()
                .join("manifests/deploy/namespace.yaml")
                .display()
                .to_string(),
        ])
        .expect("namespace");
    let out = stack
        .kubectl()
        .args(["apply", "--dry-run=server", "-k"])
        .arg(repo().join("manifests/deploy"))
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "deploy manifests refused:\n{}",
        text(&out)
    );
    let output = text(&out);
    for object in [
        "deployment.apps/infra-operator-controller-manager",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/infra-operator-validating",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/infra-operator-mutating",
        "certificate.cert-manager.io/infra-operator-serving-cert",
        "guardrailpolicy.aws-infra-operator.runner.codes/default",
        "networkpolicy.networking.k8s.io/infra-operator-ingress",
    ] {
        assert!(output.contains(object), "{object} not applied:\n{output}");
    }
}

#[test]
fn kubectl_apply_meets_the_webhook_on_a_real_api_server() {
    let guardrails = repo().join("tests/fixtures/e2e/default-tags.yaml");
    let mut stack = Stack::start(StackOptions {
        repo_root: repo(),
        operator_bin: PathBuf::from(env!("CARGO_BIN_EXE_infra-operator")),
        operator_args: Some(operator_args(Some(&guardrails))),
        moto: false,
        dir: None,
    })
    .unwrap_or_else(|e| panic!("local stack: {e}"));

    let mut failures = Vec::new();
    let mut proven = BTreeSet::new();
    let mut step = |name: &str, f: &mut dyn FnMut() -> BTreeSet<String>| match catch_unwind(
        AssertUnwindSafe(f),
    ) {
        Ok(rules) => proven.extend(rules),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{name}: {message}"));
        }
    };
    step("seed examples", &mut || {
        seed_examples_are_admitted_with_defaults(&stack);
        BTreeSet::new()
    });
    step("warnings", &mut || {
        warnings_reach_kubectl(&stack);
        BTreeSet::new()
    });
    step("finalizer", &mut || {
        the_finalizer_stays_on_live_objects(&stack);
        BTreeSet::new()
    });
    let mut bad = fixtures::by_guardrails(fixtures::bad_fixtures());
    let mut good = fixtures::by_guardrails(fixtures::good_fixtures());
    let groups: BTreeSet<Option<PathBuf>> = bad.keys().chain(good.keys()).cloned().collect();
    for group in groups {
        // The platform team's settings of these fixtures (or the defaults): restart the operator with them.
        stack
            .restart_operator_with(operator_args(group.as_deref()))
            .unwrap_or_else(|e| panic!("operator with {group:?}: {e}"));
        let label = format!("{:?}", group.as_deref().and_then(Path::file_name));
        let stack = &stack;
        let bad_group = bad.remove(&group).unwrap_or_default();
        let good_group = good.remove(&group).unwrap_or_default();
        step(&format!("bad fixtures {label}"), &mut || {
            bad_fixtures_are_refused(stack, &bad_group)
        });
        step(&format!("good fixtures {label}"), &mut || {
            good_fixtures_are_admitted(stack, &good_group);
            BTreeSet::new()
        });
    }
    let boundary_required = repo().join("tests/fixtures/guardrails/boundary-required.yaml");
    stack
        .restart_operator_with(operator_args(Some(&boundary_required)))
        .unwrap_or_else(|e| panic!("operator with {}: {e}", boundary_required.display()));
    step("metadata changes under stricter guardrails", &mut || {
        metadata_changes_pass_stricter_guardrails(&stack)
    });
    stack
        .restart_operator_with(operator_args(Some(&guardrails)))
        .unwrap_or_else(|e| panic!("operator with {}: {e}", guardrails.display()));
    step("immutable fields", &mut || {
        immutable_fields_are_refused_on_update(&stack)
    });
    step("printer columns", &mut || {
        printer_columns_are_shown(&stack);
        BTreeSet::new()
    });
    step("CRD schema without webhook", &mut || {
        crd_schema_guards_without_the_webhook(&stack);
        BTreeSet::new()
    });
    step("deploy manifests", &mut || {
        deploy_manifests_pass_server_dry_run(&stack);
        BTreeSet::new()
    });
    eprintln!("rules proven through kubectl and the webhook: {proven:?}");
    if failures.is_empty() {
        // Every rule reached kubectl through the webhook, except those whose every violation the CRD
        // schema (checked by the API server before the validating webhook) refuses first.
        let schema_first = ["schema", "role-name", "role-path", "max-session-duration"];
        for rule in RuleId::ALL
            .iter()
            .map(|r| r.as_str())
            .filter(|r| !schema_first.contains(r))
        {
            assert!(
                proven.contains(rule),
                "{rule} never proven through kubectl: {proven:?}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} step(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
