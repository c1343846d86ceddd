//! The reconciler proven end to end: the operator (`run`: webhook + controllers) against a real
//! kube-apiserver + etcd and moto as AWS IAM/STS. Objects go in through kubectl or the Kubernetes
//! API (so through the webhooks); IAM is inspected in moto with the crate's own AWS layer. One test
//! drives every step on one local stack and reports every failing step together.

#[path = "support/moto.rs"]
mod moto;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use infra_operator::api::{AWSProvider, FINALIZER, IAMRole};
use infra_operator::aws::{AwsClients, IamApi, is_write};
use infra_operator::iam::ObservedRole;
use infra_operator::iam::workload_identity::{ProviderFacts, effective_trust_policy};
use infra_operator::iam::{Change, CreateRole};
use infra_operator::iam::{OWNER_TAG_KEY, POLICIES_TAG_KEY, policies_tag_value};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use local_stack::{Stack, StackOptions, free_port};
use serde_json::{Value, json};

/// Upper bound of every wait; only a hang should hit it.
const TIMEOUT: Duration = Duration::from_secs(120);
/// Namespace of every object of the test.
const NS: &str = "default";
/// The provider of the seed examples, as the test creates it.
const PROVIDER: &str = "localstack";
/// Drift detection interval of the test's provider (the shortest the operator honours).
const DRIFT_INTERVAL: &str = "10s";
/// Namespace of the leader-election Lease (where `manifests/deploy/rbac.yaml` lets the operator hold
/// it).
const LEASE_NS: &str = "infra-operator-system";
/// Identity of the stack's operator in the leader-election Lease.
const IDENTITY: &str = "e2e-operator";
/// The leader-election Lease.
const LEASE: &str = "infra-operator-leader";

