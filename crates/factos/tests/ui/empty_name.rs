#[derive(serde::Serialize, serde::Deserialize, factos::Event)]
enum Bank {
    #[event(name = "")]
    Deposited { cents: i64 },
}

fn main() {}
