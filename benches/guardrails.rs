//! Cost of the guardrail engine: every example of `manifests/examples/`, a large role (10 inline
//! policies of ~1 KiB with 20 statements each), and hostile roles (a 2.9 MB review of 24 policies
//! full of bad statements; a policy padded past IAM's 131,072 characters). Also the costliest
//! reviews the webhook checks on its async workers: whole AdmissionReview bodies of at most
//! `INLINE_BODY_BYTES`, each as full of one costly construct as that size allows, answered by
//! `review::answer` (parsing included), and the reviews of every example IAMRole as the API server
//! sends them after `kubectl apply` (managed fields and last-applied annotation included), answered
//! by `review::answer` on both endpoints: the webhook's own cost per review, without TLS or HTTP.

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use infra_operator::admission::limits::INLINE_BODY_BYTES;
use infra_operator::admission::review::{self, Endpoint};
use infra_operator::governance::Guardrails;
use infra_operator::guardrails::{Config, Engine, Kind};
use infra_operator::validate::parse_documents;
use serde_json::{Value, json};

#[path = "../tests/support/mod.rs"]
mod support;

// The same bodies the floor harness sends; this bench reads only the reviews.
#[allow(dead_code)]
#[path = "admission_floor/corpus.rs"]
mod corpus;

fn examples() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("examples directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("example readable");
        for doc in parse_documents(&text).expect("example parses") {
            if Kind::of(&doc).is_some() {
                let name = doc
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned();
                out.push((name, doc));
            }
        }
    }
    out
}

