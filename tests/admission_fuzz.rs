//! Property tests of the webhook router: arbitrary bytes, arbitrary JSON and AdmissionReviews with
//! arbitrary objects always get an answer (200, 400 or 413), never a panic; every admitted mutation
//! is a patch that applies and is idempotent.

mod support;

use std::sync::OnceLock;

use axum::Router;
use axum::body::{Body, to_bytes};
use hyper::{Request, StatusCode};
use infra_operator::admission::{AdmissionMetrics, Limits, WebhookState, router};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use support::{engine, review, strict_review};
use tower::ServiceExt;

const CASES: u32 = 300;

fn app() -> Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| {
        let metrics = AdmissionMetrics::unregistered();
        router(WebhookState::new(engine(), metrics, &Limits::default()).unwrap())
    })
    .clone()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn post(app: &Router, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::post(path).body(Body::from(body)).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "\\{.{0,60}\\}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Mostly the fields of our kinds, sometimes anything.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "providerRef",
            "name",
            "namespace",
            "roleName",
            "assumeRolePolicyDocument",
            "description",
            "path",
            "maxSessionDuration",
            "managedPolicyArns",
            "inlinePolicies",
            "inlinePolicy",
            "policyName",
            "policyDocument",
            "permissionsBoundary",
            "tags",
            "deletionPolicy",
            "region",
            "roleARN",
            "accessKeyIDRef",
            "secretAccessKeyRef",
            "sessionTokenRef",
            "key",
            "endpoint",
            "defaultTags",
            "driftDetection",
            "enabled",
            "interval",
            "Version",
            "Statement",
            "Effect",
            "Action",
            "Resource",
            "Principal",
            "Condition",
            "metadata",
            "spec",
            "deletionTimestamp",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
    ]
}

/// A spec: always a JSON object, mostly with our field names.
fn spec() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(field_name(), json_value(), 0..10)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

fn object() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => json_value(),
        3 => (prop::sample::select(vec!["IAMRole", "AWSProvider"]), spec()).prop_map(|(kind, spec)| json!({
            "apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
            "kind": kind,
            "metadata": {"name": "fuzz", "namespace": "default"},
            "spec": spec
        })),
    ]
}

fn admission_review() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![3 => Just("IAMRole"), 1 => Just("AWSProvider"), 1 => Just("Pod")];
    let operation = prop_oneof![2 => Just("CREATE"), 2 => Just("UPDATE"), 1 => Just("DELETE"), 1 => Just("CONNECT")];
    (kind, operation, object(), object(), any::<bool>()).prop_map(
        |(kind, operation, object, old, dry_run)| {
            review("fuzz-uid", kind, operation, object, old, dry_run)
        },
    )
}

/// Checks one answer; returns the patch when the review was admitted with one.
fn check_answer(
    status: StatusCode,
    body: &[u8],
) -> Result<Option<json_patch::Patch>, TestCaseError> {
    prop_assert!(
        [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE
        ]
        .contains(&status),
        "status {status}"
    );
    if status != StatusCode::OK {
        return Ok(None);
    }
    let (answer, patch) = strict_review(body).map_err(TestCaseError::fail)?;
    prop_assert_eq!(answer.response.uid.as_str(), "fuzz-uid");
    Ok(patch)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_bytes_are_answered(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let app = app();
        let runtime = runtime();
        for path in ["/validate", "/mutate"] {
            let (status, body) = runtime.block_on(post(&app, path, bytes.clone()));
            check_answer(status, &body)?;
        }
    }

    #[test]
    fn arbitrary_json_is_answered(value in json_value()) {
        let app = app();
        let runtime = runtime();
        let (status, body) = runtime.block_on(post(&app, "/validate", value.to_string().into_bytes()));
        check_answer(status, &body)?;
    }

    #[test]
    fn reviews_with_arbitrary_objects_are_answered_and_patches_are_idempotent(review in admission_review()) {
        let app = app();
        let runtime = runtime();
        let body = serde_json::to_vec(&review).unwrap();
        let (status, answer) = runtime.block_on(post(&app, "/validate", body.clone()));
        check_answer(status, &answer)?;

        let (status, answer) = runtime.block_on(post(&app, "/mutate", body));
        if let Some(patch) = check_answer(status, &answer)? {
            let mut patched = review["request"]["object"].clone();
            json_patch::patch(&mut patched, &patch).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut again = review.clone();
            again["request"]["object"] = patched;
            let (status, answer) = runtime.block_on(post(&app, "/mutate", serde_json::to_vec(&again).unwrap()));
            let second = check_answer(status, &answer)?;
            prop_assert!(second.is_none(), "mutating the patched object patched again: {:?}", second);
        }
    }
}
