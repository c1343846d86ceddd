//! The `admission.k8s.io/v1` AdmissionReview response, written straight from borrowed data: `uid`,
//! `allowed`, `status` of a refusal, `patch` as base64 with `patchType: JSONPatch`, and `warnings`.
//! The refusal message and the warnings are bounded in size, ending with "… and N more" when
//! findings were left out, so no review can make a large answer. Pure.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;

/// The response's `apiVersion`.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// Longest `status.message`, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Most `warnings` entries (the last may be the "… and N more" line).
pub const MAX_WARNINGS: usize = 50;
/// Longest `warnings`, all entries together, in bytes.
pub const MAX_WARNINGS_BYTES: usize = 16 * 1024;
/// Longest single warning, in bytes.
pub const MAX_WARNING_BYTES: usize = 1024;

/// Why an object is refused: `status.code`, `status.reason`, `status.message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP-like code the API server answers the client with (403 for a guardrail denial).
    pub code: u16,
    /// Machine-readable reason (`Forbidden`, `Timeout`).
    pub reason: &'static str,
    /// The message shown to the user.
    pub message: String,
}

/// What the webhook answers to one review.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The request's uid, echoed.
    pub uid: String,
    /// Set when the object is refused.
    pub refusal: Option<Refusal>,
    /// A JSON Patch (the serialized array) to apply to an admitted object.
    pub patch: Option<Vec<u8>>,
    /// Warnings returned to the client.
    pub warnings: Vec<String>,
}

impl Verdict {
    /// Admits the object of request `uid` as it is.
    pub fn allow(uid: impl Into<String>) -> Self {
        Verdict {
            uid: uid.into(),
            ..Verdict::default()
        }
    }

    /// Whether the object is admitted.
    pub fn allowed(&self) -> bool {
        self.refusal.is_none()
    }

    /// Refuses the object; `message` is cut to [`MAX_MESSAGE_BYTES`].
    pub fn refuse(&mut self, code: u16, reason: &'static str, message: impl Into<String>) {
        let mut message = message.into();
        truncate_at_char(&mut message, MAX_MESSAGE_BYTES);
        self.refusal = Some(Refusal {
            code,
            reason,
            message,
        });
    }

    /// Sets the warnings from `total` entries, keeping at most [`MAX_WARNINGS`] entries of at most
    /// [`MAX_WARNING_BYTES`] each and [`MAX_WARNINGS_BYTES`] in all; a last entry says how many were
    /// left out. Entries past the kept ones are never formatted.
    pub fn set_warnings(&mut self, warnings: impl Iterator<Item = impl ToString>, total: usize) {
        let mut kept = Vec::new();
        let mut bytes = 0;
        // Room for the closing "… and N more warnings".
        let budget = MAX_WARNINGS_BYTES - 64;
        for warning in warnings {
            let mut warning = warning.to_string();
            truncate_at_char(&mut warning, MAX_WARNING_BYTES);
            if kept.len() + 1 >= MAX_WARNINGS || bytes + warning.len() > budget {
                break;
            }
            bytes += warning.len();
            kept.push(warning);
        }
        if kept.len() < total {
            let more = total - kept.len();
            kept.push(format!("… and {more} more warnings"));
        }
        self.warnings = kept;
    }

    /// The AdmissionReview to send back, as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let review = Review {
            api_version: API_VERSION,
            kind: "AdmissionReview",
            response: Response {
                uid: &self.uid,
                allowed: self.allowed(),
                status: self.refusal.as_ref().map(|refusal| Status {
                    status: "Failure",
                    code: refusal.code,
                    reason: refusal.reason,
                    message: &refusal.message,
                }),
                patch: self.patch.as_ref().map(|patch| BASE64.encode(patch)),
                patch_type: self.patch.as_ref().map(|_| "JSONPatch"),
                warnings: &self.warnings,
            },
        };
        serde_json::to_vec(&review).unwrap_or_else(|_| {
            // Serializing strings, numbers and booleans cannot fail; answer a refusal if it ever did.
            format!(
                r#"{{"apiVersion":"{API_VERSION}","kind":"AdmissionReview","response":{{"uid":{},"allowed":false}}}}"#,
                serde_json::Value::from(self.uid.as_str())
            )
            .into_bytes()
        })
    }
}

