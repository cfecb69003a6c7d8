//! `{var}` templates used in engine specs' argv and env entries.
//!
//! A template is split once, at spec load, into literal text and variable references;
//! `{{` and `}}` stand for literal braces. Rendering substitutes values as whole strings:
//! there is no shell and no word splitting, so a value can never become a second argument.

use std::collections::BTreeMap;

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// A variable the template uses that has no value (its name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value for {{{0}}}")]
pub struct Unbound(pub String);

/// One parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

impl Template {
    /// Parses `text`; errors name the problem (unclosed or empty `{}`).
    // Long: a character-level state machine; splitting it would split its state.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let err = |m: String| TemplateError(m);
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                            Some(c) => return Err(err(format!("{text:?}: {c:?} inside {{…}}"))),
                            None => return Err(err(format!("{text:?}: unclosed '{{'"))),
                        }
                    }
                    if name.is_empty() {
                        return Err(err(format!("{text:?}: empty '{{}}'")));
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Var(name));
                }
                '}' => return Err(err(format!("{text:?}: lone '}}' (write '}}}}')"))),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        Ok(Self { pieces })
    }

    /// Names of the variables the template uses.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Substitutes values; [`Unbound`] names the first variable that has no value.
    pub fn render(&self, values: &BTreeMap<String, String>) -> Result<String, Unbound> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(values.get(v).ok_or_else(|| Unbound(v.clone()))?),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render() {
        let t = Template::parse("--dbname={database}:{{x}}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["database"]);
        let values = BTreeMap::from([("database".to_string(), "a b;$(rm)".to_string())]);
        assert_eq!(t.render(&values).unwrap(), "--dbname=a b;$(rm):{x}");
        assert_eq!(
            Template::parse("{user}").unwrap().render(&values),
            Err(Unbound("user".into()))
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["{", "{a", "{}", "a}", "{a-b}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
