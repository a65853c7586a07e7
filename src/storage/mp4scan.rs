//! Reads how much playable media a (fragmented) MP4 segment holds, from its box headers only.
//!
//! A segment being written when the power went out ends in a truncated box; everything up to
//! the last complete `moof`+`mdat` pair still plays. The index needs that duration for
//! partial segments, and the real duration for finished ones, without decoding anything:
//! fragments are ~1 s, so a one-minute file is ~60 small header reads.
//!
//! A finished fragmented file ends in the `mfra` box mp4mux writes at end of stream. A kill
//! can land just after a fragment was written whole, so a file without it is cut off even
//! when every box in it is complete.

use std::io::{self, Read, Seek, SeekFrom};
use std::time::Duration;

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Media time covered by complete fragments (or by `mvhd` for an unfragmented file).
    pub duration: Duration,
    /// Complete `moof`+`mdat` fragments.
    pub fragments: u32,
    /// It ends in an incomplete box.
    pub truncated: bool,
    /// It ends in the `mfra` box mp4mux writes when it finishes a fragmented file.
    pub closed: bool,
}

struct Header {
    kind: [u8; 4],
    /// Offset of the box's payload.
    body: u64,
    /// Offset just past the box.
    end: u64,
}

fn read_header<R: Read + Seek>(r: &mut R, at: u64, limit: u64) -> io::Result<Option<Header>> {
    if at + 8 > limit {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(at))?;
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as u64;
    let kind = [h[4], h[5], h[6], h[7]];
    let (size, body) = match size32 {
        0 => (limit - at, at + 8),
        1 => {
            if at + 16 > limit {
                return Ok(None);
            }
            let mut l = [0u8; 8];
            r.read_exact(&mut l)?;
            (u64::from_be_bytes(l), at + 16)
        }
        s => (s, at + 8),
    };
    if size < body - at {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "box smaller than its header"));
    }
    // A 64-bit size near 2^64 would wrap the end below the start and loop for ever.
    let end = at.checked_add(size).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "box size beyond any file"))?;
    Ok(Some(Header { kind, body, end }))
}

fn read_bytes<R: Read + Seek>(r: &mut R, h: &Header, max: u64) -> io::Result<Vec<u8>> {
    let len = (h.end - h.body).min(max);
    r.seek(SeekFrom::Start(h.body))?;
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8).map(|s| u64::from_be_bytes(s.try_into().expect("slice of 8")))
}

/// Boxes whose children matter here.
const CONTAINERS: &[&[u8; 4]] = &[b"moov", b"trak", b"mdia", b"moof", b"traf", b"mvex"];

#[derive(Default)]
struct Found {
    movie_timescale: u32,
    movie_duration: u64,
    media_timescale: u32,
    /// Sample duration `tfhd` sets for the current track fragment.
    default_duration: u32,
    /// Per fragment in the current moof: (base decode time, summed sample durations).
    fragment: Option<(u64, u64)>,
}

