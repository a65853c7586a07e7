//! Clients of `/api/events`, for the events benchmark:
//!
//! `event_clients BASE TOKEN idle N SECS`      holds N clients that only read, for SECS seconds
//! `event_clients BASE TOKEN latency N RATE`   asks for N identify actions at RATE a second and
//!                                             prints, per event, the milliseconds from the
//!                                             journal numbering it (`at`) to this client having it

use std::time::Duration;

use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, token: &str) -> Socket {
    let url = format!("{}/api/events?token={token}", base.replacen("http://", "ws://", 1));
    tokio_tungstenite::connect_async(url).await.expect("the events socket opens").0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: event_clients BASE TOKEN (idle N SECS | latency N RATE)";
    let (base, token, mode) = (args.get(1).expect(usage), args.get(2).expect(usage), args.get(3).map(String::as_str));
    let n: usize = args.get(4).and_then(|s| s.parse().ok()).expect(usage);
    let last: f64 = args.get(5).and_then(|s| s.parse().ok()).expect(usage);
    match mode {
        Some("idle") => {
            let mut readers = Vec::new();
            for _ in 0..n {
                let mut socket = connect(base, token).await;
                readers.push(tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} }));
            }
            eprintln!("holding {n} event clients");
            tokio::time::sleep(Duration::from_secs_f64(last)).await;
        }
        Some("latency") => {
            let mut socket = connect(base, token).await;
            socket.next().await;
            let client = reqwest::Client::new();
            let (url, token) = (format!("{base}/api/actions/identify"), token.clone());
            let asking = tokio::spawn(async move {
                for _ in 0..n {
                    client.post(&url).bearer_auth(&token).send().await.expect("request");
                    tokio::time::sleep(Duration::from_secs_f64(1.0 / last)).await;
                }
            });
            let mut seen = 0;
            while seen < n {
                let Some(Ok(Message::Text(text))) = socket.next().await else { panic!("the events socket closed") };
                let now = chrono::Utc::now();
                let event: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                if event["type"] == "action_requested" {
                    let at = chrono::DateTime::parse_from_rfc3339(event["at"].as_str().expect("at")).expect("RFC 3339");
                    println!("{:.3}", (now - at.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                    seen += 1;
                }
            }
            asking.await.expect("requests sent");
        }
        _ => panic!("{usage}"),
    }
}
