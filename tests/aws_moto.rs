//! The AWS layer against a real moto server (IAM and STS on 127.0.0.1): caller identity with static
//! keys and with a web identity token, creating and observing a role field by field, every
//! `Change`, pagination of every list, error mapping and the deletion path. Each test starts its
//! own moto (stopped when dropped) and is bounded by a timeout.

#[path = "support/moto.rs"]
mod moto;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_operator::aws::{
    AwsClients, AwsErrorKind, CallObserver, CredentialSource, IamApi, ProviderSettings, RESULT_OK,
    SecretString, WEB_IDENTITY_SESSION_NAME, is_write,
};
use infra_operator::iam::{Change, CreateRole, OWNER_TAG_KEY};
use local_stack::{Moto, Tools};
use tempfile::TempDir;

/// moto's default account.
const ACCOUNT: &str = "123456789012";

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

const READ_BUCKET: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::reports/*"}]}"#;

/// Pretty-printed, with a literal `%41` that must not be decoded.
const WRITE_BUCKET: &str = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\n      \"Effect\": \"Allow\",\n      \"Action\": [\"s3:PutObject\"],\n      \"Resource\": \"arn:aws:s3:::reports/%41/*\"\n    }\n  ]\n}";

const READ_ONLY: &str = "arn:aws:iam::aws:policy/ReadOnlyAccess";

const POWER_USER: &str = "arn:aws:iam::aws:policy/PowerUserAccess";

const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// A moto server and its log directory.
struct Stack {
    moto: Moto,
    dir: TempDir,
}

fn start_moto() -> Stack {
    let tools = Tools::locate().expect("local stack tools (run `make tools`)");
    let dir = TempDir::new().expect("temporary directory");
    let moto = Moto::start(&tools, dir.path()).expect("moto starts");
    Stack { moto, dir }
}

/// Runs `test` against a fresh moto, bounded by [`TEST_TIMEOUT`]; prints moto's log on failure.
async fn with_moto<F, Fut>(test: F)
where
    F: FnOnce(String, PathBuf) -> Fut,
    Fut: Future<Output = ()>,
{
    let stack = start_moto();
    let outcome = tokio::time::timeout(
        TEST_TIMEOUT,
        test(stack.moto.url(), stack.dir.path().to_path_buf()),
    )
    .await;
    if outcome.is_err() {
        panic!(
            "test did not finish within {TEST_TIMEOUT:?}; moto log:\n{}",
            stack.moto.log_tail(40)
        );
    }
}

fn static_settings(endpoint: &str) -> ProviderSettings {
    ProviderSettings {
        region: "us-east-1".to_owned(),
        endpoint: Some(endpoint.to_owned()),
        credentials: CredentialSource::Static {
            access_key_id: SecretString::new("testing"),
            secret_access_key: SecretString::new("testing"),
            session_token: None,
        },
    }
}

/// Every call the clients reported, as `(operation, result)`.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<(&'static str, &'static str)>>>);

impl Calls {
    fn observer(&self) -> CallObserver {
        let calls = self.0.clone();
        Arc::new(move |operation, result| {
            calls
                .lock()
                .expect("not poisoned")
                .push((operation, result));
        })
    }

    fn all(&self) -> Vec<(&'static str, &'static str)> {
        self.0.lock().expect("not poisoned").clone()
    }

    fn count(&self, operation: &str) -> usize {
        self.all().iter().filter(|(op, _)| *op == operation).count()
    }

    fn writes(&self) -> usize {
        self.all().iter().filter(|(op, _)| is_write(op)).count()
    }

    fn clear(&self) {
        self.0.lock().expect("not poisoned").clear();
    }
}

async fn iam(endpoint: &str, calls: &Calls) -> IamApi {
    AwsClients::new(&static_settings(endpoint), Some(calls.observer()))
        .await
        .iam()
}

fn minimal_role(name: &str) -> CreateRole {
    CreateRole {
        name: name.to_owned(),
        path: "/".to_owned(),
        trust_policy: TRUST.to_owned(),
        description: None,
        max_session_duration: 3600,
        permissions_boundary: None,
        tags: BTreeMap::from([(OWNER_TAG_KEY.to_owned(), "apps/minimal".to_owned())]),
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("JSON document")
}

#[tokio::test]
async fn caller_identity_with_static_keys() {
    with_moto(|endpoint, _| async move {
        let calls = Calls::default();
        let clients = AwsClients::new(&static_settings(&endpoint), Some(calls.observer())).await;
        let identity = clients.caller_identity().await.expect("GetCallerIdentity");
        assert_eq!(identity.account, ACCOUNT);
        assert!(identity.arn.starts_with("arn:aws:"), "{identity:?}");
        assert!(identity.arn.contains(ACCOUNT), "{identity:?}");
        assert!(!identity.user_id.is_empty());
        assert_eq!(calls.all(), vec![("GetCallerIdentity", RESULT_OK)]);
    })
    .await;
}

#[tokio::test]
async fn web_identity_token_is_exchanged_through_the_endpoint() {
    with_moto(|endpoint, dir| async move {
        let token_file = dir.join("token");
        std::fs::write(
            &token_file,
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2ln\n",
        )
        .expect("write token");
        let settings = ProviderSettings {
            region: "us-east-1".to_owned(),
            endpoint: Some(endpoint.clone()),
            credentials: CredentialSource::WebIdentity {
                role_arn: "arn:aws:iam::111111111111:role/irsa".to_owned(),
                token_file: token_file.clone(),
                session_name: WEB_IDENTITY_SESSION_NAME.to_owned(),
            },
        };
        let calls = Calls::default();
        let clients = AwsClients::new(&settings, Some(calls.observer())).await;
        let identity = clients.caller_identity().await.expect("GetCallerIdentity");
        assert_eq!(identity.account, "111111111111");
        assert!(
            identity
                .arn
                .ends_with(&format!("assumed-role/irsa/{WEB_IDENTITY_SESSION_NAME}")),
            "{identity:?}"
        );
        // The credentials are cached: a second call does not assume the role again.
        clients.caller_identity().await.expect("GetCallerIdentity");
        assert_eq!(
            calls.all(),
            vec![
                ("AssumeRoleWithWebIdentity", RESULT_OK),
                ("GetCallerIdentity", RESULT_OK),
                ("GetCallerIdentity", RESULT_OK),
            ]
        );

        let missing = ProviderSettings {
            credentials: CredentialSource::WebIdentity {
                role_arn: "arn:aws:iam::111111111111:role/irsa".to_owned(),
                token_file: dir.join("no-such-token"),
                session_name: WEB_IDENTITY_SESSION_NAME.to_owned(),
            },
            ..settings
        };
        let clients = AwsClients::new(&missing, None).await;
        let err = clients.caller_identity().await.expect_err("no token");
        assert_eq!(err.kind(), AwsErrorKind::InvalidCredentials, "{err}");
        assert!(!err.is_transient());
        assert!(
            err.to_string()
                .starts_with("GetCallerIdentity: InvalidCredentials: ")
        );
        assert!(err.message().contains("no-such-token"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn created_role_is_observed_field_by_field() {
    with_moto(|endpoint, _| async move {
        let calls = Calls::default();
        let api = iam(&endpoint, &calls).await;
        let tags = BTreeMap::from([
            (OWNER_TAG_KEY.to_owned(), "payments/api".to_owned()),
            ("team".to_owned(), "platform".to_owned()),
            ("empty".to_owned(), String::new()),
        ]);
        let request = CreateRole {
            name: "api-server".to_owned(),
            path: "/team/".to_owned(),
            trust_policy: TRUST.to_owned(),
            description: Some("Role of the API server".to_owned()),
            max_session_duration: 7200,
            permissions_boundary: Some(POWER_USER.to_owned()),
            tags: tags.clone(),
        };
        let created = api.create_role(&request).await.expect("CreateRole");
        assert_eq!(
            created.arn,
            format!("arn:aws:iam::{ACCOUNT}:role/team/api-server")
        );
        assert!(!created.role_id.is_empty());
        assert!(created.create_date.contains('T'), "{}", created.create_date);
        assert!(
            created.create_date.ends_with('Z'),
            "{}",
            created.create_date
        );

        for change in [
            Change::AttachPolicy {
                arn: READ_ONLY.to_owned(),
            },
            Change::PutInlinePolicy {
                name: "read-bucket".to_owned(),
                document: READ_BUCKET.to_owned(),
            },
            Change::PutInlinePolicy {
                name: "write-bucket".to_owned(),
                document: WRITE_BUCKET.to_owned(),
            },
        ] {
            api.apply("api-server", &change).await.expect("apply");
        }

        let role = api
            .observe_role("api-server")
            .await
            .expect("observe")
            .expect("role exists");
        assert_eq!(role.arn, created.arn);
        assert_eq!(role.role_id, created.role_id);
        assert_eq!(role.create_date, created.create_date);
        assert_eq!(role.path, "/team/");
        assert_eq!(role.description.as_deref(), Some("Role of the API server"));
        assert_eq!(role.max_session_duration, 7200);
        assert_eq!(json(&role.trust_policy), json(TRUST));
        assert_eq!(role.permissions_boundary.as_deref(), Some(POWER_USER));
        assert_eq!(role.tags, tags);
        assert_eq!(
            role.managed_policies,
            BTreeSet::from([READ_ONLY.to_owned()])
        );
        assert_eq!(
            role.inline_policies,
            BTreeMap::from([
                ("read-bucket".to_owned(), READ_BUCKET.to_owned()),
                ("write-bucket".to_owned(), WRITE_BUCKET.to_owned()),
            ])
        );
        assert!(calls.all().iter().all(|(_, result)| *result == RESULT_OK));
    })
    .await;
}

#[tokio::test]
async fn every_change_is_applied() {
    with_moto(|endpoint, _| async move {
        let calls = Calls::default();
        let api = iam(&endpoint, &calls).await;
        let name = "worker";
        api.create_role(&minimal_role(name))
            .await
            .expect("CreateRole");
        let observe = || async {
            api.observe_role(name)
                .await
                .expect("observe")
                .expect("role exists")
        };
        let before = observe().await;
        assert_eq!(before.description, None);
        assert_eq!(before.max_session_duration, 3600);
        assert_eq!(before.permissions_boundary, None);
        assert!(before.managed_policies.is_empty());
        assert!(before.inline_policies.is_empty());

        let apply = |change: Change| {
            let api = api.clone();
            let calls = calls.clone();
            async move {
                calls.clear();
                api.apply(name, &change).await.expect("apply");
                assert_eq!(calls.all(), vec![(change.operation(), RESULT_OK)]);
            }
        };

        apply(Change::UpdateRole {
            description: Some("Background jobs".to_owned()),
            max_session_duration: 7200,
        })
        .await;
        let role = observe().await;
        assert_eq!(role.description.as_deref(), Some("Background jobs"));
        assert_eq!(role.max_session_duration, 7200);

        apply(Change::UpdateRole {
            description: None,
            max_session_duration: 3600,
        })
        .await;
        let role = observe().await;
        assert_eq!(role.description, None);
        assert_eq!(role.max_session_duration, 3600);

        apply(Change::UpdateTrustPolicy {
            document: LAMBDA_TRUST.to_owned(),
        })
        .await;
        assert_eq!(json(&observe().await.trust_policy), json(LAMBDA_TRUST));

        apply(Change::AttachPolicy {
            arn: READ_ONLY.to_owned(),
        })
        .await;
        assert_eq!(
            observe().await.managed_policies,
            BTreeSet::from([READ_ONLY.to_owned()])
        );
        apply(Change::DetachPolicy {
            arn: READ_ONLY.to_owned(),
        })
        .await;
        assert!(observe().await.managed_policies.is_empty());

        apply(Change::PutInlinePolicy {
            name: "bucket".to_owned(),
            document: READ_BUCKET.to_owned(),
        })
        .await;
        assert_eq!(
            observe().await.inline_policies,
            BTreeMap::from([("bucket".to_owned(), READ_BUCKET.to_owned())])
        );
        apply(Change::PutInlinePolicy {
            name: "bucket".to_owned(),
            document: WRITE_BUCKET.to_owned(),
        })
        .await;
        assert_eq!(
            observe().await.inline_policies,
            BTreeMap::from([("bucket".to_owned(), WRITE_BUCKET.to_owned())])
        );
        apply(Change::DeleteInlinePolicy {
            name: "bucket".to_owned(),
        })
        .await;
        assert!(observe().await.inline_policies.is_empty());

        apply(Change::PutBoundary {
            arn: POWER_USER.to_owned(),
        })
        .await;
        assert_eq!(
            observe().await.permissions_boundary.as_deref(),
            Some(POWER_USER)
        );
        apply(Change::DeleteBoundary).await;
        assert_eq!(observe().await.permissions_boundary, None);

        apply(Change::TagRole {
            tags: BTreeMap::from([
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "2".to_owned()),
            ]),
        })
        .await;
        apply(Change::TagRole {
            tags: BTreeMap::from([("a".to_owned(), "3".to_owned())]),
        })
        .await;
        let owner = (OWNER_TAG_KEY.to_owned(), "apps/minimal".to_owned());
        assert_eq!(
            observe().await.tags,
            BTreeMap::from([
                owner.clone(),
                ("a".to_owned(), "3".to_owned()),
                ("b".to_owned(), "2".to_owned()),
            ])
        );
        apply(Change::UntagRole {
            keys: vec!["a".to_owned()],
        })
        .await;
        assert_eq!(
            observe().await.tags,
            BTreeMap::from([owner, ("b".to_owned(), "2".to_owned())])
        );

        calls.clear();
        api.apply(
            name,
            &Change::TagRole {
                tags: BTreeMap::new(),
            },
        )
        .await
        .expect("nothing to tag");
        api.apply(name, &Change::UntagRole { keys: Vec::new() })
            .await
            .expect("nothing to untag");
        assert!(calls.all().is_empty(), "{:?}", calls.all());

        observe().await;
        assert_eq!(
            calls.writes(),
            0,
            "observing writes nothing: {:?}",
            calls.all()
        );
    })
    .await;
}

#[tokio::test]
async fn every_list_is_read_to_its_last_page() {
    with_moto(|endpoint, _| async move {
        let calls = Calls::default();
        let api = iam(&endpoint, &calls).await.with_page_size(2);
        let name = "many";
        let mut request = minimal_role(name);
        request
            .tags
            .extend((1..=6).map(|i| (format!("key-{i}"), format!("value-{i}"))));
        api.create_role(&request).await.expect("CreateRole");
        let managed = [
            READ_ONLY,
            POWER_USER,
            "arn:aws:iam::aws:policy/IAMReadOnlyAccess",
            "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
            "arn:aws:iam::aws:policy/AmazonEC2ReadOnlyAccess",
        ];
        for arn in managed {
            api.apply(
                name,
                &Change::AttachPolicy {
                    arn: arn.to_owned(),
                },
            )
            .await
            .expect("attach");
        }
        for i in 0..12 {
            let change = Change::PutInlinePolicy {
                name: format!("policy-{i:02}"),
                document: READ_BUCKET.to_owned(),
            };
            api.apply(name, &change).await.expect("put");
        }

        calls.clear();
        let role = api
            .observe_role(name)
            .await
            .expect("observe")
            .expect("role exists");
        assert_eq!(role.tags, request.tags);
        assert_eq!(role.tags.len(), 7);
        assert_eq!(
            role.managed_policies,
            managed.iter().map(|arn| arn.to_string()).collect()
        );
        assert_eq!(role.inline_policies.len(), 12);
        assert!(
            role.inline_policies
                .values()
                .all(|document| document == READ_BUCKET)
        );
        // 7 tags, 2 a page; 5 policies, 2 a page. moto does not paginate ListRolePolicies.
        assert_eq!(calls.count("ListRoleTags"), 4, "{:?}", calls.all());
        assert_eq!(
            calls.count("ListAttachedRolePolicies"),
            3,
            "{:?}",
            calls.all()
        );
        assert!(calls.count("ListRolePolicies") >= 1);
        assert_eq!(calls.count("GetRolePolicy"), 12);
        assert_eq!(calls.count("GetRole"), 1);
        assert_eq!(calls.writes(), 0);
    })
    .await;
}

#[tokio::test]
async fn aws_errors_are_mapped() {
    with_moto(|endpoint, _| async move {
        let calls = Calls::default();
        let api = iam(&endpoint, &calls).await;

        assert_eq!(api.observe_role("absent").await.expect("observe"), None);
        assert_eq!(calls.all(), vec![("GetRole", "NoSuchEntity")]);

        let err = api
            .apply(
                "absent",
                &Change::UpdateRole {
                    description: None,
                    max_session_duration: 3600,
                },
            )
            .await
            .expect_err("no such role");
        assert_eq!(err.kind(), AwsErrorKind::NoSuchEntity);
        assert_eq!(err.reason(), "NoSuchEntity");
        assert!(err.to_string().starts_with("UpdateRole: NoSuchEntity: "), "{err}");

        api.create_role(&minimal_role("taken")).await.expect("CreateRole");
        let err = api
            .create_role(&minimal_role("taken"))
            .await
            .expect_err("exists");
        assert_eq!(err.kind(), AwsErrorKind::EntityAlreadyExists);
        assert!(err.to_string().starts_with("CreateRole: EntityAlreadyExists: "), "{err}");

        let malformed = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"s3:GetObject","Resource":"*"}]}"#;
        let err = api
            .apply(
                "taken",
                &Change::PutInlinePolicy {
                    name: "bad".to_owned(),
                    document: malformed.to_owned(),
                },
            )
            .await
            .expect_err("malformed");
        assert_eq!(err.kind(), AwsErrorKind::MalformedPolicyDocument, "{err}");
        assert!(err.to_string().starts_with("PutRolePolicy: MalformedPolicyDocument: "));
        assert!(!err.is_transient());

        let err = api
            .apply(
                "taken",
                &Change::UpdateTrustPolicy {
                    document: "{not json".to_owned(),
                },
            )
            .await
            .expect_err("malformed trust");
        assert_eq!(err.kind(), AwsErrorKind::MalformedPolicyDocument, "{err}");

        let err = api
            .apply(
                "taken",
                &Change::AttachPolicy {
                    arn: format!("arn:aws:iam::{ACCOUNT}:policy/absent"),
                },
            )
            .await
            .expect_err("no such policy");
        assert_eq!(err.kind(), AwsErrorKind::NoSuchEntity, "{err}");
        assert_eq!(err.operation(), "AttachRolePolicy");

        let role = api.observe_role("taken").await.expect("observe").expect("exists");
        assert!(role.inline_policies.is_empty());
        assert!(role.managed_policies.is_empty());
        assert_eq!(json(&role.trust_policy), json(TRUST));
    })
    .await;
}

#[tokio::test]
async fn deletion_removes_the_role_from_instance_profiles_first() {
    with_moto(|endpoint, _| async move {
        let calls = Calls::default();
        let api = iam(&endpoint, &calls).await;
        let name = "ec2-node";
        api.create_role(&minimal_role(name))
            .await
            .expect("CreateRole");
        for change in [
            Change::AttachPolicy {
                arn: READ_ONLY.to_owned(),
            },
            Change::PutInlinePolicy {
                name: "bucket".to_owned(),
                document: READ_BUCKET.to_owned(),
            },
        ] {
            api.apply(name, &change).await.expect("apply");
        }
        let raw = moto::raw_iam(&endpoint);
        raw.create_instance_profile()
            .instance_profile_name("node-profile")
            .send()
            .await
            .expect("CreateInstanceProfile");
        raw.add_role_to_instance_profile()
            .instance_profile_name("node-profile")
            .role_name(name)
            .send()
            .await
            .expect("AddRoleToInstanceProfile");

        let profiles = api.instance_profiles_for_role(name).await.expect("list");
        assert_eq!(profiles, vec!["node-profile".to_owned()]);

        let err = api.delete_role(name).await.expect_err("still in a profile");
        assert_eq!(err.kind(), AwsErrorKind::DeleteConflict, "{err}");
        assert_eq!(err.reason(), "DeleteConflict");

        for profile in &profiles {
            api.remove_role_from_instance_profile(profile, name)
                .await
                .expect("RemoveRoleFromInstanceProfile");
        }
        assert!(
            api.instance_profiles_for_role(name)
                .await
                .expect("list")
                .is_empty()
        );
        api.apply(
            name,
            &Change::DetachPolicy {
                arn: READ_ONLY.to_owned(),
            },
        )
        .await
        .expect("detach");
        api.apply(
            name,
            &Change::DeleteInlinePolicy {
                name: "bucket".to_owned(),
            },
        )
        .await
        .expect("delete inline");
        api.delete_role(name).await.expect("DeleteRole");
        assert_eq!(api.observe_role(name).await.expect("observe"), None);

        let err = api.delete_role(name).await.expect_err("gone");
        assert_eq!(err.kind(), AwsErrorKind::NoSuchEntity);
        assert_eq!(calls.count("RemoveRoleFromInstanceProfile"), 1);
        assert_eq!(
            calls
                .all()
                .iter()
                .filter(|(op, result)| *op == "DeleteRole" && *result == RESULT_OK)
                .count(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn unreachable_endpoint_is_transient() {
    let port = local_stack::free_port().expect("free port");
    let settings = static_settings(&format!("http://127.0.0.1:{port}"));
    let calls = Calls::default();
    let clients = AwsClients::new(&settings, Some(calls.observer())).await;
    let err = tokio::time::timeout(TEST_TIMEOUT, clients.caller_identity())
        .await
        .expect("bounded by the client's timeouts")
        .expect_err("nothing listens");
    assert_eq!(err.kind(), AwsErrorKind::Unreachable, "{err}");
    assert!(err.is_transient());
    assert!(
        err.to_string()
            .starts_with("GetCallerIdentity: Unreachable: "),
        "{err}"
    );
    assert!(!err.message().contains("testing"), "{err}");
    assert_eq!(calls.all(), vec![("GetCallerIdentity", "Unreachable")]);
}