const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["lambda.amazonaws.com"]},"Action":["sts:AssumeRole"]}]}"#;
const READ_LOGS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:GetLogEvents"],"Resource":"arn:aws:logs:us-east-1:123456789012:log-group:app:*"}]}"#;
const READ_BUCKET: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::app-bucket/*"}]}"#;
const WRITE_BUCKET: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::app-bucket/*"}]}"#;
const S3_READ: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";
const LOGS_READ: &str = "arn:aws:iam::aws:policy/CloudWatchLogsReadOnlyAccess";
const DYNAMO_READ: &str = "arn:aws:iam::aws:policy/AmazonDynamoDBReadOnlyAccess";
const BOUNDARY_A: &str = "arn:aws:iam::aws:policy/PowerUserAccess";
const BOUNDARY_B: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn operator_args(identity: &str) -> Vec<String> {
    [
        "run",
        "--guardrails",
        &repo()
            .join("tests/fixtures/e2e/default-tags.yaml")
            .display()
            .to_string(),
        "--lease-namespace",
        LEASE_NS,
        "--identity",
        identity,
        "--lease-duration",
        "6s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Polls `check` every half second until it yields a value; panics with its last complaint after
/// `timeout`.
fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(complaint) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {complaint}")
            }
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// A plain-HTTP GET on 127.0.0.1; the body.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP body")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {head}"));
    }
    Ok(body.to_owned())
}

/// Sum of the samples of `metric` whose labels satisfy `select`.
fn metric_sum(text: &str, metric: &str, select: impl Fn(&BTreeMap<String, String>) -> bool) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            let labels: BTreeMap<String, String> = labels
                .split(',')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            select(&labels).then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

/// IAM write calls made by an operator, from its `/metrics`.
fn iam_writes(metrics: &str) -> f64 {
    metric_sum(metrics, "infra_operator_aws_api_calls_total", |labels| {
        labels.get("operation").is_some_and(|op| is_write(op))
    })
}

/// IAMRole reconciles run by an operator, from its `/metrics`.
fn role_reconciles(metrics: &str) -> f64 {
    metric_sum(metrics, "infra_operator_reconciles_total", |labels| {
        labels.get("kind").map(String::as_str) == Some("IAMRole")
    })
}

/// Everything a step needs.
struct World {
    rt: tokio::runtime::Runtime,
    stack: Stack,
    client: Client,
    iam: IamApi,
    raw_iam: aws_sdk_iam::Client,
}

impl World {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    fn roles(&self) -> Api<IAMRole> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn providers(&self) -> Api<AWSProvider> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn role(&self, name: &str) -> Result<Option<IAMRole>, String> {
        self.block_on(self.roles().get_opt(name))
            .map_err(|e| format!("get IAMRole {name}: {e}"))
    }

    fn observe(&self, role_name: &str) -> Result<Option<ObservedRole>, String> {
        self.block_on(self.iam.observe_role(role_name))
            .map_err(|e| format!("observe {role_name} in moto: {e}"))
    }

    fn apply(&self, manifest: &str) {
        let out = self
            .stack
            .kubectl_with_input(&["apply", "-f", "-"], manifest)
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl apply refused:\n{}\n{manifest}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn patch_role(&self, name: &str, patch: Value) {
        self.block_on(
            self.roles()
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .unwrap_or_else(|e| panic!("patch IAMRole {name} with {patch}: {e}"));
    }

    fn wait_provider_gone(&self, name: &str) {
        poll(&format!("AWSProvider {name} gone"), TIMEOUT, || match self
            .block_on(self.providers().get_opt(name))
            .map_err(|e| e.to_string())?
        {
            None => Ok(()),
            Some(_) => Err("still there".to_owned()),
        });
    }

    /// Sets the AWSProvider's finalizers (`null`: none), as someone forcing its removal would.
    fn patch_provider_finalizers(&self, name: &str, finalizers: Value) {
        let patch = json!({"metadata": {"finalizers": finalizers}});
        self.block_on(
            self.providers()
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .unwrap_or_else(|e| panic!("patch AWSProvider {name} with {patch}: {e}"));
    }

    fn delete_role_object(&self, name: &str) {
        self.block_on(self.roles().delete(name, &DeleteParams::default()))
            .unwrap_or_else(|e| panic!("delete IAMRole {name}: {e}"));
    }

    fn provider(&self, name: &str) -> AWSProvider {
        self.block_on(self.providers().get(name))
            .unwrap_or_else(|e| panic!("get AWSProvider {name}: {e}"))
    }

    fn metrics(&self) -> String {
        let port = self.stack.operator().expect("operator runs").admin_port;
        http_get(port, "/metrics").unwrap_or_else(|e| panic!("operator /metrics: {e}"))
    }

    /// Waits until the object is Ready at its generation and the role in moto matches its spec
    /// (`foreign`: managed policies attached by hand, which the operator must leave alone).
    fn wait_converged(&self, name: &str, foreign: &BTreeSet<String>) -> (IAMRole, ObservedRole) {
        poll(&format!("IAMRole {name} converged"), TIMEOUT, || {
            let role = self.role(name)?.ok_or("the object does not exist")?;
            let provider = self.provider(&role.spec.provider_ref.name);
            let observed = self
                .observe(&role.spec.role_name)?
                .ok_or("the role does not exist in moto")?;
            let problems = mismatches(&role, &observed, &provider, foreign);
            if problems.is_empty() {
                Ok((role, observed))
            } else {
                Err(problems.join("; "))
            }
        })
    }

    /// Waits until the object's Ready condition is False with `reason`; returns its message.
    fn wait_not_ready(&self, name: &str, reason: &str) -> String {
        self.wait_not_ready_with(name, &[reason])
    }

    /// Waits until the object's Ready condition is False with one of `reasons`; returns its
    /// message.
    fn wait_not_ready_with(&self, name: &str, reasons: &[&str]) -> String {
        poll(
            &format!("IAMRole {name} Ready=False {reasons:?}"),
            TIMEOUT,
            || {
                let role = self.role(name)?.ok_or("the object does not exist")?;
                let ready = condition(&role, "Ready").ok_or("no Ready condition")?;
                if ready.0 == "False" && reasons.contains(&ready.1.as_str()) {
                    Ok(ready.2)
                } else {
                    Err(format!("Ready is {ready:?}"))
                }
            },
        )
    }

    fn wait_gone(&self, name: &str) {
        poll(&format!("IAMRole {name} gone"), TIMEOUT, || {
            match self.role(name)? {
                None => Ok(()),
                Some(role) => Err(format!(
                    "still there, conditions {:?}",
                    role.status.map(|s| s.conditions)
                )),
            }
        });
    }
}

/// `(status, reason, message)` of a condition.
fn condition(role: &IAMRole, type_: &str) -> Option<(String, String, String)> {
    role.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn json_equal(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Every way the role in moto and the object's status differ from the object's spec.
fn mismatches(
    role: &IAMRole,
    observed: &ObservedRole,
    provider: &AWSProvider,
    foreign: &BTreeSet<String>,
) -> Vec<String> {
    let spec = &role.spec;
    let default_tags = &provider.spec.default_tags.clone().unwrap_or_default();
    let trust = effective_trust_policy(
        spec,
        role.metadata.namespace.as_deref().unwrap_or_default(),
        &ProviderFacts::of(provider),
    );
    let mut problems = Vec::new();
    let mut check = |field: &str, ok: bool, detail: String| {
        if !ok {
            problems.push(format!("{field}: {detail}"));
        }
    };
    let path = spec.path.clone().unwrap_or_else(|| "/".to_owned());
    check(
        "path",
        observed.path == path,
        format!("{} vs {path}", observed.path),
    );
    let description = spec.description.clone().filter(|d| !d.is_empty());
    check(
        "description",
        observed.description == description,
        format!("{:?} vs {description:?}", observed.description),
    );
    let duration = spec.max_session_duration.unwrap_or(3600);
    check(
        "maxSessionDuration",
        observed.max_session_duration == duration,
        format!("{} vs {duration}", observed.max_session_duration),
    );
    check(
        "trust policy",
        trust
            .as_ref()
            .is_ok_and(|trust| json_equal(&observed.trust_policy, trust)),
        format!("{} vs {trust:?}", observed.trust_policy),
    );
    let managed: BTreeSet<String> = spec.managed_policy_arns.iter().flatten().cloned().collect();
    let attached: BTreeSet<String> = observed
        .managed_policies
        .difference(foreign)
        .cloned()
        .collect();
    check(
        "managed policies",
        attached == managed,
        format!("{attached:?} vs {managed:?}"),
    );
    check(
        "hand-attached policies kept",
        foreign.is_subset(&observed.managed_policies),
        format!("{foreign:?} not all in {:?}", observed.managed_policies),
    );
    let inline: BTreeMap<String, String> = spec
        .all_inline_policies()
        .map(|p| (p.policy_name.clone(), p.policy_document.clone()))
        .collect();
    let same_inline = inline.len() == observed.inline_policies.len()
        && inline.iter().all(|(name, document)| {
            observed
                .inline_policies
                .get(name)
                .is_some_and(|d| json_equal(d, document))
        });
    check(
        "inline policies",
        same_inline,
        format!(
            "{:?} vs {:?}",
            observed.inline_policies.keys().collect::<Vec<_>>(),
            inline.keys().collect::<Vec<_>>()
        ),
    );
    check(
        "permissions boundary",
        observed.permissions_boundary == spec.permissions_boundary,
        format!(
            "{:?} vs {:?}",
            observed.permissions_boundary, spec.permissions_boundary
        ),
    );
    // The role's own tags win over the provider's, keys compared ignoring case as IAM does.
    let mut tags = default_tags.clone();
    for (key, value) in spec.tags.clone().unwrap_or_default() {
        tags.retain(|existing, _| existing.to_lowercase() != key.to_lowercase());
        tags.insert(key, value);
    }
    let namespace = role.metadata.namespace.clone().unwrap_or_default();
    let name = role.metadata.name.clone().unwrap_or_default();
    tags.insert(OWNER_TAG_KEY.to_owned(), format!("{namespace}/{name}"));
    if !managed.is_empty() {
        tags.insert(POLICIES_TAG_KEY.to_owned(), policies_tag_value(&managed));
    }
    let observed_tags: BTreeMap<String, String> = observed
        .tags
        .iter()
        .filter(|(k, _)| !k.to_lowercase().starts_with("aws:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    check(
        "tags",
        observed_tags == tags,
        format!("{observed_tags:?} vs {tags:?}"),
    );
    let status = role.status.clone().unwrap_or_default();
    check(
        "status.ready",
        status.ready,
        format!("{:?}", status.conditions),
    );
    check(
        "status.observedGeneration",
        status.observed_generation == role.metadata.generation,
        format!(
            "{:?} vs {:?}",
            status.observed_generation, role.metadata.generation
        ),
    );
    check(
        "status.roleArn",
        status.role_arn.as_deref() == Some(observed.arn.as_str()),
        format!("{:?} vs {}", status.role_arn, observed.arn),
    );
    check(
        "status.roleId",
        status.role_id.as_deref() == Some(observed.role_id.as_str()),
        format!("{:?} vs {}", status.role_id, observed.role_id),
    );
    check(
        "status.createDate",
        status.create_date.as_deref().is_some_and(|d| !d.is_empty()),
        format!("{:?}", status.create_date),
    );
    let tracked: BTreeSet<String> = status.attached_policy_arns.iter().cloned().collect();
    check(
        "status.attachedPolicyArns",
        tracked == managed,
        format!("{tracked:?} vs {managed:?}"),
    );
    for type_ in ["Ready", "Synced"] {
        let found = condition(role, type_);
        check(
            type_,
            found.as_ref().is_some_and(|c| c.0 == "True"),
            format!("{found:?}"),
        );
    }
    check(
        "finalizer",
        role.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == FINALIZER),
        format!("{:?}", role.metadata.finalizers),
    );
    problems
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("manifests/examples"))
        .expect("examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("iamrole-"))
        })
        .collect();
    files.sort();
    files
}

/// A seed example as applied here: its provider is the test's.
fn example_manifest(file: &Path) -> String {
    std::fs::read_to_string(file)
        .expect("example")
        .replace("name: production-aws", &format!("name: {PROVIDER}"))
}

fn object_name(manifest: &str) -> String {
    let value: Value = serde_norway::from_str(manifest).expect("example YAML");
    value["metadata"]["name"]
        .as_str()
        .expect("metadata.name")
        .to_owned()
}

/// The seed example whose roleName another example also uses: applied later, to prove the conflict.
const DUPLICATE_EXAMPLE: &str = "iamrole-lambda-exec-role.yaml";

fn role_manifest(name: &str, spec: Value) -> String {
    json!({
        "apiVersion": "aws-infra-operator.runner.codes/v1alpha1",
        "kind": "IAMRole",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    })
    .to_string()
}

/// Step 1: The test's Secret + AWSProvider (the seed's `localstack`, pointed at moto) becomes
/// Ready; every seed example reaches Ready and its role in moto matches the spec field by field.
fn seed_examples_converge(world: &World) {
    let moto = world.stack.moto_url().expect("moto runs");
    let provider =
        std::fs::read_to_string(repo().join("manifests/examples/awsprovider-localstack.yaml"))
            .expect("provider example");
    let provider = format!(
        "{}\n  endpoint: {moto}\n  driftDetection:\n    interval: {DRIFT_INTERVAL}\n",
        provider.trim_end()
    );
    world.apply(&provider);
    poll("AWSProvider localstack Ready", TIMEOUT, || {
        let provider = world
            .block_on(world.providers().get(PROVIDER))
            .map_err(|e| e.to_string())?;
        let status = provider.status.ok_or("no status")?;
        if status.ready
            && status.account_id.as_deref() == Some("123456789012")
            && status.caller_identity.is_some()
            && status.last_authentication_time.is_some()
            && status.observed_generation == provider.metadata.generation
        {
            Ok(())
        } else {
            Err(format!("{status:?}"))
        }
    });
    let mut names = Vec::new();
    for file in examples() {
        if file.ends_with(DUPLICATE_EXAMPLE) {
            continue;
        }
        let manifest = example_manifest(&file);
        world.apply(&manifest);
        names.push(object_name(&manifest));
    }
    for name in &names {
        world.wait_converged(name, &BTreeSet::new());
    }
    // A role the operator never saw is created without reading IAM first.
    let metrics = world.metrics();
    let calls = |operation: &str| {
        metric_sum(&metrics, "infra_operator_aws_api_calls_total", |labels| {
            labels.get("operation").map(String::as_str) == Some(operation)
        })
    };
    assert_eq!(
        (calls("CreateRole"), calls("GetRole")),
        (names.len() as f64, 0.0),
        "CreateRole and GetRole calls for {} new roles",
        names.len()
    );
    // Adding the finalizer leaves the spec as it was: the API server does not call the webhooks.
    let reviewed = |operation: &str| {
        metric_sum(
            &metrics,
            "infra_operator_admission_requests_total",
            |labels| {
                labels.get("kind").map(String::as_str) == Some("IAMRole")
                    && labels.get("operation").map(String::as_str) == Some(operation)
            },
        )
    };
    assert!(
        reviewed("CREATE") >= 2.0 * names.len() as f64,
        "both webhooks review every CREATE"
    );
    assert_eq!(
        reviewed("UPDATE"),
        0.0,
        "IAMRole UPDATEs sent to the webhooks"
    );
    // What happened is told as Events on the object.
    let reasons = world
        .stack
        .kubectl_ok(&[
            "get",
            "events",
            "-n",
            NS,
            "--field-selector",
            "involvedObject.name=e2e-ec2-role",
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .expect("kubectl get events");
    assert!(
        reasons.split_whitespace().any(|r| r == "Created"),
        "events: {reasons}"
    );
}

/// Step 2: A resync of unchanged roles makes no IAM write call: the operator's /metrics before and
/// after every role was reconciled again (drift interval of the provider).
fn resync_writes_nothing(world: &World) {
    let roles = world
        .block_on(world.roles().list(&Default::default()))
        .expect("list IAMRoles")
        .items
        .len() as f64;
    let before = world.metrics();
    let (writes, reconciles) = (iam_writes(&before), role_reconciles(&before));
    assert!(writes > 0.0, "no IAM writes counted at all:\n{before}");
    // Each role resyncs every ~10 s: wait for two rounds.
    let after = poll("two resync rounds", TIMEOUT, || {
        let text = world.metrics();
        let done = role_reconciles(&text) - reconciles;
        if done >= 2.0 * roles {
            Ok(text)
        } else {
            Err(format!("{done} reconciles of {roles} roles"))
        }
    });
    assert_eq!(
        iam_writes(&after),
        writes,
        "IAM writes during resyncs of unchanged roles:\nbefore:\n{before}\nafter:\n{after}"
    );
}

fn update_target_spec() -> Value {
    json!({
        "providerRef": {"name": PROVIDER},
        "roleName": "e2e-update-target",
        "description": "first description",
        "assumeRolePolicyDocument": EC2_TRUST,
        "managedPolicyArns": [S3_READ],
        "inlinePolicies": [{"policyName": "read-logs", "policyDocument": READ_LOGS}],
        "tags": {"team": "platform", "app": "target"},
    })
}

/// Step 3: Every kind of update converges, a policy attached by hand is never detached, and drift
/// made directly in IAM is healed at the next resync.
fn updates_and_drift_converge(world: &World) {
    let name = "update-target";
    world.apply(&role_manifest(name, update_target_spec()));
    world.wait_converged(name, &BTreeSet::new());
    // Attached by hand: not this object's, so never detached.
    let foreign = BTreeSet::from([DYNAMO_READ.to_owned()]);
    world
        .block_on(world.iam.apply(
            "e2e-update-target",
            &Change::AttachPolicy {
                arn: DYNAMO_READ.to_owned(),
            },
        ))
        .expect("attach by hand");
    let steps = [
        (
            "description, session, trust, attach, inline add+change, boundary set, tags add+change",
            json!({"spec": {
                "description": "second description",
                "maxSessionDuration": 7200,
                "assumeRolePolicyDocument": LAMBDA_TRUST,
                "managedPolicyArns": [S3_READ, LOGS_READ],
                "inlinePolicies": [
                    {"policyName": "read-logs", "policyDocument": READ_BUCKET},
                    {"policyName": "write-bucket", "policyDocument": WRITE_BUCKET},
                ],
                "permissionsBoundary": BOUNDARY_A,
                "tags": {"team": "payments", "tier": "backend"},
            }}),
        ),
        (
            "description cleared, detach, inline remove, boundary change, tag remove",
            json!({"spec": {
                "description": null,
                "managedPolicyArns": [LOGS_READ],
                "inlinePolicies": [{"policyName": "write-bucket", "policyDocument": WRITE_BUCKET}],
                "permissionsBoundary": BOUNDARY_B,
                "tags": {"app": null},
            }}),
        ),
        (
            "boundary removed, session back",
            json!({"spec": {"permissionsBoundary": null, "maxSessionDuration": 3600}}),
        ),
    ];
    for (what, patch) in steps {
        world.patch_role(name, patch);
        let generation = world
            .role(name)
            .expect("get")
            .and_then(|r| r.metadata.generation);
        let (role, _) = world.wait_converged(name, &foreign);
        assert_eq!(role.metadata.generation, generation, "{what}");
    }
    // Drift made in IAM directly.
    let drift = [
        Change::UpdateRole {
            description: Some("changed by hand".to_owned()),
            max_session_duration: 43200,
        },
        Change::UpdateTrustPolicy {
            document: EC2_TRUST.to_owned(),
        },
        Change::DetachPolicy {
            arn: LOGS_READ.to_owned(),
        },
        Change::PutInlinePolicy {
            name: "added-by-hand".to_owned(),
            document: READ_LOGS.to_owned(),
        },
        Change::DeleteInlinePolicy {
            name: "write-bucket".to_owned(),
        },
        Change::PutBoundary {
            arn: BOUNDARY_A.to_owned(),
        },
        Change::TagRole {
            tags: BTreeMap::from([
                ("team".to_owned(), "someone-else".to_owned()),
                ("extra".to_owned(), "by-hand".to_owned()),
            ]),
        },
        Change::UntagRole {
            keys: vec!["tier".to_owned()],
        },
    ];
    for change in &drift {
        world
            .block_on(world.iam.apply("e2e-update-target", change))
            .unwrap_or_else(|e| panic!("drift {change:?}: {e}"));
    }
    let observed = world
        .observe("e2e-update-target")
        .expect("observe")
        .expect("exists");
    assert_eq!(observed.max_session_duration, 43200, "drift not made");
    world.wait_converged(name, &foreign);
}

/// Step 3b: The memory of what an object attached survives a lost status: with the status wiped
/// (a backup restored without it), a policy removed from the spec is still detached, and the
/// policy attached by hand in step 3 still stays.
fn lost_status_still_detaches(world: &World) {
    let name = "update-target";
    let foreign = BTreeSet::from([DYNAMO_READ.to_owned()]);
    world.patch_role(
        name,
        json!({"spec": {"managedPolicyArns": [LOGS_READ, S3_READ]}}),
    );
    world.wait_converged(name, &foreign);
    world
        .block_on(world.roles().patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": null})),
        ))
        .unwrap_or_else(|e| panic!("wipe the status of {name}: {e}"));
    let wiped = world.role(name).expect("get").expect("exists");
    assert!(
        wiped
            .status
            .as_ref()
            .is_none_or(|s| s.attached_policy_arns.is_empty()),
        "status not wiped: {:?}",
        wiped.status
    );
    world.patch_role(name, json!({"spec": {"managedPolicyArns": [LOGS_READ]}}));
    let (_, observed) = world.wait_converged(name, &foreign);
    assert!(
        !observed.managed_policies.contains(S3_READ),
        "{:?}",
        observed.managed_policies
    );
    assert!(observed.managed_policies.contains(DYNAMO_READ));
}

/// Step 4: Deletion: `Delete` empties the role (instance profile, managed policies — also one
/// attached by hand — and inline policies) and deletes it; `Retain` leaves it; a provider deleted
/// first waits for its role; with the provider really gone, the condition says why and switching
/// to `Retain` releases the object.
fn deletion(world: &World) {
    // Delete, with an instance profile and policies in the way.
    let profile = "e2e-update-target-profile";
    world
        .block_on(
            world
                .raw_iam
                .create_instance_profile()
                .instance_profile_name(profile)
                .send(),
        )
        .expect("create instance profile");
    world
        .block_on(
            world
                .raw_iam
                .add_role_to_instance_profile()
                .instance_profile_name(profile)
                .role_name("e2e-update-target")
                .send(),
        )
        .expect("add role to instance profile");
    world.delete_role_object("update-target");
    world.wait_gone("update-target");
    assert!(
        world
            .observe("e2e-update-target")
            .expect("observe")
            .is_none(),
        "role still in IAM after Delete"
    );

    // Retain (seed example lambda-execution-role).
    let retained = world
        .role("lambda-execution-role")
        .expect("get")
        .expect("seed example exists");
    assert_eq!(
        retained.spec.deletion_policy,
        Some(infra_operator::api::DeletionPolicy::Retain)
    );
    world.delete_role_object("lambda-execution-role");
    world.wait_gone("lambda-execution-role");
    assert!(
        world
            .observe("lambda-execution-role")
            .expect("observe")
            .is_some(),
        "role deleted from IAM despite Retain"
    );

    // The provider deleted before its role waits for it (in-use protection), with a condition
    // naming it; the role is then deleted in IAM with the provider's credentials, and the provider
    // goes with it.
    let moto = world.stack.moto_url().expect("moto");
    let doomed_provider = format!(
        r#"{{"apiVersion":"aws-infra-operator.runner.codes/v1alpha1","kind":"AWSProvider",
        "metadata":{{"name":"doomed","namespace":"{NS}"}},
        "spec":{{"region":"us-east-1","endpoint":"{moto}",
          "accessKeyIDRef":{{"name":"aws-credentials","key":"access-key-id"}},
          "secretAccessKeyRef":{{"name":"aws-credentials","key":"secret-access-key"}}}}}}"#
    );
    let orphan = |name: &str, role_name: &str| {
        role_manifest(
            name,
            json!({
                "providerRef": {"name": "doomed"},
                "roleName": role_name,
                "assumeRolePolicyDocument": EC2_TRUST,
            }),
        )
    };
    world.apply(&doomed_provider);
    world.apply(&orphan("dependent", "e2e-dependent-role"));
    world.wait_converged("dependent", &BTreeSet::new());
    world
        .block_on(world.providers().delete("doomed", &DeleteParams::default()))
        .expect("delete provider");
    let in_use = poll("AWSProvider doomed InUse", TIMEOUT, || {
        let provider = world
            .block_on(world.providers().get_opt("doomed"))
            .map_err(|e| e.to_string())?
            .ok_or("the provider is gone while a role uses it")?;
        provider
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "InUse"))
            .map(|c| c.message)
            .ok_or_else(|| "no InUse condition".to_owned())
    });
    assert!(in_use.contains("default/dependent"), "{in_use}");
    world.delete_role_object("dependent");
    world.wait_gone("dependent");
    assert!(
        world
            .observe("e2e-dependent-role")
            .expect("observe")
            .is_none(),
        "role still in IAM after Delete"
    );
    world.wait_provider_gone("doomed");

    // A provider that is really gone (its finalizer removed by hand): the condition says why and
    // switching to `Retain` releases the object.
    world.apply(&doomed_provider);
    world.apply(&orphan("orphan", "e2e-orphan-role"));
    world.wait_converged("orphan", &BTreeSet::new());
    world.patch_provider_finalizers("doomed", json!(null));
    world
        .block_on(world.providers().delete("doomed", &DeleteParams::default()))
        .expect("delete provider");
    world.wait_provider_gone("doomed");
    world.delete_role_object("orphan");
    let message = world.wait_not_ready("orphan", "ProviderNotFound");
    assert!(message.contains("Retain"), "no way out named: {message}");
    assert!(
        world.role("orphan").expect("get").is_some(),
        "released too early"
    );
    world.patch_role("orphan", json!({"spec": {"deletionPolicy": "Retain"}}));
    world.wait_gone("orphan");
    assert!(
        world.observe("e2e-orphan-role").expect("observe").is_some(),
        "role deleted from IAM despite Retain"
    );
}

/// The objects of one team in `namespace`, as one manifest in `order`: a Secret with moto's
/// credentials, an AWSProvider using it, and two IAMRoles through it (`Delete` and `Retain`), whose
/// IAM roles are named `{prefix}-delete` and `{prefix}-retain`.
fn team_manifest(world: &World, namespace: &str, prefix: &str, order: &[usize]) -> String {
    let moto = world.stack.moto_url().expect("moto runs");
    let documents = [
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: team-credentials\n  namespace: {namespace}\n\
             stringData:\n  access-key-id: testing\n  secret-access-key: testing\n"
        ),
        format!(
            "apiVersion: aws-infra-operator.runner.codes/v1alpha1\nkind: AWSProvider\nmetadata:\n  \
             name: team-aws\n  namespace: {namespace}\nspec:\n  region: us-east-1\n  endpoint: {moto}\n  \
             accessKeyIDRef: {{name: team-credentials, key: access-key-id}}\n  \
             secretAccessKeyRef: {{name: team-credentials, key: secret-access-key}}\n"
        ),
        team_role(namespace, prefix, "Delete"),
        team_role(namespace, prefix, "Retain"),
    ];
    order
        .iter()
        .map(|&i| documents[i].clone())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn team_role(namespace: &str, prefix: &str, policy: &str) -> String {
    let suffix = policy.to_lowercase();
    format!(
        "apiVersion: aws-infra-operator.runner.codes/v1alpha1\nkind: IAMRole\nmetadata:\n  \
         name: app-{suffix}\n  namespace: {namespace}\nspec:\n  providerRef: {{name: team-aws}}\n  \
         roleName: {prefix}-{suffix}\n  deletionPolicy: {policy}\n  \
         managedPolicyArns: [{S3_READ}]\n  assumeRolePolicyDocument: '{EC2_TRUST}'\n"
    )
}

/// Applies a team's objects in `namespace` and waits until both roles exist in IAM and are Ready.
fn team_ready(world: &World, namespace: &str, prefix: &str) -> String {
    world
        .stack
        .kubectl_ok(&["create", "namespace", namespace])
        .expect("create namespace");
    let manifest = team_manifest(world, namespace, prefix, &[0, 1, 2, 3]);
    world.apply(&manifest);
    let roles: Api<IAMRole> = Api::namespaced(world.client.clone(), namespace);
    for name in ["app-delete", "app-retain"] {
        poll(&format!("{namespace}/{name} Ready"), TIMEOUT, || {
            let role = world
                .block_on(roles.get_opt(name))
                .map_err(|e| e.to_string())?
                .ok_or("no object")?;
            role.status
                .filter(|s| s.ready)
                .map(drop)
                .ok_or_else(|| "not ready".to_owned())
        });
    }
    manifest
}

/// Waits until the IAMRoles, AWSProviders and Secrets of `namespace` are all gone; then the `Delete` role is gone from IAM
/// and the `Retain` role is still there.
fn team_gone(world: &World, namespace: &str, prefix: &str) {
    poll(&format!("everything in {namespace} gone"), TIMEOUT, || {
        let left = world
            .stack
            .kubectl_ok(&[
                "get",
                "iamroles,awsproviders,secrets",
                "-n",
                namespace,
                "-o",
                "name",
            ])
            .map_err(|e| e.to_string())?;
        let left = left.trim();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still there: {left}"))
        }
    });
    assert_eq!(
        world.observe(&format!("{prefix}-delete")).expect("observe"),
        None,
        "the Delete role is still in IAM"
    );
    assert!(
        world
            .observe(&format!("{prefix}-retain"))
            .expect("observe")
            .is_some(),
        "the Retain role was deleted from IAM"
    );
}

/// Step 7: `kubectl delete -f` of a file holding a team's Secret, AWSProvider and IAMRoles
/// completes in either order of the file: the provider waits for its roles (in-use protection),
/// the roles are deleted in IAM with the provider's last credentials although the Secret went
/// first, nothing is left and nothing hangs.
fn delete_file_in_any_order(world: &World) {
    for (namespace, prefix, order) in [
        ("team-forward", "e2e-forward", [0, 1, 2, 3]),
        ("team-reverse", "e2e-reverse", [3, 2, 1, 0]),
    ] {
        team_ready(world, namespace, prefix);
        let provider = world
            .block_on(
                Api::<AWSProvider>::namespaced(world.client.clone(), namespace).get("team-aws"),
            )
            .expect("provider");
        assert!(
            provider
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == FINALIZER),
            "the provider is protected while in use"
        );
        let manifest = team_manifest(world, namespace, prefix, &order);
        let out = world
            .stack
            .kubectl_with_input(&["delete", "--timeout=120s", "-f", "-"], &manifest)
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl delete ({namespace}) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        team_gone(world, namespace, prefix);
    }
}

/// Step 8: `kubectl delete namespace` completes (the namespace controller of
/// kube-controller-manager deletes everything in it): the `Delete` role is gone from IAM, the
/// `Retain` role stays, and the namespace object is gone.
fn delete_namespace(world: &World) {
    let namespace = "team-teardown";
    let prefix = "e2e-teardown";
    team_ready(world, namespace, prefix);
    world
        .stack
        .kubectl_ok(&["delete", "namespace", namespace, "--wait=false"])
        .expect("delete namespace");
    poll(&format!("namespace {namespace} gone"), TIMEOUT, || {
        let out = world
            .stack
            .kubectl()
            .args(["get", "namespace", namespace, "-o", "name"])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Err(format!(
                "still there: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        } else {
            Ok(())
        }
    });
    team_gone(world, namespace, prefix);
}

/// Step 5: A role that exists without the owner tag is left untouched (`RoleExists`) until the
/// object is annotated to adopt it; a role owned by another object is a conflict and never touched.
fn ownership(world: &World) {
    // Two objects, one roleName: the seed's lambda-exec-role names the role of
    // lambda-execution-role (whose object was deleted with Retain above, so the role still carries
    // its owner tag).
    let manifest = example_manifest(&repo().join("manifests/examples").join(DUPLICATE_EXAMPLE));
    let duplicate = object_name(&manifest);
    let before = world
        .observe("lambda-execution-role")
        .expect("observe")
        .expect("retained role exists");
    world.apply(&manifest);
    let message = world.wait_not_ready(&duplicate, "RoleConflict");
    assert!(
        message.contains("default/lambda-execution-role"),
        "{message}"
    );
    let after = world
        .observe("lambda-execution-role")
        .expect("observe")
        .expect("exists");
    assert_eq!(before, after, "a role owned by another object was touched");

    // Without an owner tag: RoleExists, untouched, then adopted.
    world
        .block_on(world.iam.create_role(&CreateRole {
            name: "e2e-preexisting".to_owned(),
            path: "/".to_owned(),
            trust_policy: EC2_TRUST.to_owned(),
            description: Some("made by hand".to_owned()),
            max_session_duration: 3600,
            permissions_boundary: None,
            tags: BTreeMap::from([("origin".to_owned(), "manual".to_owned())]),
        }))
        .expect("create a role by hand");
    let before = world
        .observe("e2e-preexisting")
        .expect("observe")
        .expect("exists");
    world.apply(&role_manifest(
        "adopt-me",
        json!({
            "providerRef": {"name": PROVIDER},
            "roleName": "e2e-preexisting",
            "description": "managed now",
            "assumeRolePolicyDocument": LAMBDA_TRUST,
            "managedPolicyArns": [S3_READ],
            "tags": {"team": "platform"},
        }),
    ));
    let message = world.wait_not_ready("adopt-me", "RoleExists");
    assert!(
        message.contains("aws-infra-operator.runner.codes/adopt"),
        "{message}"
    );
    let after = world
        .observe("e2e-preexisting")
        .expect("observe")
        .expect("exists");
    assert_eq!(before, after, "a role without the owner tag was touched");
    world.patch_role(
        "adopt-me",
        json!({"metadata": {"annotations": {"aws-infra-operator.runner.codes/adopt": "true"}}}),
    );
    world.wait_converged("adopt-me", &BTreeSet::new());

    // Once the retained role loses its owner tag, the duplicate may adopt it too.
    world
        .block_on(world.iam.apply(
            "lambda-execution-role",
            &Change::UntagRole {
                keys: vec![OWNER_TAG_KEY.to_owned()],
            },
        ))
        .expect("untag by hand");
    world.wait_not_ready(&duplicate, "RoleExists");
    world.patch_role(
        &duplicate,
        json!({"metadata": {"annotations": {"aws-infra-operator.runner.codes/adopt": "true"}}}),
    );
    world.wait_converged(&duplicate, &BTreeSet::new());
}

/// Step 5b: The provider follows its Secret: a key removed from it makes the provider (and its
/// roles) not ready at once, with the reason; the key put back makes them ready again.
fn provider_follows_its_secret(world: &World) {
    let secrets: Api<Secret> = Api::namespaced(world.client.clone(), NS);
    let patch = |patch: Value| {
        world
            .block_on(secrets.patch(
                "aws-credentials",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            ))
            .unwrap_or_else(|e| panic!("patch the Secret: {e}"));
    };
    let provider_ready = |want: bool| {
        poll(&format!("AWSProvider ready={want}"), TIMEOUT, || {
            let provider = world
                .block_on(world.providers().get(PROVIDER))
                .map_err(|e| e.to_string())?;
            let status = provider.status.ok_or("no status")?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
            match ready {
                Some(c) if status.ready == want => Ok(format!("{}: {}", c.reason, c.message)),
                _ => Err(format!("{status:?}")),
            }
        })
    };
    patch(json!({"data": {"access-key-id": null}}));
    let condition = provider_ready(false);
    assert!(
        condition.starts_with("SecretUnavailable: ") && condition.contains("access-key-id"),
        "{condition}"
    );
    world.wait_not_ready("e2e-ec2-role", "ProviderNotReady");
    patch(json!({"stringData": {"access-key-id": "test"}}));
    provider_ready(true);
    world.wait_converged("e2e-ec2-role", &BTreeSet::new());
}

/// Step 5c: An IAMRole created while the webhooks are not registered (so without the finalizer
/// the mutating webhook adds) gets the finalizer from the reconciler before its role is created,
/// converges, and its deletion still deletes the role.
fn finalizer_without_the_webhook(world: &World) {
    let name = "no-webhook";
    world
        .stack
        .unregister_webhooks()
        .expect("unregister the webhooks");
    let mut spec = update_target_spec();
    spec["roleName"] = json!("e2e-no-webhook");
    let out = world
        .stack
        .kubectl_with_input(
            &["apply", "-o", "json", "-f", "-"],
            &role_manifest(name, spec),
        )
        .expect("kubectl runs");
    world
        .stack
        .register_webhooks()
        .expect("register the webhooks again");
    assert!(out.status.success(), "{out:?}");
    let created: Value = serde_json::from_slice(&out.stdout).expect("the created object");
    assert_eq!(
        created["metadata"].get("finalizers"),
        None,
        "admitted without the mutating webhook"
    );
    world.wait_converged(name, &BTreeSet::new());
    world.delete_role_object(name);
    world.wait_gone(name);
    assert!(
        world.observe("e2e-no-webhook").expect("GetRole").is_none(),
        "the role was deleted with the object"
    );
}

/// Step 6a: The operator killed (SIGKILL) right after CreateRole: once restarted, exactly one role,
/// converged.
fn crash_mid_create(world: &mut World) {
    let inline: Vec<Value> = (0..8)
        .map(|i| json!({"policyName": format!("policy-{i}"), "policyDocument": READ_BUCKET}))
        .collect();
    world.apply(&role_manifest(
        "crash-test",
        json!({
            "providerRef": {"name": PROVIDER},
            "roleName": "e2e-crash-test",
            "path": "/crash/",
            "assumeRolePolicyDocument": EC2_TRUST,
            "managedPolicyArns": [S3_READ, LOGS_READ, DYNAMO_READ],
            "inlinePolicies": inline,
        }),
    ));
    let mut seen_partial = None;
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(role)) = world.block_on(world.iam.observe_role("e2e-crash-test")) {
            seen_partial = Some(role.inline_policies.len() + role.managed_policies.len());
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    world
        .stack
        .operator()
        .expect("operator runs")
        .signal(libc::SIGKILL);
    let seen = seen_partial.expect("the role was created");
    eprintln!("operator killed after CreateRole with {seen} of 11 policies in place");
    world
        .stack
        .restart_operator_with(operator_args(IDENTITY))
        .expect("restart the operator");
    world.wait_converged("crash-test", &BTreeSet::new());
    let roles = world
        .block_on(world.raw_iam.list_roles().path_prefix("/crash/").send())
        .expect("list roles");
    let names: Vec<&str> = roles.roles().iter().map(|r| r.role_name()).collect();
    assert_eq!(names, ["e2e-crash-test"], "exactly one role expected");
}

/// Step 6d: once the crash test's object is deleted (policy Delete), nothing of it is left in IAM.
fn crash_role_deleted_leaves_nothing(world: &mut World) {
    world.delete_role_object("crash-test");
    world.wait_gone("crash-test");
    let roles = world
        .block_on(world.raw_iam.list_roles().path_prefix("/crash/").send())
        .expect("list roles");
    let names: Vec<&str> = roles.roles().iter().map(|r| r.role_name()).collect();
    assert!(names.is_empty(), "left in IAM after deletion: {names:?}");
    let observed = world
        .block_on(world.iam.observe_role("e2e-crash-test"))
        .expect("observe");
    assert!(observed.is_none(), "role still observable: {observed:?}");
}

/// A second operator process, stopped when dropped.
struct SecondOperator {
    child: Child,
    admin_port: u16,
}

impl Drop for SecondOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a second operator process against the same API server: the reconciler alone
/// (`controller`), or, with `webhook`, the webhook too (`run`, serving on its own port with the stack
/// operator's certificate).
fn start_second_operator(world: &World, identity: &str, webhook: bool) -> SecondOperator {
    let admin_port = free_port().expect("port");
    let mut mode = vec!["controller".to_owned()];
    if webhook {
        let cert_dir = world
            .stack
            .operator()
            .expect("the stack's operator")
            .cert_dir
            .clone();
        mode = vec![
            "run".to_owned(),
            "--cert-dir".to_owned(),
            cert_dir.display().to_string(),
            "--bind".to_owned(),
            format!("127.0.0.1:{}", free_port().expect("port")),
        ];
    }
    let log =
        File::create(world.stack.dir().join(format!("operator-{identity}.log"))).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_infra-operator"))
        .args(&mode)
        .args([
            "--lease-namespace",
            LEASE_NS,
            "--identity",
            identity,
            "--lease-duration",
            "6s",
            "--admin-bind",
            &format!("127.0.0.1:{admin_port}"),
        ])
        .env("KUBECONFIG", world.stack.operator_kubeconfig())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start a second operator");
    SecondOperator { child, admin_port }
}

/// IAM calls (any operation) counted in an operator's metrics.
fn iam_calls(metrics: &str) -> f64 {
    metric_sum(metrics, "infra_operator_aws_api_calls_total", |_| true)
}

fn lease_holder(world: &World) -> Result<String, String> {
    world
        .stack
        .kubectl_ok(&[
            "get",
            "lease",
            "-n",
            LEASE_NS,
            LEASE,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .map_err(|e| e.to_string())
}

/// Step 6b: Two operator processes (the second one running `controller` only): only the Lease
/// holder reconciles; when it stops, the other takes over and heals drift.
fn leader_election(world: &mut World) {
    poll("the stack's operator to lead", TIMEOUT, || {
        let holder = lease_holder(world)?;
        if holder == IDENTITY {
            Ok(())
        } else {
            Err(holder)
        }
    });
    let second = start_second_operator(world, "e2e-operator-b", false);
    poll("the second operator to serve /metrics", TIMEOUT, || {
        http_get(second.admin_port, "/metrics")
    });
    // While the first one leads, the second one reconciles nothing (several resync intervals).
    thread::sleep(Duration::from_secs(15));
    let metrics = http_get(second.admin_port, "/metrics").expect("metrics");
    assert_eq!(role_reconciles(&metrics), 0.0, "a follower reconciled");
    assert_eq!(lease_holder(world).expect("lease"), IDENTITY);
    // The leader stops (and releases the Lease): the second one takes over and heals drift.
    world.stack.stop_operator();
    poll("the second operator to lead", TIMEOUT, || {
        let holder = lease_holder(world)?;
        if holder == "e2e-operator-b" {
            Ok(())
        } else {
            Err(holder)
        }
    });
    world
        .block_on(world.iam.apply(
            "e2e-crash-test",
            &Change::DeleteInlinePolicy {
                name: "policy-0".to_owned(),
            },
        ))
        .expect("drift");
    world.wait_converged("crash-test", &BTreeSet::new());
    let metrics = http_get(second.admin_port, "/metrics").expect("metrics");
    assert!(
        role_reconciles(&metrics) > 0.0,
        "the new leader reconciled nothing"
    );
    drop(second);
    world
        .stack
        .start_operator()
        .expect("restart the stack's operator");
    poll("the stack's operator to lead again", TIMEOUT, || {
        let holder = lease_holder(world)?;
        if holder == IDENTITY {
            Ok(())
        } else {
            Err(holder)
        }
    });
}

/// Step 6c: moto stopped: the condition shows the error; once it is back (empty, as a fresh AWS
/// account), the role converges again.
fn aws_outage(world: &mut World) {
    let url = world.stack.moto_url().expect("moto");
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("moto port");
    world.stack.stop_moto();
    world.patch_role(
        "crash-test",
        json!({"spec": {"description": "changed during the outage"}}),
    );
    // Either the role's own IAM call failed, or the provider's check did first.
    let message = world.wait_not_ready_with("crash-test", &["Unreachable", "ProviderNotReady"]);
    assert!(message.contains("Unreachable"), "{message}");
    world.stack.start_moto(Some(port)).expect("moto back");
    world.wait_converged("crash-test", &BTreeSet::new());
}

#[test]
fn the_reconciler_makes_iam_match_on_a_real_api_server_and_moto() {
    let stack = Stack::start(StackOptions {
        repo_root: repo(),
        operator_bin: PathBuf::from(env!("CARGO_BIN_EXE_infra-operator")),
        operator_args: Some(operator_args(IDENTITY)),
        moto: true,
        dir: None,
    })
    .unwrap_or_else(|e| panic!("local stack: {e}"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(async {
        let kubeconfig = Kubeconfig::read_from(stack.kubeconfig()).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("client config");
        Client::try_from(config).expect("client")
    });
    let moto = stack.moto_url().expect("moto runs");
    let iam = rt
        .block_on(AwsClients::new(&moto::moto_settings(&moto), None))
        .iam();
    let raw_iam = moto::raw_iam(&moto);
    let mut world = World {
        rt,
        stack,
        client,
        iam,
        raw_iam,
    };

    let mut failures = Vec::new();
    let mut step = |name: &str, world: &mut World, f: &dyn Fn(&mut World)| {
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| f(world)));
        eprintln!("step `{name}` took {:?}", started.elapsed());
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!(
                "{name}: {message}\n--- operator log\n{}",
                world
                    .stack
                    .operator()
                    .map(|o| o.log_tail(30))
                    .unwrap_or_default()
            ));
        }
    };
    // Steps 1 to 5b run with two operator processes at once, both `run` (webhook + reconciler): the
    // stack's, which leads, and a standby, which serves its webhook but must not reconcile or call IAM
    // while the other holds the Lease.
    poll("the stack's operator to lead", TIMEOUT, || {
        let holder = lease_holder(&world)?;
        if holder == IDENTITY {
            Ok(())
        } else {
            Err(holder)
        }
    });
    let standby = start_second_operator(&world, "e2e-operator-standby", true);
    poll(
        "the standby operator's webhook to be ready",
        TIMEOUT,
        || http_get(standby.admin_port, "/readyz"),
    );
    step("1 seed examples converge", &mut world, &|w| {
        seed_examples_converge(w)
    });
    step("2 resync writes nothing", &mut world, &|w| {
        resync_writes_nothing(w)
    });
    step("3 updates and drift", &mut world, &|w| {
        updates_and_drift_converge(w)
    });
    step("3b lost status still detaches", &mut world, &|w| {
        lost_status_still_detaches(w)
    });
    step("4 deletion", &mut world, &|w| deletion(w));
    step("5 ownership", &mut world, &|w| ownership(w));
    step("7 delete -f in any order", &mut world, &|w| {
        delete_file_in_any_order(w)
    });
    step("8 delete namespace", &mut world, &|w| delete_namespace(w));
    step("5b provider follows its Secret", &mut world, &|w| {
        provider_follows_its_secret(w)
    });
    step("5c finalizer without the webhook", &mut world, &|w| {
        finalizer_without_the_webhook(w)
    });
    step("standby stayed idle", &mut world, &|w| {
        let metrics = http_get(standby.admin_port, "/metrics").expect("standby metrics");
        assert_eq!(role_reconciles(&metrics), 0.0, "the standby reconciled");
        assert_eq!(iam_calls(&metrics), 0.0, "the standby called IAM");
        assert_eq!(lease_holder(w).expect("lease"), IDENTITY);
    });
    drop(standby);
    step("6a crash mid-create", &mut world, &|w| crash_mid_create(w));
    step("6b leader election", &mut world, &|w| leader_election(w));
    step("6c AWS outage", &mut world, &|w| aws_outage(w));
    step("6d crash role deleted", &mut world, &|w| {
        crash_role_deleted_leaves_nothing(w)
    });
    assert!(
        failures.is_empty(),
        "{} step(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
