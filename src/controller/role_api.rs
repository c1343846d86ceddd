//! The IAM calls a role reconcile makes, as a trait: the AWS layer's [`IamApi`] in production, an
//! in-memory IAM in the scenario tests. The trait itself does no I/O.

use std::future::Future;

use crate::aws::{AwsError, IamApi};
use crate::iam::{Change, CreateRole, ObservedRole, RoleIdentity};

/// IAM as seen by one role's reconcile.
pub trait RoleApi: Sync {
    /// The role of that name as IAM has it; `None` when there is none.
    fn observe_role(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ObservedRole>, AwsError>> + Send;

    /// CreateRole with every attribute and tag.
    fn create_role(
        &self,
        role: &CreateRole,
    ) -> impl Future<Output = Result<RoleIdentity, AwsError>> + Send;

    /// One write on an existing role.
    fn apply(
        &self,
        role_name: &str,
        change: &Change,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// The instance profiles holding the role.
    fn instance_profiles_for_role(
        &self,
        role_name: &str,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;

    /// RemoveRoleFromInstanceProfile.
    fn remove_role_from_instance_profile(
        &self,
        instance_profile: &str,
        role_name: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// DeleteRole.
    fn delete_role(&self, role_name: &str) -> impl Future<Output = Result<(), AwsError>> + Send;
}

impl RoleApi for IamApi {
    fn observe_role(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ObservedRole>, AwsError>> + Send {
        IamApi::observe_role(self, name)
    }

    fn create_role(
        &self,
        role: &CreateRole,
    ) -> impl Future<Output = Result<RoleIdentity, AwsError>> + Send {
        IamApi::create_role(self, role)
    }

    fn apply(
        &self,
        role_name: &str,
        change: &Change,
    ) -> impl Future<Output = Result<(), AwsError>> + Send {
        IamApi::apply(self, role_name, change)
    }

    fn instance_profiles_for_role(
        &self,
        role_name: &str,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send {
        IamApi::instance_profiles_for_role(self, role_name)
    }

    fn remove_role_from_instance_profile(
        &self,
        instance_profile: &str,
        role_name: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send {
        IamApi::remove_role_from_instance_profile(self, instance_profile, role_name)
    }

    fn delete_role(&self, role_name: &str) -> impl Future<Output = Result<(), AwsError>> + Send {
        IamApi::delete_role(self, role_name)
    }
}
