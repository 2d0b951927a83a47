//! What an application gives a PostgreSQL subscription for exactly once: a
//! projection applied in the checkpoint's transaction.

use std::future::Future;

use factos::StoredEvent;

/// Applies batches of events to tables of the same database, exactly once:
/// the handler's writes and the checkpoint commit in one transaction.
///
/// The transaction is READ COMMITTED (factos's connections default to it);
/// a handler that wants another level sends `SET TRANSACTION ISOLATION
/// LEVEL …` as its first statement.
///
/// ```
/// use factos::StoredEvent;
/// use factos_postgres::ProjectionHandler;
/// use factos_postgres::tokio_postgres::{Error, Transaction};
///
/// /// Counts events per type in a table `event_counts (type text primary key, n bigint)`.
/// struct CountByType;
///
/// impl ProjectionHandler for CountByType {
///     type Error = Error;
///     async fn apply(&mut self, tx: &Transaction<'_>, events: &[StoredEvent]) -> Result<(), Error> {
///         for event in events {
///             tx.execute(
///                 "INSERT INTO event_counts VALUES ($1, 1)
///                  ON CONFLICT (type) DO UPDATE SET n = event_counts.n + 1",
///                 &[&event.event_type.as_str()],
///             ).await?;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait ProjectionHandler: Send {
    /// The handler's error: any error type, a `String`, or a boxed error.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send;
    /// Applies events in position order inside `transaction`. An error rolls
    /// the transaction back and retries the batch.
    fn apply(
        &mut self,
        transaction: &tokio_postgres::Transaction<'_>,
        events: &[StoredEvent],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
