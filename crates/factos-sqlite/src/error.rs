//! SQLite errors as factos store errors: whether a retry is safe, and
//! never the file's contents.

use factos::{StoreError, StoreErrorKind};
use rusqlite::ErrorCode;

/// `error` during `context`, typed by what SQLite said.
pub(crate) fn sqlite_error(context: &str, error: &rusqlite::Error) -> StoreError {
    let kind = match error.sqlite_error_code() {
        // Another writer held the file past the busy timeout: nothing was
        // written, retrying is safe.
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreErrorKind::Timeout,
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreErrorKind::Corrupt,
        // A full disk, a read-only file: the store refused the write.
        Some(
            ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::TooBig,
        ) => StoreErrorKind::Rejected,
        _ => StoreErrorKind::Other,
    };
    StoreError::new(kind, format!("{context}: {error}"))
}

/// A row that does not hold what factos wrote.
pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message)
}
