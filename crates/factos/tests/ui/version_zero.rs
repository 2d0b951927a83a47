#[derive(serde::Serialize, serde::Deserialize, factos::Event)]
enum Bank {
    #[event(version = 0)]
    Deposited { cents: i64 },
}

fn main() {}
