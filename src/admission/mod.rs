//! The admission webhook: AdmissionReview in, findings and JSONPatch out, served over HTTPS with
//! certificate reload, plus the plain-HTTP admin server (health, readiness, metrics).
//!
//! This file holds the webhook's router and handlers (no I/O beyond answering the request); the
//! pure review logic is in [`review`] and [`mutate`], serving in [`server`], certificates in [`tls`].

pub mod admin;
pub mod metrics;
pub mod mutate;
pub mod review;
pub mod server;
mod signal;
pub mod tls;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;

pub use self::metrics::Metrics;
use self::metrics::{Observation, ReviewResult};
pub use self::mutate::defaults_patch;
use self::review::Endpoint;
pub use self::server::{BoundWebhook, WebhookConfig, WebhookError, bind, bind_with_metrics};
pub use self::signal::shutdown_signal;
use crate::guardrails::Engine;

/// Largest AdmissionReview body accepted (larger ones get 413). The API server's own limit on an
/// object is 3 MiB too.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What the webhook handlers share: the guardrail engine and the metrics.
#[derive(Clone)]
pub struct WebhookState {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
}

impl WebhookState {
    /// State for [`router`].
    pub fn new(engine: Arc<Engine>, metrics: Arc<Metrics>) -> Self {
        WebhookState { engine, metrics }
    }
}

/// The webhook router: `POST /mutate` and `POST /validate`, each taking an `admission.k8s.io/v1`
/// AdmissionReview. A denial is HTTP 200 with `allowed: false`; a body that is not an AdmissionReview
/// is HTTP 400 with the reason as plain text; a body over [`MAX_BODY_BYTES`] is HTTP 413.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn mutate(
    State(state): State<WebhookState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(&state, Endpoint::Mutate, body)
}

async fn validate(
    State(state): State<WebhookState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(&state, Endpoint::Validate, body)
}

fn handle(
    state: &WebhookState,
    endpoint: Endpoint,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let mut observation = Observation {
        endpoint,
        kind: "unknown",
        operation: "unknown",
        result: ReviewResult::Error,
        denied_rules: &[],
        seconds: 0.0,
    };
    let answered = body
        .map_err(refused_body)
        .and_then(|body| review::answer(&state.engine, endpoint, &body).map_err(bad_review));
    let response = match &answered {
        Ok(answer) => {
            observation.kind = answer.kind;
            observation.operation = answer.operation;
            observation.denied_rules = &answer.denied_rules;
            observation.result = if answer.allowed {
                ReviewResult::Allowed
            } else {
                ReviewResult::Denied
            };
            if !answer.allowed {
                tracing::info!(
                    uid = %answer.uid,
                    kind = answer.kind,
                    object = %answer.object,
                    operation = answer.operation,
                    rules = ?answer.denied_rules.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                    "admission refused"
                );
            }
            Json(&answer.review).into_response()
        }
        Err(refusal) => refusal.clone().into_response(),
    };
    observation.seconds = started.elapsed().as_secs_f64();
    state.metrics.admission().observe(&observation);
    response
}

fn refused_body(rejection: BytesRejection) -> (StatusCode, String) {
    let status = rejection.status();
    let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("request body is larger than {MAX_BODY_BYTES} bytes\n")
    } else {
        format!("cannot read the request body: {}\n", rejection.body_text())
    };
    (status, reason)
}