/// Joins `items` (`total` of them) with `separator` after `prefix`, within `limit` bytes: once the
/// next item would not fit, stops (formatting no more items) and ends with "… and N more".
pub fn bounded_join(
    prefix: &str,
    items: impl Iterator<Item = impl ToString>,
    total: usize,
    separator: &str,
    limit: usize,
) -> String {
    let mut out = String::from(prefix);
    // Room for the closing "; … and N more".
    let budget = limit.saturating_sub(64);
    let mut joined = 0;
    for item in items {
        let item = item.to_string();
        let needed = if joined == 0 { 0 } else { separator.len() } + item.len();
        if out.len() + needed > budget {
            break;
        }
        if joined > 0 {
            out.push_str(separator);
        }
        out.push_str(&item);
        joined += 1;
    }
    if joined < total {
        if joined > 0 {
            out.push_str(separator);
        }
        out.push_str(&format!("… and {} more", total - joined));
    }
    out
}

/// Cuts `text` to at most `limit` bytes, at a character boundary, marking the cut with "…".
fn truncate_at_char(text: &mut String, limit: usize) {
    if text.len() <= limit {
        return;
    }
    let mut end = limit.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Review<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: Response<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

#[derive(Serialize)]
struct Status<'a> {
    status: &'static str,
    code: u16,
    reason: &'static str,
    message: &'a str,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn the_patch_is_base64_with_its_type_and_nothing_else_is_written_when_allowed() {
        let mut verdict = Verdict::allow("u-1");
        verdict.patch = Some(br#"[{"op":"add","path":"/spec/path","value":"/"}]"#.to_vec());
        let written: Value = serde_json::from_slice(&verdict.to_json()).unwrap();
        assert_eq!(
            written,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                   "response": {"uid": "u-1", "allowed": true, "patchType": "JSONPatch",
                                "patch": "W3sib3AiOiJhZGQiLCJwYXRoIjoiL3NwZWMvcGF0aCIsInZhbHVlIjoiLyJ9XQ=="}})
        );
    }

    #[test]
    fn a_refusal_carries_its_status() {
        let mut verdict = Verdict::allow("u-2");
        verdict.refuse(403, "Forbidden", "no");
        verdict.set_warnings(["careful"].iter(), 1);
        let written: Value = serde_json::from_slice(&verdict.to_json()).unwrap();
        assert_eq!(
            written["response"],
            json!({"uid": "u-2", "allowed": false, "warnings": ["careful"],
                   "status": {"status": "Failure", "code": 403, "reason": "Forbidden", "message": "no"}})
        );
    }

    #[test]
    fn joined_messages_stop_within_the_limit_and_count_the_rest() {
        let items = (0..10_000).map(|i| format!("[policy-grammar] spec.x[{i}]: bad"));
        let joined = bounded_join("refused: ", items, 10_000, "; ", MAX_MESSAGE_BYTES);
        assert!(joined.len() <= MAX_MESSAGE_BYTES, "{}", joined.len());
        assert!(joined.starts_with("refused: [policy-grammar] spec.x[0]: bad; "));
        let kept = joined.matches("[policy-grammar]").count();
        assert!(
            joined.ends_with(&format!("; … and {} more", 10_000 - kept)),
            "{joined}"
        );

        let few = bounded_join("p: ", ["a", "b"].iter(), 2, "; ", 100);
        assert_eq!(few, "p: a; b");
        let one_huge = bounded_join("p: ", std::iter::once("é".repeat(100_000)), 1, "; ", 1000);
        assert_eq!(one_huge, "p: … and 1 more");
    }

    #[test]
    fn warnings_and_messages_are_bounded() {
        let mut verdict = Verdict::allow("u");
        verdict.set_warnings(
            (0..75_000).map(|i| format!("[not-action-allow] spec.s[{i}]: hm")),
            75_000,
        );
        assert_eq!(verdict.warnings.len(), MAX_WARNINGS);
        assert_eq!(
            verdict.warnings.last().map(String::as_str),
            Some(format!("… and {} more warnings", 75_000 - (MAX_WARNINGS - 1)).as_str())
        );
        verdict.set_warnings(std::iter::once("ü".repeat(10_000)), 1);
        assert!(verdict.warnings[0].len() <= MAX_WARNING_BYTES);
        assert!(verdict.warnings[0].ends_with('…'));
        verdict.set_warnings((0..40).map(|_| "w".repeat(1000)), 40);
        let total: usize = verdict.warnings.iter().map(String::len).sum();
        assert!(total <= MAX_WARNINGS_BYTES, "{total}");
        assert!(verdict.warnings.last().unwrap().starts_with("… and "));

        verdict.refuse(403, "Forbidden", "x".repeat(10 * MAX_MESSAGE_BYTES));
        let message = &verdict.refusal.as_ref().unwrap().message;
        assert!(message.len() <= MAX_MESSAGE_BYTES);
        assert!(verdict.to_json().len() < MAX_MESSAGE_BYTES + MAX_WARNINGS_BYTES + 1024);
    }
}
