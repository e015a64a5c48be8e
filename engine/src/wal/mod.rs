//! The write-ahead log: segment files, group commit, recovery scan, and readers (the change feed).
//!
//! Writers (shards) hand the WAL fully encoded payloads with LSNs they drew under their shard
//! locks ([`Wal::push`]); LSNs may arrive slightly out of order from different shards, so the
//! writer thread keeps a reorder buffer and writes only the contiguous prefix. One write plus
//! one `fdatasync` covers everything that accumulated while the previous fsync ran (group
//! commit), bounded by bytes and count. `durable_lsn` is a prefix watermark: every record with
//! an LSN at or below it is on disk. Replies wait on it ([`Wal::wait_durable`]).
//!
//! With `preallocate` (and fsync), a second thread keeps one zero-filled, durable file of a
//! segment's size ready (`SPARE_FILE_NAME`), and the writer makes its next segment of it: it
//! writes the header, renames the file and then overwrites zeros with records. An fdatasync of
//! an overwrite need not commit the file system's journal (the file's size and block map do not
//! change), where one of an append must — on ext4 that halves the writer's sleeps per commit
//! (BENCHMARKS.md). The writer never waits for a spare: without one it appends to a segment
//! that grows as before, and leaves such a segment for the spare as soon as one is ready.

mod cursor;
pub mod fs;
pub mod segment;
mod waiters;

pub use cursor::WalCursor;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::EngineError;
use crate::limits;
use fs::{Fs, WalFile};
use segment::{FRAME_HEADER_BYTES, HEADER_BYTES};

/// How writes reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// write + fdatasync before any reply (the default; the only safe mode).
    Fsync,
    /// write, never fsync. UNSAFE: a power loss loses acknowledged ops. For benchmarks.
    None,
    /// No WAL at all: memory only. For in-process benchmarks and tests of the ledger alone.
    Off,
}

/// What recovery does about damage *before* the tail of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Refuse to start, naming the file and offset (the default).
    Strict,
    /// Drop everything from the first damaged record on (an operator's explicit choice).
    TruncateCorruption,
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub sync: SyncMode,
    pub group_commit_bytes_max: usize,
    pub group_commit_records_max: usize,
    pub group_commit_delay_micros: u64,
    pub recovery: RecoveryMode,
    /// Zero-fill each segment ahead of need, off the commit path (with `SyncMode::Fsync` only:
    /// without fsync there is no journal commit to save). Off for file systems that never
    /// overwrite in place (copy-on-write: btrfs, ZFS), where it would only double the writes.
    pub preallocate: bool,
    /// The writer thread's CPU slice ([`crate::sched`]; 0: the kernel's default), so that it
    /// runs as soon as an fsync returns instead of after another thread's slice (see
    /// [`limits::THREAD_SLICE_MICROS_DEFAULT`]).
    pub writer_slice_micros: u64,
}

impl WalConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_bytes: limits::SEGMENT_BYTES_DEFAULT,
            sync: SyncMode::Fsync,
            group_commit_bytes_max: limits::GROUP_COMMIT_BYTES_MAX,
            group_commit_records_max: limits::GROUP_COMMIT_RECORDS_MAX,
            group_commit_delay_micros: limits::GROUP_COMMIT_DELAY_MICROS_DEFAULT,
            recovery: RecoveryMode::Strict,
            preallocate: true,
            writer_slice_micros: limits::THREAD_SLICE_MICROS_DEFAULT,
        }
    }

    /// Whether segments are zero-filled ahead of need (see `preallocate`).
    fn preallocating(&self) -> bool {
        self.preallocate && self.sync == SyncMode::Fsync
    }
}

