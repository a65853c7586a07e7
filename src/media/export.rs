//! One MP4 covering a span of recordings, made by remuxing (never re-encoding) and streamed
//! to the client as it is produced.
//!
//! The chosen segment files are read in order onto one continuous timeline; a trimmer cuts it
//! to the span (starting at the keyframe at or before the start, so the first frame decodes)
//! and ends it after the stop; mp4mux writes a fragmented, streamable MP4 into an appsink
//! whose bytes go straight to the HTTP response.

use std::path::PathBuf;
use std::time::Duration;

use gst::prelude::*;
use tokio::sync::mpsc;

/// Chunks of MP4 in flight between the muxer and the client; backpressure beyond this.
const CHANNEL_CHUNKS: usize = 16;

/// Frames queued for the muxer while it waits for the client (about 4 s at 4 Mbit/s).
const FEED_BYTES: u64 = 2 * 1024 * 1024;

/// How long a client may take nothing before its export is ended (its thread and
/// pipelines freed). A player paused for a while is fine; a client that stalls for good is not.
pub const STALL_LIMIT: Duration = Duration::from_secs(60);

/// What to export: segment files in order, and the span within their concatenation.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub files: Vec<PathBuf>,
    /// Offset of the span's start from the start of the first file.
    pub start: Duration,
    /// Offset of the span's end from the start of the first file (files concatenated).
    pub end: Duration,
    /// [`STALL_LIMIT`], except in tests.
    pub stall_limit: Duration,
}