fn walk<R: Read + Seek>(r: &mut R, start: u64, end: u64, found: &mut Found) -> io::Result<()> {
    let mut at = start;
    while let Some(h) = read_header(r, at, end)? {
        if h.end > end {
            break;
        }
        match &h.kind {
            k if CONTAINERS.contains(&k) => walk(r, h.body, h.end, found)?,
            b"mvhd" => {
                let b = read_bytes(r, &h, 32)?;
                let v1 = b.first() == Some(&1);
                found.movie_timescale = be_u32(&b, if v1 { 20 } else { 12 }).unwrap_or(0);
                found.movie_duration = if v1 { be_u64(&b, 24).unwrap_or(0) } else { be_u32(&b, 16).unwrap_or(0) as u64 };
            }
            b"mdhd" if found.media_timescale == 0 => {
                let b = read_bytes(r, &h, 32)?;
                let v1 = b.first() == Some(&1);
                found.media_timescale = be_u32(&b, if v1 { 20 } else { 12 }).unwrap_or(0);
            }
            b"tfhd" => {
                let b = read_bytes(r, &h, 64)?;
                let flags = be_u32(&b, 0).unwrap_or(0) & 0x00ff_ffff;
                // Optional fields in order: base-data-offset (8), sample-description-index (4),
                // default-sample-duration (4).
                let mut off = 8;
                if flags & 0x01 != 0 {
                    off += 8;
                }
                if flags & 0x02 != 0 {
                    off += 4;
                }
                found.default_duration = if flags & 0x08 != 0 { be_u32(&b, off).unwrap_or(0) } else { 0 };
            }
            b"tfdt" => {
                let b = read_bytes(r, &h, 16)?;
                let base = if b.first() == Some(&1) { be_u64(&b, 4).unwrap_or(0) } else { be_u32(&b, 4).unwrap_or(0) as u64 };
                found.fragment.get_or_insert((0, 0)).0 = base;
            }
            b"trun" => {
                let b = read_bytes(r, &h, h.end - h.body)?;
                let flags = be_u32(&b, 0).unwrap_or(0) & 0x00ff_ffff;
                let count = be_u32(&b, 4).unwrap_or(0) as u64;
                let mut off = 8;
                if flags & 0x001 != 0 {
                    off += 4;
                }
                if flags & 0x004 != 0 {
                    off += 4;
                }
                let per_sample = [0x100, 0x200, 0x400, 0x800].iter().filter(|f| flags & **f != 0).count() * 4;
                let total = if flags & 0x100 != 0 {
                    (0..count).map(|i| be_u32(&b, off + i as usize * per_sample).unwrap_or(0) as u64).sum()
                } else {
                    count * found.default_duration as u64
                };
                found.fragment.get_or_insert((0, 0)).1 += total;
            }
            _ => {}
        }
        at = h.end;
    }
    Ok(())
}

impl Scan {
    /// Cut off while being written (power loss, kill, disk error): an incomplete box, or
    /// fragments never closed by an `mfra`.
    pub fn cut_off(&self) -> bool {
        self.truncated || (self.fragments > 0 && !self.closed)
    }

    /// No complete media at all (cut off in its first second, or empty): nothing to play.
    pub fn holds_nothing(&self) -> bool {
        self.fragments == 0 && self.duration.is_zero()
    }
}

/// Scans a segment of `len` bytes.
pub fn scan<R: Read + Seek>(r: &mut R, len: u64) -> io::Result<Scan> {
    let mut found = Found::default();
    let mut result = Scan::default();
    let mut first_start: Option<u64> = None;
    let mut last_end = 0u64;
    // The fragment described by the last moof, committed once its mdat is complete.
    let mut pending: Option<(u64, u64)> = None;
    let mut at = 0;
    loop {
        let Some(h) = read_header(r, at, len)? else {
            result.truncated = at < len;
            break;
        };
        if h.end > len {
            result.truncated = true;
            break;
        }
        match &h.kind {
            b"moov" => walk(r, h.body, h.end, &mut found)?,
            b"moof" => {
                found.fragment = None;
                walk(r, h.body, h.end, &mut found)?;
                pending = found.fragment.take();
            }
            b"mdat" => {
                if let Some((base, dur)) = pending.take() {
                    first_start.get_or_insert(base);
                    last_end = last_end.max(base.saturating_add(dur));
                    result.fragments += 1;
                }
            }
            b"mfra" => result.closed = true,
            _ => {}
        }
        at = h.end;
    }
    result.duration = if result.fragments > 0 && found.media_timescale > 0 {
        let ticks = last_end.saturating_sub(first_start.unwrap_or(0));
        Duration::from_secs_f64(ticks as f64 / found.media_timescale as f64)
    } else if found.movie_timescale > 0 {
        Duration::from_secs_f64(found.movie_duration as f64 / found.movie_timescale as f64)
    } else {
        Duration::ZERO
    };
    Ok(result)
}

