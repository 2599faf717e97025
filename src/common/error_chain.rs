//! [`ErrorChain`]: an error and its `source()` chain on one line, as
//! `anyhow` prints `{:#}`. The typed error enums of the layers above keep the
//! cause as `source()` and put only what was being done in their own
//! message, so this is how a log line or a status field shows the whole
//! story.

use std::error::Error;
use std::fmt;

/// Displays `outer: cause: root cause`. A cause whose text the line
/// already holds is not repeated: a layer that names its cause in its own
/// message (`source `x` failed: <cause>`) and also keeps it as `source()`
/// reads once, not twice.
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
        let mut line = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(e) = cause {
            let text = e.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            cause = e.source();
        }
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("source `m` failed: {}", ErrorChain(.0))]
    struct Named(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("reading partitions")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = Named(Inner(std::io::Error::other("broker gone")));
        assert_eq!(
            ErrorChain(&e).to_string(),
            "source `m` failed: reading partitions: broker gone"
        );
        let plain = Inner(std::io::Error::other("broker gone"));
        assert_eq!(
            ErrorChain(&plain).to_string(),
            "reading partitions: broker gone"
        );
    }
}
