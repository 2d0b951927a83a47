//! Context reads and condition checks stay index-driven under the generic
//! plans that prepared statements end up with: no sequential scan of the
//! event table, whatever the query shape.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use factos::{AppendCondition, EventStore, EventType, NewEvent, Tags};
use factos_postgres::{StoreOptions, statement_texts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_checks_use_indexes_with_generic_plans() {
    let database = common::database().await;
    let store = common::store_in(&database, StoreOptions::default()).await;
    // 20,000 events over 100 types and 1,000 tags, appended in batches.
    let stream = factos::StreamId::new("seed").unwrap();
    for batch in 0..20 {
        let events: Vec<NewEvent> = (0..1000)
            .map(|i| {
                let n = batch * 1000 + i;
                NewEvent::new(
                    EventType::new(format!("T{}", n % 100)).unwrap(),
                    b"{}".to_vec(),
                )
                .with_tags(
                    Tags::parse([format!("k:{}", n % 1000), format!("g:{}", n % 7)]).unwrap(),
                )
            })
            .collect();
        store
            .append(&stream, events, AppendCondition::None)
            .await
            .unwrap();
    }
    let client = store.pool().get().await.unwrap();
    let schema = store.options().schema.clone();
    client.batch_execute(&format!("ANALYZE {}.factos_events; ANALYZE {}.factos_event_tags; SET plan_cache_mode = force_generic_plan;", schema.quoted(), schema.quoted())).await.unwrap();
    let texts: std::collections::HashMap<_, _> = statement_texts(&schema).into_iter().collect();
    let sep = "\u{1f}";
    // An append's parameters up to the expected revision ($1..$8), and its
    // lock keys and writer class ($10..$12).
    let append_args = "'plan-stream', ARRAY[gen_random_uuid()], ARRAY['T1'], ARRAY[1], \
                       ARRAY['k:5'], ARRAY['{}'::jsonb], ARRAY['\\x00'::bytea], -2";
    let no_keys = "ARRAY[]::bigint[], ARRAY[]::boolean[], 1";
    // (statement, parameters as SQL literals) for each query shape.
    let shapes: Vec<(&str, String)> = vec![
        (
            "read_query_forwards",
            "ARRAY['T1'], ARRAY[''], 0, NULL".to_string(),
        ),
        (
            "read_query_forwards",
            "ARRAY[''], ARRAY['k:5'], 0, NULL".to_string(),
        ),
        (
            "read_query_forwards",
            format!("ARRAY['T5'], ARRAY['k:5{sep}g:5'], 0, NULL"),
        ),
        (
            "read_query_forwards",
            format!("ARRAY['T1{sep}T2', ''], ARRAY['k:7', 'k:8'], 0, NULL"),
        ),
        (
            "read_query_backwards",
            "ARRAY[''], ARRAY['k:5'], 9223372036854775807, 10".to_string(),
        ),
        // A tag no event carries, with a type no event has.
        (
            "read_query_forwards",
            "ARRAY['Booked'], ARRAY['b:1:0:3'], 0, NULL".to_string(),
        ),
        // Appends: without a condition, with one on all events, with one on
        // a query (the checks must probe indexes, not scan the log).
        (
            "append_if_all",
            format!("{append_args}, 9223372036854775807, {no_keys}"),
        ),
        ("append_if_all", format!("{append_args}, 19000, {no_keys}")),
        (
            "append_if_query",
            format!("{append_args}, 19000, {no_keys}, ARRAY['T1'], ARRAY['k:5']"),
        ),
    ];
    for (name, args) in shapes {
        assert_plan_uses_indexes(&client, name, &texts[name], &args).await;
    }
}

/// Prepares `text`, explains it with `args` under the generic plan, and
/// fails if it scans a table or a range of positions, or misses the type or
/// tag index where the arguments name them.
async fn assert_plan_uses_indexes(
    client: &factos_postgres::deadpool_postgres::Object,
    name: &str,
    text: &str,
    args: &str,
) {
    client
        .batch_execute(&format!("DEALLOCATE ALL; PREPARE plan_check AS {text}"))
        .await
        .unwrap();
    // FACTOS_PRINT_PLANS also runs them (EXPLAIN ANALYZE) to show timings.
    let explain = if std::env::var_os("FACTOS_PRINT_PLANS").is_some() {
        "EXPLAIN (ANALYZE, BUFFERS)"
    } else {
        "EXPLAIN"
    };
    let rows = client
        .query(&format!("{explain} EXECUTE plan_check({args})"), &[])
        .await
        .unwrap();
    let plan: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let plan = plan.join("\n");
    if std::env::var_os("FACTOS_PRINT_PLANS").is_some() {
        println!("{name}({args}):\n{plan}\n");
    }
    let lines: Vec<&str> = plan.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        assert!(
            !line.contains("Seq Scan"),
            "{name}({args}) scans a table:\n{plan}"
        );
        // Position-index scans must be point lookups or the head lookup,
        // never a range over the log.
        if line.contains("using factos_events_pkey") {
            let condition = lines.get(i + 1).copied().unwrap_or_default();
            assert!(
                condition.contains("\"position\" = ") || condition.contains("IS NOT NULL"),
                "{name}({args}) scans a range of positions:\n{plan}"
            );
        }
    }
    if args.starts_with("ARRAY['T1'], ARRAY['']") {
        assert!(
            plan.contains("factos_events_type_position"),
            "{name}({args}) does not use the type index:\n{plan}"
        );
    }
    if args.contains("k:") && (name.starts_with("read") || name == "append_if_query") {
        assert!(
            plan.contains("factos_event_tags_pkey"),
            "{name}({args}) does not use the tag index:\n{plan}"
        );
    }
}
