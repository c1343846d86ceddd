//! Thin wrapper over the AWS SDK (IAM, STS): clients built from an AWSProvider's settings, calls
//! mapped to this crate's error kinds. Does network I/O.
