// Send a server event to DataLook: POST https://datalook.example/event
// Cargo.toml:
//   [dependencies]
//   reqwest = { version = "0.13", features = ["blocking", "json"] }
//   serde_json = "1"
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Move the key to a secrets manager and set DATALOOK_API_KEY from there;
    // the fallback below only makes this program run as pasted.
    let api_key = std::env::var("DATALOOK_API_KEY")
        .unwrap_or_else(|_| "dl_live_GoldenKeyId0_T3stS3cretT3stS3cretT3stS3cretABcDeF12".to_string());

    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let response = client
        .post("https://datalook.example/event")
        .bearer_auth(&api_key)
        .json(&json!({
            "event_name": "success",
            "name": "paid-customer",
            "page_path": "/checkout/success",
            "success_value": 9.99,
            "success_user_id": "user_42",
            "properties": {
                "plan": "starter"
            }
        }))
        .send()?;

    let status = response.status();
    if status != StatusCode::NO_CONTENT {
        return Err(format!("DataLook rejected the event: {status} {}", response.text()?).into());
    }
    println!("Event sent.");
    Ok(())
}
