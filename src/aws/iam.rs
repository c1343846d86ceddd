//! The IAM operations on one role the reconciler needs: observe it (every list paginated, policy
//! documents URL-decoded), create it, execute a [`Change`], and the calls of its deletion. Every
//! call (one per page of a list) is reported to the clients' observer. Does network I/O.

use std::collections::BTreeMap;

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::Tag;
use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_types::date_time::Format;

use super::calls::Recorder;
use super::document::decode_policy_document;
use super::error::{AwsError, AwsErrorKind};
use crate::iam::defaults::max_session_duration;
use crate::iam::{Change, CreateRole, ObservedRole, RoleIdentity};

/// IAM calls through one provider's client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct IamApi {
    client: aws_sdk_iam::Client,
    recorder: Recorder,
    page_size: Option<i32>,
}

impl IamApi {
    pub(crate) fn new(client: aws_sdk_iam::Client, recorder: Recorder) -> Self {
        IamApi {
            client,
            recorder,
            page_size: None,
        }
    }

    /// Asks for at most `items` entries per page of every list call (IAM accepts 1–1000; its
    /// default is 100).
    pub fn with_page_size(mut self, items: i32) -> Self {
        self.page_size = Some(items);
        self
    }

    /// The role as IAM has it, or `None` when there is no role of that name (also when it
    /// disappears while being read). Calls GetRole, then ListAttachedRolePolicies,
    /// ListRolePolicies, GetRolePolicy for each inline policy, and ListRoleTags, every list to
    /// its last page. An inline policy deleted between ListRolePolicies and GetRolePolicy is left
    /// out.
    pub async fn observe_role(&self, name: &str) -> Result<Option<ObservedRole>, AwsError> {
        match self.read_role(name).await {
            Ok(role) => Ok(Some(role)),
            Err(err) if err.kind() == AwsErrorKind::NoSuchEntity => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn read_role(&self, name: &str) -> Result<ObservedRole, AwsError> {
        let output = self
            .recorder
            .call("GetRole", self.client.get_role().role_name(name).send())
            .await?;
        let role = output.role().ok_or_else(|| {
            AwsError::new("GetRole", AwsErrorKind::Other, "the response holds no Role")
        })?;
        Ok(ObservedRole {
            arn: role.arn().to_owned(),
            role_id: role.role_id().to_owned(),
            create_date: rfc3339(role.create_date()),
            path: role.path().to_owned(),
            description: role
                .description()
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            max_session_duration: max_session_duration(role.max_session_duration()),
            trust_policy: decode_policy_document(
                role.assume_role_policy_document().unwrap_or_default(),
            ),
            permissions_boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_owned),
            managed_policies: self.attached_policies(name).await?.into_iter().collect(),
            inline_policies: self.inline_policies(name).await?,
            tags: self.tags(name).await?,
        })
    }

    async fn attached_policies(&self, role_name: &str) -> Result<Vec<String>, AwsError> {
        let mut paginator = self
            .client
            .list_attached_role_policies()
            .role_name(role_name)
            .into_paginator();
        if let Some(items) = self.page_size {
            paginator = paginator.page_size(items);
        }
        self.every_page("ListAttachedRolePolicies", paginator.send(), |page| {
            page.attached_policies
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| p.policy_arn)
                .collect()
        })
        .await
    }

    async fn inline_policies(&self, role_name: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let mut paginator = self
            .client
            .list_role_policies()
            .role_name(role_name)
            .into_paginator();
        if let Some(items) = self.page_size {
            paginator = paginator.page_size(items);
        }
        let names = self
            .every_page("ListRolePolicies", paginator.send(), |page| {
                page.policy_names
            })
            .await?;
        let mut policies = BTreeMap::new();
        for name in names {
            let result = self
                .recorder
                .call(
                    "GetRolePolicy",
                    self.client
                        .get_role_policy()
                        .role_name(role_name)
                        .policy_name(&name)
                        .send(),
                )
                .await;
            match result {
                Ok(output) => {
                    let document = decode_policy_document(output.policy_document());
                    policies.insert(name, document);
                }
                Err(err) if err.kind() == AwsErrorKind::NoSuchEntity => {}
                Err(err) => return Err(err),
            }
        }
        Ok(policies)
    }

    async fn tags(&self, role_name: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let mut paginator = self
            .client
            .list_role_tags()
            .role_name(role_name)
            .into_paginator();
        if let Some(items) = self.page_size {
            paginator = paginator.page_size(items);
        }
        let tags = self
            .every_page("ListRoleTags", paginator.send(), |page| {
                page.tags.into_iter().map(|t| (t.key, t.value)).collect()
            })
            .await?;
        Ok(tags.into_iter().collect())
    }

