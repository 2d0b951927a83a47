//! The Rust↔SQL contract: every statement's declared parameter types
//! (`statements!` in `src/sql.rs`) are the types PostgreSQL infers for its
//! placeholders, batches bind nothing, and no template slot is left unfilled.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use factos_postgres::{StoreOptions, statement_contracts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_declares_the_parameters_postgresql_infers() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    let client = store.pool().get().await.unwrap();
    let contracts = statement_contracts(&store.options().schema);
    let mut mismatches = Vec::new();
    let mut prepared = 0;
    for contract in &contracts {
        let Some(declared) = contract.params else {
            continue;
        };
        let statement = client
            .prepare(&contract.text)
            .await
            .unwrap_or_else(|e| panic!("{}: cannot prepare: {e:?}", contract.name));
        prepared += 1;
        if statement.params() != declared {
            mismatches.push(format!(
                "{}: declared {declared:?}, PostgreSQL infers {:?}",
                contract.name,
                statement.params()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(
        prepared >= 41,
        "only {prepared} prepared statements checked"
    );
}

#[test]
fn batches_bind_nothing_and_no_slot_is_left_unfilled() {
    let schema = factos_postgres::SchemaName::new("contract").unwrap();
    for contract in statement_contracts(&schema) {
        let text = &contract.text;
        if contract.params.is_none() {
            assert!(
                !text.contains('$'),
                "{}: a batch cannot bind placeholders: {text}",
                contract.name
            );
        }
        for slot in [
            "{schema}",
            "{channel}",
            "{matching}",
            "{direction}",
            "{bound}",
            "{conflict}",
            "{types}",
            "{tags}",
        ] {
            assert!(
                !text.contains(slot),
                "{}: {slot} left unfilled: {text}",
                contract.name
            );
        }
        assert!(
            !text.contains("--"),
            "{}: comment left in: {text}",
            contract.name
        );
    }
}
