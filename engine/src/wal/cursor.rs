//! The change feed's reader: durable records in LSN order from a starting LSN.
//!
//! A cursor reads its segment in chunks of up to one record's maximum size into a window it
//! keeps: the next call decodes what the window still holds before it touches the file again,
//! so a reader that asks for fewer records than a chunk holds does not read (and copy out of
//! the page cache) the same bytes once per call. The window may end in a frame the writer had
//! not finished writing when it was read; decoding stops there and the next call reads from
//! that frame on. Only frames at or below `durable_lsn` (loaded before any read) are returned,
//! and every one of those was completely written before it became durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::segment::{self, FRAME_HEADER_BYTES, HEADER_BYTES};
use super::{Shared, WalError, io_err};
use crate::limits;

/// Reads durable records in LSN order from a starting LSN: the change feed.
pub struct WalCursor {
    shared: Arc<Shared>,
    next_lsn: u64,
    /// (segment first LSN, byte offset of the frame holding `next_lsn`).
    position: Option<(u64, u64)>,
    window: Window,
}

/// Bytes of one segment read ahead of the cursor.
#[derive(Default)]
struct Window {
    segment_first_lsn: u64,
    /// Byte offset in the segment of `bytes[0]`.
    offset: u64,
    bytes: Vec<u8>,
}

impl Window {
    /// Where `offset` of that segment starts in the window, if the window holds it.
    fn index_of(&self, segment_first_lsn: u64, offset: u64) -> Option<usize> {
        let end = self.offset + self.bytes.len() as u64;
        (segment_first_lsn == self.segment_first_lsn && self.offset <= offset && offset < end)
            .then(|| (offset - self.offset) as usize)
    }
}

impl WalCursor {
    pub(super) fn new(shared: Arc<Shared>, from_lsn: u64) -> Self {
        Self {
            shared,
            next_lsn: from_lsn.max(1),
            position: None,
            window: Window::default(),
        }
    }

    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// [`WalCursor::next_batch`] on a blocking thread, for change-feed readers on an async
    /// runtime (file reads must not stall its workers). `None` if the runtime is shutting down.
    pub async fn next_batch_async(
        mut self,
        records_max: usize,
    ) -> Option<(WalCursor, Result<Vec<(u64, Vec<u8>)>, WalError>)> {
        tokio::task::spawn_blocking(move || {
            let batch = self.next_batch(records_max);
            (self, batch)
        })
        .await
        .ok()
    }

