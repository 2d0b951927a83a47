#[derive(serde::Serialize, serde::Deserialize, factos::Event)]
enum Bank {
    #[event(stream = "accounts")]
    Deposited { cents: i64 },
}

fn main() {}
