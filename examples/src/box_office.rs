//! The tickets sale with what happens after a commit, made durable (on
//! PostgreSQL here; on a SQLite file in [`crate::box_office_sqlite`]):
//!
//! - every purchase records its confirmation email in the outbox, in the
//!   purchase's transaction ([`factos::dispatch_with_outbox`]); an outbox
//!   worker sends the emails, retrying failures;
//! - a durable subscription keeps the table `concert_sales` (tickets sold
//!   and last buyer per concert) exactly once: a [`View`] folded over the
//!   events, written in the same transaction as the subscription's checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use factos::json::JsonCodec;
use factos::{Codec, EventStore, OutboxMessage, Query, Recorded, StoredEvent, Topic, View};
use factos_postgres::tokio_postgres::Transaction;
use factos_postgres::{
    LeasedMessage, MessageHandler, Outbox, OutboxOptions, PostgresStore, ProjectionHandler,
    Subscription, SubscriptionOptions,
};
use serde::{Deserialize, Serialize};

use crate::tickets::{Effects, TicketEvent, run_sale_with, sale_query};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The projection table (created if missing).
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS concert_sales (
    concert text PRIMARY KEY,
    sold bigint NOT NULL,
    last_buyer text NOT NULL
)";

/// One concert's row of the projection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConcertSales {
    /// Tickets sold.
    pub sold: i64,
    /// Who bought the latest one.
    pub last_buyer: String,
}

/// The projection's fold: pure, testable without a database.
pub struct SalesView;

impl View for SalesView {
    type State = ConcertSales;
    type Event = TicketEvent;
    fn initial(&self) -> ConcertSales {
        ConcertSales::default()
    }
    fn evolve(&self, state: ConcertSales, event: &TicketEvent) -> ConcertSales {
        let TicketEvent::TicketSold { buyer, .. } = event;
        ConcertSales {
            sold: state.sold + 1,
            last_buyer: buyer.clone(),
        }
    }
}

/// Keeps `concert_sales`: each batch folds [`SalesView`] over the rows it
/// touches, inside the subscription's transaction.
pub struct SalesProjection {
    codec: JsonCodec<TicketEvent>,
}

impl Default for SalesProjection {
    fn default() -> Self {
        Self {
            codec: JsonCodec::new(),
        }
    }
}

impl ProjectionHandler for SalesProjection {
    type Error = BoxError;

    async fn apply(
        &mut self,
        tx: &Transaction<'_>,
        events: &[StoredEvent],
    ) -> Result<(), BoxError> {
        let mut touched: Vec<(String, ConcertSales)> = Vec::new();
        for stored in events {
            let event = self.codec.decode(stored)?;
            let TicketEvent::TicketSold { concert, .. } = &event;
            let known = touched.iter().position(|(c, _)| c == concert);
            let index = if let Some(index) = known {
                index
            } else {
                let row = tx
                    .query_opt(
                        "SELECT sold, last_buyer FROM concert_sales WHERE concert = $1",
                        &[concert],
                    )
                    .await?;
                let state = row.map_or_else(ConcertSales::default, |r| ConcertSales {
                    sold: r.get(0),
                    last_buyer: r.get(1),
                });
                touched.push((concert.clone(), state));
                touched.len() - 1
            };
            let state = std::mem::take(&mut touched[index].1);
            touched[index].1 = SalesView.evolve(state, &event);
        }
        for (concert, state) in touched {
            tx.execute(
                "INSERT INTO concert_sales (concert, sold, last_buyer) VALUES ($1, $2, $3)
                 ON CONFLICT (concert) DO UPDATE SET sold = $2, last_buyer = $3",
                &[&concert, &state.sold, &state.last_buyer],
            )
            .await?;
        }
        Ok(())
    }
}

/// The confirmation email of a purchase, as an outbox payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// To whom.
    pub buyer: String,
    /// For which concert.
    pub concert: String,
    /// The ticket's event position (the email's idempotency key downstream).
    pub ticket: u64,
}

/// The reactor: one confirmation email per ticket sold.
pub fn confirmation(recorded: &Recorded<TicketEvent>) -> Vec<OutboxMessage> {
    let TicketEvent::TicketSold { concert, buyer } = &recorded.event;
    let payload = Confirmation {
        buyer: buyer.clone(),
        concert: concert.clone(),
        ticket: recorded.position.get(),
    };
    match (Topic::new("email"), serde_json::to_vec(&payload)) {
        (Ok(topic), Ok(bytes)) => vec![OutboxMessage::new(topic, bytes)],
        // Neither can fail for this fixed topic and plain struct.
        _ => Vec::new(),
    }
}

/// "Sends" emails: counts them, and fails the first attempt of every tenth
/// one (a flaky mail server), which the outbox retries.
#[derive(Default, Clone)]
pub struct FlakyMailer {
    /// Emails sent.
    pub sent: Arc<AtomicUsize>,
    /// Attempts that failed.
    pub failed: Arc<AtomicUsize>,
}

impl MessageHandler for FlakyMailer {
    type Error = String;
    async fn deliver(&mut self, message: &LeasedMessage) -> Result<(), String> {
        let email: Confirmation = serde_json::from_slice(&message.payload)
            .map_err(|e| format!("not a confirmation: {e}"))?;
        if email.ticket % 10 == 0 && message.attempt == 1 {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err("mail server busy".to_string());
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// What a box-office run ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxOfficeOutcome {
    /// Purchases accepted.
    pub accepted: usize,
    /// Purchases refused (sold out).
    pub sold_out: usize,
    /// The projection's row for the concert.
    pub projected: ConcertSales,
    /// Emails sent.
    pub emails_sent: usize,
    /// Email attempts that failed and were retried.
    pub email_retries: usize,
}

/// Sells `capacity` tickets of `concert` to `attempts` racing buyers (at
/// most `parallel` at a time) while the projection and the mailer run; waits
/// until both have caught up.
pub async fn run_box_office(
    store: &PostgresStore,
    concert: &str,
    capacity: usize,
    attempts: usize,
    parallel: usize,
) -> Result<BoxOfficeOutcome, BoxError> {
    store
        .pool()
        .get()
        .await?
        .batch_execute(CREATE_TABLE)
        .await?;
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
                .run_projection(&mut SalesProjection::default(), stop)
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
    let (accepted, sold_out) = (sale.accepted, sale.sold_out);

    // Wait until the projection and the mailer have caught up.
    let sold = store
        .read(&sale_query(concert)?, factos::ReadOptions::default())
        .await?;
    let head = sold.head;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while projection.checkpoint().await? < head || mailer.sent.load(Ordering::Relaxed) < accepted {
        if std::time::Instant::now() > deadline {
            return Err("the projection or the mailer did not catch up within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    projector.await??;
    mailing.await??;

    let row = store
        .pool()
        .get()
        .await?
        .query_opt(
            "SELECT sold, last_buyer FROM concert_sales WHERE concert = $1",
            &[&concert],
        )
        .await?;
    let projected = row.map_or_else(ConcertSales::default, |r| ConcertSales {
        sold: r.get(0),
        last_buyer: r.get(1),
    });
    Ok(BoxOfficeOutcome {
        accepted,
        sold_out,
        projected,
        emails_sent: mailer.sent.load(Ordering::Relaxed),
        email_retries: mailer.failed.load(Ordering::Relaxed),
    })
}
