//! Tenancy end to end: the operator (`run`, governed by the cluster's GuardrailPolicies, running as
//! its ServiceAccount with the RBAC of `manifests/deploy`) on a real kube-apiserver + etcd and moto.
//! Two teams, each in its own namespace under its own GuardrailPolicy; every way a namespace could
//! reach beyond its policy is tried through kubectl and, with the webhooks removed, against the
//! reconciler alone. One test drives every step on one stack and reports every failing step.

mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use infra_operator::iam::{Change, CreateRole, OWNER_TAG_KEY};
use serde_json::{Value, json};
use support::cluster::{World, credentials, namespace, poll, provider};

const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";

/// A team's policy: roles named and pathed after the namespace, providers with static keys only and
/// only towards the local emulator on 127.0.0.1, plus `extra` settings.
fn team_policy(team: &str, extra: Value) -> Value {
    let mut spec = json!({
        "namespaceSelector": {"matchLabels": {"team": team}},
        "priority": 200,
        "tenancy": {
            "roleNames": ["{namespace}-*"],
            "providers": {"operatorIdentity": false, "endpoints": ["http://127.0.0.1:*"]}
        }
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            spec.insert(key.clone(), value.clone());
        }
    }
    json!({"apiVersion": "aws-infra-operator.runner.codes/v1alpha1", "kind": "GuardrailPolicy",
           "metadata": {"name": format!("team-{team}")}, "spec": spec})
}

fn role(namespace: &str, name: &str, provider: &str, spec: Value) -> Value {
    let mut full = json!({"providerRef": {"name": provider}, "roleName": name,
                          "assumeRolePolicyDocument": EC2_TRUST});
    if let (Some(full), Some(spec)) = (full.as_object_mut(), spec.as_object()) {
        for (key, value) in spec {
            full.insert(key.clone(), value.clone());
        }
    }
    json!({"apiVersion": "aws-infra-operator.runner.codes/v1alpha1", "kind": "IAMRole",
           "metadata": {"name": name, "namespace": namespace}, "spec": full})
}

/// Two namespaces, two policies, a Secret and a provider each; both providers Ready.
fn setup(world: &World) {
    world.applied(&namespace("team-a", "a"));
    world.applied(&namespace("team-b", "b"));
    world.applied(&team_policy("a", json!({})));
    world.applied(&team_policy(
        "b",
        json!({"maxSessionDuration": {"min": 3600, "max": 7200}}),
    ));
    for ns in ["team-a", "team-b"] {
        world.applied(&credentials(ns));
        world.applied(&provider(ns, "aws", &world.moto));
        world.provider_ready(ns, "aws");
    }
}

