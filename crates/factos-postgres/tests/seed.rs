//! The original library's tests, on a real PostgreSQL server. The conformance
//! suite covers the stream dispatch, the undecodable row and the 25 streams;
//! here the tickets race runs 20 times in a row, each on a fresh schema.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use factos::json::JsonCodec;
use factos::{EventStore, ReadOptions};
use factos_examples::tickets::{TicketEvent, run_sale, sale_query};
use factos_postgres::StoreOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tickets_capacity_100_of_300_with_128_concurrent_twenty_times() {
    let database = common::database().await;
    for round in 0..20 {
        let store = common::store_in(&database, StoreOptions::default()).await;
        let outcome = run_sale(&store, "e1", 100, 300, 128).await.unwrap();
        assert_eq!(
            (outcome.accepted, outcome.sold_out, outcome.events_stored),
            (100, 200, 100),
            "round {round}"
        );
        // Every sold ticket decodes, and each buyer got at most one.
        let sold = store
            .read(&sale_query("e1").unwrap(), ReadOptions::default())
            .await
            .unwrap();
        let codec = JsonCodec::<TicketEvent>::new();
        let mut buyers: Vec<String> = sold
            .events
            .iter()
            .map(|e| {
                let TicketEvent::TicketSold { buyer, .. } =
                    factos::Codec::decode(&codec, e).unwrap();
                buyer
            })
            .collect();
        buyers.sort();
        buyers.dedup();
        assert_eq!(buyers.len(), 100, "round {round}: a buyer got two tickets");
    }
}
