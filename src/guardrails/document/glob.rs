//! IAM wildcard patterns (`*` any run, `?` one character, ASCII case-insensitive) and the questions
//! the guardrails ask of them: does a pattern match a name, does it *cover* another pattern (match
//! everything that one matches), do two patterns *intersect* (match a common string)? Pure.
//!
//! Each question runs the pattern as a set of states (positions in the pattern) advanced by one
//! token of the other side at a time, so it costs at most the product of the two lengths, whatever
//! the patterns hold: no backtracking, and no input is ever expanded. Buffers are reused between
//! questions.
//!
//! Coverage reads each `*` of the covered pattern as a run of characters longer than the covering
//! pattern and spelt with none of its letters, and each `?` as one such character: a pattern covers
//! another when it matches every such expansion. So `iam:?*` covers `iam:*` (only the empty name, which
//! no action has, escapes it), while `iam:Get*` or a bounded run of `?` does not.

/// Answers pattern questions, reusing its buffers.
#[derive(Default)]
pub struct Coverage {
    pattern: Vec<u8>,
    states: Vec<bool>,
    next: Vec<bool>,
    table: Vec<bool>,
    /// States visited so far: lets tests bound the work of a question.
    #[cfg(test)]
    work: usize,
}

/// One token of the string a pattern is run over.
#[derive(Clone, Copy)]
enum Token {
    /// A character, lower-case.
    Byte(u8),
    /// One character that no literal of the pattern spells (a covered `?`).
    Other,
    /// A run of such characters longer than the pattern (a covered `*`).
    Run,
}

impl Coverage {
    /// Whether `pattern` matches all of `text`, ASCII case-insensitively.
    pub fn matches(&mut self, pattern: &str, text: &str) -> bool {
        let prefix = literal_prefix(pattern);
        if prefix.len() == pattern.len() {
            return pattern.eq_ignore_ascii_case(text);
        }
        if !starts_with_ignore_case(text.as_bytes(), prefix) {
            return false;
        }
        if only_stars(&pattern[prefix.len()..]) {
            return true;
        }
        self.run(
            pattern,
            text.bytes().map(|c| Token::Byte(c.to_ascii_lowercase())),
        )
    }

    /// Whether `pattern` matches every string that the pattern `covered` matches.
    pub fn covers(&mut self, pattern: &str, covered: &str) -> bool {
        self.covers_parts(pattern, &[covered])
    }

    /// Like [`Coverage::covers`], for a covered pattern given as consecutive parts.
    pub fn covers_parts(&mut self, pattern: &str, covered: &[&str]) -> bool {
        let prefix = literal_prefix(pattern);
        if prefix.len() == pattern.len() {
            // Letters only: it covers exactly the same letters, no wildcard among them.
            return covered_starts_with(covered, prefix)
                && covered.iter().map(|part| part.len()).sum::<usize>() == prefix.len();
        }
        if only_stars(&pattern[prefix.len()..]) {
            // `prefix*`: it covers whatever spells `prefix` first, in letters.
            return covered_starts_with(covered, prefix);
        }
        let tokens = covered
            .iter()
            .flat_map(|part| part.bytes())
            .map(|c| match c {
                b'*' => Token::Run,
                b'?' => Token::Other,
                c => Token::Byte(c.to_ascii_lowercase()),
            });
        self.run(pattern, tokens)
    }

