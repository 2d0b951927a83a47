#[derive(serde::Serialize, serde::Deserialize, factos::Event)]
enum Bank {}

fn main() {}
