//! Workload identity end to end: the operator (`run`, as its ServiceAccount with the RBAC of
//! `manifests/deploy`, so ServiceAccounts are only ever patched) on a real kube-apiserver + etcd and
//! moto. A role declared with `workloadIdentity` and no trust JSON gets the IRSA and Pod Identity
//! statements of its provider's cluster in IAM, its ServiceAccounts annotated; a change of the list
//! rewrites the trust policy alone; deletion releases the annotation; bad uses are refused at
//! `kubectl apply` with the field and the rule.

mod support;

use infra_operator::iam::policies_equal;
use serde_json::{Value, json};
use support::cluster::{World, credentials, namespace, poll, provider};

const NS: &str = "apps";
const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const ISSUER_HOST: &str = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn role(namespace: &str, name: &str, spec: Value) -> Value {
    let mut full = json!({"providerRef": {"name": "aws"}, "roleName": name});
    if let (Some(full), Some(spec)) = (full.as_object_mut(), spec.as_object()) {
        for (key, value) in spec {
            full.insert(key.clone(), value.clone());
        }
    }
    json!({"apiVersion": "aws-infra-operator.runner.codes/v1alpha1", "kind": "IAMRole",
           "metadata": {"name": name, "namespace": namespace}, "spec": full})
}

fn service_account(namespace: &str, name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": namespace, "annotations": annotations}})
}

/// The provider of [`NS`] with the cluster's issuer `issuer`.
fn provider_with_issuer(world: &World, issuer: &str) -> Value {
    let mut provider = provider(NS, "aws", &world.moto);
    provider["spec"]["cluster"] = json!({"oidcIssuer": issuer});
    provider
}

/// The annotation of a ServiceAccount, if any.
fn annotation(world: &World, name: &str) -> Option<String> {
    let account = world.get("serviceaccount", Some(NS), name);
    account["metadata"]["annotations"][ROLE_ARN_ANNOTATION]
        .as_str()
        .map(str::to_owned)
}

/// The IRSA + Pod Identity trust policy of `accounts` in [`NS`] for account `account`.
fn expected_trust(account: &str, accounts: &[&str]) -> Value {
    let subjects: Vec<String> = accounts
        .iter()
        .map(|a| format!("system:serviceaccount:{NS}:{a}"))
        .collect();
    let one_or_many = |values: Vec<String>| match values.as_slice() {
        [one] => json!(one),
        _ => json!(values),
    };
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow",
         "Principal": {"Federated": format!("arn:aws:iam::{account}:oidc-provider/{ISSUER_HOST}")},
         "Action": "sts:AssumeRoleWithWebIdentity",
         "Condition": {"StringEquals": {
             format!("{ISSUER_HOST}:sub"): one_or_many(subjects),
             format!("{ISSUER_HOST}:aud"): "sts.amazonaws.com"}}},
        {"Effect": "Allow",
         "Principal": {"Service": "pods.eks.amazonaws.com"},
         "Action": ["sts:AssumeRole", "sts:TagSession"],
         "Condition": {"StringEquals": {
             "aws:RequestTag/kubernetes-namespace": NS,
             "aws:RequestTag/kubernetes-service-account":
                 one_or_many(accounts.iter().map(|a| (*a).to_owned()).collect())}}},
    ]})
}

fn pods_role(accounts: &[&str]) -> Value {
    role(
        NS,
        "apps-pods",
        json!({"workloadIdentity": {"serviceAccounts": accounts, "mode": "Both",
                                    "annotateServiceAccounts": true}}),
    )
}

/// The account moto answers with, from the provider's status.
fn account(world: &World) -> String {
    world.get("awsprovider", Some(NS), "aws")["status"]["accountID"]
        .as_str()
        .expect("accountID")
        .to_owned()
}

fn setup(world: &World) {
    world.applied(&namespace(NS, "apps"));
    world.applied(&credentials(NS));
    world.applied(&provider(NS, "aws", &world.moto));
    world.provider_ready(NS, "aws");
}

