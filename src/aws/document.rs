//! Policy documents as IAM returns them: URL-encoded (RFC 3986) by IAM, plain by some emulators.
//! Pure.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// The plain text of a policy document returned by IAM. A document that is already JSON is kept
/// as it is (a literal `%41` inside it stays); otherwise it is percent-decoded. Text that is JSON in
/// neither form is returned decoded (lossily, if the bytes are not UTF-8) for the caller to report.
pub fn decode_policy_document(returned: &str) -> String {
    if is_json(returned) {
        return returned.to_owned();
    }
    match percent_decode_str(returned).decode_utf8_lossy() {
        Cow::Borrowed(unchanged) => unchanged.to_owned(),
        Cow::Owned(decoded) => decoded,
    }
}

fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

    #[test]
    fn encoded_documents_are_decoded() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22ec2.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";
        assert_eq!(decode_policy_document(encoded), TRUST);
    }

    #[test]
    fn plain_documents_are_kept() {
        assert_eq!(decode_policy_document(TRUST), TRUST);
        let with_percent = r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/%41%20x"}]}"#;
        assert_eq!(decode_policy_document(with_percent), with_percent);
    }

    #[test]
    fn whitespace_and_unicode_survive_decoding() {
        let encoded = "%7B%0A%20%20%22Sid%22%3A%20%22caf%C3%A9%22%0A%7D";
        assert_eq!(decode_policy_document(encoded), "{\n  \"Sid\": \"café\"\n}");
    }

    #[test]
    fn decoding_is_idempotent() {
        let encoded = "%7B%22a%22%3A%22%2541%22%7D";
        let once = decode_policy_document(encoded);
        assert_eq!(once, r#"{"a":"%41"}"#);
        assert_eq!(decode_policy_document(&once), once);
    }

    #[test]
    fn garbage_is_returned_decoded() {
        assert_eq!(decode_policy_document("not%20json"), "not json");
        assert_eq!(decode_policy_document("%FF"), "\u{FFFD}");
        assert_eq!(decode_policy_document(""), "");
    }
}
