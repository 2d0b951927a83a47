//! Mapping driver errors to the core's store errors, without leaking driver types.

use factos::{StoreError, StoreErrorKind};
use tokio_postgres::error::SqlState;

/// Where in a transaction an error happened: a broken connection during the
/// commit leaves the outcome unknown, anywhere else nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    BeforeCommit,
    Commit,
}

pub(crate) fn db_error(context: &str, error: tokio_postgres::Error, phase: Phase) -> StoreError {
    let kind = match error.code() {
        Some(code)
            if *code == SqlState::LOCK_NOT_AVAILABLE || *code == SqlState::QUERY_CANCELED =>
        {
            StoreErrorKind::Timeout
        }
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            StoreErrorKind::Contention
        }
        Some(code)
            if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME =>
        {
            StoreErrorKind::Schema
        }
        Some(code)
            if *code == SqlState::PROGRAM_LIMIT_EXCEEDED
                || *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE
                || *code == SqlState::UNTRANSLATABLE_CHARACTER =>
        {
            StoreErrorKind::Rejected
        }
        Some(code)
            if *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW =>
        {
            closed_kind(phase)
        }
        Some(_) => StoreErrorKind::Other,
        // A parameter or column the driver could not convert: nothing went
        // to the server, and retrying sends the same value again.
        None if is_conversion(&error) => StoreErrorKind::Other,
        None if error.is_closed() || phase == Phase::Commit => closed_kind(phase),
        None => StoreErrorKind::Unavailable,
    };
    let hint = if kind == StoreErrorKind::Schema {
        " (has the schema been migrated? run `PostgresStore::migrate` or `factos migrate`)"
    } else {
        ""
    };
    StoreError::new(kind, format!("{context}{hint}")).with_source(DriverError(error))
}

/// The driver's error, displayed with what the server said: the driver's own
/// Display is only "db error" for server errors.
#[derive(Debug)]
pub(crate) struct DriverError(pub(crate) tokio_postgres::Error);

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(db) = self.0.as_db_error() {
            write!(
                f,
                "{} {}: {}",
                db.severity(),
                db.code().code(),
                db.message()
            )?;
            if let Some(detail) = db.detail() {
                write!(f, " ({detail})")?;
            }
            return Ok(());
        }
        write!(f, "{}", self.0)?;
        if let Some(source) = std::error::Error::source(&self.0) {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Whether the driver refused the statement's values before sending it: a
/// parameter or a column it could not convert, or the wrong number of
/// parameters (its error kinds are private; their messages are stable:
/// "error serializing parameter N", "error deserializing column N",
/// "expected N parameters but got M").
fn is_conversion(error: &tokio_postgres::Error) -> bool {
    let text = error.to_string();
    text.starts_with("error serializing")
        || text.starts_with("error deserializing")
        || (text.starts_with("expected ") && text.contains(" parameters but got "))
}

fn closed_kind(phase: Phase) -> StoreErrorKind {
    match phase {
        Phase::BeforeCommit => StoreErrorKind::Unavailable,
        Phase::Commit => StoreErrorKind::CommitOutcomeUnknown,
    }
}

pub(crate) fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        // Whatever the server said while connecting (refused, no such
        // database, authentication), nothing was written.
        deadpool_postgres::PoolError::Backend(e) => {
            StoreError::new(StoreErrorKind::Unavailable, "cannot connect to PostgreSQL")
                .with_source(DriverError(e))
        }
        other => StoreError::new(
            StoreErrorKind::Unavailable,
            "no PostgreSQL connection available",
        )
        .with_source(other),
    }
}

pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, message)
}

fn is_unique_violation(error: &tokio_postgres::Error, constraint: &str) -> bool {
    error.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

/// Whether a driver error is the unique violation of (stream, revision).
pub(crate) fn is_stream_revision_violation(error: &tokio_postgres::Error) -> bool {
    is_unique_violation(error, "factos_events_stream_revision")
}

/// Whether a driver error is the unique violation of event ids.
pub(crate) fn is_event_id_violation(error: &tokio_postgres::Error) -> bool {
    is_unique_violation(error, "factos_events_id")
}
