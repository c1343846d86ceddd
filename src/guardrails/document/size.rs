//! The `policy-size` rule's measure: IAM counts a policy's characters without whitespace. Pure.

use super::super::FieldPath;

/// The number of characters of `text` that are not whitespace.
pub fn count(text: &str) -> usize {
    if text.is_ascii() {
        // The common case, byte by byte: the only ASCII whitespace `char::is_whitespace` knows is
        // tab, line feed, vertical tab, form feed, carriage return and space.
        return text
            .bytes()
            .filter(|b| !matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' '))
            .count();
    }
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// Where the size of a role's inline policies together is reported: the list owning the first
/// document (`spec.inlinePolicies`; the singular `spec.inlinePolicy` is folded into that list).
pub fn inline_policies_path(first_document: &FieldPath) -> FieldPath {
    let path = first_document.as_str();
    match path.find(".inlinePolic") {
        Some(at) => FieldPath::root(&path[..at]).field("inlinePolicies"),
        None => first_document.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_character_but_whitespace() {
        assert_eq!(count(" {\n\t\"a\" : \"b c\" }\r\n"), 10);
        assert_eq!(count("é\u{2003}ü"), 2);
        assert_eq!(count(""), 0);
    }

    #[test]
    fn ascii_is_counted_as_every_character_is() {
        let every_ascii: String = (0u8..128).map(char::from).collect();
        let by_chars = every_ascii.chars().filter(|c| !c.is_whitespace()).count();
        assert_eq!(count(&every_ascii), by_chars);
        assert_eq!(count("\u{b}\u{c}\u{1c}\u{1f}"), 2);
    }

    #[test]
    fn inline_sizes_are_reported_at_the_list() {
        let spec = FieldPath::root("spec");
        let listed = spec
            .field("inlinePolicies")
            .index(3)
            .field("policyDocument");
        assert_eq!(
            inline_policies_path(&listed).as_str(),
            "spec.inlinePolicies"
        );
        let single = spec.field("inlinePolicy").field("policyDocument");
        assert_eq!(
            inline_policies_path(&single).as_str(),
            "spec.inlinePolicies"
        );
        assert_eq!(
            inline_policies_path(&FieldPath::root("doc")).as_str(),
            "doc"
        );
    }
}
