//! The reconciler: makes AWS IAM match each IAMRole (observe → plan → apply → status).

pub mod change;
pub mod observed;