/// IRSA through a provider without the cluster's issuer, a ServiceAccount name that tries to reach
/// another namespace, an empty list, a role that trusts nobody, a malformed issuer: each refused
/// with its field and rule.
fn bad_uses_refused(world: &World) {
    let irsa = role(
        NS,
        "apps-pods",
        json!({"workloadIdentity": {"serviceAccounts": ["app"]}}),
    );
    // The webhook learns of the provider through its watch: give it a moment on a busy machine
    // (an IRSA role admitted meanwhile is deleted, so the next try is a CREATE again).
    let error = poll("IRSA refused for want of an issuer", || {
        match world.apply(&irsa) {
            Err(error) if error.contains("[workload-identity] spec.workloadIdentity.mode") => {
                Ok(error)
            }
            Ok(admitted) => {
                world.delete("iamrole", NS, "apps-pods");
                Err(admitted)
            }
            Err(other) => Err(other),
        }
    });
    assert!(error.contains("spec.cluster.oidcIssuer"), "{error}");
    world.refused(
        &role(
            NS,
            "apps-pods",
            json!({"workloadIdentity": {"serviceAccounts": ["system:serviceaccount:kube-system:admin"],
                                        "mode": "PodIdentity"}}),
        ),
        "workload-identity",
        "spec.workloadIdentity.serviceAccounts[0]",
    );
    let empty = world
        .apply(&role(
            NS,
            "apps-pods",
            json!({"workloadIdentity": {"serviceAccounts": []}}),
        ))
        .expect_err("an empty list");
    assert!(
        empty.contains("spec.workloadIdentity.serviceAccounts"),
        "{empty}"
    );
    world.refused(
        &role(NS, "apps-pods", json!({})),
        "schema",
        "spec.assumeRolePolicyDocument",
    );
    world.refused(
        &provider_with_issuer(world, "https://attacker.example@oidc.eks/id/X"),
        "provider-config",
        "spec.cluster.oidcIssuer",
    );
}

/// With the issuer set, a role listing two ServiceAccounts (one not created yet) gets the exact
/// trust policy in IAM, the existing ServiceAccount annotated, and a status saying who may assume
/// it and why the other is not annotated.
fn trust_and_annotation(world: &World) {
    world.applied(&provider_with_issuer(world, ISSUER));
    world.applied(&service_account(NS, "app", json!({})));
    poll("the issuer to be admitted", || {
        world.apply(&pods_role(&["app", "worker"])).map(drop)
    });
    let status = poll("apps-pods synced and app annotated", || {
        let status = world.get("iamrole", Some(NS), "apps-pods")["status"].clone();
        let annotated = &status["workloadIdentity"]["annotatedServiceAccounts"];
        if status["ready"] == true && *annotated == json!(["app"]) {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    });
    let workload = &status["workloadIdentity"];
    assert!(
        workload["annotationMessage"]
            .as_str()
            .is_some_and(|m| m.contains("worker") && m.contains("does not exist")),
        "{workload}"
    );
    assert!(
        workload["trustPolicyHash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:") && h.len() == 71),
        "{workload}"
    );
    let assumable = workload["assumableBy"].to_string();
    assert!(
        assumable.contains("pods with ServiceAccount apps/worker (IRSA)")
            && assumable
                .contains("pods with ServiceAccount apps/app (EKS Pod Identity association)"),
        "{assumable}"
    );
    let arn = status["roleArn"].as_str().expect("roleArn").to_owned();
    assert_eq!(annotation(world, "app").as_deref(), Some(arn.as_str()));
    let found = world.role_in_iam("apps-pods").expect("the role in IAM");
    let expected = expected_trust(&account(world), &["app", "worker"]);
    assert!(
        policies_equal(&found.trust_policy, &expected.to_string()),
        "trust in IAM: {}\nexpected: {expected}",
        found.trust_policy
    );
}

