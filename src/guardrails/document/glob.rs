//! IAM wildcard patterns (`*` any run, `?` one character, case-insensitive) and the question the
//! guardrails ask of them: does a pattern *cover* another one, i.e. match every string it matches?
//! Pure, no regex and no allocation beyond one reusable buffer.
//!
//! Coverage is decided on a witness: the covered pattern with each `*` replaced by a run of a
//! sentinel byte (0xFF, which never occurs in UTF-8 text, so only `*` or `?` of the covering pattern
//! can absorb it) longer than the covering pattern, and each `?` by one sentinel. A pattern that
//! covers another matches its witness; a pattern that does not would need a literal or a bounded
//! run of `?` where the witness has an arbitrarily long sentinel run, so it does not.

/// A byte no UTF-8 string contains.
const SENTINEL: u8 = 0xFF;

/// Whether `pattern` matches all of `text`, ASCII case-insensitively; `text` must be lower-case.
pub fn matches(pattern: &str, text: &[u8]) -> bool {
    let pattern = pattern.as_bytes();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c.to_ascii_lowercase() == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, from)) => {
                    backtrack = Some((star, from + 1));
                    p = star + 1;
                    t = from + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Answers coverage questions, reusing one buffer for witnesses.
#[derive(Default)]
pub struct Coverage {
    witness: Vec<u8>,
}

impl Coverage {
    /// Whether `pattern` matches every string that the pattern `covered` matches.
    pub fn covers(&mut self, pattern: &str, covered: &str) -> bool {
        self.covers_parts(pattern, &[covered])
    }

    /// Like [`Coverage::covers`], for a covered pattern given as consecutive parts.
    pub fn covers_parts(&mut self, pattern: &str, covered: &[&str]) -> bool {
        let run = pattern.len() + 1;
        self.witness.clear();
        for part in covered {
            for c in part.bytes() {
                match c {
                    b'*' => self.witness.extend(std::iter::repeat_n(SENTINEL, run)),
                    b'?' => self.witness.push(SENTINEL),
                    _ => self.witness.push(c.to_ascii_lowercase()),
                }
            }
        }
        matches(pattern, &self.witness)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_iam_wildcards() {
        assert!(matches("s3:Get*", b"s3:getobject"));
        assert!(matches("S3:GETOBJECT", b"s3:getobject"));
        assert!(matches("s3:?etObject", b"s3:getobject"));
        assert!(matches("*", b""));
        assert!(matches("a*b*c", b"axxbyyc"));
        assert!(!matches("a*b*c", b"axxbyy"));
        assert!(!matches("s3:Get", b"s3:getobject"));
        assert!(!matches("s3:Get?", b"s3:get"));
        assert!(!matches("", b"x"));
    }

    #[test]
    fn covering_patterns_are_found_whatever_their_spelling() {
        let mut c = Coverage::default();
        for pattern in [
            "iam:*", "IAM:*", "i*", "iam*", "*am:*", "ia?:*", "**", "*:*", "*", "iam:**", "*?",
        ] {
            assert!(c.covers(pattern, "iam:*"), "{pattern} should cover iam:*");
        }
        for pattern in [
            "iam:Get*",
            "iam:PassRole",
            "iam:?",
            "iam:????????",
            "s3:*",
            "am:*",
            "*:PassRole",
        ] {
            assert!(
                !c.covers(pattern, "iam:*"),
                "{pattern} should not cover iam:*"
            );
        }
        assert!(c.covers("*", "*"));
        assert!(c.covers("*?", "*:*"));
        assert!(
            !c.covers("*:*", "*"),
            "*:* needs a colon, so it does not cover every string"
        );
        assert!(!c.covers("iam:*", "*:*"));
        assert!(c.covers("iam:Pass*", "iam:PassRole"));
        assert!(
            !c.covers("iam:Pass\u{ff}", "iam:Pass?"),
            "a literal never absorbs the sentinel"
        );
    }

    #[test]
    fn covers_parts_joins_them() {
        let mut c = Coverage::default();
        let role = ["arn:aws:iam::", "*", ":role/", "*"];
        assert!(c.covers_parts("*", &role));
        assert!(c.covers_parts("arn:aws:iam::*:role/*", &role));
        assert!(c.covers_parts("arn:aws:iam::*:*", &role));
        assert!(!c.covers_parts("arn:aws:iam::123456789012:role/*", &role));
        assert!(!c.covers_parts("arn:aws:iam::*:role/app-*", &role));
    }
}
