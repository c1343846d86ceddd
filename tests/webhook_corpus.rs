//! The fixture corpus through the webhook over real TLS: every bad fixture is denied by `/validate`
//! with its rule ID and exact field path in `status.message`, every good one is allowed, and the
//! update fixtures are judged on UPDATE with their stored object.

#[path = "support/fixtures.rs"]
mod fixtures;
mod support;

use std::path::PathBuf;

use infra_operator::guardrails::Config;
use serde_json::Value;

fn config_for(guardrails: &Option<PathBuf>) -> Config {
    match guardrails {
        Some(path) => Config::from_yaml(&std::fs::read_to_string(path).expect("guardrails file"))
            .expect("guardrails parse"),
        None => Config::builtin(),
    }
}

async fn validate(
    served: &support::Served,
    uid: &str,
    operation: &str,
    object: &Value,
    old: &Value,
) -> Value {
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    let body = support::review(uid, &kind, operation, object.clone(), old.clone(), false);
    let reply = support::https_post(
        served.https,
        served.client(),
        "/validate",
        body.to_string().into_bytes(),
    )
    .await
    .expect("webhook answers");
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let response = reply.json()["response"].clone();
    assert_eq!(response["uid"], uid);
    response
}

#[tokio::test]
async fn bad_fixtures_are_denied_with_rule_and_path_over_tls() {
    let mut checked = 0;
    for (guardrails, group) in fixtures::by_guardrails(fixtures::bad_fixtures()) {
        let served = support::serve_config(config_for(&guardrails)).await;
        for fixture in &group {
            let object = &fixture.docs[0];
            let response = validate(&served, &fixture.name, "CREATE", object, &Value::Null).await;
            assert_eq!(
                response["allowed"], false,
                "{} allowed: {response:#}",
                fixture.name
            );
            let message = response["status"]["message"].as_str().unwrap_or_default();
            for (rule, path) in &fixture.expect {
                let wanted = format!("[{rule}] {path}: ");
                assert!(
                    message.contains(&wanted),
                    "{}: `{wanted}` not in {message}",
                    fixture.name
                );
            }
            checked += 1;
        }
        served.stop().await.expect("webhook stops");
    }
    assert!(checked >= 60, "only {checked} bad fixtures");
}

#[tokio::test]
async fn good_fixtures_are_allowed_over_tls() {
    let mut checked = 0;
    for (guardrails, group) in fixtures::by_guardrails(fixtures::good_fixtures()) {
        let served = support::serve_config(config_for(&guardrails)).await;
        for fixture in &group {
            for object in &fixture.docs {
                let response =
                    validate(&served, &fixture.name, "CREATE", object, &Value::Null).await;
                assert_eq!(
                    response["allowed"], true,
                    "{} denied: {response:#}",
                    fixture.name
                );
            }
            checked += 1;
        }
        served.stop().await.expect("webhook stops");
    }
    assert!(checked >= 20, "only {checked} good fixtures");
}

#[tokio::test]
async fn updates_are_judged_against_the_stored_object_over_tls() {
    let served = support::serve().await;
    for fixture in fixtures::update_fixtures() {
        let [old, new] = &fixture.docs[..] else {
            panic!("{}: two documents expected", fixture.name)
        };
        let response = validate(&served, &fixture.name, "UPDATE", new, old).await;
        if fixture.expect.is_empty() {
            assert_eq!(response["allowed"], true, "{}: {response:#}", fixture.name);
            continue;
        }
        assert_eq!(response["allowed"], false, "{}: {response:#}", fixture.name);
        let message = response["status"]["message"].as_str().unwrap_or_default();
        for (rule, path) in &fixture.expect {
            assert!(
                message.contains(&format!("[{rule}] {path}: ")),
                "{}: {message}",
                fixture.name
            );
        }
        // The same object as a CREATE has nothing to compare with, so immutability does not apply.
        let created = validate(&served, &fixture.name, "CREATE", new, &Value::Null).await;
        assert_eq!(created["allowed"], true, "{}: {created:#}", fixture.name);
    }
    served.stop().await.expect("webhook stops");
}