/// Changing the list rewrites the trust policy and nothing else in IAM; the ServiceAccount that
/// left the list loses the annotation, the new one gets it.
fn a_new_list_rewrites_only_the_trust(world: &World) {
    world.applied(&service_account(NS, "worker", json!({})));
    let before = world.iam_calls();
    world.applied(&pods_role(&["worker"]));
    let expected = expected_trust(&account(world), &["worker"]);
    poll(
        "the new trust in IAM, app released, worker annotated",
        || {
            let found = world.role_in_iam("apps-pods").ok_or("no role")?;
            let released = annotation(world, "app").is_none();
            let annotated = annotation(world, "worker").is_some();
            if policies_equal(&found.trust_policy, &expected.to_string()) && released && annotated {
                Ok(())
            } else {
                Err(format!(
                    "{} released={released} annotated={annotated}",
                    found.trust_policy
                ))
            }
        },
    );
    poll("the status to follow", || {
        let status = world.get("iamrole", Some(NS), "apps-pods")["status"].clone();
        let workload = &status["workloadIdentity"];
        if workload["annotatedServiceAccounts"] == json!(["worker"])
            && workload["annotationMessage"].is_null()
        {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    let after = world.iam_calls();
    let writes: Vec<(String, f64)> = after
        .iter()
        .filter(|(operation, _)| infra_operator::aws::is_write(operation))
        .map(|(operation, count)| {
            let earlier = before.get(operation).copied().unwrap_or(0.0);
            (operation.clone(), count - earlier)
        })
        .filter(|(_, delta)| *delta > 0.0)
        .collect();
    assert_eq!(
        writes,
        [("UpdateAssumeRolePolicy".to_owned(), 1.0)],
        "IAM writes for a change of the ServiceAccounts"
    );
}

/// A ServiceAccount annotated for another role keeps its annotation; the status says why.
fn another_roles_annotation_is_kept(world: &World) {
    let theirs = "arn:aws:iam::123456789012:role/someone-else";
    world.applied(&service_account(
        NS,
        "shared",
        json!({ROLE_ARN_ANNOTATION: theirs}),
    ));
    world.applied(&role(
        NS,
        "apps-shared",
        json!({"workloadIdentity": {"serviceAccounts": ["shared"], "mode": "PodIdentity"},
               "assumeRolePolicyDocument": EC2_TRUST}),
    ));
    world.ready_reason(NS, "apps-shared", "Available");
    world.applied(&role(
        NS,
        "apps-shared",
        json!({"workloadIdentity": {"serviceAccounts": ["shared"], "mode": "IRSA",
                                    "annotateServiceAccounts": true},
               "assumeRolePolicyDocument": EC2_TRUST}),
    ));
    poll("the conflict reported", || {
        let status = world.get("iamrole", Some(NS), "apps-shared")["status"].clone();
        let message = status["workloadIdentity"]["annotationMessage"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if message.contains("annotated for another role") {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    assert_eq!(annotation(world, "shared").as_deref(), Some(theirs));
    world.delete("iamrole", NS, "apps-shared");
    assert_eq!(annotation(world, "shared").as_deref(), Some(theirs));
}

/// Deleting the role deletes it from IAM and removes the annotation it set.
fn deletion_releases_the_annotation(world: &World) {
    world.delete("iamrole", NS, "apps-pods");
    assert!(world.role_in_iam("apps-pods").is_none());
    assert_eq!(annotation(world, "worker"), None);
}

/// Where the namespace's GuardrailPolicy requires workload identity, hand-written web identity
/// trust is refused and `workloadIdentity` admitted.
fn hand_written_web_identity_refused_where_required(world: &World) {
    world.applied(
        &json!({"apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
        "kind": "GuardrailPolicy", "metadata": {"name": "strict"},
        "spec": {"namespaceSelector": {"matchLabels": {"team": "strict"}}, "priority": 200,
                 "tenancy": {"requireWorkloadIdentity": true,
                             "providers": {"operatorIdentity": false,
                                           "endpoints": ["http://127.0.0.1:*"]}}}}),
    );
    world.applied(&namespace("strict", "strict"));
    let hand_written = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::123456789012:oidc-provider/{ISSUER_HOST}")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{ISSUER_HOST}:sub"): "system:serviceaccount:strict:app",
                                       format!("{ISSUER_HOST}:aud"): "sts.amazonaws.com"}}}]});
    let by_hand = role(
        "strict",
        "strict-app",
        json!({"assumeRolePolicyDocument": hand_written.to_string()}),
    );
    poll("the strict policy to govern", || {
        match world.apply(&by_hand) {
            Err(error) if error.contains("[tenancy] spec.assumeRolePolicyDocument") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    world.applied(&role(
        "strict",
        "strict-app",
        json!({"workloadIdentity": {"serviceAccounts": ["app"], "mode": "PodIdentity"}}),
    ));
}

/// With the webhooks removed, the reconciler refuses on its own: IRSA through a provider without
/// the cluster's issuer gets `GuardrailDenied` naming the rule, and no role is created.
fn reconciler_alone_refuses(world: &World) {
    let mut bare = provider(NS, "bare", &world.moto);
    bare["spec"]["region"] = json!("us-east-1");
    world.applied(&bare);
    world.provider_ready(NS, "bare");
    world.stack.unregister_webhooks().expect("unregister");
    let mut irsa = role(
        NS,
        "apps-no-issuer",
        json!({"workloadIdentity": {"serviceAccounts": ["app"]}}),
    );
    irsa["spec"]["providerRef"]["name"] = json!("bare");
    world.applied(&irsa);
    let message = world.ready_reason(NS, "apps-no-issuer", "GuardrailDenied");
    assert!(
        message.contains("[workload-identity] spec.workloadIdentity.mode")
            && message.contains("spec.cluster.oidcIssuer"),
        "{message}"
    );
    assert!(world.role_in_iam("apps-no-issuer").is_none());
    world.stack.register_webhooks().expect("register again");
}

#[test]
fn pods_assume_roles_through_their_service_accounts() {
    let world = World::start(env!("CARGO_BIN_EXE_infra-operator"));
    world.run_steps(&[
        ("setup", &setup),
        ("bad uses refused", &bad_uses_refused),
        ("trust and annotation", &trust_and_annotation),
        (
            "a new list rewrites only the trust",
            &a_new_list_rewrites_only_the_trust,
        ),
        (
            "another role's annotation is kept",
            &another_roles_annotation_is_kept,
        ),
        (
            "deletion releases the annotation",
            &deletion_releases_the_annotation,
        ),
        (
            "hand-written web identity refused where required",
            &hand_written_web_identity_refused_where_required,
        ),
        ("reconciler alone refuses", &reconciler_alone_refuses),
    ]);
}
