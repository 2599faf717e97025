//! Environment-variable references in pipeline values.
//!
//! Deploy-specific values (broker addresses, storage paths) are written as
//! `${VAR}` or `${VAR:-default}`; a bare `$` is kept as written. Only fields typed [`EnvString`] are expanded,
//! never the whole file, so a `$` in SQL or a comment is never touched, and
//! an unset variable without a default is an error at that key's line.

use serde::{Deserialize, Deserializer};

/// A string from the YAML with `${VAR}` / `${VAR:-default}` already expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvString(pub String);

impl EnvString {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EnvString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Expand `${VAR}` and `${VAR:-default}` against the process environment.
///
/// Only the braced forms are references: a bare `$NAME` (a password such as
/// `pa$word`) is kept exactly as written, and `$$` is a literal `$` for the
/// rare value that must contain `${`. A variable that is set but empty takes
/// the default, as in the shell.
///
/// ```
/// # use vitalflow::common::expand_env;
/// // SAFETY (test only): single-threaded doctest.
/// unsafe { std::env::set_var("VF_DOC_DIR", "/srv") };
/// assert_eq!(expand_env("${VF_DOC_DIR}/vitals").unwrap(), "/srv/vitals");
/// assert_eq!(expand_env("${VF_DOC_UNSET:-data}/vitals").unwrap(), "data/vitals");
/// assert_eq!(expand_env("pa$word$HOME").unwrap(), "pa$word$HOME");
/// assert_eq!(expand_env("$${literal}").unwrap(), "${literal}");
/// assert!(expand_env("${VF_DOC_UNSET}").is_err());
/// ```
pub fn expand_env(raw: &str) -> Result<String, EnvError> {
    expand_with(raw, |name| std::env::var(name).ok())
}

/// [`expand_env`] with variables from `lookup`.
fn expand_with(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(EnvError::Unterminated)?;
            let (name, default) = match body[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&body[..end], None),
            };
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(EnvError::NotAName {
                    name: name.to_string(),
                });
            }
            match (lookup(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(EnvError::Unset {
                        name: name.to_string(),
                    });
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A `${...}` reference that cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `${` without its `}`.
    #[error(
        "unterminated `${{`: write `${{NAME}}` or `${{NAME:-default}}` (or `$$` for a literal `$`)"
    )]
    Unterminated,

    /// `${...}` whose inside is not a variable name.
    #[error(
        "`${{{name}}}` is not a variable reference: names are letters, digits and `_` \
         (write `$$` for a literal `$`)"
    )]
    NotAName { name: String },

    /// A variable that is unset (or empty) and has no default.
    #[error(
        "environment variable `{name}` is not set (write `${{{name}:-default}}` to give a default)"
    )]
    Unset { name: String },
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        expand_env(&raw)
            .map(EnvString)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(raw: &str) -> Result<String, EnvError> {
        expand_with(raw, |name| match name {
            "HOST" => Some("kafka:9092".into()),
            "EMPTY" => Some(String::new()),
            "SECRET" => Some("s3cr$t".into()),
            _ => None,
        })
    }

    #[test]
    fn only_braced_references_expand() {
        assert_eq!(expand("${HOST}").unwrap(), "kafka:9092");
        assert_eq!(
            expand("a${HOST}b${HOST}").unwrap(),
            "akafka:9092bkafka:9092"
        );
        assert_eq!(expand("${UNSET:-x:y}").unwrap(), "x:y");
        assert_eq!(expand("${EMPTY:-fallback}").unwrap(), "fallback");
        assert_eq!(expand("${UNSET:-}").unwrap(), "");
        // A password with `$` in it is not changed.
        assert_eq!(expand("pa$$word").unwrap(), "pa$word");
        assert_eq!(expand("pa$word").unwrap(), "pa$word");
        assert_eq!(expand("$HOST").unwrap(), "$HOST");
        assert_eq!(expand("cost: 5$").unwrap(), "cost: 5$");
        // A value is inserted as it is, never expanded again.
        assert_eq!(expand("${SECRET}").unwrap(), "s3cr$t");
    }

    #[test]
    fn bad_references_are_errors_naming_the_variable() {
        assert!(
            expand("${UNSET}")
                .unwrap_err()
                .to_string()
                .contains("`UNSET` is not set")
        );
        assert!(
            expand("${HOST")
                .unwrap_err()
                .to_string()
                .contains("unterminated")
        );
        assert!(
            expand("${1X}")
                .unwrap_err()
                .to_string()
                .contains("not a variable reference")
        );
        assert!(
            expand("${}")
                .unwrap_err()
                .to_string()
                .contains("not a variable reference")
        );
    }
}
