#[derive(serde::Serialize, serde::Deserialize, factos::Event)]
enum Bank {
    Deposited { cents: i64 },
    #[event(name = "Deposited")]
    Paid { cents: i64 },
}

fn main() {}
