//! Errors: bad configuration and misuse of the API. Rejections are *not* errors; they are
//! decision values (see [`crate::ErrorKind`]).

use std::fmt;

/// One problem in a configuration, at a field path such as
/// `policies.api.circuitBreaker.halfOpen.permittedCalls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Dotted field path from the document root (`[i]` for list items); empty for the root.
    pub path: String,
    /// Why the value is refused, e.g. `must be >= 1, got 0`.
    pub reason: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// A configuration was refused. Holds every issue found (at least one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    issues: Vec<Issue>,
}

impl ConfigError {
    /// An error with a single issue.
    #[must_use]
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            issues: vec![Issue {
                path: path.into(),
                reason: reason.into(),
            }],
        }
    }

    /// The issues, in document order where known (at least one).
    #[must_use]
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// Prefix every issue's path with `prefix` (e.g. `policies.api`).
    #[must_use]
    pub fn within(mut self, prefix: &str) -> ConfigError {
        for issue in &mut self.issues {
            issue.path = join(prefix, &issue.path);
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects issues while validating, tracking the current field path.
#[derive(Debug, Default)]
pub struct Issues {
    issues: Vec<Issue>,
}

impl Issues {
    /// An empty collector.
    #[must_use]
    pub fn new() -> Issues {
        Issues::default()
    }

    /// Record that the field at `path` is refused for `reason`.
    pub fn push(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.issues.push(Issue {
            path: path.into(),
            reason: reason.into(),
        });
    }

    /// Record every issue of `err`, under `prefix`.
    pub fn extend(&mut self, prefix: &str, err: ConfigError) {
        self.issues.extend(err.within(prefix).issues);
    }

    /// Whether nothing was refused so far.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.issues.is_empty()
    }

    /// `Ok(value)` when nothing was refused, else the collected error.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.issues.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                issues: self.issues,
            })
        }
    }
}

/// A text in double quotes as `{:?}` writes it, except that a non-ASCII character is always
/// written as it is (`{:?}` escapes the unprintable ones, which takes Unicode tables: about
/// 3 KB of the npm package's browser module). ASCII is escaped as `{:?}` escapes it: `\"`,
/// `\\`, `\n`, `\r`, `\t`, `\0`, other control characters as `\u{1b}`.
#[derive(Clone, Copy, Debug)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            escape(c, '"', f)?;
        }
        f.write_str("\"")
    }
}

/// A character in single quotes, as `{:?}` writes it (but for unprintable non-ASCII, as
/// [`Quoted`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct QuotedChar(pub char);

impl fmt::Display for QuotedChar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("'")?;
        escape(self.0, '\'', f)?;
        f.write_str("'")
    }
}

/// One character as `{:?}` escapes it inside `quote`s (see [`Quoted`]).
fn escape(c: char, quote: char, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    use fmt::Write;
    match c {
        '\\' => f.write_str("\\\\"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\t' => f.write_str("\\t"),
        '\0' => f.write_str("\\0"),
        c if c == quote => {
            f.write_char('\\')?;
            f.write_char(c)
        }
        c if c.is_ascii_control() => write!(f, "\\u{{{:x}}}", u32::from(c)),
        c => f.write_char(c),
    }
}

/// `prefix.field`, or whichever is non-empty.
#[must_use]
pub fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if field.starts_with('[') => format!("{prefix}{field}"),
        _ => format!("{prefix}.{field}"),
    }
}

/// Misuse of a live object: a handle that is unknown, finished, or in the wrong state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The call handle does not name a live call (finished, cancelled, or never begun).
    UnknownCall,
    /// `poll` while an attempt is running: report its outcome first.
    AttemptInFlight,
    /// `report` when no attempt is running.
    NoAttemptInFlight,
    /// A health check name or index that is not registered.
    UnknownCheck,
    /// A health check name registered twice.
    DuplicateCheck,
    /// A pipeline name that the policy file does not define.
    UnknownPolicy,
    /// `report_store` for a call that is not waiting for a store reply.
    NoStoreRequest,
    /// A reply for a store request that is unknown or already answered.
    UnknownRequest,
}

impl UsageError {
    /// A short, stable description.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            UsageError::UnknownCall => "unknown or finished call handle",
            UsageError::AttemptInFlight => {
                "an attempt is in flight: report its outcome before polling"
            }
            UsageError::NoAttemptInFlight => "no attempt is in flight to report on",
            UsageError::UnknownCheck => "no health check with that name",
            UsageError::DuplicateCheck => "a health check with that name is already registered",
            UsageError::UnknownPolicy => "no policy with that name",
            UsageError::NoStoreRequest => "no store request is pending for this call",
            UsageError::UnknownRequest => "unknown or already answered store request",
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for UsageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_text_is_written_as_debug_writes_it_but_for_unprintable_non_ascii() {
        let mut every_ascii: String = (0_u8..128).map(char::from).collect();
        every_ascii.push_str("é中😀 'x' \"y\" \\z");
        assert_eq!(Quoted(&every_ascii).to_string(), format!("{every_ascii:?}"));
        for c in every_ascii.chars() {
            assert_eq!(QuotedChar(c).to_string(), format!("{c:?}"), "{c:?}");
        }
        // The deliberate difference: no Unicode tables, so a zero-width space stays as it is.
        assert_eq!(format!("{:?}", "\u{200b}"), "\"\\u{200b}\"");
        assert_eq!(Quoted("\u{200b}").to_string(), "\"\u{200b}\"");
    }
}
