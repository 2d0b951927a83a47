#[derive(serde::Serialize, serde::Deserialize, factos::Event)]
struct Deposited {
    #[tag("account")]
    account: String,
}

fn main() {}
