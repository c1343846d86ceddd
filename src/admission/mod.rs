//! The admission webhook: AdmissionReview in, findings and JSONPatch out, served over HTTPS with
//! certificate reload, bounded under hostile input.
//!
//! This file holds the webhook's router and handlers (no I/O beyond answering the request); the
//! pure review logic is in [`envelope`] (reading the body), [`review`], [`mutate`] and [`response`],
//! body reception in [`body`] (the large bodies' reading rate in [`pace`]), the off-worker checks
//! in [`checks`], serving in [`server`], certificates in [`tls`].

pub mod body;
pub mod checks;
pub mod envelope;
pub mod limits;
pub mod metrics;
pub mod mutate;
pub mod pace;
pub mod response;
pub mod review;
pub mod server;
pub mod tls;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use self::body::{BodyError, BodyMemory, declared_length};
use self::checks::{CheckError, Checkers, Lane};
pub use self::limits::{Limits, MAX_BODY_BYTES};
pub use self::metrics::AdmissionMetrics;
use self::metrics::{Observation, ReviewResult};
pub use self::mutate::defaults_patch;
use self::pace::Pace;
use self::review::{Answer, Endpoint};
pub use self::server::{BoundWebhook, WebhookConfig, WebhookError, bind};
use crate::governance::Guardrails;
use crate::serve::memory::release_free_memory;

/// What the webhook handlers share: the guardrails, the metrics, the checkers, the body memory
/// budget and the large bodies' reading rate.
#[derive(Clone)]
pub struct WebhookState {
    guardrails: Guardrails,
    metrics: AdmissionMetrics,
    checkers: Checkers,
    memory: BodyMemory,
    large_body_pace: Arc<Pace>,
    limits: Arc<Limits>,
}

impl WebhookState {
    /// State for [`router`]: reviews are checked with the guardrails governing their namespace.
    /// Fails when the threads of the large reviews cannot be started.
    pub fn new(
        guardrails: impl Into<Guardrails>,
        metrics: AdmissionMetrics,
        limits: &Limits,
    ) -> std::io::Result<Self> {
        Ok(WebhookState {
            guardrails: guardrails.into(),
            metrics,
            checkers: Checkers::new(limits.concurrent_checks, limits.review_deadline)?,
            memory: BodyMemory::new(limits.body_memory),
            large_body_pace: Arc::new(Pace::new(limits.large_body_rate)),
            limits: Arc::new(limits.clone()),
        })
    }
}

/// The webhook router: `POST /mutate` and `POST /validate`, each taking an `admission.k8s.io/v1`
/// AdmissionReview. A denial is HTTP 200 with `allowed: false`, and so is a review whose checks
/// overran the review deadline; a body that is not an AdmissionReview is HTTP 400 with the reason as
/// plain text; a body over [`MAX_BODY_BYTES`] is HTTP 413, one that arrives too slowly 408, and a
/// large one when too many large reviews are in progress 503.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .with_state(state)
}

async fn mutate(State(state): State<WebhookState>, request: Request) -> Response {
    handle(state, Endpoint::Mutate, request).await
}

async fn validate(State(state): State<WebhookState>, request: Request) -> Response {
    handle(state, Endpoint::Validate, request).await
}

async fn handle(state: WebhookState, endpoint: Endpoint, request: Request) -> Response {
    let started = Instant::now();
    let mut observation = Observation {
        endpoint,
        kind: "unknown",
        operation: "unknown",
        result: ReviewResult::Error,
        denied_rules: &[],
        seconds: 0.0,
    };
    let http1 = request.version() < Version::HTTP_2;
    let declared = declared_length(request.headers());
    let received = body::receive(
        request.into_body(),
        declared,
        state.limits.body_timeout,
        &state.memory,
        &state.large_body_pace,
    )
    .await;
    let mut answered = None;
    let response = match received {
        Err(error) => refused_body(&error, http1),
        Ok(received) => match review(&state, endpoint, received).await {
            Reviewed::Answered(answer, json) => {
                observation.result = if answer.verdict.allowed() {
                    ReviewResult::Allowed
                } else {
                    log_refusal(&answer);
                    ReviewResult::Denied
                };
                answered = Some(answer);
                json_response(json)
            }
            Reviewed::Overdue(json) => {
                observation.result = ReviewResult::Overdue;
                json_response(json)
            }
            Reviewed::Refused(status, reason) => (status, reason).into_response(),
        },
    };
    if let Some(answer) = &answered {
        observation.kind = answer.kind;
        observation.operation = answer.operation;
        observation.denied_rules = &answer.denied_rules;
    }
    observation.seconds = started.elapsed().as_secs_f64();
    state.metrics.observe(&observation);
    response
}

/// How a received body was answered.
enum Reviewed {
    /// An answer, and the AdmissionReview to send (JSON).
    Answered(Box<Answer>, Vec<u8>),
    /// The checks overran the deadline; the refusal to send (JSON).
    Overdue(Vec<u8>),
    /// Not an AdmissionReview (or the check failed): the status and the reason.
    Refused(StatusCode, String),
}

