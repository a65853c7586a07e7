//! Which recordings to delete, decided without touching the disk (sans-IO): the shell in
//! `storage` gathers the segments and the partition's numbers, calls [`plan`], and deletes.
//!
//! Rules, in order: a finished segment older than its camera's `keep` goes; then, oldest
//! first across all cameras, finished segments go while recordings exceed `max_size` or the
//! partition has less than `min_free` free. A segment being written is never deleted.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// One segment as retention sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub size: u64,
    /// Being written right now.
    pub in_progress: bool,
    /// The camera's `recording.keep`.
    pub keep: Option<Duration>,
}

/// The data partition's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    pub total: u64,
    pub free: u64,
}

/// Storage-wide limits, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub max_total: Option<u64>,
    pub min_free: u64,
}

/// Why a segment is deleted; logged and published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Age,
    MaxSize,
    MinFree,
}

impl Reason {
    /// Words for the log and the event.
    pub fn describe(&self) -> &'static str {
        match self {
            Reason::Age => "older than recording.keep",
            Reason::MaxSize => "recordings exceed storage.max_size",
            Reason::MinFree => "free space below storage.min_free",
        }
    }
}

/// Indices into `segments` to delete, with the reason, oldest first.
pub fn plan(now: DateTime<Utc>, segments: &[Candidate], limits: Limits, disk: Disk) -> Vec<(usize, Reason)> {
    let mut doomed: Vec<(usize, Reason)> = Vec::new();
    let mut total: u64 = segments.iter().map(|s| s.size).sum();
    let mut free = disk.free;
    let mut order: Vec<usize> = (0..segments.len()).filter(|&i| !segments[i].in_progress).collect();
    order.sort_by_key(|&i| segments[i].start);

    for &i in &order {
        let s = &segments[i];
        let expired = s.keep.is_some_and(|keep| chrono::Duration::from_std(keep).is_ok_and(|keep| s.end + keep < now));
        if expired {
            doomed.push((i, Reason::Age));
            total -= s.size;
            free += s.size;
        }
    }
    for &i in &order {
        if doomed.iter().any(|(d, _)| *d == i) {
            continue;
        }
        let reason = if limits.max_total.is_some_and(|max| total > max) {
            Reason::MaxSize
        } else if free < limits.min_free {
            Reason::MinFree
        } else {
            break;
        };
        doomed.push((i, reason));
        total -= segments[i].size;
        free += segments[i].size;
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap() + chrono::Duration::minutes(min)
    }

    /// One-minute, 10 MB segments starting at the given minutes; the last is being written.
    fn minutes(starts: &[i64], keep: Option<Duration>) -> Vec<Candidate> {
        let mut v: Vec<Candidate> =
            starts.iter().map(|&m| Candidate { start: t(m), end: t(m + 1), size: 10_000_000, in_progress: false, keep }).collect();
        if let Some(last) = v.last_mut() {
            last.in_progress = true;
        }
        v
    }

    const ROOMY: Disk = Disk { total: 1_000_000_000, free: 900_000_000 };

    #[test]
    fn old_segments_go_by_age() {
        let segs = minutes(&[0, 1, 2, 3, 4], Some(Duration::from_secs(120)));
        let plan = plan(t(5), &segs, Limits::default(), ROOMY);
        assert_eq!(plan, vec![(0, Reason::Age), (1, Reason::Age)]);
    }

    #[test]
    fn oldest_go_first_until_under_max_size_and_the_current_one_never() {
        let segs = minutes(&[3, 1, 2, 0, 4], None);
        let limits = Limits { max_total: Some(25_000_000), min_free: 0 };
        let plan = plan(t(5), &segs, limits, ROOMY);
        assert_eq!(plan, vec![(3, Reason::MaxSize), (1, Reason::MaxSize), (2, Reason::MaxSize)]);
        // Even an impossible limit leaves the segment being written.
        let all = super::plan(t(5), &segs, Limits { max_total: Some(0), min_free: 0 }, ROOMY);
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|(i, _)| !segs[*i].in_progress));
    }

    #[test]
    fn free_space_is_restored_oldest_first() {
        let segs = minutes(&[0, 1, 2, 3], None);
        let disk = Disk { total: 100_000_000, free: 5_000_000 };
        let plan = plan(t(4), &segs, Limits { max_total: None, min_free: 20_000_000 }, disk);
        assert_eq!(plan, vec![(0, Reason::MinFree), (1, Reason::MinFree)]);
    }

    #[test]
    fn nothing_goes_when_within_limits() {
        let segs = minutes(&[0, 1, 2], Some(Duration::from_secs(3600)));
        assert!(plan(t(3), &segs, Limits { max_total: Some(1 << 40), min_free: 1 }, ROOMY).is_empty());
    }

    #[test]
    fn cameras_share_the_limits_oldest_first() {
        let mut segs = minutes(&[0, 2, 4], None);
        let mut other = minutes(&[1, 3, 5], Some(Duration::from_secs(24 * 3600)));
        segs.append(&mut other);
        let plan = plan(t(6), &segs, Limits { max_total: Some(40_000_000), min_free: 0 }, ROOMY);
        let starts: Vec<_> = plan.iter().map(|(i, _)| segs[*i].start).collect();
        assert_eq!(starts, vec![t(0), t(1)]);
    }
}
