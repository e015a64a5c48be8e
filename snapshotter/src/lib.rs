//! The snapshotter: consistent periodic snapshots of the engine, restart from the newest valid
//! one, and WAL deletion bounded by the oldest kept snapshot and the change-feed consumers.
//!
//! - **When**: every `every_records` records or `every_seconds` (whichever first), on demand
//!   ([`Snapshotter::take`], the Admin `Snapshot` RPC), and on clean shutdown.
//! - **Keep**: the last `keep` snapshots (≥ 2, so a damaged newest one has a fallback).
//! - **WAL deletion**: a segment is deleted only when wholly below the *oldest kept* snapshot's
//!   `lsn_start + 1` (so falling back never meets a gap) *and* below every registered consumer's
//!   cursor. A consumer may hold back at most `consumer_retained_bytes_max` bytes of WAL beyond
//!   the snapshot boundary; past that it is **dropped** (its cursor no longer holds anything
//!   back) and must rebuild from a snapshot — a dead report store never fills the disk.
//! - **Restart**: [`open_engine`] loads the newest snapshot whose checksums hold (skipping and
//!   reporting damaged ones and half-written temp files), then the engine replays the WAL tail.

pub mod file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use engine::wal::fs::Fs;
use engine::{Clock, Engine, EngineConfig, RecoveryReport, WalError};
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct SnapshotterConfig {
    pub dir: PathBuf,
    pub keep: usize,
    pub every_records: u64,
    pub every_seconds: u64,
    pub consumer_retained_bytes_max: u64,
    /// How often the periodic thread checks whether a snapshot is due.
    pub tick_millis: u64,
}

impl SnapshotterConfig {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("snapshots"),
            keep: 2,
            every_records: 1_000_000,
            every_seconds: 300,
            consumer_retained_bytes_max: 8 << 30,
            tick_millis: 200,
        }
    }
}

/// A change-feed consumer's durable position: everything at or below `lsn` is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerCursor {
    pub lsn: u64,
    /// Fell further behind than the WAL cap allows: must rebuild from a snapshot.
    pub dropped: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub lsn: u64,
    pub bytes: u64,
    pub path: PathBuf,
    /// Longest time writers of one shard waited during the cut.
    pub pause_max: Duration,
    pub copy_time: Duration,
    pub write_time: Duration,
    pub wal_bytes_freed: u64,
}

/// What loading found: the snapshot used and those skipped, with reasons.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub used: Option<PathBuf>,
    pub skipped: Vec<(PathBuf, String)>,
}

/// Counters for metrics, covering periodic, on-demand and shutdown snapshots alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    pub taken_total: u64,
    pub failures_total: u64,
    pub last_bytes: u64,
    pub last_pause_max_micros: u64,
}

pub struct Snapshotter {
    config: SnapshotterConfig,
    stats: Mutex<SnapshotStats>,
    consumers_path: PathBuf,
    consumers: Mutex<BTreeMap<String, ConsumerCursor>>,
    /// Serialises snapshot taking (periodic, on demand, shutdown).
    taking: Mutex<()>,
    newest_lsn: AtomicU64,
    stop: Arc<(Mutex<bool>, Condvar)>,
    worker: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
}

