//! IAM's defaults for what a role's spec may leave out, and its range of session durations. Pure.

/// IAM's path for a role that names none.
pub const DEFAULT_PATH: &str = "/";

/// IAM's maximum session duration (seconds) for a role that names none.
pub const DEFAULT_MAX_SESSION_DURATION: i32 = 3600;

/// The maximum session durations IAM accepts, in seconds (one to twelve hours).
pub const SESSION_DURATION_RANGE: (i64, i64) = (3600, 43200);

/// The path of a role whose spec says `path` (absent or empty: [`DEFAULT_PATH`]).
pub fn role_path(path: Option<&str>) -> &str {
    path.filter(|p| !p.is_empty()).unwrap_or(DEFAULT_PATH)
}

/// The maximum session duration of a role whose spec (or IAM) says `seconds` (absent:
/// [`DEFAULT_MAX_SESSION_DURATION`]).
pub fn max_session_duration(seconds: Option<i32>) -> i32 {
    seconds.unwrap_or(DEFAULT_MAX_SESSION_DURATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_empty_values_take_iams_defaults() {
        assert_eq!(role_path(None), "/");
        assert_eq!(role_path(Some("")), "/");
        assert_eq!(role_path(Some("/svc/")), "/svc/");
        assert_eq!(max_session_duration(None), 3600);
        assert_eq!(max_session_duration(Some(7200)), 7200);
        assert!(i64::from(DEFAULT_MAX_SESSION_DURATION) >= SESSION_DURATION_RANGE.0);
    }
}