    /// Up to `records_max` durable records from the cursor on (fewer, or none, when caught up).
    pub fn next_batch(&mut self, records_max: usize) -> Result<Vec<(u64, Vec<u8>)>, WalError> {
        let durable = self.shared.durable_lsn.load(Ordering::Acquire);
        let mut out = Vec::new();
        while out.len() < records_max && self.next_lsn <= durable {
            let (seg_first, offset) = match self.position {
                Some(p) => p,
                None => self.locate()?,
            };
            let (start, fresh) = match self.window.index_of(seg_first, offset) {
                Some(start) => (start, false),
                None => {
                    self.fill_window(seg_first, offset)?;
                    (0, true)
                }
            };
            let buf = &self.window.bytes;
            let mut at = start;
            while out.len() < records_max && self.next_lsn <= durable {
                match segment::decode_frame(buf, at) {
                    Ok(frame) if frame.lsn == self.next_lsn => {
                        out.push((
                            frame.lsn,
                            buf[frame.payload_start..frame.payload_end].to_vec(),
                        ));
                        at = frame.payload_end;
                        self.next_lsn += 1;
                    }
                    _ => break,
                }
            }
            if at > start {
                self.position = Some((seg_first, offset + (at - start) as u64));
                continue;
            }
            if !fresh {
                // The window ends before the next durable frame: read the file again from it.
                self.window.bytes.clear();
                continue;
            }
            // Nothing more in this segment: move to the next one if it starts where we are.
            let next_segment = self
                .shared
                .segments
                .lock()
                .iter()
                .find(|s| s.first_lsn == self.next_lsn)
                .map(|s| s.first_lsn);
            match next_segment {
                Some(first) if first != seg_first => {
                    self.position = Some((first, HEADER_BYTES as u64));
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Reads the chunk of the segment that starts at `offset` into the window.
    fn fill_window(&mut self, segment_first_lsn: u64, offset: u64) -> Result<(), WalError> {
        let path = segment::segment_path(&self.shared.config.dir, segment_first_lsn);
        // One whole record of the largest size always fits, so a chunk never ends a cursor.
        let chunk_bytes = limits::RECORD_BYTES_MAX + FRAME_HEADER_BYTES;
        self.window.segment_first_lsn = segment_first_lsn;
        self.window.offset = offset;
        self.shared
            .fs
            .read_range(&path, offset, chunk_bytes, &mut self.window.bytes)
            .map_err(|e| io_err(&path, e))
    }

    /// Finds the segment and offset of `next_lsn` by scanning from the segment's start.
    fn locate(&mut self) -> Result<(u64, u64), WalError> {
        let seg = {
            let segments = self.shared.segments.lock();
            let oldest = segments.first().map(|s| s.first_lsn);
            match oldest {
                Some(oldest) if self.next_lsn < oldest => {
                    return Err(WalError::Truncated { oldest_lsn: oldest });
                }
                None => return Ok((self.next_lsn, HEADER_BYTES as u64)),
                _ => {}
            }
            segments
                .iter()
                .rev()
                .find(|s| s.first_lsn <= self.next_lsn)
                .cloned()
                .expect("a segment at or below next_lsn")
        };
        // Walked a window at a time, not read whole: past its records a segment may be zeros
        // to its full size (zero-filled ahead of need).
        let mut at = HEADER_BYTES as u64;
        let mut lsn = seg.first_lsn;
        'walk: while lsn < self.next_lsn {
            self.fill_window(seg.first_lsn, at)?;
            let buf = &self.window.bytes;
            let mut offset = 0;
            while lsn < self.next_lsn {
                match segment::decode_frame(buf, offset) {
                    Ok(frame) => {
                        offset = frame.payload_end;
                        lsn = frame.lsn + 1;
                    }
                    // The window ends inside a frame: read on from it.
                    Err(segment::FrameError::Incomplete) if offset > 0 => break,
                    Err(_) => break 'walk,
                }
            }
            at += offset as u64;
        }
        let position = (seg.first_lsn, at);
        self.position = Some(position);
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::fs::StdFs;
    use crate::wal::{Wal, WalConfig};

    /// A payload that names its LSN, of a length that varies with it (some frames straddle
    /// the chunk and segment edges, and one is of the largest size).
    fn payload(lsn: u64) -> Vec<u8> {
        let len = match lsn % 97 {
            0 => limits::RECORD_BYTES_MAX,
            n => 8 + (n as usize * 37) % 3_000,
        };
        let mut bytes = vec![(lsn % 251) as u8; len];
        bytes[..8].copy_from_slice(&lsn.to_le_bytes());
        bytes
    }

    fn open(dir: &std::path::Path) -> Wal {
        let mut config = WalConfig::new(dir);
        config.segment_bytes = 3 << 20;
        let (wal, _) = Wal::open(Arc::new(StdFs), config, 0, |_, _| Ok(())).expect("open");
        wal
    }

    /// Reads of every size, interleaved with appends (so windows go stale mid-frame and mid
    /// segment), return every record once, in order, byte for byte.
    #[test]
    fn small_reads_between_appends_return_every_record_once_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = open(dir.path());
        let mut cursor = wal.cursor(1);
        let records_total = 600u64;
        let mut appended = 0u64;
        let mut read = 0u64;
        let mut reads = 0usize;
        while read < records_total {
            reads += 1;
            let burst = (reads as u64 * 7) % 23;
            for _ in 0..burst.min(records_total - appended) {
                appended += 1;
                wal.push(appended, payload(appended));
            }
            if appended > 0 {
                wal.wait_durable(appended).expect("durable");
            }
            for (lsn, bytes) in cursor.next_batch(1 + reads % 5).expect("read") {
                read += 1;
                assert_eq!(lsn, read, "records out of order or repeated");
                assert_eq!(bytes, payload(lsn), "record {lsn} read back changed");
            }
            assert!(reads < 10_000, "the cursor stopped at {read} of {appended}");
        }
        assert!(wal.stats().segments > 1, "the test must cross segments");
        assert!(cursor.next_batch(10).expect("read").is_empty());
        wal.shutdown();
    }

    /// A cursor opened at any LSN starts exactly there, in whichever segment holds it (segments
    /// zero-filled ahead of need or grown by appends alike).
    #[test]
    fn a_cursor_starts_at_the_lsn_asked_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = open(dir.path());
        let records_total = 3_000u64;
        for lsn in 1..=records_total {
            wal.push(lsn, payload(lsn));
        }
        wal.wait_durable(records_total).expect("durable");
        assert!(wal.stats().segments > 1, "the test must cross segments");
        for from in (1..=records_total).step_by(97).chain([records_total]) {
            let mut cursor = wal.cursor(from);
            let got = cursor.next_batch(2).expect("read");
            assert_eq!(got.first().map(|(lsn, _)| *lsn), Some(from));
            assert_eq!(got[0].1, payload(from), "record {from} read back changed");
        }
        wal.shutdown();
    }

    /// A record written but not yet durable is not returned, and is once it is.
    #[test]
    fn a_cursor_returns_nothing_past_the_durable_lsn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = open(dir.path());
        let mut cursor = wal.cursor(1);
        assert!(cursor.next_batch(10).expect("read").is_empty());
        wal.push(2, payload(2)); // held in the reorder buffer until 1 arrives
        assert!(cursor.next_batch(10).expect("read").is_empty());
        wal.push(1, payload(1));
        wal.wait_durable(2).expect("durable");
        let got: Vec<u64> = cursor
            .next_batch(10)
            .expect("read")
            .into_iter()
            .map(|(lsn, _)| lsn)
            .collect();
        assert_eq!(got, vec![1, 2]);
        wal.shutdown();
    }
}