fn bad_review(error: review::ReviewError) -> (StatusCode, String) {
    tracing::debug!(error = %error, "refused a body that is not an AdmissionReview");
    (StatusCode::BAD_REQUEST, format!("{error}\n"))
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::guardrails::Config;

    fn app() -> (Router, Arc<Metrics>) {
        app_with(Config::default())
    }

    fn app_with(config: Config) -> (Router, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let engine = Arc::new(Engine::new(config).unwrap());
        (
            router(WebhookState::new(engine, Arc::clone(&metrics))),
            metrics,
        )
    }

    const TRUST: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#;

    fn role_spec() -> Value {
        json!({
            "providerRef": {"name": "production-aws"},
            "roleName": "lambda-execution-role",
            "description": "Role for Lambda function execution",
            "assumeRolePolicyDocument": TRUST,
            "managedPolicyArns": ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
            "tags": {"Environment": "production", "Application": "my-app"},
            "deletionPolicy": "Retain"
        })
    }

    fn role_review(operation: &str, spec: Value, old_spec: Option<Value>, dry_run: bool) -> Value {
        let object = |spec: Value| {
            json!({"apiVersion": "aws-infra-operator.runner.codes/v1alpha1", "kind": "IAMRole",
                   "metadata": {"name": "foo", "namespace": "default"}, "spec": spec})
        };
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "aws-infra-operator.runner.codes", "version": "v1alpha1", "kind": "IAMRole"},
                "resource": {"group": "aws-infra-operator.runner.codes", "version": "v1alpha1", "resource": "iamroles"},
                "name": "foo", "namespace": "default", "operation": operation,
                "userInfo": {"username": "admin"},
                "object": object(spec),
                "oldObject": old_spec.map(object),
                "dryRun": dry_run
            }
        })
    }

    async fn answer(router: Router, path: &str, review: &Value) -> Value {
        let (status, body) = post_body(router, path, review.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
        answer["response"].clone()
    }

    fn patch_of(response: &Value) -> Option<json_patch::Patch> {
        let bytes: Vec<u8> = serde_json::from_value(response.get("patch")?.clone()).unwrap();
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_valid_role_is_allowed_and_a_bad_one_denied_with_every_finding() {
        let (router, metrics) = app();
        let allowed = answer(
            router.clone(),
            "/validate",
            &role_review("CREATE", role_spec(), None, false),
        )
        .await;
        assert_eq!(allowed["allowed"], true, "{allowed}");

        let mut spec = role_spec();
        spec["roleName"] = json!("bad name!");
        spec["maxSessionDuration"] = json!(60);
        let denied = answer(
            router,
            "/validate",
            &role_review("CREATE", spec, None, false),
        )
        .await;
        assert_eq!(denied["allowed"], false);
        assert_eq!(denied["status"]["code"], 403);
        let message = denied["status"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("IAMRole default/foo refused by guardrails: "),
            "{message}"
        );
        assert!(message.contains("[role-name] spec.roleName: "), "{message}");
        assert!(
            message.contains("[max-session-duration] spec.maxSessionDuration: "),
            "{message}"
        );
        assert!(message.contains("; "), "{message}");
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"admission_denials_total{rule="role-name"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"admission_requests_total{kind="IAMRole",operation="CREATE",result="denied"} 1"#
        ));
    }

    #[tokio::test]
    async fn warnings_are_returned_on_admitted_objects() {
        let (router, _) = app();
        let mut spec = role_spec();
        spec["inlinePolicies"] = json!([{"policyName": "S3", "policyDocument":
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#}]);
        let response = answer(
            router,
            "/validate",
            &role_review("CREATE", spec, None, false),
        )
        .await;
        assert_eq!(response["allowed"], true, "{response}");
        let warnings = response["warnings"].as_array().cloned().unwrap_or_default();
        assert!(
            warnings.iter().any(|w| w
                .as_str()
                .is_some_and(|w| w.starts_with("[action-wildcard] spec.inlinePolicies[0]"))),
            "{response}"
        );
    }

    #[tokio::test]
    async fn updates_are_checked_against_the_old_object() {
        let (router, _) = app();
        let mut renamed = role_spec();
        renamed["roleName"] = json!("another-role");
        let review = role_review("UPDATE", renamed, Some(role_spec()), false);
        let response = answer(router.clone(), "/validate", &review).await;
        assert_eq!(response["allowed"], false);
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("[immutable-field] spec.roleName"),
            "{message}"
        );

        let unchanged = role_review("UPDATE", role_spec(), Some(role_spec()), false);
        assert_eq!(
            answer(router, "/validate", &unchanged).await["allowed"],
            true
        );
    }

    #[tokio::test]
    async fn dry_run_is_answered_exactly_like_a_real_request() {
        let (router, _) = app();
        let mut spec = role_spec();
        spec["roleName"] = json!("bad name!");
        for (path, spec) in [("/validate", spec), ("/mutate", json!({"roleName": "r"}))] {
            let real = answer(
                router.clone(),
                path,
                &role_review("CREATE", spec.clone(), None, false),
            )
            .await;
            let dry = answer(
                router.clone(),
                path,
                &role_review("CREATE", spec, None, true),
            )
            .await;
            assert_eq!(real, dry);
        }
    }

    #[tokio::test]
    async fn deletes_and_unknown_kinds_are_allowed() {
        let (router, _) = app();
        let mut spec = role_spec();
        spec["roleName"] = json!("bad name!");
        let mut delete = role_review("DELETE", json!({}), Some(spec.clone()), false);
        delete["request"]["object"] = Value::Null;
        assert_eq!(
            answer(router.clone(), "/validate", &delete).await["allowed"],
            true
        );

        let mut foreign = role_review("CREATE", spec, None, false);
        foreign["request"]["kind"] =
            json!({"group": "example.com", "version": "v1", "kind": "IAMRole"});
        assert_eq!(
            answer(router.clone(), "/validate", &foreign).await["allowed"],
            true
        );
        assert!(
            answer(router, "/mutate", &foreign)
                .await
                .get("patch")
                .is_none()
        );
    }

    #[tokio::test]
    async fn mutation_applies_defaults_user_tags_win_and_is_idempotent() {
        let config = Config {
            default_tags: [("team", "platform"), ("cost-center", "shared")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            ..Config::default()
        };
        let (router, _) = app_with(config);
        let mut spec = role_spec();
        spec.as_object_mut().unwrap().remove("deletionPolicy");
        spec["tags"] = json!({"Team": "payments"});
        spec["inlinePolicy"] = json!({"policyName": "Dynamo", "policyDocument": "{}"});
        let review = role_review("CREATE", spec, None, false);
        let response = answer(router.clone(), "/mutate", &review).await;
        assert_eq!(response["allowed"], true);
        assert_eq!(response["patchType"], "JSONPatch");
        let patch = patch_of(&response).unwrap();
        let mut object = review["request"]["object"].clone();
        json_patch::patch(&mut object, &patch).unwrap();
        let spec = &object["spec"];
        assert_eq!(spec["path"], "/");
        assert_eq!(spec["maxSessionDuration"], 3600);
        assert_eq!(spec["deletionPolicy"], "Delete");
        assert_eq!(
            spec["tags"],
            json!({"Team": "payments", "cost-center": "shared"})
        );
        assert_eq!(
            spec["inlinePolicies"],
            json!([{"policyName": "Dynamo", "policyDocument": "{}"}])
        );
        assert!(spec.get("inlinePolicy").is_none());

        let mut again = review.clone();
        again["request"]["object"] = object;
        let response = answer(router, "/mutate", &again).await;
        assert!(patch_of(&response).is_none(), "{response}");
    }

    async fn post_body(router: Router, path: &str, body: impl Into<Body>) -> (StatusCode, Vec<u8>) {
        let request = Request::post(path).body(body.into()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        (
            status,
            to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec(),
        )
    }

    fn delete_review() -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u-9",
                "kind": {"group": "aws-infra-operator.runner.codes", "version": "v1alpha1", "kind": "AWSProvider"},
                "resource": {"group": "aws-infra-operator.runner.codes", "version": "v1alpha1", "resource": "awsproviders"},
                "operation": "DELETE", "userInfo": {}, "oldObject": {"metadata": {"name": "p"}}
            }
        })
    }

    #[tokio::test]
    async fn answers_reviews_and_counts_them() {
        let (router, metrics) = app();
        let (status, body) = post_body(router, "/validate", delete_review().to_string()).await;
        assert_eq!(status, StatusCode::OK);
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["uid"], "u-9");
        assert_eq!(answer["response"]["allowed"], true);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(r#"admission_requests_total{kind="AWSProvider",operation="DELETE",result="allowed"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_review_and_counts_errors() {
        let (router, metrics) = app();
        let (status, body) = post_body(router.clone(), "/mutate", "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            String::from_utf8(body)
                .unwrap()
                .starts_with("body is not JSON")
        );
        let (status, _) =
            post_body(router.clone(), "/validate", vec![b' '; MAX_BODY_BYTES + 1]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, _) = post_body(router, "/validate", vec![b' '; MAX_BODY_BYTES]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(
                r#"admission_requests_total{kind="unknown",operation="unknown",result="error"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"admission_request_duration_seconds_count{endpoint="validate"} 2"#)
        );
        assert!(text.contains(r#"admission_request_duration_seconds_count{endpoint="mutate"} 1"#));
    }

    #[tokio::test]
    async fn only_post_on_the_two_paths() {
        let (router, _) = app();
        let request = Request::get("/validate").body(Body::empty()).unwrap();
        let status = router.clone().oneshot(request).await.unwrap().status();
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _) = post_body(router, "/other", delete_review().to_string()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