/// Scans a file on disk.
pub fn scan_file(path: &std::path::Path) -> io::Result<Scan> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    scan(&mut io::BufReader::new(&mut f), len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    fn full(version_flags: u32, rest: &[u8]) -> Vec<u8> {
        let mut v = version_flags.to_be_bytes().to_vec();
        v.extend_from_slice(rest);
        v
    }

    /// A finished segment: [`unfinished`] closed by its `mfra`.
    pub(crate) fn fragmented(n: u64) -> Vec<u8> {
        let mut file = unfinished(n);
        file.extend(bx(b"mfra", &bx(b"mfro", &full(0, &16u32.to_be_bytes()))));
        file
    }

    /// moov with a 90 kHz video track, then `n` one-second fragments of 30 samples.
    fn unfinished(n: u64) -> Vec<u8> {
        let mut mdhd = vec![0u8; 12];
        mdhd.extend_from_slice(&90_000u32.to_be_bytes());
        mdhd.extend_from_slice(&[0u8; 8]);
        let moov = bx(b"moov", &bx(b"trak", &bx(b"mdia", &bx(b"mdhd", &mdhd))));
        let mut file = bx(b"ftyp", b"iso6");
        file.extend(moov);
        for i in 0..n {
            let mut tfhd_rest = 1u32.to_be_bytes().to_vec(); // track id
            tfhd_rest.extend_from_slice(&3000u32.to_be_bytes()); // default duration
            let tfhd = bx(b"tfhd", &full(0x08, &tfhd_rest));
            let tfdt = bx(b"tfdt", &full(1 << 24, &(i * 90_000).to_be_bytes()));
            let trun = bx(b"trun", &full(0, &30u32.to_be_bytes()));
            let traf = bx(b"traf", &[tfhd, tfdt, trun].concat());
            file.extend(bx(b"moof", &traf));
            file.extend(bx(b"mdat", &[0u8; 100]));
        }
        file
    }

    #[test]
    fn complete_fragments_add_up() {
        let f = fragmented(5);
        let s = scan(&mut Cursor::new(&f), f.len() as u64).unwrap();
        assert_eq!(s, Scan { duration: Duration::from_secs(5), fragments: 5, truncated: false, closed: true });
        assert!(!s.cut_off());
    }

    #[test]
    fn a_file_cut_off_between_fragments_is_truncated() {
        let f = unfinished(5);
        let s = scan(&mut Cursor::new(&f), f.len() as u64).unwrap();
        assert_eq!(s, Scan { duration: Duration::from_secs(5), fragments: 5, truncated: false, closed: false });
        assert!(s.cut_off(), "every box is whole, but the file was never finished");
    }

    #[test]
    fn a_cut_off_file_counts_only_complete_fragments() {
        let f = unfinished(5);
        for cut in [f.len() - 1, f.len() - 50, f.len() - 108 - 20] {
            let s = scan(&mut Cursor::new(&f[..cut]), cut as u64).unwrap();
            assert!(s.truncated && s.cut_off(), "cut at {cut}");
            assert_eq!(s.fragments, 4, "cut at {cut}");
            assert_eq!(s.duration, Duration::from_secs(4));
        }
    }

    #[test]
    fn garbage_is_an_error_or_empty_never_a_panic() {
        for data in [vec![], vec![0u8; 3], vec![0xff; 64], b"\x00\x00\x00\x01mdat\x00".to_vec()] {
            let _ = scan(&mut Cursor::new(&data), data.len() as u64);
        }
    }

    #[test]
    fn a_64_bit_box_size_that_wraps_is_an_error_not_an_endless_loop() {
        let mut data = fragmented(1);
        let at = data.len() as u64;
        // size32 = 1: a 64-bit size follows; this one wraps `at + size` round to 8.
        data.extend_from_slice(&[0, 0, 0, 1]);
        data.extend_from_slice(b"free");
        data.extend_from_slice(&(u64::MAX - at + 9).to_be_bytes());
        data.extend_from_slice(&[0u8; 32]);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(scan(&mut Cursor::new(&data), data.len() as u64).map(|s| s.fragments));
        });
        let outcome = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("scan finished");
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
