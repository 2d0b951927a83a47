//! factos's metrics in Prometheus's text format: installs the Prometheus
//! recorder of `metrics-exporter-prometheus` (factos records through the
//! `metrics` facade and forces no exporter), runs the tickets race on
//! PostgreSQL, and prints the `factos_` series a scrape would see.
//!
//! Run it with `cargo run -p factos-examples --example prometheus`
//! (`DATABASE_URL`, or a throwaway cluster). A service would serve
//! `handle.render()` on `/metrics` (the exporter's `http-listener` feature
//! does that for you).

use factos_examples::backend::{self, Backend};
use factos_examples::tickets::run_sale;
use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    factos::metrics::describe();
    let url = std::env::var("DATABASE_URL").ok();
    let backend = backend::postgres(url.as_deref().filter(|u| !u.trim().is_empty())).await?;
    let Backend::Postgres { store, .. } = &backend else {
        return Err("the Prometheus example runs on PostgreSQL".into());
    };
    let outcome = run_sale(store, "concert-1", 100, 300, 128).await?;
    println!(
        "accepted: {}, sold out: {}",
        outcome.accepted, outcome.sold_out
    );
    for line in handle.render().lines() {
        if line.contains("factos_") {
            println!("{line}");
        }
    }
    drop(backend);
    Ok(())
}
