//! [`ErrorChain`]: an error and its `source()` chain on one line, as
//! `anyhow` prints `{:#}`. The typed error enums of the layers above keep the
//! cause as `source()` and put only what was being done in their own
//! message, so this is how a log line or a status field shows the whole
//! story.

use std::error::Error;
use std::fmt;

/// Displays `outer: cause: root cause`.
///
/// ```
/// # use vitalflow::common::ErrorChain;
/// #[derive(Debug, thiserror::Error)]
/// #[error("writing the manifest")]
/// struct Write(#[source] std::io::Error);
/// let e = Write(std::io::Error::other("disk full"));
/// assert_eq!(ErrorChain(&e).to_string(), "writing the manifest: disk full");
/// ```
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}
