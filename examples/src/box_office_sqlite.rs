//! The box office on a SQLite file: the same sale, confirmation emails in
//! the outbox (recorded in each purchase's transaction) and the
//! `concert_sales` projection kept exactly once, with SQLite's workers. The
//! fold, the reactor and the mailer are the PostgreSQL version's
//! ([`crate::box_office`]); only the projection's SQL differs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use factos::json::JsonCodec;
use factos::{Codec, EventStore, Query, StoredEvent, Topic, View};
use factos_sqlite::rusqlite::{self, OptionalExtension};
use factos_sqlite::{
    Outbox, OutboxOptions, ProjectionHandler, SqliteStore, Subscription, SubscriptionOptions,
};

use crate::box_office::{BoxOfficeOutcome, ConcertSales, FlakyMailer, SalesView};
use crate::tickets::{Effects, TicketEvent, run_sale_with, sale_query};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The projection table (created if missing).
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS concert_sales (
    concert TEXT PRIMARY KEY,
    sold INTEGER NOT NULL,
    last_buyer TEXT NOT NULL
)";

/// Keeps `concert_sales` in the subscription's transaction.
pub struct SqliteSalesProjection {
    codec: JsonCodec<TicketEvent>,
}

impl Default for SqliteSalesProjection {
    fn default() -> Self {
        Self {
            codec: JsonCodec::new(),
        }
    }
}

impl ProjectionHandler for SqliteSalesProjection {
    type Error = BoxError;

    fn apply(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), BoxError> {
        for stored in events {
            let event = self.codec.decode(stored)?;
            let TicketEvent::TicketSold { concert, .. } = &event;
            let state = tx
                .query_row(
                    "SELECT sold, last_buyer FROM concert_sales WHERE concert = ?1",
                    [concert],
                    |r| {
                        Ok(ConcertSales {
                            sold: r.get(0)?,
                            last_buyer: r.get(1)?,
                        })
                    },
                )
                .optional()?
                .unwrap_or_default();
            let state = SalesView.evolve(state, &event);
            tx.execute(
                "INSERT INTO concert_sales (concert, sold, last_buyer) VALUES (?1, ?2, ?3)
                 ON CONFLICT (concert) DO UPDATE SET sold = ?2, last_buyer = ?3",
                rusqlite::params![concert, state.sold, state.last_buyer],
            )?;
        }
        Ok(())
    }
}

/// [`crate::box_office::run_box_office`] on a SQLite file.
pub async fn run_box_office_on_sqlite(
    store: &SqliteStore,
    concert: &str,
    capacity: usize,
    attempts: usize,
    parallel: usize,
) -> Result<BoxOfficeOutcome, BoxError> {
    let path = store.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        rusqlite::Connection::open(path)?.execute_batch(CREATE_TABLE)
    })
    .await??;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let projection = Subscription::new(store, "concert-sales", Query::all())?
        .with_options(SubscriptionOptions::default().batch_size(100))?;
    let projector = {
        let (projection, stop) = (projection.clone(), until_stopped());
        tokio::spawn(async move {
            projection
                .run_projection(SqliteSalesProjection::default(), stop)
                .await
        })
    };
    let mailer = FlakyMailer::default();
    let outbox = Outbox::new(store, Topic::new("email")?).with_options(
        OutboxOptions::default()
            .retry_delay(Duration::from_millis(20))
            .poll_interval(Duration::from_millis(50)),
    )?;
    let mailing = {
        let (outbox, mut mailer, stop) = (outbox.clone(), mailer.clone(), until_stopped());
        tokio::spawn(async move { outbox.run(&mut mailer, stop).await })
    };

    let sale = run_sale_with(
        store,
        concert,
        capacity,
        attempts,
        parallel,
        Effects::ConfirmationEmail,
    )
    .await?;
    let head = store
        .read(&sale_query(concert)?, factos::ReadOptions::default())
        .await?
        .head;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while projection.checkpoint().await? < head
        || mailer.sent.load(Ordering::Relaxed) < sale.accepted
    {
        if std::time::Instant::now() > deadline {
            return Err("the projection or the mailer did not catch up within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    projector.await??;
    mailing.await??;

    let path = store.path().to_path_buf();
    let concert_name = concert.to_string();
    let projected = tokio::task::spawn_blocking(move || {
        rusqlite::Connection::open(path)?
            .query_row(
                "SELECT sold, last_buyer FROM concert_sales WHERE concert = ?1",
                [concert_name],
                |r| {
                    Ok(ConcertSales {
                        sold: r.get(0)?,
                        last_buyer: r.get(1)?,
                    })
                },
            )
            .optional()
    })
    .await??
    .unwrap_or_default();
    Ok(BoxOfficeOutcome {
        accepted: sale.accepted,
        sold_out: sale.sold_out,
        projected,
        emails_sent: mailer.sent.load(Ordering::Relaxed),
        email_retries: mailer.failed.load(Ordering::Relaxed),
    })
}
