//! What authentication costs a request: checking a token (`Authorization: Bearer`) or a
//! session cookie and the authorisation decision, as every WHEP join, snapshot and API call
//! pays it; and a password check (Argon2id), which only a login pays. Prints the median of
//! several rounds, in microseconds per request. Run: `cargo run --release --example auth_cost`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use lookout::auth::{Action, Auth, Grant, Lifetimes};
use lookout::events::Bus;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn per_call(rounds: usize, calls: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..calls {
                    f();
                }
                t.elapsed().as_secs_f64() * 1e6 / calls as f64
            })
            .collect(),
    )
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let lifetimes = Lifetimes { idle: Duration::from_secs(3600), absolute: Duration::from_secs(86_400) };
    let auth = Auth::open(dir.path(), None, lifetimes, Bus::default());
    let session = auth.setup("admin", "benchmark password").await.expect("setup");
    let token = auth
        .issue_token("bench", "bench", Some(vec!["cam".into()]), vec![Grant::View, Grant::Snapshot], Duration::from_secs(3600))
        .expect("token");
    let by_token = per_call(7, 20_000, || {
        let who = auth.token(&token.token).expect("valid token");
        auth.authorize(&who, Action::View, Some("cam")).expect("allowed");
    });
    let by_cookie = per_call(7, 20_000, || {
        let who = auth.session(&session.cookie).expect("valid session");
        auth.authorize(&who, Action::Snapshot, Some("cam")).expect("allowed");
    });
    let address: IpAddr = [127, 0, 0, 1].into();
    let login = per_call(5, 5, || {
        let rt = tokio::runtime::Handle::current();
        let _ = tokio::task::block_in_place(|| rt.block_on(auth.login(address, "admin", "benchmark password")));
    });
    println!("| check | µs per request (median of rounds) |");
    println!("|---|---|");
    println!("| token (Bearer / ?token=) + authorize | {by_token:.1} |");
    println!("| session cookie + authorize | {by_cookie:.1} |");
    println!("| login: one Argon2id password check | {login:.0} |");
}