fn statement(i: usize) -> Value {
    json!({
        "Sid": format!("Stmt{i}"),
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": format!("arn:aws:s3:::bucket-{i}/*"),
    })
}

/// A role with `policies` inline policies of `statements` statements each.
fn large_role(policies: usize, statements: usize) -> Value {
    let inline: Vec<Value> = (0..policies)
        .map(|p| {
            let doc = json!({"Version": "2012-10-17", "Statement": (0..statements).map(statement).collect::<Vec<_>>()});
            json!({"policyName": format!("policy-{p}"), "policyDocument": doc.to_string()})
        })
        .collect();
    json!({
        "apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
        "kind": "IAMRole",
        "metadata": {"name": "large", "namespace": "default"},
        "spec": {
            "providerRef": {"name": "localstack"},
            "roleName": "large-role",
            "assumeRolePolicyDocument": json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}).to_string(),
            "inlinePolicies": inline,
        }
    })
}

/// A role whose 24 inline policies each hold 1,800 statements granting `iam:*` and a look-alike
/// `ıam:*` (every statement draws findings).
fn hostile_role() -> Value {
    let statement = json!({"Effect": "Allow", "Action": ["iam:*", "\u{131}am:*"], "Resource": "*"});
    let document =
        json!({"Version": "2012-10-17", "Statement": vec![statement; 1_800]}).to_string();
    let mut role = large_role(0, 0);
    role["spec"]["inlinePolicies"] = (0..24)
        .map(|p| json!({"policyName": format!("policy-{p}"), "policyDocument": document}))
        .collect();
    role
}

/// A role whose one inline policy is padded with 140,000 spaces.
fn padded_role() -> Value {
    let padding = " ".repeat(140_000);
    let document = format!(
        r#"{{"Version":{padding}"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}]}}"#
    );
    let mut role = large_role(0, 0);
    role["spec"]["inlinePolicies"] = json!([{"policyName": "padded", "policyDocument": document}]);
    role
}

/// A role whose one inline policy holds `statement`.
fn role_with_statement(statement: Value) -> Value {
    statements_role(&statement, 1)
}

/// A role allowing the action `"*" + "?"*k + "x" + "*"*k` (21 KiB at k = 10,000).
fn wildcard_role(k: usize) -> Value {
    let action = format!("*{}x{}", "?".repeat(k), "*".repeat(k));
    role_with_statement(json!({"Effect": "Allow", "Action": action, "Resource": "*"}))
}

/// A role whose condition value is an array nested `depth` deep.
fn nested_condition_role(depth: usize) -> Value {
    let nested: Value =
        serde_json::from_str(&format!("{}\"v\"{}", "[".repeat(depth), "]".repeat(depth)))
            .expect("nested value");
    role_with_statement(json!({
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalTag/team": nested}}
    }))
}

/// A role with 32 inline policies of 2,300 statements `{"Sid":"-","Effect":"X"}` each.
fn invalid_statements_role() -> Value {
    let statements = vec![r#"{"Sid":"-","Effect":"X"}"#; 2_300].join(",");
    let document = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
    let mut role = large_role(0, 0);
    role["spec"]["inlinePolicies"] = (0..32)
        .map(|p| json!({"policyName": format!("many-{p}"), "policyDocument": document}))
        .collect();
    role
}

/// A CREATE AdmissionReview of `object` as the webhook receives it.
fn review_body(object: &Value) -> Vec<u8> {
    let review = support::review(
        "u-worst",
        "IAMRole",
        "CREATE",
        object.clone(),
        Value::Null,
        false,
    );
    serde_json::to_vec(&review).expect("serializable")
}

/// The review of `role(n)` for the largest `n` whose body fits in `INLINE_BODY_BYTES`.
fn fullest_inline_review(role: impl Fn(usize) -> Value) -> Vec<u8> {
    let fits = |n: usize| review_body(&role(n)).len() <= INLINE_BODY_BYTES;
    assert!(fits(1), "one item already overflows the inline size");
    let (mut low, mut high) = (1, 2);
    while fits(high) {
        (low, high) = (high, high * 2);
    }
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if fits(middle) {
            low = middle
        } else {
            high = middle
        }
    }
    review_body(&role(low))
}

/// One inline policy of `n` copies of `statement`.
fn statements_role(statement: &Value, n: usize) -> Value {
    let document = json!({"Version": "2012-10-17", "Statement": vec![statement; n]}).to_string();
    let mut role = large_role(0, 0);
    role["spec"]["inlinePolicies"] = json!([{"policyName": "many", "policyDocument": document}]);
    role
}

/// The candidates for the costliest inline review, each filling the inline size.
fn worst_inline_reviews() -> Vec<(&'static str, Vec<u8>)> {
    // 128 characters, IAM's longest action, alternating wildcards.
    let wildcard_action = format!("iam:{}", "*?".repeat(62));
    vec![
        (
            "escalating-statements",
            fullest_inline_review(|n| {
                statements_role(
                    &json!({"Effect": "Allow", "Action": ["iam:*", "\u{131}am:*"], "Resource": "*"}),
                    n,
                )
            }),
        ),
        (
            "wildcard-actions",
            fullest_inline_review(|n| {
                statements_role(
                    &json!({"Effect": "Allow", "Action": vec![&wildcard_action; 8], "Resource": "*"}),
                    n,
                )
            }),
        ),
        (
            "invalid-values",
            fullest_inline_review(|n| {
                statements_role(
                    &json!({"Effect": "Allow", "Action": vec![5; n], "Resource": "*"}),
                    1,
                )
            }),
        ),
        (
            "invalid-statements",
            fullest_inline_review(|n| statements_role(&json!({"Sid": "-", "Effect": "X"}), n)),
        ),
        (
            "tiny-policies",
            fullest_inline_review(|n| {
                let mut role = large_role(0, 0);
                role["spec"]["inlinePolicies"] = (0..n)
                    .map(|p| {
                        json!({"policyName": format!("p{p}"), "policyDocument":
                        r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#})
                    })
                    .collect();
                role
            }),
        ),
        (
            "trust-principals",
            fullest_inline_review(|n| {
                let principals: Vec<String> = (0..n)
                    .map(|i| format!("arn:aws:iam::{:012}:root", i))
                    .collect();
                let mut role = large_role(0, 0);
                role["spec"]["assumeRolePolicyDocument"] = json!({"Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Principal": {"AWS": principals},
                    "Action": "sts:AssumeRole"}]})
                .to_string()
                .into();
                role
            }),
        ),
        (
            "nested-conditions",
            review_body(&nested_condition_role(120)),
        ),
    ]
}

fn bench_engine(c: &mut Criterion) {
    let engine = Engine::new(Config::default()).expect("engine builds");
    let mut group = c.benchmark_group("seed");
    for (name, doc) in examples() {
        let kind = Kind::of(&doc).expect("our kind");
        group.bench_function(name, |b| {
            b.iter(|| black_box(engine.check(kind, black_box(&doc), None)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("size");
    for statements in [5, 10, 20] {
        let doc = large_role(10, statements);
        let bytes = doc.to_string().len() as u64;
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(format!("10-policies-x-{statements}-statements"), |b| {
            b.iter(|| black_box(engine.check(Kind::IAMRole, black_box(&doc), None)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("hostile");
    group.sample_size(10);
    for (name, doc) in [
        ("24-policies-x-1800-bad-statements", hostile_role()),
        ("padded-140000", padded_role()),
        ("wildcard-action-k10000", wildcard_role(10_000)),
        ("condition-nested-120", nested_condition_role(120)),
        (
            "32-policies-x-2300-invalid-statements",
            invalid_statements_role(),
        ),
    ] {
        group.throughput(Throughput::Bytes(doc.to_string().len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(engine.check(Kind::IAMRole, black_box(&doc), None)))
        });
    }
    group.finish();

    let guardrails = Guardrails::from(Arc::new(engine));
    let mut group = c.benchmark_group("inline-worst");
    for (name, body) in worst_inline_reviews() {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let answer = review::answer(&guardrails, Endpoint::Validate, black_box(&body));
                black_box(answer.expect("an AdmissionReview"))
            })
        });
    }
    group.finish();

    let corpus = corpus::Corpus::from_examples().expect("the examples make reviews");
    for (endpoint, group_name) in [
        (Endpoint::Validate, "kubectl-review/validate"),
        (Endpoint::Mutate, "kubectl-review/mutate"),
    ] {
        let mut group = c.benchmark_group(group_name);
        for review in &corpus.reviews {
            let answer = review::answer(&guardrails, endpoint, &review.body).expect("a review");
            assert!(
                answer.verdict.refusal.is_none(),
                "{} refused: {:?}",
                review.name,
                answer.verdict.refusal
            );
            group.throughput(Throughput::Bytes(review.body.len() as u64));
            group.bench_function(&review.name, |b| {
                b.iter(|| {
                    let answer = review::answer(&guardrails, endpoint, black_box(&review.body));
                    black_box(answer.expect("an AdmissionReview"))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
