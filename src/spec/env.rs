//! Environment-variable references in pipeline values.
//!
//! Deploy-specific values (broker addresses, storage paths) are written as
//! `${VAR}` or `${VAR:-default}`. Only fields typed [`EnvString`] are expanded,
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
/// ```
/// # use vitalflow::spec::expand_env;
/// // SAFETY (test only): single-threaded doctest.
/// unsafe { std::env::set_var("VF_DOC_DIR", "/srv") };
/// assert_eq!(expand_env("${VF_DOC_DIR}/vitals").unwrap(), "/srv/vitals");
/// assert_eq!(expand_env("${VF_DOC_UNSET:-data}/vitals").unwrap(), "data/vitals");
/// assert!(expand_env("${VF_DOC_UNSET}").is_err());
/// ```
pub fn expand_env(raw: &str) -> Result<String, String> {
    shellexpand::env(raw).map(|s| s.into_owned()).map_err(|e| {
        format!(
            "environment variable `{}` is not set (write `${{{}:-default}}` to give a default): {}",
            e.var_name, e.var_name, e.cause
        )
    })
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        expand_env(&raw)
            .map(EnvString)
            .map_err(serde::de::Error::custom)
    }
}
