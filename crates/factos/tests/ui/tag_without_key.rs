#[derive(serde::Serialize, serde::Deserialize, factos::Event)]
enum Bank {
    Deposited {
        #[tag]
        account: String,
    },
}

fn main() {}
