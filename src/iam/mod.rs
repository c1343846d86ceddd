//! The IAM domain, pure and shared by every layer above it (guardrails, admission, controller,
//! aws): IAM's defaults, how it treats tags, ARNs, policy documents (one strict parser and one
//! canonical equality), provider credential forms, role ownership, and the desired / observed role
//! and change types the planner and the AWS layer exchange. No I/O, no Kubernetes, no AWS SDK.

pub mod arn;
pub mod change;
pub mod credentials;
pub mod defaults;
pub mod desired;
pub mod json;
pub mod observed;
pub mod ownership;
pub mod policy_eq;
pub mod tags;
pub mod workload_identity;

pub use change::{Change, CreateRole, RoleIdentity};
pub use credentials::{CredentialForm, CredentialFormError, credential_form};
pub use defaults::{DEFAULT_MAX_SESSION_DURATION, DEFAULT_PATH, SESSION_DURATION_RANGE};
pub use desired::DesiredRole;
pub use observed::ObservedRole;
pub use ownership::{Ownership, ownership, policies_in_tag, policies_tag_value};
pub use policy_eq::policies_equal;
pub use tags::{OPERATOR_TAGS, OWNER_TAG_KEY, POLICIES_TAG_KEY, owner_value};