impl Snapshotter {
    pub fn new(config: SnapshotterConfig, data_dir: &Path) -> Self {
        assert!(
            config.keep >= 2,
            "keep at least 2 snapshots so a fallback exists"
        );
        let consumers_path = data_dir.join("consumers.json");
        let consumers = std::fs::read(&consumers_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let newest = list(&config.dir).last().map(|(lsn, _)| *lsn).unwrap_or(0);
        Self {
            config,
            stats: Mutex::new(SnapshotStats::default()),
            consumers_path,
            consumers: Mutex::new(consumers),
            taking: Mutex::new(()),
            newest_lsn: AtomicU64::new(newest),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            worker: Mutex::new(None),
            stopped: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &SnapshotterConfig {
        &self.config
    }

    /// `lsn_start` of the newest kept snapshot (0 = none).
    pub fn snapshot_lsn(&self) -> u64 {
        self.newest_lsn.load(Ordering::Acquire)
    }

    /// The newest snapshot whose checksums hold; damaged files and temp files are reported.
    pub fn load_newest(&self) -> (Option<engine::SnapshotData>, LoadReport) {
        let mut report = LoadReport::default();
        if let Ok(entries) = std::fs::read_dir(&self.config.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.to_string_lossy().ends_with(".snap.tmp") {
                    let _ = std::fs::remove_file(&path);
                    report
                        .skipped
                        .push((path, "half-written temp file, removed".into()));
                }
            }
        }
        for (_, path) in list(&self.config.dir).into_iter().rev() {
            match file::load(&path) {
                Ok(data) => {
                    self.newest_lsn.store(data.lsn_start, Ordering::Release);
                    report.used = Some(path);
                    return (Some(data), report);
                }
                Err(reason) => {
                    // Set aside (not deleted: evidence for the operator) so it no longer counts
                    // as the newest or towards `keep`, and WAL retention follows the one used.
                    let aside = path.with_extension("snap.damaged");
                    let _ = std::fs::rename(&path, &aside);
                    tracing::warn!(file = %path.display(), %reason, "damaged snapshot set aside");
                    report.skipped.push((path, reason));
                }
            }
        }
        (None, report)
    }

    /// Takes a snapshot now: cut, write, keep the last K, delete what the WAL no longer needs.
    pub fn take(&self, engine: &Engine) -> Result<SnapshotInfo, String> {
        let result = self.take_inner(engine);
        let mut stats = self.stats.lock();
        match &result {
            Ok(info) => {
                stats.taken_total += 1;
                stats.last_bytes = info.bytes;
                stats.last_pause_max_micros = info.pause_max.as_micros() as u64;
            }
            Err(_) => stats.failures_total += 1,
        }
        result
    }

    pub fn stats(&self) -> SnapshotStats {
        *self.stats.lock()
    }

    fn take_inner(&self, engine: &Engine) -> Result<SnapshotInfo, String> {
        let _taking = self.taking.lock();
        let (data, cut) = engine.cut_snapshot().map_err(|e| e.to_string())?;
        let written = Instant::now();
        let (path, bytes) =
            file::write(&self.config.dir, &data).map_err(|e| format!("writing snapshot: {e}"))?;
        let write_time = written.elapsed();
        self.newest_lsn.store(data.lsn_start, Ordering::Release);
        let kept = list(&self.config.dir);
        for (_, old) in kept
            .iter()
            .take(kept.len().saturating_sub(self.config.keep))
        {
            std::fs::remove_file(old).map_err(|e| format!("removing {}: {e}", old.display()))?;
        }
        let wal_bytes_freed = self.truncate_wal(engine)?;
        tracing::info!(
            lsn = data.lsn_start,
            bytes,
            pause_max_us = cut.pause_max.as_micros() as u64,
            "snapshot taken"
        );
        Ok(SnapshotInfo {
            lsn: data.lsn_start,
            bytes,
            path,
            pause_max: cut.pause_max,
            copy_time: cut.copy_total,
            write_time,
            wal_bytes_freed,
        })
    }

    /// Deletes WAL segments below the oldest kept snapshot and every live consumer cursor;
    /// drops consumers that would hold back more than the cap.
    pub fn truncate_wal(&self, engine: &Engine) -> Result<u64, String> {
        let Some(wal) = engine.wal() else {
            return Ok(0);
        };
        let Some((oldest, _)) = list(&self.config.dir).into_iter().next() else {
            return Ok(0);
        };
        let snapshot_boundary = oldest + 1;
        let mut boundary = snapshot_boundary;
        {
            let mut consumers = self.consumers.lock();
            let base = wal.bytes_below(snapshot_boundary);
            for (name, cursor) in consumers.iter_mut().filter(|(_, c)| !c.dropped) {
                let needs_from = cursor.lsn + 1;
                if needs_from >= snapshot_boundary {
                    continue;
                }
                let held_back = base - wal.bytes_below(needs_from);
                if held_back > self.config.consumer_retained_bytes_max {
                    tracing::warn!(consumer = %name, lsn = cursor.lsn, held_back, "consumer dropped: too far behind");
                    cursor.dropped = true;
                } else {
                    boundary = boundary.min(needs_from);
                }
            }
            self.save_consumers(&consumers)?;
        }
        wal.delete_segments_below(boundary)
            .map_err(|e| e.to_string())
    }

    /// Registers a consumer at its durable position (or returns its known cursor).
    pub fn register_consumer(&self, name: &str, lsn: u64) -> Result<ConsumerCursor, String> {
        let mut consumers = self.consumers.lock();
        let cursor = *consumers.entry(name.to_string()).or_insert(ConsumerCursor {
            lsn,
            dropped: false,
        });
        self.save_consumers(&consumers)?;
        Ok(cursor)
    }

    /// Moves a consumer's cursor forward (persisted at the next WAL truncation or snapshot).
    pub fn advance_consumer(&self, name: &str, lsn: u64) {
        if let Some(cursor) = self.consumers.lock().get_mut(name) {
            cursor.lsn = cursor.lsn.max(lsn);
        }
    }

    /// A dropped consumer that rebuilt from a snapshot resumes here.
    pub fn rejoin_consumer(&self, name: &str, lsn: u64) -> Result<(), String> {
        let mut consumers = self.consumers.lock();
        consumers.insert(
            name.to_string(),
            ConsumerCursor {
                lsn,
                dropped: false,
            },
        );
        self.save_consumers(&consumers)
    }

    pub fn consumer(&self, name: &str) -> Option<ConsumerCursor> {
        self.consumers.lock().get(name).copied()
    }

    fn save_consumers(&self, consumers: &BTreeMap<String, ConsumerCursor>) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(consumers).map_err(|e| e.to_string())?;
        let temp = self.consumers_path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            {
                let mut file = std::fs::File::create(&temp)?;
                std::io::Write::write_all(&mut file, &bytes)?;
                file.sync_all()?;
            }
            std::fs::rename(&temp, &self.consumers_path)?;
            if let Some(dir) = self.consumers_path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| format!("saving consumer cursors: {e}"))
    }

