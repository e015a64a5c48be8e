//! WAL segment files: naming, header and record framing, and the scanner recovery and readers use.
//!
//! # Layout (all integers little-endian)
//!
//! A segment is named `{first_lsn:020}.wal` and starts with a 32-byte header:
//!
//! | offset | size | field                                              |
//! |-------:|-----:|----------------------------------------------------|
//! | 0      | 8    | magic `b"INVWAL\r\n"`                              |
//! | 8      | 4    | format version (`1`)                               |
//! | 12     | 8    | `first_lsn`: LSN of the first record in the file   |
//! | 20     | 4    | crc32c of bytes 0..20                              |
//! | 24     | 8    | reserved, zero                                     |
//!
//! Then records, back to back, each framed as:
//!
//! | offset | size  | field                                             |
//! |-------:|------:|---------------------------------------------------|
//! | 0      | 4     | `len`: payload length in bytes (1..=RECORD_BYTES_MAX) |
//! | 4      | 8     | `lsn`: exactly one more than the previous record's |
//! | 12     | 4     | crc32c over bytes 0..12 and the payload            |
//! | 16     | `len` | payload: a postcard-encoded [`crate::event::Record`] |
//!
//! A record is valid iff its length is in range, it fits in the file, its CRC matches and its
//! LSN follows the previous one. The CRC covers the length and the LSN too, so a flipped bit in
//! the frame is caught, not just in the payload.
//!
//! After the last record comes either the end of the file or zeros to the end of the file: a
//! segment may be zero-filled to its full size before its first record is written (see
//! `Fs::create_zeroed`: overwriting is cheaper to make durable than appending), and segments are
//! never reused, so nothing but zeros ever follows the records. A zero length is never valid,
//! so the scan stops there, and **a stop followed only by zeros is the clean end of the
//! segment**. A stop followed by anything else is damage: a torn tail (the last segment, no
//! valid record after it) or corruption.

use std::path::{Path, PathBuf};

use crate::limits::RECORD_BYTES_MAX;

pub const MAGIC: &[u8; 8] = b"INVWAL\r\n";
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_BYTES: usize = 32;
pub const FRAME_HEADER_BYTES: usize = 16;

pub fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

/// The first LSN a segment file name stands for, or None if it is not a segment.
pub fn parse_segment_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(segment_name(first_lsn))
}

pub fn encode_header(first_lsn: u64) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..20]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Checks a header and returns its `first_lsn`.
pub fn decode_header(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "header is {} bytes, expected {HEADER_BYTES}",
            bytes.len()
        ));
    }
    if &bytes[0..8] != MAGIC {
        return Err("bad magic".into());
    }
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&bytes[0..20]) {
        return Err("header checksum mismatch".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(format!("unsupported format version {version}"));
    }
    Ok(u64::from_le_bytes(
        bytes[12..20].try_into().expect("8 bytes"),
    ))
}

/// Appends one framed record to `out`.
pub fn encode_frame(out: &mut Vec<u8>, lsn: u64, payload: &[u8]) {
    assert!(!payload.is_empty() && payload.len() <= RECORD_BYTES_MAX);
    let len = payload.len() as u32;
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    let mut crc = crc32c::crc32c(&out[start..start + 12]);
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// One frame found by [`decode_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub lsn: u64,
    /// Payload range within the scanned buffer.
    pub payload_start: usize,
    pub payload_end: usize,
}

/// Why bytes at an offset are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The buffer ends inside the frame.
    Incomplete,
    Invalid(String),
}

/// Decodes the frame at `offset` of `buf`, checking length and CRC (not LSN continuity).
pub fn decode_frame(buf: &[u8], offset: usize) -> Result<Frame, FrameError> {
    let rest = &buf[offset..];
    if rest.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::Incomplete);
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    if len == 0 || len > RECORD_BYTES_MAX {
        return Err(FrameError::Invalid(format!(
            "record length {len} out of range"
        )));
    }
    if rest.len() < FRAME_HEADER_BYTES + len {
        return Err(FrameError::Incomplete);
    }
    let lsn = u64::from_le_bytes(rest[4..12].try_into().expect("8 bytes"));
    let stored = u32::from_le_bytes(rest[12..16].try_into().expect("4 bytes"));
    let mut crc = crc32c::crc32c(&rest[0..12]);
    crc = crc32c::crc32c_append(crc, &rest[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len]);
    if crc != stored {
        return Err(FrameError::Invalid(format!(
            "checksum mismatch in record {lsn}"
        )));
    }
    let payload_start = offset + FRAME_HEADER_BYTES;
    Ok(Frame {
        lsn,
        payload_start,
        payload_end: payload_start + len,
    })
}

