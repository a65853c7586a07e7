//! `GET /metrics`: Prometheus text exposition (version 0.0.4) of the cameras, recordings and
//! device health, for an NVR's or a home lab's Prometheus to scrape.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use crate::device::health;

/// Builds the exposition text: one `# HELP`/`# TYPE` header per family, then its samples.
#[derive(Default)]
pub struct Exposition(String);

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Exposition {
    /// Starts a metric family; `kind` is `gauge` or `counter`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        let _ = writeln!(self.0, "{name}{labels} {value}");
        self
    }

    pub fn finish(self) -> String {
        self.0
    }
}

fn bool01(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Every metric, read fresh at each scrape.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let (data, index) = (app.config.get().storage.path.clone(), app.index.clone());
    // Health and the size of the segments being written are read from disk: off the async threads.
    let read = tokio::task::spawn_blocking(move || {
        let reading = health::read(&health::Roots::default(), crate::storage::disk::usage(&data).ok());
        let mut segments = index.all();
        crate::storage::index::with_current_sizes(segments.iter_mut().map(|(_, s)| s));
        (reading, segments)
    })
    .await;
    let (reading, segments) = match read {
        Ok(read) => read,
        Err(e) => {
            tracing::error!("reading health and recordings for /metrics failed: {e}");
            (health::read(&health::Roots::default(), None), Vec::new())
        }
    };
    let mut out = Exposition::default();
    camera_metrics(&mut out, &app);
    recording_metrics(&mut out, &app, segments);
    webhook_metrics(&mut out, &app);
    push_metrics(&mut out, &app);
    let (connected, dropped) = app.event_clients.counts();
    out.family("lookout_event_clients", "gauge", "Clients of /api/events").sample("lookout_event_clients", &[], connected as f64);
    out.family("lookout_event_clients_dropped_total", "counter", "Clients of /api/events dropped for falling behind or stalling").sample(
        "lookout_event_clients_dropped_total",
        &[],
        dropped as f64,
    );
    health_metrics(&mut out, &reading);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out.finish())
}

/// Per camera: what its status board says, and the fan-out's counters.
fn camera_metrics(out: &mut Exposition, app: &AppState) {
    type PerCamera = fn(&crate::status::CameraStatus) -> f64;
    let per_camera: [(&str, &str, &str, PerCamera); 8] = [
        ("lookout_camera_online", "gauge", "1 while the camera delivers frames", |c| bool01(c.online)),
        ("lookout_camera_fps", "gauge", "Frames per second measured at the encoder output", |c| c.measured_fps),
        ("lookout_camera_bitrate_bits_per_second", "gauge", "Encoded bitrate measured at the encoder output", |c| {
            c.measured_bitrate_kbps * 1000.0
        }),
        ("lookout_camera_viewers", "gauge", "Live viewers (WHEP, MSE and RTSP)", |c| c.viewers as f64),
        ("lookout_camera_rtsp_clients", "gauge", "Of the live viewers, RTSP clients", |c| c.rtsp_clients as f64),
        ("lookout_camera_restarts_total", "counter", "Times the camera pipeline was rebuilt after a fault", |c| c.restarts as f64),
        ("lookout_camera_recording", "gauge", "1 while the camera is being recorded", |c| bool01(c.recording)),
        ("lookout_camera_recording_switch", "gauge", "1 while the camera's recording switch is on", |c| bool01(c.recording_switch)),
    ];
    let cameras = app.board.cameras();
    for (name, kind, help, value) in per_camera {
        out.family(name, kind, help);
        for c in &cameras {
            out.sample(name, &[("camera", &c.name)], value(c));
        }
    }
    out.family("lookout_camera_dropped_frames_total", "counter", "Frames outputs dropped (slow viewers, full recorder queue)");
    for cam in app.media.cameras() {
        out.sample("lookout_camera_dropped_frames_total", &[("camera", &cam.config.name)], cam.fanout.dropped_total() as f64);
    }
    out.family(
        "lookout_keyframe_requests_total",
        "counter",
        "Keyframe requests from outputs (joins, PLI/FIR), forwarded to the encoder or absorbed by the rate limit",
    );
    for cam in app.media.cameras() {
        let (forwarded, absorbed) = cam.fanout.keyframe_requests();
        out.sample("lookout_keyframe_requests_total", &[("camera", &cam.config.name), ("outcome", "forwarded")], forwarded as f64);
        out.sample("lookout_keyframe_requests_total", &[("camera", &cam.config.name), ("outcome", "absorbed")], absorbed as f64);
    }
}

/// Per camera: bytes and files of recordings on the data partition.
fn recording_metrics(out: &mut Exposition, app: &AppState, segments: Vec<(String, crate::storage::Segment)>) {
    let mut recorded: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (camera, seg) in segments {
        let e = recorded.entry(camera).or_default();
        e.0 += seg.size;
        e.1 += 1;
    }
    let cameras = &app.config.get().cameras;
    out.family("lookout_recording_bytes", "gauge", "Bytes of recordings on the data partition");
    for c in cameras {
        out.sample("lookout_recording_bytes", &[("camera", &c.name)], recorded.get(&c.name).map_or(0, |r| r.0) as f64);
    }
    out.family("lookout_recording_segments", "gauge", "Recorded segment files on the data partition");
    for c in cameras {
        out.sample("lookout_recording_segments", &[("camera", &c.name)], recorded.get(&c.name).map_or(0, |r| r.1) as f64);
    }
}