    /// Starts the background thread that takes a snapshot every N records or T seconds.
    pub fn spawn_periodic(self: &Arc<Self>, engine: Arc<Engine>) {
        let this = self.clone();
        let handle = std::thread::Builder::new()
            .name("snapshotter".into())
            .spawn(move || {
                engine::sched::become_background("snapshotter", 0);
                this.periodic(engine)
            })
            .expect("spawn snapshotter");
        *self.worker.lock() = Some(handle);
    }

    fn periodic(&self, engine: Arc<Engine>) {
        let tick = Duration::from_millis(self.config.tick_millis.max(1));
        let mut last_taken = Instant::now();
        loop {
            {
                let (flag, cv) = &*self.stop;
                let mut stopped = flag.lock();
                if !*stopped {
                    cv.wait_for(&mut stopped, tick);
                }
                if *stopped {
                    return;
                }
            }
            let stats = engine.stats();
            let behind = stats.last_lsn.saturating_sub(self.snapshot_lsn());
            let due = behind >= self.config.every_records
                || (behind > 0
                    && last_taken.elapsed() >= Duration::from_secs(self.config.every_seconds));
            if due && !stats.failed {
                if let Err(e) = self.take(&engine) {
                    tracing::error!(error = %e, "periodic snapshot failed");
                }
                last_taken = Instant::now();
            }
        }
    }

    /// Stops the periodic thread (idempotent). Take a final snapshot with [`Snapshotter::take`].
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let (flag, cv) = &*self.stop;
        *flag.lock() = true;
        cv.notify_all();
        if let Some(handle) = self.worker.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Snapshotter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Snapshot files in `dir`, oldest first.
fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| file::parse_name(&e.path()).map(|lsn| (lsn, e.path())))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// What opening found: the snapshot used (and skipped) and the WAL recovery report.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    pub snapshot: LoadReport,
    pub wal: RecoveryReport,
}

/// Opens the engine from the newest valid snapshot plus the WAL tail.
pub fn open_engine(
    engine_config: EngineConfig,
    snapshot_config: SnapshotterConfig,
    fs: Arc<dyn Fs>,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<Engine>, Arc<Snapshotter>, OpenReport), WalError> {
    let snapshotter = Arc::new(Snapshotter::new(snapshot_config, &engine_config.data_dir));
    let (snapshot, load_report) = snapshotter.load_newest();
    let (engine, wal_report) = Engine::open_from(engine_config, fs, clock, snapshot)?;
    Ok((
        engine,
        snapshotter,
        OpenReport {
            snapshot: load_report,
            wal: wal_report,
        },
    ))
}
