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

#[cfg(test)]
mod tests {
    use super::*;

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