    /// Whether some string matches both `a` and `b`.
    pub fn intersects(&mut self, a: &str, b: &str) -> bool {
        let (x, y) = (literal_prefix(a), literal_prefix(b));
        let shared = x.len().min(y.len());
        if !x[..shared].eq_ignore_ascii_case(&y[..shared]) {
            return false;
        }
        let a = compile(a);
        let b = compile(b);
        let (m, n) = (a.len(), b.len());
        let width = n + 1;
        self.table.clear();
        self.table.resize((m + 1) * width, false);
        self.table[0] = true;
        let mut visited = 0;
        for i in 0..=m {
            for j in 0..=n {
                if !self.table[i * width + j] {
                    continue;
                }
                visited += 1;
                let (x, y) = (a.get(i).copied(), b.get(j).copied());
                let mut reach = |i: usize, j: usize| self.table[i * width + j] = true;
                match (x, y) {
                    (Some(b'*'), _) => {
                        reach(i + 1, j);
                        if y.is_some() {
                            reach(i, j + 1);
                        }
                    }
                    (_, Some(b'*')) => {
                        reach(i, j + 1);
                        if x.is_some() {
                            reach(i + 1, j);
                        }
                    }
                    (Some(x), Some(y)) if x == y || x == b'?' || y == b'?' => reach(i + 1, j + 1),
                    _ => {}
                }
            }
        }
        self.count(visited);
        self.table[m * width + n]
    }

    /// Runs `pattern` over `tokens`: whether it ends in the accepting state.
    fn run(&mut self, pattern: &str, tokens: impl Iterator<Item = Token>) -> bool {
        self.pattern.clear();
        self.pattern.extend(compile(pattern));
        let m = self.pattern.len();
        self.states.clear();
        self.states.resize(m + 1, false);
        self.states[0] = true;
        self.close();
        for token in tokens {
            self.next.clear();
            self.next.resize(m + 1, false);
            let alive = match token {
                Token::Byte(c) => self.step(Some(c)),
                Token::Other => self.step(None),
                Token::Run => self.step_run(),
            };
            std::mem::swap(&mut self.states, &mut self.next);
            if !alive {
                return false;
            }
            self.close();
        }
        self.states[m]
    }

    /// Consumes one character (`None`: one no literal spells) into `next`; whether any state lives.
    fn step(&mut self, c: Option<u8>) -> bool {
        let mut alive = false;
        let mut visited = 0;
        for (i, &p) in self.pattern.iter().enumerate() {
            if !self.states[i] {
                continue;
            }
            visited += 1;
            if p == b'*' {
                self.next[i] = true;
                alive = true;
            } else if p == b'?' || Some(p) == c {
                self.next[i + 1] = true;
                alive = true;
            }
        }
        self.count(visited);
        alive
    }

    /// Consumes a run longer than the pattern of characters no literal spells into `next`: a state
    /// survives by crossing only `*` and `?`, at least one `*` (whose loop absorbs what the `?`s do
    /// not); whether any state lives.
    fn step_run(&mut self) -> bool {
        #[derive(PartialEq, PartialOrd)]
        enum Crossing {
            None,
            Wildcards,
            Star,
        }
        let m = self.pattern.len();
        let mut crossing = Crossing::None;
        let mut alive = false;
        self.count(m + 1);
        for j in 0..=m {
            if self.states[j] && crossing < Crossing::Wildcards {
                crossing = Crossing::Wildcards;
            }
            let p = self.pattern.get(j).copied();
            if p == Some(b'*') && crossing >= Crossing::Wildcards {
                crossing = Crossing::Star;
            }
            if crossing == Crossing::Star {
                self.next[j] = true;
                alive = true;
            }
            if !matches!(p, Some(b'*' | b'?')) {
                crossing = Crossing::None;
            }
        }
        alive
    }

    /// Adds to the states every position reached by letting a `*` match nothing.
    fn close(&mut self) {
        for (i, &p) in self.pattern.iter().enumerate() {
            if p == b'*' && self.states[i] {
                self.states[i + 1] = true;
            }
        }
    }

    #[cfg(test)]
    fn count(&mut self, n: usize) {
        self.work += n;
    }

    #[cfg(not(test))]
    fn count(&mut self, _: usize) {}
}

/// Whether `pattern` holds `*` or `?`.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.bytes().any(is_wildcard)
}

/// Whether `c` is one of IAM's wildcards, `*` or `?`.
fn is_wildcard(c: u8) -> bool {
    c == b'*' || c == b'?'
}

