//! Parsing connection strings without ever repeating them: a connection
//! string may hold a password, and the driver's parse errors quote the text
//! they stumbled on (an unquoted password with a space shows its second word
//! as an "unknown option").

use std::fmt;

/// A connection string the driver cannot parse. It holds no part of the
/// string, only, when the driver said so, the name of the option whose
/// value is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConnectionString {
    invalid_option: Option<String>,
}

impl InvalidConnectionString {
    /// The option whose value is invalid (`port`, `sslmode`, ...), when the
    /// driver named one.
    pub fn invalid_option(&self) -> Option<&str> {
        self.invalid_option.as_deref()
    }
}

impl fmt::Display for InvalidConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a valid PostgreSQL connection string ")?;
        match &self.invalid_option {
            Some(option) => write!(f, "(invalid value for option `{option}`)"),
            None => f.write_str(
                "(values with spaces or quotes must be single-quoted in the key=value form, \
                 percent-encoded in a URL)",
            ),
        }
    }
}

impl std::error::Error for InvalidConnectionString {}

/// Parses `text` (`postgresql://user:password@host/db` or `host=... dbname=...`)
/// into a driver configuration; the error never repeats any of `text`.
///
/// ```
/// let error = factos_postgres::parse_connection_string("host=h password=se cret=1").unwrap_err();
/// assert!(!error.to_string().contains("cret"));
/// ```
pub fn parse_connection_string(
    text: &str,
) -> Result<tokio_postgres::Config, InvalidConnectionString> {
    text.parse()
        .map_err(|e: tokio_postgres::Error| InvalidConnectionString {
            invalid_option: invalid_option(&e),
        })
}

/// The option named by the driver's "invalid value for option `name`" (its
/// names are fixed strings of the driver, never user text); anything else
/// the driver says may quote the string.
fn invalid_option(error: &tokio_postgres::Error) -> Option<String> {
    let cause = std::error::Error::source(error)?.to_string();
    let name = cause
        .strip_prefix("invalid value for option `")?
        .strip_suffix('`')?;
    name.bytes()
        .all(|b| b.is_ascii_lowercase() || b == b'_')
        .then(|| name.to_string())
}