/// Reviews a received body on a checker, answering a refusal when the deadline passes first.
async fn review(state: &WebhookState, endpoint: Endpoint, received: body::Received) -> Reviewed {
    let bytes = received.bytes.clone();
    let guardrails = state.guardrails.clone();
    let lane = Lane::of(received.bytes.len());
    let large = lane == Lane::Large;
    let checked = state
        .checkers
        .run(lane, move || {
            let answered = review::answer(&guardrails, endpoint, &received.bytes).map(|answer| {
                let json = answer.verdict.to_json();
                (answer, json)
            });
            drop(received);
            if large {
                release_free_memory();
            }
            answered
        })
        .await;
    match checked {
        Ok(Ok((answer, json))) => Reviewed::Answered(Box::new(answer), json),
        Ok(Err(error)) => {
            tracing::debug!(error = %error, "refused a body that is not an AdmissionReview");
            Reviewed::Refused(StatusCode::BAD_REQUEST, format!("{error}\n"))
        }
        Err(CheckError::Overdue(deadline)) => match request_uid(state, large, bytes).await {
            Some(uid) => {
                tracing::warn!(%uid, deadline_ms = deadline.as_millis(), "review refused: checks overran the deadline");
                Reviewed::Overdue(review::overdue(uid, deadline).to_json())
            }
            None => Reviewed::Refused(
                StatusCode::BAD_REQUEST,
                "body is not an admission.k8s.io AdmissionReview with a request uid\n".to_owned(),
            ),
        },
        Err(error @ CheckError::Panicked) => {
            tracing::error!(error = %error, "a review could not be checked");
            Reviewed::Refused(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n"))
        }
    }
}

/// The request uid of a body whose checks were abandoned; read at the lowest CPU priority for a
/// large body, whose whole text may have to be scanned, so refusing a flood of them costs
/// ordinary reviews nothing.
async fn request_uid(
    state: &WebhookState,
    large: bool,
    bytes: axum::body::Bytes,
) -> Option<String> {
    if !large {
        return review::request_uid(&bytes);
    }
    state
        .checkers
        .in_background(move || review::request_uid(&bytes))
        .await
        .ok()
        .flatten()
}

fn log_refusal(answer: &Answer) {
    let rules: BTreeSet<&str> = answer.denied_rules.iter().map(|r| r.as_str()).collect();
    tracing::info!(
        uid = %answer.verdict.uid,
        kind = answer.kind,
        object = %answer.object,
        operation = answer.operation,
        rules = ?rules,
        "admission refused"
    );
}

fn json_response(json: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response()
}

/// The answer to a body that was not received: its status and reason; over HTTP/1 the connection is
/// closed too, since the rest of the body was not read.
fn refused_body(error: &BodyError, http1: bool) -> Response {
    let mut response = (error.status(), format!("{error}\n")).into_response();
    if http1 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use base64::Engine as _;

    use super::*;
    use crate::guardrails::Config;
    use crate::serve::Metrics;

    fn app() -> (Router, Arc<Metrics>) {
        app_with(Config::default())
    }

    fn app_with(config: Config) -> (Router, Arc<Metrics>) {
        app_limited(config, &Limits::default())
    }

    fn app_limited(config: Config, limits: &Limits) -> (Router, Arc<Metrics>) {
        let mut metrics = Metrics::new();
        let admission = AdmissionMetrics::register(metrics.registry_mut());
        let engine = Arc::new(crate::guardrails::Engine::new(config).unwrap());
        (
            router(WebhookState::new(engine, admission, limits).unwrap()),
            Arc::new(metrics),
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
        let text = response
            .get("patch")?
            .as_str()
            .expect("the patch is a base64 string");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
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
            text.contains(r#"infra_operator_admission_denials_total{rule="role-name"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"infra_operator_admission_requests_total{kind="IAMRole",operation="CREATE",result="denied"} 1"#
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
            text.contains(r#"infra_operator_admission_requests_total{kind="AWSProvider",operation="DELETE",result="allowed"} 1"#),
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
                r#"infra_operator_admission_requests_total{kind="unknown",operation="unknown",result="error"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"infra_operator_admission_request_duration_seconds_count{endpoint="validate"} 2"#
        ));
        assert!(text.contains(
            r#"infra_operator_admission_request_duration_seconds_count{endpoint="mutate"} 1"#
        ));
    }

    #[tokio::test]
    async fn a_large_body_the_configured_rate_cannot_take_in_time_gets_503() {
        let body = || vec![b' '; 1024 * 1024];
        // At the default rate a 1 MiB body is read (and is no review)...
        let (router, _) = app();
        let (status, _) = post_body(router, "/validate", body()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // ...at 64 KiB/s it would take 16 s, past the body timeout: refused, the connection closed.
        let limits = Limits {
            large_body_rate: 64 * 1024,
            body_timeout: std::time::Duration::from_secs(1),
            ..Limits::default()
        };
        let (router, _) = app_limited(Config::default(), &limits);
        let request = Request::post("/validate").body(Body::from(body())).unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        let text = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert_eq!(
            &text[..],
            b"too many large reviews in progress; try again\n"
        );
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