/// The result of scanning a whole segment buffer.
#[derive(Debug)]
pub struct Scan {
    pub first_lsn: u64,
    pub frames: Vec<Frame>,
    /// Where valid data ends (the append position).
    pub valid_bytes: usize,
    /// The first bad spot, if the segment does not end cleanly: offset and reason.
    pub bad: Option<(usize, String)>,
    /// Whether any valid frame (with a later LSN) exists after the bad spot: if so the damage is
    /// in the middle of the log (corruption), if not it is a torn tail.
    pub valid_after_bad: bool,
}

/// Scans a segment. `expected_first_lsn` is what the file name says.
pub fn scan(buf: &[u8], expected_first_lsn: u64) -> Scan {
    let header = match decode_header(buf) {
        Ok(first) if first == expected_first_lsn => first,
        Ok(first) => {
            return Scan {
                first_lsn: expected_first_lsn,
                frames: Vec::new(),
                valid_bytes: 0,
                bad: Some((
                    12,
                    format!("header says first LSN {first}, name says {expected_first_lsn}"),
                )),
                valid_after_bad: false,
            };
        }
        Err(reason) => {
            return Scan {
                first_lsn: expected_first_lsn,
                frames: Vec::new(),
                valid_bytes: 0,
                bad: Some((0, reason)),
                valid_after_bad: false,
            };
        }
    };
    let mut frames = Vec::new();
    let mut offset = HEADER_BYTES;
    let mut next_lsn = header;
    let mut bad = None;
    while offset < buf.len() {
        match decode_frame(buf, offset) {
            Ok(frame) if frame.lsn == next_lsn => {
                frames.push(frame);
                offset = frame.payload_end;
                next_lsn += 1;
            }
            Ok(frame) => {
                bad = Some((
                    offset,
                    format!("record LSN {} where {next_lsn} was expected", frame.lsn),
                ));
                break;
            }
            Err(FrameError::Incomplete) => {
                bad = Some((offset, "record cut short by the end of the file".into()));
                break;
            }
            Err(FrameError::Invalid(reason)) => {
                bad = Some((offset, reason));
                break;
            }
        }
    }
    if bad
        .as_ref()
        .is_some_and(|(at, _)| nonzero_end(buf, *at) == *at)
    {
        bad = None; // the zero-filled rest of the segment, not yet written
    }
    let valid_after_bad = match &bad {
        Some((at, _)) => any_valid_frame_after(buf, *at + 1, next_lsn),
        None => false,
    };
    Scan {
        first_lsn: header,
        frames,
        valid_bytes: offset,
        bad,
        valid_after_bad,
    }
}

/// Where the bytes from `from` on stop being zeros only: one past the last non-zero byte, or
/// `from` if there is none. What lies between a damaged spot and this is the damage; the zeros
/// after it are the segment's unused, zero-filled space.
pub fn nonzero_end(buf: &[u8], from: usize) -> usize {
    // Whole blocks first, from the end: a zero-filled segment's tail is tens of MiB, and an OR
    // over a block compiles to vector instructions where a byte-at-a-time search does not.
    const BLOCK_BYTES: usize = 4096;
    let tail = &buf[from..];
    let mut end = tail.len();
    while end >= BLOCK_BYTES && tail[end - BLOCK_BYTES..end].iter().fold(0, |a, b| a | b) == 0 {
        end -= BLOCK_BYTES;
    }
    tail[..end]
        .iter()
        .rposition(|b| *b != 0)
        .map_or(from, |last| from + last + 1)
}