/// Per webhook: deliveries, failures, refusals, drops, queue and whether it fails now.
fn webhook_metrics(out: &mut Exposition, app: &AppState) {
    type PerHook = fn(&crate::webhook::HookStatus) -> f64;
    let per_hook: [(&str, &str, &str, PerHook); 6] = [
        ("lookout_webhook_delivered_total", "counter", "Events the receiver took", |h| h.delivered as f64),
        ("lookout_webhook_failures_total", "counter", "Delivery attempts that failed and were retried", |h| h.failures as f64),
        ("lookout_webhook_refused_total", "counter", "Events the receiver refused (4xx), passed over", |h| h.refused as f64),
        ("lookout_webhook_dropped_total", "counter", "Events dropped from a full queue", |h| h.dropped as f64),
        ("lookout_webhook_queued", "gauge", "Events waiting for the receiver", |h| h.queued as f64),
        ("lookout_webhook_failing", "gauge", "1 while deliveries fail", |h| bool01(h.failing.is_some())),
    ];
    let hooks = app.webhooks.status();
    if hooks.is_empty() {
        return;
    }
    for (name, kind, help, value) in per_hook {
        out.family(name, kind, help);
        for h in &hooks {
            out.sample(name, &[("hook", &h.name)], value(h));
        }
    }
}

/// Per WHIP push: whether it is live, what it sends, the round trip, sessions started.
fn push_metrics(out: &mut Exposition, app: &AppState) {
    type PerPush = fn(&crate::push::PushStatus) -> Option<f64>;
    let per_push: [(&str, &str, &str, PerPush); 4] = [
        ("lookout_push_live", "gauge", "1 while the push sends to its WHIP server", |p| {
            Some(bool01(p.state == crate::push::PushState::Live))
        }),
        ("lookout_push_bitrate_kbps", "gauge", "What the push sends, kbit/s", |p| Some(p.bitrate_kbps)),
        ("lookout_push_rtt_seconds", "gauge", "Round trip to the WHIP server, from its RTCP reports", |p| p.rtt_ms.map(|ms| ms / 1000.0)),
        ("lookout_push_sessions_total", "counter", "Sessions the WHIP server answered (reconnects add one)", |p| Some(p.sessions as f64)),
    ];
    let pushes = app.pushes.status();
    if pushes.is_empty() {
        return;
    }
    for (name, kind, help, value) in per_push {
        out.family(name, kind, help);
        for p in &pushes {
            if let Some(v) = value(p) {
                out.sample(name, &[("camera", &p.camera), ("target", &p.target)], v);
            }
        }
    }
}

/// The device: temperature, power flags, load, memory, uptime, data partition, warnings.
fn health_metrics(out: &mut Exposition, reading: &health::Health) {
    out.family("lookout_clock_synchronized", "gauge", "1 once the clock was set from a time server since boot").sample(
        "lookout_clock_synchronized",
        &[],
        bool01(reading.clock_synchronized),
    );
    out.family("lookout_network_up", "gauge", "1 while a wired or Wi-Fi interface has a link");
    for link in &reading.network {
        out.sample("lookout_network_up", &[("interface", &link.name)], bool01(link.up));
    }
    if reading.network.iter().any(|l| l.signal_dbm.is_some()) {
        out.family("lookout_wifi_signal_dbm", "gauge", "Wi-Fi signal level");
        for link in &reading.network {
            if let Some(dbm) = link.signal_dbm {
                out.sample("lookout_wifi_signal_dbm", &[("interface", &link.name)], f64::from(dbm));
            }
        }
    }
    if let Some(t) = reading.temperature_c {
        out.family("lookout_soc_temperature_celsius", "gauge", "SoC temperature").sample("lookout_soc_temperature_celsius", &[], t);
    }
    if let Some(th) = reading.throttled {
        out.family("lookout_power_flag", "gauge", "The Pi firmware's get_throttled flags, now and since boot");
        for (flag, set) in [
            ("under_voltage", th.under_voltage),
            ("frequency_capped", th.frequency_capped),
            ("throttled", th.throttled),
            ("soft_temperature_limit", th.soft_temperature_limit),
            ("under_voltage_occurred", th.under_voltage_occurred),
            ("throttled_occurred", th.throttled_occurred),
        ] {
            out.sample("lookout_power_flag", &[("flag", flag)], bool01(set));
        }
    }
    out.family("lookout_load_average", "gauge", "System load average");
    for (period, v) in ["1m", "5m", "15m"].iter().zip(reading.load) {
        out.sample("lookout_load_average", &[("period", period)], v);
    }
    out.family("lookout_memory_total_bytes", "gauge", "Memory").sample(
        "lookout_memory_total_bytes",
        &[],
        reading.memory_total_bytes as f64,
    );
    out.family("lookout_memory_available_bytes", "gauge", "Memory available to programs").sample(
        "lookout_memory_available_bytes",
        &[],
        reading.memory_available_bytes as f64,
    );
    out.family("lookout_uptime_seconds", "gauge", "Time since boot").sample("lookout_uptime_seconds", &[], reading.uptime_s);
    out.family("lookout_data_total_bytes", "gauge", "Size of the data partition").sample(
        "lookout_data_total_bytes",
        &[],
        reading.disk_total_bytes as f64,
    );
    out.family("lookout_data_free_bytes", "gauge", "Free space on the data partition").sample(
        "lookout_data_free_bytes",
        &[],
        reading.disk_free_bytes as f64,
    );
    out.family("lookout_health_warning", "gauge", "1 for each health warning raised now");
    for w in health::warnings(reading, &health::Thresholds::default()) {
        out.sample("lookout_health_warning", &[("kind", &w.name())], 1.0);
    }
}
