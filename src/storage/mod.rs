//! Recordings on the data partition: file layout, the index of what was recorded, retention,
//! and the disk checks the recorder uses. No GStreamer and no HTTP here.
//!
//! [`Storage::start`] loads the index from disk and runs one task that follows `Segment*`
//! events into the index and applies retention every [`RETENTION_EVERY`] and whenever a
//! segment closes. On the same period it rescans the disk if the data folder became a
//! different file system (a partition mounted late, or lost) or events were missed.

pub mod disk;
pub mod index;
pub mod layout;
pub mod mp4scan;
pub mod retention;
pub mod settings;
pub mod switch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::events::{Bus, Event};

pub use index::{Gap, Index, Segment};

/// Retention also runs on this period, so an age limit or a disk filled by something else
/// is acted on without waiting for the next segment to close.
pub const RETENTION_EVERY: Duration = Duration::from_secs(10);

/// The recordings index and its upkeep.
pub struct Storage {
    root: PathBuf,
    cameras: Vec<String>,
    index: Arc<Index>,
    max_total: Option<u64>,
    min_free: crate::config::SpaceLimit,
    keep: HashMap<String, Option<Duration>>,
    bus: Bus,
    /// Why retention could not run last time, so the reason is logged once, not every pass.
    retention_blocked: Option<String>,
    /// Where cameras, limits and retention come from after a settings change.
    live: crate::config::Live,
}

impl Storage {
    /// Loads the index (blocking scan of the recordings folder) and starts the upkeep task.
    pub async fn start(live: &crate::config::Live, bus: &Bus, shutdown: CancellationToken) -> Arc<Index> {
        let config = live.get();
        let root = config.storage.path.clone();
        let cameras: Vec<String> = config.cameras.iter().map(|c| c.name.clone()).collect();
        let scan_root = root.clone();
        let (index, loaded) = match tokio::task::spawn_blocking(move || Index::load(&scan_root, &cameras)).await {
            Ok(index) => (Arc::new(index), true),
            Err(e) => {
                // Recording still works and the first check rescans; say why the list is empty.
                tracing::error!(path = %root.display(), "reading the recordings on disk failed, starting with an empty list: {e}");
                (Arc::new(Index::default()), false)
            }
        };
        let storage = Storage {
            root,
            cameras: config.cameras.iter().map(|c| c.name.clone()).collect(),
            index: index.clone(),
            max_total: config.storage.max_size.map(|s| s.0),
            min_free: config.storage.min_free,
            keep: config.cameras.iter().map(|c| (c.name.clone(), c.recording.keep)).collect(),
            bus: bus.clone(),
            retention_blocked: None,
            live: live.clone(),
        };
        let rx = bus.subscribe();
        tokio::spawn(storage.run(rx, !loaded, shutdown));
        index
    }