/// The zero-filled file the next segment is made of. Not a segment name (those are all
/// digits), so recovery never reads it; one left by a crash or a shutdown is deleted at open.
pub const SPARE_FILE_NAME: &str = "spare-segment.zeroed";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalError {
    Io {
        file: PathBuf,
        message: String,
    },
    /// Damage before the tail: refuse to start.
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A valid record that does not apply: the log is not a valid serial history.
    Replay {
        file: PathBuf,
        offset: u64,
        lsn: u64,
        reason: String,
    },
    /// Segments are missing between two LSNs.
    Gap {
        expected_lsn: u64,
        found_lsn: u64,
        file: PathBuf,
    },
    /// A reader asked for an LSN no longer retained.
    Truncated {
        oldest_lsn: u64,
    },
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io { file, message } => {
                write!(f, "I/O error on {}: {message}", file.display())
            }
            WalError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "WAL corrupt in {} at offset {offset}: {reason} (start with recovery mode \
                 truncate-corruption to drop everything from there on)",
                file.display()
            ),
            WalError::Replay {
                file,
                offset,
                lsn,
                reason,
            } => write!(
                f,
                "WAL record {lsn} in {} at offset {offset} does not apply: {reason}",
                file.display()
            ),
            WalError::Gap {
                expected_lsn,
                found_lsn,
                file,
            } => write!(
                f,
                "WAL gap: expected LSN {expected_lsn}, {} starts at {found_lsn}",
                file.display()
            ),
            WalError::Truncated { oldest_lsn } => {
                write!(
                    f,
                    "LSN no longer retained; the oldest available is {oldest_lsn}"
                )
            }
        }
    }
}

impl std::error::Error for WalError {}

fn io_err(file: &Path, err: std::io::Error) -> WalError {
    WalError::Io {
        file: file.to_path_buf(),
        message: err.to_string(),
    }
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records_replayed: u64,
    pub last_lsn: u64,
    /// A torn tail that was cut off: file, offset, and the damaged bytes dropped (up to the last
    /// non-zero byte: the zero-filled space after it was never written).
    pub torn_tail: Option<(PathBuf, u64, u64)>,
    /// Damage dropped because the recovery mode said so: file, offset, reason.
    pub corruption_dropped: Option<(PathBuf, u64, String)>,
}

/// The WAL writer's wake-up, owed by whoever queued a record into an empty queue and sent
/// when this is dropped (the writer sleeps until then, so it must not be forgotten:
/// `mem::forget` would stall the log).
#[must_use = "dropping it wakes the writer; keep it only until the locks are released"]
pub struct WriterWake<'a> {
    queue_cv: Option<&'a Condvar>,
}

impl Drop for WriterWake<'_> {
    fn drop(&mut self) {
        if let Some(queue_cv) = self.queue_cv {
            queue_cv.notify_one();
        }
    }
}

#[derive(Debug, Clone)]
struct SegmentInfo {
    first_lsn: u64,
    path: PathBuf,
}

struct Shared {
    fs: Arc<dyn Fs>,
    config: WalConfig,
    queue: Mutex<Vec<(u64, Vec<u8>)>>,
    queue_cv: Condvar,
    durable_lsn: AtomicU64,
    durable_mutex: Mutex<()>,
    durable_cv: Condvar,
    durable_tx: tokio::sync::watch::Sender<u64>,
    /// Async waits on `durable_lsn`, woken by LSN (replies; `durable_tx` is for followers).
    durable_waiters: waiters::Waiters,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    shutdown: AtomicBool,
    /// The writer has exited (after shutdown): nothing more becomes durable, so every wait for
    /// a record it did not write ends, refused.
    closed: AtomicBool,
    segments: Mutex<Vec<SegmentInfo>>,
    spare: Mutex<Spare>,
    spare_cv: Condvar,
    segments_preallocated: AtomicU64,
    bytes_on_disk: AtomicU64,
    fsyncs: AtomicU64,
    fsync_nanos_total: AtomicU64,
    batches_records_total: AtomicU64,
}

impl Shared {
    /// Asks the preparer for a spare, unless one is ready.
    fn want_spare(&self) {
        let mut spare = self.spare.lock();
        if !spare.ready {
            spare.wanted = true;
            self.spare_cv.notify_one();
        }
    }
}

/// The spare file's state, shared by the writer and the thread that zero-fills it.
#[derive(Debug, Default)]
struct Spare {
    /// The writer wants a spare for its next segment.
    wanted: bool,
    /// The spare is zero-filled, durable and not yet taken.
    ready: bool,
}

