//! A command-line WHEP viewer (webrtcbin, decodes what it receives), for the live benchmark:
//!
//! `whep_viewer URL joins N`      joins N times in a row, prints each time-to-first-frame (ms)
//! `whep_viewer URL hold N SECS`  holds N viewers for SECS seconds, prints frames each decoded
//! `whep_viewer URL churn N`      N joins in a row that each take one frame and leave, every
//!                                10th without a DELETE (a tab closed); prints the count done
//!                                after each, for the churn benchmark to read memory against

#[path = "../tests/common/whep.rs"]
mod whep;

use std::time::Duration;

use whep::WhepViewer;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: whep_viewer URL (joins N | hold N SECS | churn N)";
    let (url, mode) = (args.get(1).expect(usage), args.get(2).map(String::as_str));
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).expect(usage);
    match mode {
        Some("joins") => {
            for _ in 0..n {
                let viewer = WhepViewer::connect(url).await.unwrap_or_else(|r| panic!("refused: {} {}", r.status, r.body));
                if !viewer.wait_frames(1, Duration::from_secs(10)).await {
                    panic!("no frame within 10 s");
                }
                println!("{}", viewer.time_to_first_frame().expect("first frame seen").as_secs_f64() * 1000.0);
                viewer.delete().await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Some("hold") => {
            let secs: u64 = args.get(4).and_then(|s| s.parse().ok()).expect(usage);
            let mut viewers = Vec::new();
            for _ in 0..n {
                viewers.push(WhepViewer::connect(url).await.unwrap_or_else(|r| panic!("refused: {} {}", r.status, r.body)));
            }
            eprintln!("holding {n} viewers");
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let frames: Vec<String> = viewers.iter().map(|v| v.frames().to_string()).collect();
            println!("{}", frames.join(" "));
            for v in viewers {
                v.delete().await;
            }
        }
        Some("churn") => {
            for i in 1..=n {
                let viewer = WhepViewer::connect(url).await.unwrap_or_else(|r| panic!("join {i} refused: {} {}", r.status, r.body));
                if !viewer.wait_frames(1, Duration::from_secs(10)).await {
                    panic!("join {i}: no frame within 10 s");
                }
                if i % 10 == 0 {
                    viewer.vanish();
                } else {
                    viewer.delete().await;
                }
                println!("{i}");
            }
        }
        _ => panic!("{usage}"),
    }
}
