//! The seed's tickets: a concert sells at most `capacity` tickets; buyers race.
//!
//! Every buyer appends to their own stream, but all purchases for one concert
//! share one context: the query `TicketSold` with `event:<concert>`.

use std::sync::Arc;

use factos::json::{JsonCodec, JsonEvent};
use factos::{
    Decider, DispatchError, Query, QueryItem, StreamId, ValidationError, dispatch_with_outbox,
    dispatch_with_query, reactor_fn,
};
use serde::{Deserialize, Serialize};

use crate::{ExampleStore, with_retries};

/// The facts of the tickets domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketEvent {
    /// A ticket for `concert` went to `buyer`.
    TicketSold {
        /// The concert.
        concert: String,
        /// Who bought it.
        buyer: String,
    },
}

impl JsonEvent for TicketEvent {
    const EVENT_TYPES: &'static [&'static str] = &["TicketSold"];
    fn event_type(&self) -> &'static str {
        "TicketSold"
    }
    fn tags(&self) -> Vec<String> {
        let TicketEvent::TicketSold { concert, buyer } = self;
        vec![format!("event:{concert}"), format!("buyer:{buyer}")]
    }
}

/// Buy one ticket.
#[derive(Debug, Clone)]
pub struct BuyTicket {
    /// The concert.
    pub concert: String,
    /// The buyer.
    pub buyer: String,
}

/// Why a purchase is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketError {
    /// No ticket left.
    SoldOut,
}

impl std::fmt::Display for TicketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sold out")
    }
}

/// Sells tickets up to a capacity.
#[derive(Debug, Clone, Copy)]
pub struct TicketDecider {
    /// Tickets available.
    pub capacity: usize,
}

impl Decider for TicketDecider {
    type State = usize;
    type Command = BuyTicket;
    type Event = TicketEvent;
    type Error = TicketError;

    fn initial(&self) -> usize {
        0
    }

    fn decide(&self, sold: &usize, command: &BuyTicket) -> Result<Vec<TicketEvent>, TicketError> {
        if *sold >= self.capacity {
            return Err(TicketError::SoldOut);
        }
        Ok(vec![TicketEvent::TicketSold {
            concert: command.concert.clone(),
            buyer: command.buyer.clone(),
        }])
    }

    fn evolve(&self, sold: usize, _: &TicketEvent) -> usize {
        sold + 1
    }
}

/// The context of a purchase: every ticket sold for the concert.
pub fn sale_query(concert: &str) -> Result<Query, ValidationError> {
    Ok(Query::item(QueryItem::parse(
        ["TicketSold"],
        [format!("event:{concert}")],
    )?))
}

/// What a sale run ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleOutcome {
    /// Purchases accepted.
    pub accepted: usize,
    /// Purchases refused because the concert was sold out.
    pub sold_out: usize,
    /// `TicketSold` events stored for the concert afterwards.
    pub events_stored: usize,
}

/// Runs `attempts` purchases of `concert`, at most `parallel` at a time.
pub async fn run_sale<S: ExampleStore>(
    store: &S,
    concert: &str,
    capacity: usize,
    attempts: usize,
    parallel: usize,
) -> Result<SaleOutcome, Box<dyn std::error::Error + Send + Sync>> {
    run_sale_with(store, concert, capacity, attempts, parallel, Effects::None).await
}

/// What a purchase records besides its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effects {
    /// Nothing.
    None,
    /// Its confirmation email, in the outbox, in the purchase's transaction
    /// ([`crate::box_office::confirmation`]).
    ConfirmationEmail,
}

/// [`run_sale`], each purchase recording `effects`.
pub async fn run_sale_with<S: ExampleStore>(
    store: &S,
    concert: &str,
    capacity: usize,
    attempts: usize,
    parallel: usize,
    effects: Effects,
) -> Result<SaleOutcome, Box<dyn std::error::Error + Send + Sync>> {
    let query = sale_query(concert)?;
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut buyers = Vec::with_capacity(attempts);
    for n in 0..attempts {
        let (store, query, permits) = (store.clone(), query.clone(), permits.clone());
        let command = BuyTicket {
            concert: concert.to_string(),
            buyer: format!("buyer-{n}"),
        };
        buyers.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let stream = StreamId::new(format!("{}-{}", command.concert, command.buyer))?;
            let codec = JsonCodec::<TicketEvent>::new();
            let decider = TicketDecider { capacity };
            let emails = reactor_fn(crate::box_office::confirmation);
            let outcome = match effects {
                Effects::None => {
                    with_retries(|| {
                        dispatch_with_query(&store, &stream, &query, &decider, &codec, &command)
                    })
                    .await
                }
                Effects::ConfirmationEmail => {
                    with_retries(|| {
                        dispatch_with_outbox(
                            &store, &stream, &query, &decider, &codec, &command, &emails,
                        )
                    })
                    .await
                }
            };
            match outcome {
                Ok(_) => Ok(true),
                Err(DispatchError::Domain(TicketError::SoldOut)) => Ok(false),
                Err(e) => Err(Box::<dyn std::error::Error + Send + Sync>::from(
                    e.to_string(),
                )),
            }
        }));
    }
    let (mut accepted, mut sold_out) = (0, 0);
    for buyer in buyers {
        if buyer.await?? {
            accepted += 1;
        } else {
            sold_out += 1;
        }
    }
    let events_stored = store
        .read(&query, factos::ReadOptions::default())
        .await?
        .events
        .len();
    Ok(SaleOutcome {
        accepted,
        sold_out,
        events_stored,
    })
}