/// Looks for any valid frame with LSN ≥ `lsn_min` starting at or after `from`. Only runs when a
/// segment is damaged, so its cost (a CRC attempt per byte) does not matter.
fn any_valid_frame_after(buf: &[u8], from: usize, lsn_min: u64) -> bool {
    (from..buf.len().saturating_sub(FRAME_HEADER_BYTES))
        .any(|at| matches!(decode_frame(buf, at), Ok(frame) if frame.lsn >= lsn_min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_flipped_bits_are_caught() {
        let mut buf = encode_header(7).to_vec();
        encode_frame(&mut buf, 7, b"hello");
        encode_frame(&mut buf, 8, b"world!");
        let scan = scan(&buf, 7);
        assert_eq!(scan.frames.len(), 2);
        assert!(scan.bad.is_none());
        assert_eq!(scan.valid_bytes, buf.len());
        for at in HEADER_BYTES..buf.len() {
            let mut damaged = buf.clone();
            damaged[at] ^= 0x40;
            let scan = super::scan(&damaged, 7);
            assert!(scan.bad.is_some(), "flip at {at} not caught");
        }
    }

    /// A zero-filled segment cut short at every byte offset (the rest zeros, as a crash in the
    /// middle of a write leaves it): a cut at a record boundary is a clean end, any other cut is
    /// damage whose extent ends where the zeros start, and the complete records before the cut
    /// are kept either way.
    #[test]
    fn a_zero_filled_segment_ends_cleanly_at_its_zeros_and_a_cut_record_is_damage() {
        let mut data = encode_header(1).to_vec();
        let mut boundaries = vec![data.len()];
        for lsn in 1..=4u64 {
            encode_frame(&mut data, lsn, &vec![lsn as u8; 10 * lsn as usize]);
            boundaries.push(data.len());
        }
        let file_bytes = data.len() + 100;
        for cut in HEADER_BYTES..=data.len() {
            let mut buf = data[..cut].to_vec();
            buf.resize(file_bytes, 0);
            let scan = scan(&buf, 1);
            let complete = boundaries.iter().filter(|end| **end <= cut).count() - 1;
            assert_eq!(scan.frames.len(), complete, "cut at {cut}");
            assert_eq!(scan.valid_bytes, boundaries[complete], "cut at {cut}");
            assert!(!scan.valid_after_bad, "cut at {cut}");
            match &scan.bad {
                None => assert_eq!(
                    nonzero_end(&buf, scan.valid_bytes),
                    scan.valid_bytes,
                    "cut at {cut}: a clean end has only zeros after it"
                ),
                Some((at, _)) => {
                    assert_eq!(*at, scan.valid_bytes, "cut at {cut}");
                    assert!(nonzero_end(&buf, *at) <= cut, "cut at {cut}");
                }
            }
            if boundaries.contains(&cut) {
                assert!(scan.bad.is_none(), "cut at a boundary {cut} is a clean end");
            }
        }
        // A stray byte far into the zeros is damage, not the clean end.
        let mut buf = data.clone();
        buf.resize(file_bytes, 0);
        buf[file_bytes - 1] = 1;
        let scan = scan(&buf, 1);
        assert_eq!(scan.frames.len(), 4);
        assert_eq!(scan.bad.as_ref().map(|(at, _)| *at), Some(data.len()));
        assert_eq!(nonzero_end(&buf, data.len()), file_bytes);
    }

    /// `nonzero_end` agrees with a plain byte search wherever the last non-zero byte is
    /// (inside, at the edges of and between its blocks) and whatever `from` is.
    #[test]
    fn nonzero_end_finds_the_last_non_zero_byte() {
        let naive = |buf: &[u8], from: usize| {
            (from..buf.len())
                .rev()
                .find(|at| buf[*at] != 0)
                .map_or(from, |at| at + 1)
        };
        let len = 3 * 4096 + 100;
        for at in [0, 1, 99, 100, 4095, 4096, 4196, 8191, 8192, 12_387, len - 1] {
            let mut buf = vec![0u8; len];
            buf[at] = 7;
            for from in [0, 1, 100, 4096, 5000, len - 1, len] {
                assert_eq!(
                    nonzero_end(&buf, from),
                    naive(&buf, from),
                    "non-zero at {at}, from {from}"
                );
            }
        }
        assert_eq!(nonzero_end(&vec![0u8; len], 10), 10);
    }

    #[test]
    fn names_round_trip() {
        let path = segment_path(Path::new("/x"), 42);
        assert_eq!(parse_segment_name(&path), Some(42));
        assert_eq!(parse_segment_name(Path::new("/x/42.wal")), None);
    }
}