/// The pattern lower-cased, with each run of `*` folded into one (they match the same strings).
fn compile(pattern: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(pattern.len());
    for c in pattern.bytes() {
        if !(c == b'*' && out.last() == Some(&b'*')) {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The bytes of `pattern` before its first wildcard: whatever it matches starts with them.
fn literal_prefix(pattern: &str) -> &[u8] {
    let bytes = pattern.as_bytes();
    let end = bytes
        .iter()
        .position(|&c| is_wildcard(c))
        .unwrap_or(bytes.len());
    &bytes[..end]
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Whether `rest` of a pattern is one or more `*` and nothing else.
fn only_stars(rest: &str) -> bool {
    !rest.is_empty() && rest.bytes().all(|c| c == b'*')
}

/// Whether the pattern made of `parts` in a row starts with the letters `prefix` (no wildcard
/// among its first `prefix.len()` bytes), ASCII case-insensitively.
fn covered_starts_with(parts: &[&str], prefix: &[u8]) -> bool {
    let mut rest = prefix;
    for part in parts {
        if rest.is_empty() {
            break;
        }
        let take = part.len().min(rest.len());
        let head = &part.as_bytes()[..take];
        if !head.eq_ignore_ascii_case(&rest[..take]) || head.iter().any(|&c| is_wildcard(c)) {
            return false;
        }
        rest = &rest[take..];
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A plain recursive matcher: obviously right, exponential on purpose-built input.
    fn brute_matches(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|k| brute_matches(rest, &text[k..])),
            Some((&p, rest)) => text.split_first().is_some_and(|(&c, tail)| {
                (p == b'?' || p.eq_ignore_ascii_case(&c)) && brute_matches(rest, tail)
            }),
        }
    }

    #[test]
    fn matches_like_iam_wildcards() {
        let mut c = Coverage::default();
        assert!(c.matches("s3:Get*", "s3:getobject"));
        assert!(c.matches("S3:GETOBJECT", "s3:GetObject"));
        assert!(c.matches("s3:?etObject", "s3:getobject"));
        assert!(c.matches("*", ""));
        assert!(c.matches("a*b*c", "axxbyyc"));
        assert!(c.matches("a**c", "ac"));
        assert!(!c.matches("a*b*c", "axxbyy"));
        assert!(!c.matches("s3:Get", "s3:getobject"));
        assert!(!c.matches("s3:Get?", "s3:get"));
        assert!(!c.matches("", "x"));
    }

    #[test]
    fn covering_patterns_are_found_whatever_their_spelling() {
        let mut c = Coverage::default();
        for pattern in [
            "iam:*", "IAM:*", "i*", "iam*", "*am:*", "ia?:*", "**", "*:*", "*", "iam:**", "*?",
            "iam:?*", "*?*?",
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
            "iam:*x",
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
        assert!(c.covers("iam:passrole", "IAM:PassRole"));
        assert!(!c.covers("iam:PassRole", "iam:Pass*"));
        assert!(
            !c.covers("iam:Pass\u{ff}", "iam:Pass?"),
            "a literal never stands for a covered `?`"
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
        let literal = ["arn:aws:iam::", "123456789012", ":role/x"];
        assert!(c.covers_parts("arn:aws:iam::123456789012:role/X", &literal));
        assert!(!c.covers_parts("arn:aws:iam::123456789012:role/", &literal));
        assert!(!c.covers_parts("arn:aws:iam::123456789012:role/xy", &literal));
    }

    #[test]
    fn intersections_need_a_common_string() {
        let mut c = Coverage::default();
        for (a, b) in [
            ("iam:ListRoles", "iam:*"),
            ("iam:*", "*:ListRoles"),
            ("*", ""),
            ("i?m:*", "*:pass*"),
            ("IAM:LIST*", "iam:*roles"),
            ("a*b", "*ab*"),
        ] {
            assert!(c.intersects(a, b), "{a} and {b} share a string");
            assert!(c.intersects(b, a), "{b} and {a} share a string");
        }
        for (a, b) in [
            ("iam:ListRoles", "sts:*"),
            ("iam:?", "iam:??"),
            ("s3:*", "iam:*"),
            ("a*", "b*"),
            ("*a", "*b"),
        ] {
            assert!(!c.intersects(a, b), "{a} and {b} share no string");
            assert!(!c.intersects(b, a), "{b} and {a} share no string");
        }
    }

    /// `"*" + "?"×k + "x" + "*"×k`: a backtracking matcher run on a witness expanded to the pattern's
    /// length costs k² steps (23 s at k = 60,000); here every question costs at most the pattern's
    /// length times the other side's.
    #[test]
    fn hostile_patterns_cost_linear_work() {
        let k = 60_000;
        let hostile = format!("*{}x{}", "?".repeat(k), "*".repeat(k));
        let mut c = Coverage::default();
        let before = c.work;
        assert!(!c.covers(&hostile, "iam:*"));
        assert!(!c.covers(&hostile, "*"));
        assert!(c.covers(&hostile, "*x*"));
        let bound = 3 * (hostile.len() + 1) * "iam:*".len();
        assert!(
            c.work - before <= bound,
            "{} states visited for a pattern of {} bytes",
            c.work - before,
            hostile.len()
        );
        let before = c.work;
        assert!(!c.matches(&hostile, "iam:PassRole"));
        assert!(c.work - before <= "iam:PassRole".len() * (hostile.len() + 1));
        let before = c.work;
        assert!(c.intersects("iam:*", &hostile[..2_000]));
        assert!(c.work - before <= 6 * 2_001);
    }

    fn pattern() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof!["[abAB:]", Just("*".to_owned()), Just("?".to_owned())],
            0..7,
        )
        .prop_map(|parts| parts.concat())
    }

    fn text() -> impl Strategy<Value = String> {
        "[abAB:]{0,6}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn matching_agrees_with_the_plain_matcher(p in pattern(), t in text()) {
            prop_assert_eq!(
                Coverage::default().matches(&p, &t),
                brute_matches(p.as_bytes(), t.as_bytes())
            );
        }

        #[test]
        fn a_prefix_and_a_star_match_and_cover_as_any_pattern_does(prefix in "[abAB:]{0,4}",
                stars in 1..3usize, b in pattern(), t in text(), cut in 0..8usize) {
            let a = format!("{prefix}{}", "*".repeat(stars));
            prop_assert_eq!(
                Coverage::default().matches(&a, &t),
                brute_matches(a.as_bytes(), t.as_bytes())
            );
            let witness = b.replace('*', &"\u{7f}".repeat(a.len() + 1)).replace('?', "\u{7f}");
            let expected = brute_matches(a.as_bytes(), witness.as_bytes());
            prop_assert_eq!(Coverage::default().covers(&a, &b), expected);
            let cut = cut.min(b.len());
            prop_assert_eq!(Coverage::default().covers_parts(&a, &[&b[..cut], &b[cut..]]), expected);
        }

        #[test]
        fn coverage_and_intersection_agree_with_samples(a in pattern(), b in pattern(),
                texts in proptest::collection::vec(text(), 0..40)) {
            let mut c = Coverage::default();
            let in_b: Vec<&String> = texts.iter().filter(|t| brute_matches(b.as_bytes(), t.as_bytes())).collect();
            let witness = b.replace('*', &"\u{7f}".repeat(a.len() + 1)).replace('?', "\u{7f}");
            prop_assert_eq!(c.covers(&a, &b), brute_matches(a.as_bytes(), witness.as_bytes()));
            if in_b.iter().any(|t| brute_matches(a.as_bytes(), t.as_bytes())) {
                prop_assert!(c.intersects(&a, &b), "{a} and {b} share a sample");
            }
            if !c.intersects(&a, &b) {
                let both = texts.iter().find(|t| brute_matches(a.as_bytes(), t.as_bytes()) && brute_matches(b.as_bytes(), t.as_bytes()));
                prop_assert!(both.is_none());
            }
        }
    }
}
