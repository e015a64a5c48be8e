//! The snapshot file: written to a temp file, fsynced, renamed, directory fsynced; loaded with
//! `memmap2` so a restart reads it at page-cache speed.
//!
//! # Layout (all integers little-endian)
//!
//! | offset | size       | field                                                    |
//! |-------:|-----------:|----------------------------------------------------------|
//! | 0      | 8          | magic `b"INVSNAP\n"`                                     |
//! | 8      | 4          | format version (`2`: orders, stamps)                     |
//! | 12     | 4          | reserved, zero                                           |
//! | 16     | 8          | `lsn_start`: replay the WAL from `lsn_start + 1`         |
//! | 24     | 8          | `lsn_end`: no entity reflects a later record             |
//! | 32     | 8          | `body_len` in bytes                                      |
//! | 40     | 4          | crc32c of the body                                       |
//! | 44     | 4          | crc32c of bytes 0..44                                    |
//! | 48     | `body_len` | body: postcard-encoded [`engine::SnapshotData`]          |
//!
//! File names are `{lsn_start:020}.snap`; `*.snap.tmp` is a snapshot being written (or one a
//! crash interrupted — recovery deletes it).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use engine::SnapshotData;

pub const MAGIC: &[u8; 8] = b"INVSNAP\n";
pub const FORMAT_VERSION: u32 = 2;
pub const HEADER_BYTES: usize = 48;

pub fn file_name(lsn_start: u64) -> String {
    format!("{lsn_start:020}.snap")
}

pub fn parse_name(path: &Path) -> Option<u64> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".snap")?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

pub fn encode(data: &SnapshotData) -> Vec<u8> {
    let body = postcard::to_allocvec(data).expect("a snapshot always serialises");
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&data.lsn_start.to_le_bytes());
    out.extend_from_slice(&data.lsn_end.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let header_crc = crc32c::crc32c(&out[0..44]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    debug_assert_eq!(out.len(), HEADER_BYTES);
    out.extend_from_slice(&body);
    out
}

/// Checks and decodes a snapshot held in memory (mapped or read).
pub fn decode(bytes: &[u8]) -> Result<SnapshotData, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("{} bytes is shorter than the header", bytes.len()));
    }
    if &bytes[0..8] != MAGIC {
        return Err("bad magic".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if u32_at(44) != crc32c::crc32c(&bytes[0..44]) {
        return Err("header checksum mismatch".into());
    }
    if u32_at(8) != FORMAT_VERSION {
        return Err(format!("unsupported format version {}", u32_at(8)));
    }
    let body_len = u64_at(32) as usize;
    let body = bytes
        .get(HEADER_BYTES..HEADER_BYTES + body_len)
        .ok_or_else(|| format!("body of {body_len} bytes cut short"))?;
    if crc32c::crc32c(body) != u32_at(40) {
        return Err("body checksum mismatch".into());
    }
    let data: SnapshotData =
        postcard::from_bytes(body).map_err(|e| format!("undecodable body: {e}"))?;
    if data.lsn_start != u64_at(16) || data.lsn_end != u64_at(24) || data.lsn_end < data.lsn_start {
        return Err("header and body disagree on LSNs".into());
    }
    Ok(data)
}

/// Writes atomically: temp file, fsync, rename, fsync the directory. Returns path and size.
pub fn write(dir: &Path, data: &SnapshotData) -> std::io::Result<(PathBuf, u64)> {
    fs::create_dir_all(dir)?;
    let bytes = encode(data);
    let path = dir.join(file_name(data.lsn_start));
    let temp = dir.join(format!("{}.tmp", file_name(data.lsn_start)));
    {
        let mut file = File::create(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok((path, bytes.len() as u64))
}

/// Maps and decodes a snapshot file.
pub fn load(path: &Path) -> Result<SnapshotData, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len == 0 {
        return Err("empty file".into());
    }
    #[allow(unsafe_code)]
    // SAFETY: snapshot files are written once (temp + rename) and never modified in place;
    // only this process deletes them, after it stopped reading them.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
    decode(&map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_byte_is_caught() {
        let data = SnapshotData {
            lsn_start: 7,
            lsn_end: 9,
            taken_at_ms: 1,
            ..SnapshotData::default()
        };
        let bytes = encode(&data);
        assert_eq!(decode(&bytes).expect("decodes"), data);
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(decode(&damaged).is_err(), "flip at {at} not caught");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