/// Each namespace gets its own policy's rules; relabelling a namespace and editing a policy take
/// effect at the next apply, with no restart; the policies' status says what they govern.
fn each_team_its_own_rules(world: &World) {
    let long_session = json!({"maxSessionDuration": 10800});
    world.applied(&role("team-a", "team-a-app", "aws", long_session.clone()));
    world.refused(
        &role("team-b", "team-b-app", "aws", long_session.clone()),
        "max-session-duration",
        "spec.maxSessionDuration",
    );
    // Name squatting: team A may not take the name team B's pipeline expects.
    world.refused(
        &role("team-a", "team-b-deployer", "aws", json!({})),
        "tenancy",
        "spec.roleName",
    );
    poll("GuardrailPolicy status", || {
        let policy = world.get("gp", None, "team-a");
        let status = &policy["status"];
        let accepted = status["conditions"][0]["status"] == "True";
        if status["namespaces"] == 1 && status["selector"] == "team=a" && accepted {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    let table = world
        .stack
        .kubectl_ok(&["get", "gp"])
        .expect("kubectl get gp");
    assert!(
        table.contains("PRIORITY") && table.contains("team=b"),
        "{table}"
    );

    // Relabel team-b: team A's policy governs it at the next apply.
    world.applied(&namespace("team-b", "a"));
    poll("team-b governed by team-a's policy", || {
        world
            .apply(&role("team-b", "team-b-app", "aws", long_session.clone()))
            .map(|_| ())
    });
    world.applied(&namespace("team-b", "b"));
    world
        .stack
        .kubectl_ok(&[
            "delete",
            "iamrole",
            "-n",
            "team-b",
            "team-b-app",
            "--wait=true",
        ])
        .expect("delete");

    // Edit team A's policy: the next apply sees it.
    world.applied(&team_policy(
        "a",
        json!({"maxSessionDuration": {"min": 3600, "max": 7200}}),
    ));
    poll("the edited policy to refuse", || {
        match world.apply(&role("team-a", "team-a-other", "aws", long_session.clone())) {
            Err(error) if error.contains("[max-session-duration]") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

/// `team-a-app`, applied with a 3-hour session before team A's policy was narrowed, is re-checked
/// at once (drift detection is every 10 minutes, so only the policy change can have triggered it),
/// says it violates the policy, keeps being reconciled (drift healed), and the metric counts it.
fn stricter_policy_reports_violations(world: &World) {
    poll("GuardrailViolation on team-a-app", || {
        let violation = world
            .condition("team-a", "team-a-app", "iamrole", "GuardrailViolation")
            .ok_or("no GuardrailViolation condition")?;
        let ready = world
            .condition("team-a", "team-a-app", "iamrole", "Ready")
            .ok_or("no Ready")?;
        if violation["status"] == "True"
            && violation["message"]
                .as_str()
                .is_some_and(|m| m.contains("[max-session-duration]"))
            && ready["status"] == "True"
        {
            Ok(())
        } else {
            Err(format!("{violation} {ready}"))
        }
    });
    let metrics = world.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("infra_operator_guardrail_violations{")
                && l.contains("namespace=\"team-a\"")
                && l.contains("rule=\"max-session-duration\"")
                && l.ends_with(" 1")),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("guardrail_violations"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Drift is still healed: the description changed in IAM goes back.
    world
        .rt
        .block_on(world.iam.apply(
            "team-a-app",
            &Change::UpdateRole {
                description: Some("changed by hand".to_owned()),
                max_session_duration: 10800,
            },
        ))
        .expect("drift");
    // Drift detection runs every 10 minutes: only a change of the governing policy reconciles the
    // role now, and the role is healed in spite of the violation.
    world.applied(&team_policy(
        "a",
        json!({"maxSessionDuration": {"min": 3600, "max": 7100}}),
    ));
    poll("the drift healed", || {
        let found = world.role_in_iam("team-a-app").ok_or("no role")?;
        if found.description.as_deref().unwrap_or_default().is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", found.description))
        }
    });
}

/// A listener that counts the connections it accepts.
fn connection_counter() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, count)
}

/// A provider pointed at a host of the attacker's choosing is refused by the webhook, and without
/// the webhook the operator still never connects there; so is one using the operator's identity.
fn exfiltration_refused(world: &World, exfil_port: u16, connections: &AtomicUsize) {
    let exfil = format!("http://localhost:{exfil_port}/");
    world.refused(
        &provider("team-a", "exfil", &exfil),
        "tenancy",
        "spec.endpoint",
    );
    let own_identity = json!({"apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
        "kind": "AWSProvider", "metadata": {"name": "own", "namespace": "team-a"},
        "spec": {"region": "us-east-1",
                 "roleARN": "arn:aws:iam::123456789012:role/infra-operator"}});
    world.refused(&own_identity, "tenancy", "spec");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

/// Adoption: refused while the policy does not allow it; once allowed, an existing role with an
/// administrator policy attached is still not adopted, and nothing is written to it.
fn adoption_refused(world: &World) {
    let name = "team-a-legacy-admin";
    let create = CreateRole {
        name: name.to_owned(),
        path: "/".to_owned(),
        trust_policy: EC2_TRUST.to_owned(),
        description: None,
        max_session_duration: 3600,
        permissions_boundary: None,
        tags: BTreeMap::new(),
    };
    world
        .rt
        .block_on(world.iam.create_role(&create))
        .expect("create the unowned role");
    world
        .rt
        .block_on(world.iam.apply(
            name,
            &Change::AttachPolicy {
                arn: ADMIN.to_owned(),
            },
        ))
        .expect("attach");
    let mut adopt = role("team-a", name, "aws", json!({}));
    adopt["metadata"]["annotations"] = json!({"aws-infra-operator.runner.codes/adopt": "true"});
    world.refused(&adopt, "tenancy", "metadata.annotations");
    // An UPDATE adding the annotation to an admitted object is reviewed too.
    world.applied(&role("team-a", name, "aws", json!({})));
    world.ready_reason("team-a", name, "RoleExists");
    world.refused(&adopt, "tenancy", "metadata.annotations");

    world.applied(&team_policy(
        "a",
        json!({"maxSessionDuration": {"min": 3600, "max": 7200},
               "tenancy": {"roleNames": ["{namespace}-*"], "adoption": {"allowed": true},
                           "providers": {"operatorIdentity": false,
                                         "endpoints": ["http://127.0.0.1:*"]}}}),
    ));
    poll("adoption to be admitted", || {
        world.apply(&adopt).map(|_| ())
    });
    let message = world.ready_reason("team-a", name, "GuardrailDenied");
    assert!(
        message.contains("[managed-policy]") && message.contains("AdministratorAccess"),
        "{message}"
    );
    let found = world.role_in_iam(name).expect("still there");
    assert!(!found.tags.contains_key(OWNER_TAG_KEY), "{:?}", found.tags);
    assert_eq!(found.managed_policies.len(), 1);
    world
        .stack
        .kubectl_ok(&["delete", "iamrole", "-n", "team-a", name, "--wait=true"])
        .expect("delete");
    assert!(
        world.role_in_iam(name).is_some(),
        "an unadopted role is never deleted"
    );
}

/// With the webhooks removed, the reconciler alone refuses: a bad spec gets `GuardrailDenied` and no
/// role; a provider pointed elsewhere gets `GuardrailDenied` and is never contacted.
fn reconciler_alone_refuses(world: &World, exfil_port: u16, connections: &AtomicUsize) {
    world.stack.unregister_webhooks().expect("unregister");
    let wildcard = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;
    world.applied(&role(
        "team-a",
        "team-a-sneaky",
        "aws",
        json!({"inlinePolicies": [{"policyName": "all", "policyDocument": wildcard}]}),
    ));
    let message = world.ready_reason("team-a", "team-a-sneaky", "GuardrailDenied");
    assert!(message.contains("[action-wildcard]"), "{message}");
    world.applied(&role("team-a", "team-b-squatted", "aws", json!({})));
    let message = world.ready_reason("team-a", "team-b-squatted", "GuardrailDenied");
    assert!(message.contains("[tenancy] spec.roleName"), "{message}");

    world.applied(&provider(
        "team-a",
        "exfil",
        &format!("http://localhost:{exfil_port}/"),
    ));
    world.applied(&role("team-a", "team-a-exfil", "exfil", json!({})));
    poll("the exfiltration provider refused", || {
        let ready = world
            .condition("team-a", "exfil", "awsprovider", "Ready")
            .ok_or("no Ready")?;
        if ready["reason"] == "GuardrailDenied" {
            Ok(())
        } else {
            Err(ready.to_string())
        }
    });
    thread::sleep(Duration::from_secs(3));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the operator connected to an endpoint its policy does not allow"
    );
    for name in ["team-a-sneaky", "team-b-squatted", "team-a-exfil"] {
        assert!(world.role_in_iam(name).is_none(), "{name} reached IAM");
    }
    world.stack.register_webhooks().expect("register again");
}

/// A GuardrailPolicy with a bad pattern or an unknown severity is refused with its field path.
fn bad_policies_refused(world: &World) {
    world.refused(
        &team_policy("c", json!({"tenancy": {"roleNames": ["{team}-*"]}})),
        "schema",
        "spec.tenancy.roleNames[0]",
    );
    world.refused(
        &team_policy("c", json!({"severities": {"action-wildcard": "warn"}})),
        "schema",
        "spec.severities.action-wildcard",
    );
    // An unknown severity is already refused by the API server's CRD schema, at its field.
    let error = world
        .apply(&team_policy(
            "c",
            json!({"severities": {"trust-external-id": "block"}}),
        ))
        .expect_err("an unknown severity");
    assert!(
        error.contains("spec.severities.trust-external-id"),
        "{error}"
    );
}

#[test]
fn namespaces_reach_only_what_their_guardrail_policy_grants() {
    let world = World::start(env!("CARGO_BIN_EXE_infra-operator"));
    let (exfil_port, connections) = connection_counter();
    let connections = &connections;
    world.run_steps(&[
        ("setup", &setup),
        ("each team its own rules", &each_team_its_own_rules),
        (
            "stricter policy reports violations",
            &stricter_policy_reports_violations,
        ),
        ("exfiltration refused", &|w| {
            exfiltration_refused(w, exfil_port, connections)
        }),
        ("adoption refused", &adoption_refused),
        ("reconciler alone refuses", &|w| {
            reconciler_alone_refuses(w, exfil_port, connections)
        }),
        ("bad policies refused", &bad_policies_refused),
    ]);
}
