//! Short, one-line renderings of user values for finding messages. Pure.

/// Longest excerpt, in characters, before it is cut with `…`.
const MAX_CHARS: usize = 64;

/// `text` in backticks, control characters escaped (a message stays on one line) and cut after
/// [`MAX_CHARS`] characters.
pub(super) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_CHARS * 4) + 2);
    out.push('`');
    for (i, c) in text.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_escapes_control_characters_and_cuts_long_text() {
        assert_eq!(quote("my-role"), "`my-role`");
        assert_eq!(quote("a\nb\t"), "`a\\nb\\t`");
        let long = "x".repeat(100);
        let quoted = quote(&long);
        assert_eq!(quoted.chars().count(), 64 + 3);
        assert!(quoted.ends_with("…`"));
        assert_eq!(quote(&"é".repeat(64)), format!("`{}`", "é".repeat(64)));
    }
}