    /// `stale`: the index may not match the disk (its load failed), so the first check rescans.
    async fn run(mut self, mut rx: tokio::sync::broadcast::Receiver<Event>, mut stale: bool, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(RETENTION_EVERY);
        let mut mounted = self.mounted().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let now = self.mounted().await;
                    if now != mounted || stale {
                        // A partition mounted after start, unmounted, or swapped; or events
                        // were missed. The disk is the truth.
                        tracing::info!(path = %self.root.display(), "data folder changed or events were missed; rescanning recordings");
                        let (index, root, cameras) = (self.index.clone(), self.root.clone(), self.cameras.clone());
                        match tokio::task::spawn_blocking(move || index.reload(&root, &cameras)).await {
                            Ok(()) => stale = false,
                            // Retried at the next check.
                            // Cancelled: the runtime is shutting down.
                            Err(e) if e.is_cancelled() => return,
                            Err(e) => tracing::error!("rescanning recordings failed: {e}"),
                        }
                        mounted = now;
                    }
                    self.apply_retention().await;
                }
                event = rx.recv() => match event {
                    Ok(Event::SegmentOpened { camera, path, start }) => {
                        match self.update_index("a new segment", move |index| index.opened(&camera, &path, start)).await {
                            Indexed::Cancelled => return,
                            Indexed::Failed => stale = true,
                            Indexed::Done => {}
                        }
                    }
                    Ok(Event::SegmentClosed { camera, path, start }) => {
                        match self.update_index("a finished segment", move |index| index.closed(&camera, &path, start)).await {
                            Indexed::Cancelled => return,
                            Indexed::Failed => stale = true,
                            Indexed::Done => {}
                        }
                        self.apply_retention().await;
                    }
                    Ok(Event::SettingsChanged { .. }) => {
                        // Cameras may have come or gone: rescan and apply the new limits.
                        self.refresh(&self.live.get());
                        stale = true;
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "storage lagged behind events; rescanning at the next check");
                        stale = true;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    /// Takes cameras, size limits and retention from `config`.
    fn refresh(&mut self, config: &Config) {
        self.cameras = config.cameras.iter().map(|c| c.name.clone()).collect();
        self.keep = config.cameras.iter().map(|c| (c.name.clone(), c.recording.keep)).collect();
        self.max_total = config.storage.max_size.map(|s| s.0);
        self.min_free = config.storage.min_free;
    }

    /// Applies `change` to the index on a blocking thread (it reads the disk). A failure is
    /// logged and marks the index stale (rescanned at the next check); a cancellation means
    /// the runtime is shutting down and is not a failure.
    async fn update_index(&self, what: &str, change: impl FnOnce(&Index) + Send + 'static) -> Indexed {
        let index = self.index.clone();
        match tokio::task::spawn_blocking(move || change(&index)).await {
            Ok(()) => Indexed::Done,
            Err(e) if e.is_cancelled() => Indexed::Cancelled,
            Err(e) => {
                tracing::error!("indexing {what} failed, rescanning at the next check: {e}");
                Indexed::Failed
            }
        }
    }

    /// Which file system object the data folder is (device and inode), `None` if it is not
    /// a folder: changes when a partition is mounted on it or taken away.
    async fn mounted(&self) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || std::fs::metadata(&root).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino())))
            .await
            .ok()
            .flatten()
    }

    async fn apply_retention(&mut self) {
        let root = self.root.clone();
        let disk = match tokio::task::spawn_blocking(move || disk::usage(&root)).await {
            Ok(Ok(d)) => {
                if self.retention_blocked.take().is_some() {
                    tracing::info!(path = %self.root.display(), "data partition readable again; retention resumes");
                }
                d
            }
            Ok(Err(e)) => return self.retention_skipped(format!("cannot read the data partition's usage: {e}")),
            Err(e) if e.is_cancelled() => return,
            Err(e) => return self.retention_skipped(format!("reading the data partition's usage failed: {e}")),
        };
        let segments = self.index.all();
        let candidates: Vec<retention::Candidate> = segments
            .iter()
            .map(|(camera, s)| retention::Candidate {
                start: s.start,
                end: s.end,
                size: s.size,
                in_progress: s.recording,
                keep: self.keep.get(camera).copied().flatten(),
            })
            .collect();
        let limits = retention::Limits { max_total: self.max_total, min_free: self.min_free.bytes_of(disk.total) };
        let plan = retention::plan(chrono::Utc::now(), &candidates, limits, disk);
        for (i, reason) in plan {
            let (camera, seg) = &segments[i];
            let path = seg.path.clone();
            let removed = tokio::task::spawn_blocking(move || remove_segment(&path)).await;
            match removed {
                Ok(Ok(())) => {
                    self.index.remove(camera, seg.start);
                    tracing::info!(camera = %camera, segment = %seg.name, size = seg.size, "deleted recording: {}", reason.describe());
                    self.bus.publish(Event::SegmentDeleted {
                        camera: camera.clone(),
                        segment: seg.name.clone(),
                        reason: reason.describe().into(),
                    });
                }
                Ok(Err(e)) => tracing::warn!(camera = %camera, segment = %seg.name, "cannot delete recording: {e}"),
                Err(e) if e.is_cancelled() => return,
                Err(e) => tracing::error!(camera = %camera, segment = %seg.name, "deleting recording failed: {e}"),
            }
        }
    }

    /// Logs why retention did not run, once per new reason (it is retried every pass).
    fn retention_skipped(&mut self, why: String) {
        if self.retention_blocked.as_deref() != Some(why.as_str()) {
            tracing::warn!(path = %self.root.display(), "retention skipped: {why}; retrying every {}s", RETENTION_EVERY.as_secs());
            self.retention_blocked = Some(why);
        }
    }
}

/// Deletes a segment file and its day folder if that is now empty.
fn remove_segment(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(day) = path.parent() {
        // Fails harmlessly when other segments remain.
        let _ = std::fs::remove_dir(day);
    }
    Ok(())
}

/// Makes a finished file durable: its data, the day folder's entry naming it, and the camera
/// folder's entry naming the day folder (new at the first segment of each day).
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    for dir in path.ancestors().skip(1).take(2) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Gives a renamed camera its recordings, snapshots and recording switch: each folder is
/// renamed (atomic within the data partition). Refuses when the new name already has any.
pub fn move_camera(root: &Path, from: &str, to: &str) -> std::io::Result<()> {
    let pairs = [
        (layout::camera_dir(root, from), layout::camera_dir(root, to)),
        (root.join("snapshots").join(from), root.join("snapshots").join(to)),
        (root.join("state/recording-off").join(from), root.join("state/recording-off").join(to)),
    ];
    if let Some((_, taken)) = pairs.iter().find(|(_, to)| to.exists()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} already exists: another camera had that name", taken.display()),
        ));
    }
    for (old, new) in &pairs {
        if old.exists() {
            std::fs::rename(old, new)?;
            if let Some(parent) = new.parent() {
                std::fs::File::open(parent)?.sync_all()?;
            }
        }
    }
    Ok(())
}

/// How an index update went.
enum Indexed {
    Done,
    Failed,
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_the_last_segment_of_a_day_removes_its_folder() {
        let root = tempfile::tempdir().unwrap();
        let day = root.path().join("recordings/cam/2026-11-21");
        std::fs::create_dir_all(&day).unwrap();
        let (a, b) = (day.join("a.mp4"), day.join("b.mp4"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        remove_segment(&a).unwrap();
        assert!(day.is_dir(), "a folder with segments left stays");
        remove_segment(&b).unwrap();
        assert!(!day.exists(), "an emptied day folder goes");
        assert!(root.path().join("recordings/cam").is_dir(), "the camera folder stays");
        remove_segment(&b).unwrap();
    }
}
