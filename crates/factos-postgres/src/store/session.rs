//! The transaction session: a pooled connection whose transaction factos
//! drives by hand, and how a pipeline's errors are told apart.

use factos::{StoreError, StoreErrorKind};

/// A pooled connection whose transaction factos drives by hand, so BEGIN,
/// locks and reads share one round trip. Dropped while a transaction is open
/// (a cancelled future, a panic), it discards the connection rather than
/// return it to the pool mid-transaction.
pub(crate) struct Session {
    client: Option<deadpool_postgres::Object>,
    /// Whether a transaction may be open (atomic only so a shared borrow can set it).
    open: std::sync::atomic::AtomicBool,
}

impl Session {
    pub(crate) fn new(client: deadpool_postgres::Object) -> Self {
        Self {
            client: Some(client),
            open: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn client(&self) -> Result<&deadpool_postgres::Object, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::new(StoreErrorKind::Other, "the session has no connection"))
    }

    /// Whether a transaction may be open (an append kept it open for its
    /// effects, or failed before the commit).
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_open(&self, open: bool) {
        self.open.store(open, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ends an open transaction without writing anything (the connection
    /// stays in the session).
    pub(crate) async fn rollback(&self) {
        if let Some(client) = &self.client
            && self.open.load(std::sync::atomic::Ordering::Relaxed)
            && client.batch_execute("ROLLBACK").await.is_ok()
        {
            self.set_open(false);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if *self.open.get_mut()
            && let Some(client) = self.client.take()
        {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// The first error of a pipeline that is not "transaction aborted" (later
/// statements of a failed pipeline only report that), else the first error.
pub(crate) fn first_failure<const N: usize>(
    errors: [Option<(&'static str, tokio_postgres::Error)>; N],
) -> Option<(&'static str, tokio_postgres::Error)> {
    let aborted = |e: &tokio_postgres::Error| {
        e.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION)
    };
    let mut fallback = None;
    for (what, e) in errors.into_iter().flatten() {
        if !aborted(&e) {
            return Some((what, e));
        }
        fallback.get_or_insert((what, e));
    }
    fallback
}
