//! How an error is printed for people: one line, the message followed by each cause whose text
//! the line does not already hold. stowage's own errors name their cause in their message,
//! while libraries (lettre, object_store) often keep the useful part (a TLS failure, a server's
//! reply) in a source, so both kinds read well this way.

use std::error::Error;

/// `e` and its sources on one line, separated by `": "`, without repeating text.
pub fn one_line(e: &(dyn Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// At most `max` characters of a user's text, for messages: a label value can be 100 kB.
/// Longer text is cut and says how long it was.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}… ({} bytes)", &text[..i], text.len()),
        None => text.to_string(),
    }
}

/// How long a user's value may be in a message before it is cut.
pub const SHOWN: usize = 60;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_and_says_so() {
        assert_eq!(shorten("short", 10), "short");
        let long = "x".repeat(100_000);
        let cut = shorten(&long, SHOWN);
        assert!(cut.len() < 100 && cut.ends_with("(100000 bytes)"), "{cut}");
        assert_eq!(shorten("ünïcödé", 3), "ünï… (11 bytes)");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Msg(String, #[source] Option<Box<Msg>>);

    #[test]
    fn causes_are_appended_unless_already_said() {
        let inner = Msg("certificate unknown".into(), None);
        let says_it = Msg(
            "TLS failed: certificate unknown".into(),
            Some(Box::new(inner)),
        );
        assert_eq!(one_line(&says_it), "TLS failed: certificate unknown");
        let inner = Msg("certificate unknown".into(), None);
        let hides_it = Msg("connection error".into(), Some(Box::new(inner)));
        assert_eq!(one_line(&hides_it), "connection error: certificate unknown");
    }
}