    /// Every item of every page of a list call, each page reported as one call.
    async fn every_page<O, E, T>(
        &self,
        operation: &'static str,
        mut pages: PaginationStream<Result<O, SdkError<E, HttpResponse>>>,
        items: impl Fn(O) -> Vec<T>,
    ) -> Result<Vec<T>, AwsError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut all = Vec::new();
        loop {
            self.recorder.pace().await;
            let Some(page) = pages.next().await else {
                // The last page was the one before: nothing was sent.
                self.recorder.unpace();
                break;
            };
            all.extend(items(self.recorder.outcome(operation, page)?));
        }
        Ok(all)
    }

    /// CreateRole with every attribute and tag in one call.
    pub async fn create_role(&self, role: &CreateRole) -> Result<RoleIdentity, AwsError> {
        let operation = "CreateRole";
        let tags = tag_list(operation, &role.tags)?;
        let output = self
            .recorder
            .call(
                operation,
                self.client
                    .create_role()
                    .role_name(&role.name)
                    .path(&role.path)
                    .assume_role_policy_document(&role.trust_policy)
                    .set_description(role.description.clone().filter(|d| !d.is_empty()))
                    .max_session_duration(role.max_session_duration)
                    .set_permissions_boundary(role.permissions_boundary.clone())
                    .set_tags((!tags.is_empty()).then_some(tags))
                    .send(),
            )
            .await?;
        let created = output.role().ok_or_else(|| {
            AwsError::new(operation, AwsErrorKind::Other, "the response holds no Role")
        })?;
        Ok(RoleIdentity {
            arn: created.arn().to_owned(),
            role_id: created.role_id().to_owned(),
            create_date: rfc3339(created.create_date()),
        })
    }

    /// Executes one change on the role `role_name`. A description of `None` (or empty) is cleared
    /// by sending an empty one. Tagging or untagging nothing makes no call.
    pub async fn apply(&self, role_name: &str, change: &Change) -> Result<(), AwsError> {
        let operation = change.operation();
        let client = &self.client;
        let recorder = &self.recorder;
        match change {
            Change::UpdateRole {
                description,
                max_session_duration,
            } => {
                let call = client
                    .update_role()
                    .role_name(role_name)
                    .description(description.clone().unwrap_or_default())
                    .max_session_duration(*max_session_duration)
                    .send();
                recorder.call(operation, call).await.map(drop)
            }
            Change::UpdateTrustPolicy { document } => {
                let call = client
                    .update_assume_role_policy()
                    .role_name(role_name)
                    .policy_document(document)
                    .send();
                recorder.call(operation, call).await.map(drop)
            }
            Change::AttachPolicy { arn } => {
                let call = client
                    .attach_role_policy()
                    .role_name(role_name)
                    .policy_arn(arn)
                    .send();
                recorder.call(operation, call).await.map(drop)
            }
            Change::DetachPolicy { arn } => {
                let call = client
                    .detach_role_policy()
                    .role_name(role_name)
                    .policy_arn(arn)
                    .send();
                recorder.call(operation, call).await.map(drop)
            }
            Change::PutInlinePolicy { name, document } => {
                let call = client
                    .put_role_policy()
                    .role_name(role_name)
                    .policy_name(name)
                    .policy_document(document)
                    .send();
                recorder.call(operation, call).await.map(drop)
            }
            Change::DeleteInlinePolicy { name } => {
                let call = client
                    .delete_role_policy()
                    .role_name(role_name)
                    .policy_name(name)
                    .send();
                recorder.call(operation, call).await.map(drop)
            }
            Change::PutBoundary { arn } => {
                let call = client
                    .put_role_permissions_boundary()
                    .role_name(role_name)
                    .permissions_boundary(arn)
                    .send();
                recorder.call(operation, call).await.map(drop)
            }
            Change::DeleteBoundary => {
                let call = client
                    .delete_role_permissions_boundary()
                    .role_name(role_name)
                    .send();
                recorder.call(operation, call).await.map(drop)
            }
            Change::TagRole { tags } if tags.is_empty() => Ok(()),
            Change::TagRole { tags } => {
                let call = client
                    .tag_role()
                    .role_name(role_name)
                    .set_tags(Some(tag_list(operation, tags)?))
                    .send();
                recorder.call(operation, call).await.map(drop)
            }
            Change::UntagRole { keys } if keys.is_empty() => Ok(()),
            Change::UntagRole { keys } => {
                let call = client
                    .untag_role()
                    .role_name(role_name)
                    .set_tag_keys(Some(keys.clone()))
                    .send();
                recorder.call(operation, call).await.map(drop)
            }
        }
    }

    /// Names of the instance profiles holding the role (ListInstanceProfilesForRole, every page).
    pub async fn instance_profiles_for_role(
        &self,
        role_name: &str,
    ) -> Result<Vec<String>, AwsError> {
        let mut paginator = self
            .client
            .list_instance_profiles_for_role()
            .role_name(role_name)
            .into_paginator();
        if let Some(items) = self.page_size {
            paginator = paginator.page_size(items);
        }
        self.every_page("ListInstanceProfilesForRole", paginator.send(), |page| {
            page.instance_profiles
                .into_iter()
                .map(|p| p.instance_profile_name)
                .collect()
        })
        .await
    }

    /// RemoveRoleFromInstanceProfile.
    pub async fn remove_role_from_instance_profile(
        &self,
        instance_profile: &str,
        role_name: &str,
    ) -> Result<(), AwsError> {
        let call = self
            .client
            .remove_role_from_instance_profile()
            .instance_profile_name(instance_profile)
            .role_name(role_name)
            .send();
        self.recorder
            .call("RemoveRoleFromInstanceProfile", call)
            .await
            .map(drop)
    }

    /// DeleteRole. IAM refuses (`DeleteConflict`) while policies or instance profiles remain.
    pub async fn delete_role(&self, role_name: &str) -> Result<(), AwsError> {
        let call = self.client.delete_role().role_name(role_name).send();
        self.recorder.call("DeleteRole", call).await.map(drop)
    }
}

/// IAM tags from a map.
fn tag_list(
    operation: &'static str,
    tags: &BTreeMap<String, String>,
) -> Result<Vec<Tag>, AwsError> {
    tags.iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| AwsError::new(operation, AwsErrorKind::InvalidInput, e.to_string()))
        })
        .collect()
}

/// RFC 3339 text of an IAM timestamp (empty for a date RFC 3339 cannot express).
fn rfc3339(date: &aws_smithy_types::DateTime) -> String {
    date.fmt(Format::DateTime).unwrap_or_default()
}