/// Hands `chunk` to the client, waiting at most `limit` for room; `false` if the client left
/// or took nothing for that long.
fn hand_over(tx: &mpsc::Sender<Result<Vec<u8>, String>>, mut chunk: Result<Vec<u8>, String>, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match tx.try_send(chunk) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(back)) => {
                if std::time::Instant::now() >= deadline {
                    return false;
                }
                chunk = back;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Decides, frame by frame, what goes into the export. Sans-IO: generic over the item so it
/// is tested with plain numbers. Frames before `start` are held back one GOP at a time, so
/// the export begins at the keyframe at or before `start`.
#[derive(Debug)]
pub struct Trim<T> {
    start: Duration,
    end: Duration,
    held: Vec<T>,
    started: bool,
}

/// The trimmer's decision for one frame.
#[derive(Debug, PartialEq)]
pub enum TrimOutput<T> {
    /// Emit these frames (possibly held ones first).
    Emit(Vec<T>),
    /// Past the end: stop the export.
    End,
}

impl<T> Trim<T> {
    pub fn new(start: Duration, end: Duration) -> Trim<T> {
        Trim { start, end, held: Vec::new(), started: false }
    }

    /// One frame at `pts`; `keyframe` when it starts a GOP.
    pub fn push(&mut self, pts: Duration, keyframe: bool, frame: T) -> TrimOutput<T> {
        if pts > self.end {
            return TrimOutput::End;
        }
        if self.started {
            return TrimOutput::Emit(vec![frame]);
        }
        if keyframe {
            self.held.clear();
        }
        if self.held.is_empty() && !keyframe {
            // No keyframe yet to start from: this frame cannot be decoded alone.
            return TrimOutput::Emit(Vec::new());
        }
        self.held.push(frame);
        if pts >= self.start {
            self.started = true;
            return TrimOutput::Emit(std::mem::take(&mut self.held));
        }
        TrimOutput::Emit(Vec::new())
    }
}

/// Why an export could not start.
#[derive(Debug, thiserror::Error)]
#[error("export: {0}")]
pub struct ExportError(String);

/// Starts the export; MP4 bytes arrive on the receiver, which closes when the file is
/// complete (or carries an error).
///
/// Files are read one after another (filesrc → qtdemux → h264parse → appsink) and their
/// frames re-timestamped onto one continuous timeline, so the trim works in media time
/// whatever each file's own timestamps are.
pub fn start(request: ExportRequest) -> Result<mpsc::Receiver<Result<Vec<u8>, String>>, ExportError> {
    let err = |e: &dyn std::fmt::Display| ExportError(e.to_string());
    if request.files.is_empty() {
        return Err(ExportError("nothing recorded in that span".into()));
    }
    let pipeline = gst::Pipeline::with_name("export");
    // Blocking and bounded: reading the files waits for the muxer, which waits for the client.
    let feed = gst_app::AppSrc::builder().name("export-feed").format(gst::Format::Time).block(true).max_bytes(FEED_BYTES).build();
    let mux = gst::ElementFactory::make("mp4mux")
        .property("fragment-duration", 1000u32)
        .property("streamable", true)
        .build()
        .map_err(|e| err(&e))?;
    let out = gst_app::AppSink::builder().name("export-out").sync(false).build();
    pipeline.add_many([feed.upcast_ref(), &mux, out.upcast_ref()]).map_err(|e| err(&e))?;
    feed.link_pads(None, &mux, Some("video_%u")).map_err(|e| err(&e))?;
    mux.link(&out).map_err(|e| err(&e))?;

    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let data_tx = tx.clone();
    let weak = pipeline.downgrade();
    let limit = request.stall_limit;
    let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stalled_flag = stalled.clone();
    out.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                // A chunk that cannot be read would leave a hole in the file: end the export
                // with the reason instead (the client sees a cut-off download, not a corrupt one).
                let chunk = sample
                    .buffer()
                    .ok_or("the muxer produced a sample without data")
                    .and_then(|b| b.map_readable().map(|m| m.to_vec()).map_err(|_| "a muxed chunk could not be read"))
                    .map_err(|e| format!("export failed: {e}"));
                let unreadable = chunk.is_err();
                if !hand_over(&data_tx, chunk, limit) || unreadable {
                    // The client went away or stalled: stop everything, which also wakes a
                    // reader blocked on the full feed. Not from this streaming thread itself.
                    if !data_tx.is_closed() {
                        tracing::info!("export ended: the client took nothing for {limit:?}");
                    }
                    stalled_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    if let Some(p) = weak.upgrade() {
                        p.call_async(super::stop);
                    }
                    return Err(gst::FlowError::Flushing);
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.set_state(gst::State::Playing).map_err(|_| ExportError("export pipeline refused to start".into()))?;
    let bus = pipeline.bus().ok_or_else(|| ExportError("no bus".into()))?;
    std::thread::Builder::new()
        .name("export".into())
        .spawn(move || {
            let outcome = pump(&request, &feed, &bus).and_then(|()| {
                feed.end_of_stream().map_err(|e| format!("muxer stopped: {e:?}"))?;
                finish(&bus, &tx, &stalled)
            });
            if let Err(failure) = outcome {
                // Never waits: a stalled client must not hold this thread.
                let _ = tx.try_send(Err(failure));
            }
            super::stop(&pipeline);
        })
        .map_err(|e| err(&e))?;
    Ok(rx)
}

/// Waits until the muxer's last byte is handed over, the muxer fails, or the client leaves
/// or stalls beyond its limit.
fn finish(bus: &gst::Bus, tx: &mpsc::Sender<Result<Vec<u8>, String>>, stalled: &std::sync::atomic::AtomicBool) -> Result<(), String> {
    loop {
        if tx.is_closed() {
            return Ok(());
        }
        if stalled.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("the client took nothing for too long".into());
        }
        let Some(msg) = bus.timed_pop_filtered(gst::ClockTime::from_mseconds(500), &[gst::MessageType::Eos, gst::MessageType::Error])
        else {
            continue;
        };
        return match msg.view() {
            gst::MessageView::Error(e) => Err(e.error().to_string()),
            _ => Ok(()),
        };
    }
}

/// Reads every file in order, re-timestamps, trims, and feeds the muxer.
fn pump(request: &ExportRequest, feed: &gst_app::AppSrc, out_bus: &gst::Bus) -> Result<(), String> {
    let mut trim = Trim::new(request.start, request.end);
    // Where the current file starts on the export's timeline.
    let mut offset = gst::ClockTime::ZERO;
    let mut caps_set = false;
    for file in &request.files {
        let reader = gst::parse::launch("filesrc name=file ! qtdemux ! h264parse ! appsink name=frames sync=false max-buffers=8")
            .map_err(|e| e.to_string())?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "reader is not a pipeline".to_string())?;
        let frames = reader.by_name("frames").and_then(|e| e.downcast::<gst_app::AppSink>().ok()).ok_or("reader has no sink")?;
        if let Some(src) = reader.by_name("file") {
            src.set_property("location", file.to_string_lossy().as_ref());
        }
        let _stop = super::StopOnDrop::new(&reader);
        reader.set_state(gst::State::Playing).map_err(|_| format!("cannot read {}", file.display()))?;
        let mut first: Option<gst::ClockTime> = None;
        let mut file_end = gst::ClockTime::ZERO;
        while let Ok(sample) = frames.pull_sample() {
            if let Some(msg) = out_bus.pop_filtered(&[gst::MessageType::Error])
                && let gst::MessageView::Error(e) = msg.view()
            {
                return Err(e.error().to_string());
            }
            let Some(buffer) = sample.buffer() else { continue };
            let Some(pts) = buffer.pts().or(buffer.dts()) else { continue };
            let rel = pts.saturating_sub(*first.get_or_insert(pts));
            let at = offset + rel;
            file_end = file_end.max(rel + buffer.duration().unwrap_or(gst::ClockTime::from_mseconds(33)));
            let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
            let mut retimed = buffer.copy();
            {
                let b = retimed.make_mut();
                b.set_pts(at);
                b.set_dts(buffer.dts().map(|d| offset + d.saturating_sub(first.unwrap_or(d))));
            }
            if !caps_set && let Some(caps) = sample.caps() {
                feed.set_caps(Some(&caps.to_owned()));
                caps_set = true;
            }
            match trim.push(Duration::from_nanos(at.nseconds()), keyframe, retimed) {
                TrimOutput::Emit(buffers) => {
                    for b in buffers {
                        feed.push_buffer(b).map_err(|e| format!("muxer stopped: {e:?}"))?;
                    }
                }
                TrimOutput::End => return Ok(()),
            }
        }
        offset += file_end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Frames every 100 ms, keyframe every 1 s.
    fn run(start: u64, end: u64) -> (Vec<u64>, bool) {
        let mut trim = Trim::new(ms(start), ms(end));
        let mut out = Vec::new();
        for t in (0..5000).step_by(100) {
            match trim.push(ms(t), t % 1000 == 0, t) {
                TrimOutput::Emit(v) => out.extend(v),
                TrimOutput::End => return (out, true),
            }
        }
        (out, false)
    }

    #[test]
    fn export_starts_at_the_keyframe_before_the_start() {
        let (frames, ended) = run(2300, 3500);
        assert_eq!(frames.first(), Some(&2000));
        assert_eq!(frames.last(), Some(&3500));
        assert_eq!(frames.len(), 16);
        assert!(ended);
    }

    #[test]
    fn a_start_on_a_keyframe_and_an_end_past_the_data() {
        let (frames, ended) = run(1000, 99_000);
        assert_eq!(frames.first(), Some(&1000));
        assert_eq!(frames.len(), 40);
        assert!(!ended);
    }

    /// Records `seconds` of a small test pattern as a fragmented MP4, like the recorder's.
    fn recording(dir: &std::path::Path, name: &str, seconds: u32) -> PathBuf {
        let path = dir.join(name);
        let launch = format!(
            "videotestsrc num-buffers={n} ! video/x-raw,width=160,height=90,framerate=30/1 ! x264enc key-int-max=30 \
             speed-preset=ultrafast ! h264parse ! mp4mux fragment-duration=1000 ! filesink location={p}",
            n = seconds * 30,
            p = path.display()
        );
        let pipeline = gst::parse::launch(&launch).expect("recording pipeline");
        pipeline.set_state(gst::State::Playing).expect("records");
        let bus = pipeline.bus().expect("bus");
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(60), &[gst::MessageType::Eos, gst::MessageType::Error]);
        pipeline.set_state(gst::State::Null).expect("stops");
        path
    }

    #[test]
    fn a_client_that_pauses_within_the_stall_limit_still_gets_every_byte() {
        crate::media::init().expect("GStreamer initialises");
        let dir = tempfile::tempdir().expect("temp dir");
        let files: Vec<PathBuf> = (0..3).map(|i| recording(dir.path(), &format!("{i}.mp4"), 10)).collect();
        let request = ExportRequest { files, start: Duration::ZERO, end: Duration::from_secs(30), stall_limit: STALL_LIMIT };
        let mut rx = start(request).expect("export starts");
        // Far more fragments than the channel holds: the muxer waits for the reader.
        std::thread::sleep(Duration::from_secs(35));
        let mut bytes = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            bytes.extend(chunk.expect("no export error"));
        }
        let out = dir.path().join("export.mp4");
        std::fs::write(&out, &bytes).expect("written");
        let scan = crate::storage::mp4scan::scan_file(&out).expect("export parses");
        assert!(!scan.truncated, "export ends in a cut-off box");
        let seconds = scan.duration.as_secs_f64();
        assert!((seconds - 30.0).abs() < 0.2, "export is {seconds} s of 30 s");
    }

    #[test]
    fn a_client_that_stalls_beyond_the_limit_ends_the_export_and_frees_its_thread() {
        crate::media::init().expect("GStreamer initialises");
        let dir = tempfile::tempdir().expect("temp dir");
        let files: Vec<PathBuf> = (0..3).map(|i| recording(dir.path(), &format!("{i}.mp4"), 10)).collect();
        let request = ExportRequest { files, start: Duration::ZERO, end: Duration::from_secs(30), stall_limit: Duration::from_secs(2) };
        let mut rx = start(request).expect("export starts");
        std::thread::sleep(Duration::from_secs(6));
        // What was in flight, then the end (the channel closes once the export's thread and
        // pipelines are gone): a cut-off download, since an HTTP body cannot carry an error.
        let mut bytes = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while let Some(chunk) = rx.blocking_recv() {
            bytes += chunk.map(|c| c.len()).unwrap_or(0);
            assert!(std::time::Instant::now() < deadline, "the export went on after its client stalled");
        }
        let whole: u64 = (0..3).map(|i| std::fs::metadata(dir.path().join(format!("{i}.mp4"))).unwrap().len()).sum();
        assert!((bytes as u64) < whole / 2, "the export ended early: {bytes} of about {whole} bytes");
    }
}
