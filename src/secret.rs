//! A wrapper for secret strings (database passwords and the like).
//!
//! `Secret` has no `Serialize` and its `Debug`/`Display` print `***`, so a secret cannot reach a
//! log line, a manifest or an error message by accident. The one way to read it is
//! [`Secret::expose`], which is called only where the value is handed to the database tool
//! (an exec environment variable).

use std::fmt;

/// A string that must never be shown. See the module doc.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for handing to the tool that needs it. Never log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Read from config as a string; a number or boolean (as an environment variable like
/// `…__ALLOW_HTTP=true` parses) becomes its text. There is deliberately no `Serialize`.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Bool(bool),
            Int(i64),
            Float(f64),
        }
        Ok(Self(match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
        }))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