/// The write-ahead log. Cheap to share behind an `Arc`.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    preparer: Mutex<Option<JoinHandle<()>>>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalStats {
    pub durable_lsn: u64,
    pub bytes_on_disk: u64,
    pub fsyncs: u64,
    pub fsync_nanos_total: u64,
    pub records_written: u64,
    pub segments: usize,
    /// Segments made of a zero-filled spare (the rest grew by appends).
    pub segments_preallocated: u64,
}

impl Wal {
    /// Opens the log in `config.dir`, scanning every segment. Records with LSN > `skip_through`
    /// are handed to `replay` in order (records at or below it are verified but not replayed:
    /// a snapshot already holds them). Returns the log ready for appends at `last_lsn + 1`.
    pub fn open(
        fs: Arc<dyn Fs>,
        config: WalConfig,
        skip_through: u64,
        mut replay: impl FnMut(u64, &[u8]) -> Result<(), String>,
    ) -> Result<(Wal, RecoveryReport), WalError> {
        assert!(
            config.sync != SyncMode::Off,
            "SyncMode::Off has no WAL to open"
        );
        let dir = config.dir.clone();
        fs.create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let mut found: Vec<SegmentInfo> = fs
            .list(&dir)
            .map_err(|e| io_err(&dir, e))?
            .into_iter()
            .filter_map(|path| {
                segment::parse_segment_name(&path).map(|first_lsn| SegmentInfo { first_lsn, path })
            })
            .collect();
        found.sort_by_key(|s| s.first_lsn);

        let mut report = RecoveryReport::default();
        let mut next_lsn: Option<u64> = None;
        let mut kept: Vec<SegmentInfo> = Vec::new();
        // Of the last segment kept: where its records end, and where the file does.
        let mut last_kept_bytes = (0u64, 0u64);
        let mut bytes_on_disk = 0u64;
        let mut index = 0;
        while index < found.len() {
            let seg = found[index].clone();
            let is_last = index + 1 == found.len();
            let buf = fs.read(&seg.path).map_err(|e| io_err(&seg.path, e))?;
            let scan = segment::scan(&buf, seg.first_lsn);
            match next_lsn {
                Some(expected) if scan.first_lsn != expected => {
                    return Err(WalError::Gap {
                        expected_lsn: expected,
                        found_lsn: scan.first_lsn,
                        file: seg.path,
                    });
                }
                None if scan.first_lsn > skip_through + 1 => {
                    return Err(WalError::Gap {
                        expected_lsn: skip_through + 1,
                        found_lsn: scan.first_lsn,
                        file: seg.path,
                    });
                }
                _ => {}
            }
            for frame in &scan.frames {
                if frame.lsn > skip_through {
                    replay(frame.lsn, &buf[frame.payload_start..frame.payload_end]).map_err(
                        |reason| WalError::Replay {
                            file: seg.path.clone(),
                            offset: (frame.payload_start - FRAME_HEADER_BYTES) as u64,
                            lsn: frame.lsn,
                            reason,
                        },
                    )?;
                    report.records_replayed += 1;
                }
                report.last_lsn = frame.lsn;
            }
            next_lsn = Some(scan.first_lsn + scan.frames.len() as u64);
            let mut valid_bytes = scan.valid_bytes as u64;
            let mut file_bytes = buf.len() as u64;
            if let Some((offset, reason)) = scan.bad {
                let torn = is_last && !scan.valid_after_bad;
                if !torn && config.recovery == RecoveryMode::Strict {
                    return Err(WalError::Corrupt {
                        file: seg.path,
                        offset: offset as u64,
                        reason,
                    });
                }
                if torn {
                    let damaged_bytes = segment::nonzero_end(&buf, offset) - offset;
                    report.torn_tail =
                        Some((seg.path.clone(), offset as u64, damaged_bytes as u64));
                } else {
                    report.corruption_dropped = Some((seg.path.clone(), offset as u64, reason));
                    for later in &found[index + 1..] {
                        fs.remove(&later.path).map_err(|e| io_err(&later.path, e))?;
                    }
                    found.truncate(index + 1);
                }
                if scan.valid_bytes < HEADER_BYTES {
                    fs.remove(&seg.path).map_err(|e| io_err(&seg.path, e))?;
                    valid_bytes = 0;
                } else {
                    fs.truncate(&seg.path, scan.valid_bytes as u64)
                        .map_err(|e| io_err(&seg.path, e))?;
                }
                file_bytes = valid_bytes;
                fs.sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
            }
            if valid_bytes > 0 {
                bytes_on_disk += valid_bytes;
                last_kept_bytes = (valid_bytes, file_bytes);
                kept.push(seg);
            }
            index += 1;
        }
        report.segments = kept.len();
        let last_lsn = next_lsn
            .map(|n| n - 1)
            .unwrap_or(skip_through)
            .max(skip_through);
        report.last_lsn = last_lsn;

        // Write on after the last segment's records, else start a fresh one lazily.
        let current = match kept.last() {
            Some(seg) => {
                let file = fs.open_write(&seg.path).map_err(|e| io_err(&seg.path, e))?;
                Some(OpenSegment {
                    file,
                    bytes: last_kept_bytes.0,
                    zeroed_bytes: last_kept_bytes.1,
                    records: last_lsn + 1 - seg.first_lsn,
                })
            }
            None => None,
        };
        // A spare left behind may be half-filled: make a new one.
        let spare_path = dir.join(SPARE_FILE_NAME);
        match fs.remove(&spare_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err(&spare_path, e));
            }
            _ => {}
        }

        let (durable_tx, _) = tokio::sync::watch::channel(last_lsn);
        let shared = Arc::new(Shared {
            fs,
            config,
            queue: Mutex::new(Vec::new()),
            queue_cv: Condvar::new(),
            durable_lsn: AtomicU64::new(last_lsn),
            durable_mutex: Mutex::new(()),
            durable_cv: Condvar::new(),
            durable_tx,
            durable_waiters: waiters::Waiters::default(),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            segments: Mutex::new(kept),
            spare: Mutex::new(Spare::default()),
            spare_cv: Condvar::new(),
            segments_preallocated: AtomicU64::new(0),
            bytes_on_disk: AtomicU64::new(bytes_on_disk),
            fsyncs: AtomicU64::new(0),
            fsync_nanos_total: AtomicU64::new(0),
            batches_records_total: AtomicU64::new(0),
        });
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || {
                let slice_micros = writer_shared.config.writer_slice_micros;
                if slice_micros > 0
                    && let Err(e) = crate::sched::set_current_thread_slice(slice_micros)
                {
                    tracing::warn!(error = %e, slice_micros, "could not set the WAL writer's CPU slice");
                }
                Writer {
                    shared: writer_shared,
                    current,
                    next_lsn: last_lsn + 1,
                    reorder: BTreeMap::new(),
                    last_commit_records: 0,
                    delay_skips_left: 0,
                }
                .run()
            })
            .map_err(|e| io_err(&dir, e))?;
        let preparer = if shared.config.preallocating() {
            shared.want_spare();
            let preparer_shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("wal-preallocate".into())
                .spawn(move || {
                    crate::sched::become_background("wal-preallocate", 0);
                    prepare_spares(preparer_shared, spare_path)
                });
            Some(spawned.map_err(|e| io_err(&dir, e))?)
        } else {
            None
        };
        Ok((
            Wal {
                shared,
                writer: Mutex::new(Some(writer)),
                preparer: Mutex::new(preparer),
            },
            report,
        ))
    }

    /// Queues one record. Must be called for every LSN drawn, exactly once, or the log stalls.
    pub fn push(&self, lsn: u64, payload: Vec<u8>) {
        drop(self.push_waking_later(lsn, payload));
    }

    /// [`Wal::push`], with the writer's wake-up (if the record found the queue empty) left to
    /// the returned value's drop: the engine queues records under its shard locks, and the
    /// wake-up — a futex call after which the woken writer often takes the core at once —
    /// should not happen while other threads wait for those locks.
    pub fn push_waking_later(&self, lsn: u64, payload: Vec<u8>) -> WriterWake<'_> {
        debug_assert!(!payload.is_empty() && payload.len() <= limits::RECORD_BYTES_MAX);
        let mut queue = self.shared.queue.lock();
        queue.push((lsn, payload));
        WriterWake {
            queue_cv: (queue.len() == 1).then_some(&self.shared.queue_cv),
        }
    }

    pub fn durable_lsn(&self) -> u64 {
        self.shared.durable_lsn.load(Ordering::Acquire)
    }

    pub fn failure(&self) -> Option<String> {
        if self.shared.failed.load(Ordering::Acquire) {
            self.shared.failure.lock().clone()
        } else {
            None
        }
    }

    fn failed_error(&self) -> EngineError {
        EngineError::Unavailable(format!(
            "storage failed, writes stopped: {}",
            self.failure().unwrap_or_default()
        ))
    }

    /// Why a wait for a record not yet durable ends unmet — the log failed, or was shut down —
    /// or `None` while records can still become durable.
    fn refusal(&self) -> Option<EngineError> {
        if self.shared.failed.load(Ordering::Acquire) {
            Some(self.failed_error())
        } else if self.shared.closed.load(Ordering::Acquire) {
            Some(closed_error())
        } else {
            None
        }
    }

    /// Blocks until every record up to `lsn` is durable, or the log has failed.
    pub fn wait_durable(&self, lsn: u64) -> Result<(), EngineError> {
        if self.durable_lsn() >= lsn {
            return Ok(());
        }
        let mut guard = self.shared.durable_mutex.lock();
        loop {
            if self.durable_lsn() >= lsn {
                return Ok(());
            }
            if let Some(refused) = self.refusal() {
                return Err(refused);
            }
            self.shared.durable_cv.wait(&mut guard);
        }
    }

    /// Async form of [`Wal::wait_durable`] for the server's tasks (no thread is blocked).
    pub async fn wait_durable_async(&self, lsn: u64) -> Result<(), EngineError> {
        if self.durable_lsn() >= lsn {
            return Ok(());
        }
        DurableWait {
            shared: &self.shared,
            lsn,
            key: None,
        }
        .await;
        if self.durable_lsn() >= lsn {
            Ok(())
        } else {
            // The wait ends unmet only once the log has stopped (see `DurableWait::ready`).
            Err(self.refusal().unwrap_or_else(closed_error))
        }
    }

    /// A receiver that changes whenever `durable_lsn` moves (for change-feed followers).
    pub fn subscribe_durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.durable_tx.subscribe()
    }

    pub fn stats(&self) -> WalStats {
        WalStats {
            durable_lsn: self.durable_lsn(),
            bytes_on_disk: self.shared.bytes_on_disk.load(Ordering::Relaxed),
            fsyncs: self.shared.fsyncs.load(Ordering::Relaxed),
            fsync_nanos_total: self.shared.fsync_nanos_total.load(Ordering::Relaxed),
            records_written: self.shared.batches_records_total.load(Ordering::Relaxed),
            segments: self.shared.segments.lock().len(),
            segments_preallocated: self.shared.segments_preallocated.load(Ordering::Relaxed),
        }
    }

    /// Whether a zero-filled spare is ready for the next segment (for tests that need the
    /// writer to move to one).
    pub fn spare_ready(&self) -> bool {
        self.shared.spare.lock().ready
    }

    /// The oldest LSN still on disk (the first record of the first segment).
    pub fn oldest_lsn(&self) -> u64 {
        self.shared
            .segments
            .lock()
            .first()
            .map(|s| s.first_lsn)
            .unwrap_or_else(|| self.durable_lsn() + 1)
    }

    /// Bytes of the segments whose every record is below `lsn` (what deleting below it frees).
    pub fn bytes_below(&self, lsn: u64) -> u64 {
        let segments = self.shared.segments.lock();
        segments
            .windows(2)
            .take_while(|pair| pair[1].first_lsn <= lsn)
            .map(|pair| self.shared.fs.len(&pair[0].path).unwrap_or(0))
            .sum()
    }

    /// Deletes whole segments whose every record is below `lsn`. The segment being written is
    /// never deleted. Returns the bytes freed.
    pub fn delete_segments_below(&self, lsn: u64) -> Result<u64, WalError> {
        let doomed: Vec<SegmentInfo> = {
            let segments = self.shared.segments.lock();
            segments
                .windows(2)
                .take_while(|pair| pair[1].first_lsn <= lsn)
                .map(|pair| pair[0].clone())
                .collect()
        };
        let mut freed = 0;
        for seg in &doomed {
            let len = self.shared.fs.len(&seg.path).unwrap_or(0);
            self.shared
                .fs
                .remove(&seg.path)
                .map_err(|e| io_err(&seg.path, e))?;
            freed += len;
        }
        if !doomed.is_empty() {
            let dir = &self.shared.config.dir;
            self.shared.fs.sync_dir(dir).map_err(|e| io_err(dir, e))?;
            self.shared.segments.lock().drain(..doomed.len());
            self.shared
                .bytes_on_disk
                .fetch_sub(freed, Ordering::Relaxed);
        }
        Ok(freed)
    }

    /// Reads durable records from `from_lsn` on.
    pub fn cursor(&self, from_lsn: u64) -> WalCursor {
        WalCursor::new(self.shared.clone(), from_lsn)
    }

    /// Writes everything queued, then stops the writer thread. Idempotent.
    pub fn shutdown(&self) {
        {
            // Set under the queue lock: the writer checks the flag under it before waiting, so
            // the notification cannot slip in between its check and its wait.
            let _queue = self.shared.queue.lock();
            self.shared.shutdown.store(true, Ordering::Release);
        }
        self.shared.queue_cv.notify_all();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
        {
            let _spare = self.shared.spare.lock();
            self.shared.spare_cv.notify_all();
        }
        // Joined, not left running: a preparer still writing zeros must not outlive this log
        // into the next one opened on the same directory.
        if let Some(handle) = self.preparer.lock().take() {
            let _ = handle.join();
        }
        // A record queued after the writer's last pass is never written: its waiters (a
        // request racing the shutdown) must not wait forever.
        self.shared.closed.store(true, Ordering::Release);
        {
            let _guard = self.shared.durable_mutex.lock();
            self.shared.durable_cv.notify_all();
        }
        self.shared.durable_waiters.wake_through(u64::MAX);
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct OpenSegment {
    file: Box<dyn WalFile>,
    /// Where its records end: the next write's offset.
    bytes: u64,
    /// Where the file ends: up to here a write overwrites zeros, past it the file grows.
    zeroed_bytes: u64,
    records: u64,
}

/// The preparer thread: zero-fills a spare whenever the writer wants one, until shutdown.
fn prepare_spares(shared: Arc<Shared>, path: PathBuf) {
    let stopping = || shared.shutdown.load(Ordering::Acquire);
    loop {
        {
            let mut spare = shared.spare.lock();
            while !spare.wanted && !stopping() {
                shared.spare_cv.wait(&mut spare);
            }
            if stopping() {
                return;
            }
        }
        let filled = shared
            .fs
            .create_zeroed(&path, shared.config.segment_bytes, &stopping);
        let mut spare = shared.spare.lock();
        spare.wanted = false;
        match filled {
            Ok(()) => spare.ready = true,
            // Not fatal: the writer appends instead (slower), and asks again at its next roll.
            Err(e) if e.kind() != std::io::ErrorKind::Interrupted => {
                tracing::warn!(file = %path.display(), error = %e, "could not zero-fill a spare WAL segment");
            }
            Err(_) => {}
        }
    }
}

struct Writer {
    shared: Arc<Shared>,
    current: Option<OpenSegment>,
    next_lsn: u64,
    reorder: BTreeMap<u64, Vec<u8>>,
    /// Records in the last group commit: several mean several submitters are active, the only
    /// time waiting for company can pay (see `run`).
    last_commit_records: usize,
    /// Busy commits still to be written without the delay, after a delay that brought no
    /// company (see `run`).
    delay_skips_left: u32,
}

impl Writer {
    fn run(mut self) {
        loop {
            let incoming = {
                let mut queue = self.shared.queue.lock();
                while queue.is_empty() && !self.shared.shutdown.load(Ordering::Acquire) {
                    self.shared.queue_cv.wait(&mut queue);
                }
                if queue.is_empty() && self.reorder.is_empty() {
                    return; // shutdown with nothing left to write
                }
                std::mem::take(&mut *queue)
            };
            // Wait for company only while the log is busy, so a lone submitter is never held;
            // a wait that brought (almost) nobody means the submitters all wait on this very
            // commit, so waiting is skipped for a while (the limits' docs say why and what
            // it was measured to cost).
            let delay = self.shared.config.group_commit_delay_micros;
            if delay > 0
                && self.last_commit_records >= limits::GROUP_COMMIT_DELAY_RECORDS_MIN
                && incoming.len() < self.shared.config.group_commit_records_max
            {
                if self.delay_skips_left > 0 {
                    self.delay_skips_left -= 1;
                } else {
                    std::thread::sleep(Duration::from_micros(delay));
                    let more = std::mem::take(&mut *self.shared.queue.lock());
                    if more.len() < limits::GROUP_COMMIT_DELAY_RECORDS_MIN {
                        self.delay_skips_left = limits::GROUP_COMMIT_DELAY_BACKOFF_COMMITS;
                    }
                    self.reorder.extend(more);
                }
            }
            let shutting_down = self.shared.shutdown.load(Ordering::Acquire);
            self.reorder.extend(incoming);
            if let Err(message) = self.write_contiguous() {
                self.fail(message);
                return;
            }
            if shutting_down && self.shared.queue.lock().is_empty() && self.reorder.is_empty() {
                return;
            }
        }
    }

    /// Writes the contiguous prefix of the reorder buffer in batches bounded by bytes and count.
    fn write_contiguous(&mut self) -> Result<(), String> {
        let shared = self.shared.clone();
        let config = &shared.config;
        while self.reorder.first_key_value().map(|(lsn, _)| *lsn) == Some(self.next_lsn) {
            let mut buf = Vec::new();
            let mut records = 0usize;
            let mut last = self.next_lsn - 1;
            while let Some((&lsn, payload)) = self.reorder.first_key_value() {
                if lsn != last + 1
                    || records >= config.group_commit_records_max
                    || buf.len() >= config.group_commit_bytes_max
                {
                    break;
                }
                let frame_bytes = (FRAME_HEADER_BYTES + payload.len()) as u64;
                let segment_bytes = self.current.as_ref().map(|s| s.bytes).unwrap_or(0);
                let segment_full = self.current.as_ref().is_some_and(|s| s.records > 0)
                    && (segment_bytes + buf.len() as u64 + frame_bytes > config.segment_bytes
                        || (records == 0 && self.leave_for_spare()));
                if segment_full {
                    if records > 0 {
                        break; // flush what we have into this segment first
                    }
                    self.roll_segment(lsn)?;
                }
                if self.current.is_none() {
                    self.roll_segment(lsn)?;
                }
                let (lsn, payload) = self.reorder.pop_first().expect("first exists");
                segment::encode_frame(&mut buf, lsn, &payload);
                last = lsn;
                records += 1;
            }
            if records == 0 {
                break;
            }
            let current = self.current.as_mut().expect("a segment is open");
            current
                .file
                .write_all_at(current.bytes, &buf)
                .map_err(|e| e.to_string())?;
            if config.sync == SyncMode::Fsync {
                let started = Instant::now();
                current.file.sync_data().map_err(|e| e.to_string())?;
                self.shared
                    .fsync_nanos_total
                    .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
            current.bytes += buf.len() as u64;
            current.zeroed_bytes = current.zeroed_bytes.max(current.bytes);
            current.records += records as u64;
            self.shared
                .bytes_on_disk
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
            self.shared
                .batches_records_total
                .fetch_add(records as u64, Ordering::Relaxed);
            self.next_lsn = last + 1;
            self.last_commit_records = records;
            self.publish_durable(last);
        }
        Ok(())
    }

    /// Whether the open segment grows by appends while a zero-filled spare is ready: then the
    /// next batch goes to a new segment made of the spare (a segment recovered from an
    /// appending run, or begun before the first spare was ready, is left early, not filled).
    fn leave_for_spare(&self) -> bool {
        self.shared.config.preallocating()
            && self
                .current
                .as_ref()
                .is_some_and(|s| s.zeroed_bytes < self.shared.config.segment_bytes)
            && self.shared.spare.lock().ready
    }

    /// Starts the segment whose first record is `first_lsn`: made of the spare if one is ready
    /// (header written and durable before the rename, so a segment name never holds a file
    /// without one), else created empty to grow by appends.
    fn roll_segment(&mut self, first_lsn: u64) -> Result<(), String> {
        let shared = self.shared.clone();
        let (fs, config) = (&shared.fs, &shared.config);
        let dir = &config.dir;
        let path = segment::segment_path(dir, first_lsn);
        let header = segment::encode_header(first_lsn);
        let fsync = config.sync == SyncMode::Fsync;
        let spare_taken = std::mem::take(&mut shared.spare.lock().ready);
        let spare = spare_taken.then(|| dir.join(SPARE_FILE_NAME));
        let (file, zeroed_bytes) = match &spare {
            Some(spare) => (fs.open_write(spare), config.segment_bytes),
            None => (fs.create(&path), HEADER_BYTES as u64),
        };
        let mut file = file.map_err(|e| e.to_string())?;
        file.write_all_at(0, &header).map_err(|e| e.to_string())?;
        if fsync {
            file.sync_data().map_err(|e| e.to_string())?;
        }
        if let Some(spare) = &spare {
            fs.rename(spare, &path).map_err(|e| e.to_string())?;
            shared.segments_preallocated.fetch_add(1, Ordering::Relaxed);
        }
        if fsync {
            fs.sync_dir(dir).map_err(|e| e.to_string())?;
        }
        if config.preallocating() {
            shared.want_spare();
        }
        shared
            .bytes_on_disk
            .fetch_add(HEADER_BYTES as u64, Ordering::Relaxed);
        shared.segments.lock().push(SegmentInfo { first_lsn, path });
        self.current = Some(OpenSegment {
            file,
            bytes: HEADER_BYTES as u64,
            zeroed_bytes,
            records: 0,
        });
        Ok(())
    }

    fn publish_durable(&self, lsn: u64) {
        self.shared.durable_lsn.store(lsn, Ordering::Release);
        {
            let _guard = self.shared.durable_mutex.lock();
            self.shared.durable_cv.notify_all();
        }
        self.shared.durable_waiters.wake_through(lsn);
        self.shared.durable_tx.send_replace(lsn);
    }

    fn fail(&self, message: String) {
        tracing::error!(%message, "WAL write failed; the engine stops accepting writes");
        *self.shared.failure.lock() = Some(message);
        self.shared.failed.store(true, Ordering::Release);
        {
            let _guard = self.shared.durable_mutex.lock();
            self.shared.durable_cv.notify_all();
        }
        self.shared.durable_waiters.wake_through(u64::MAX);
        self.shared.durable_tx.send_modify(|_| {});
    }
}

fn closed_error() -> EngineError {
    EngineError::Unavailable("the log is shut down; the op was not made durable".into())
}

/// The future of [`Wal::wait_durable_async`]: ready once `lsn` is durable or the log failed.
struct DurableWait<'a> {
    shared: &'a Shared,
    lsn: u64,
    key: Option<waiters::Key>,
}

impl DurableWait<'_> {
    fn ready(&self) -> bool {
        self.shared.durable_lsn.load(Ordering::Acquire) >= self.lsn
            || self.shared.failed.load(Ordering::Acquire)
            || self.shared.closed.load(Ordering::Acquire)
    }
}

impl std::future::Future for DurableWait<'_> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.ready() {
            // Whatever made it ready is followed by a `wake_through` that drains this wait's
            // registration (the writer publishes, then wakes), so there is nothing to cancel:
            // one lock fewer per op. Only a wait dropped before it is ready cancels (Drop).
            self.key = None;
            return std::task::Poll::Ready(());
        }
        let key = self
            .shared
            .durable_waiters
            .register(self.key, self.lsn, cx.waker(), || self.ready());
        self.key = key;
        match key {
            None => std::task::Poll::Ready(()),
            Some(_) => std::task::Poll::Pending,
        }
    }
}

impl Drop for DurableWait<'_> {
    fn drop(&mut self) {
        // A wait dropped before its wakeup (a cancelled RPC) leaves no registration behind.
        if let Some(key) = self.key.take() {
            self.shared.durable_waiters.cancel(key);
        }
    }
}
