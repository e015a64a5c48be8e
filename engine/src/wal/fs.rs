//! The file-system seam under the WAL: production uses [`StdFs`]; tests use [`FaultyFs`] to
//! inject failed writes, failed fsyncs and torn writes (raft-engine / redb style).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A segment file open for writing. Writes are positioned, not appends: a segment may be
/// zero-filled ahead of its records (see [`Fs::create_zeroed`]), so where records go is not where
/// the file ends.
pub trait WalFile: Send {
    /// Writes all of `bytes` at `offset`; the file grows if they end past its end.
    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// fdatasync: the written bytes are durable once this returns Ok.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// Zeros written per call by [`StdFs::create_zeroed`]: big enough to be cheap, small enough that
/// the buffer does not matter.
const ZEROS_CHUNK_BYTES: usize = 1 << 20;

/// Zeros made durable per fdatasync by [`StdFs::create_zeroed`]: a whole segment's worth flushed
/// at once would hold the disk for a burst (~0.2 s for 64 MiB here) that the WAL writer's own
/// fsyncs queue behind.
const ZEROS_SYNC_BYTES: u64 = 8 << 20;

pub trait Fs: Send + Sync + 'static {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Files directly in `dir` (not recursive), unsorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Up to `len_max` bytes from `offset` (fewer at the end of the file) into `out`, which is
    /// cleared first and keeps its allocation (a reader reuses one buffer for every read).
    fn read_range(
        &self,
        path: &Path,
        offset: u64,
        len_max: usize,
        out: &mut Vec<u8>,
    ) -> io::Result<()>;
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>>;
    /// Opens an existing file for writing (nothing is truncated).
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WalFile>>;
    /// Creates (or truncates) `path` holding `len` zero bytes — really written, not a hole or an
    /// unwritten extent — and durable (fdatasync) when this returns Ok. Overwriting such a file
    /// changes neither its size nor its block map, so an fdatasync after each write need not
    /// wait for a file-system journal commit. Gives up with `ErrorKind::Interrupted` once
    /// `cancelled` says so (checked between pieces: a shutdown does not wait for a whole file).
    fn create_zeroed(&self, path: &Path, len: u64, cancelled: &dyn Fn() -> bool) -> io::Result<()>;
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsync a directory so that created, renamed and removed entries are durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

struct StdWalFile(File);

impl WalFile for StdWalFile {
    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all_at(bytes, offset)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Fs for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                out.push(entry.path());
            }
        }
        Ok(out)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }
    fn read_range(
        &self,
        path: &Path,
        offset: u64,
        len_max: usize,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        out.clear();
        // The whole range fits the buffer up front: `read_to_end` never grows (and copies) it.
        out.reserve_exact(len_max);
        file.take(len_max as u64).read_to_end(out)?;
        Ok(())
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdWalFile(file)))
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let file = OpenOptions::new().write(true).open(path)?;
        Ok(Box::new(StdWalFile(file)))
    }
    fn create_zeroed(&self, path: &Path, len: u64, cancelled: &dyn Fn() -> bool) -> io::Result<()> {
        let mut file = self.create(path)?;
        let zeros = vec![0u8; ZEROS_CHUNK_BYTES];
        let mut offset = 0;
        while offset < len {
            if cancelled() {
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "zero-filling cancelled",
                ));
            }
            let piece = (len - offset).min(ZEROS_CHUNK_BYTES as u64) as usize;
            file.write_all_at(offset, &zeros[..piece])?;
            offset += piece as u64;
            if offset % ZEROS_SYNC_BYTES == 0 {
                file.sync_data()?;
            }
        }
        file.sync_data()
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Switches shared by a [`FaultyFs`] and the test that drives it.
#[derive(Debug, Default)]
pub struct Faults {
    /// Fail every `sync_data` from now on.
    pub fail_sync: AtomicBool,
    /// Fail writes once this many more bytes have been written (u64::MAX = never). The failing
    /// write is torn: the bytes up to the budget reach the file, the rest do not.
    pub write_budget_bytes: AtomicU64,
    /// Count of successful `sync_data` calls, so tests can see group commit at work.
    pub syncs: AtomicU64,
}

impl Faults {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            fail_sync: AtomicBool::new(false),
            write_budget_bytes: AtomicU64::new(u64::MAX),
            syncs: AtomicU64::new(0),
        })
    }
}

/// [`StdFs`] with injectable failures, for tests.
#[derive(Debug, Clone)]
pub struct FaultyFs {
    pub faults: Arc<Faults>,
}

struct FaultyFile {
    inner: Box<dyn WalFile>,
    faults: Arc<Faults>,
}

impl WalFile for FaultyFile {
    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let budget = self.faults.write_budget_bytes.load(Ordering::SeqCst);
        if budget == u64::MAX {
            return self.inner.write_all_at(offset, bytes);
        }
        let allowed = budget.min(bytes.len() as u64) as usize;
        self.faults
            .write_budget_bytes
            .store(budget - allowed as u64, Ordering::SeqCst);
        self.inner.write_all_at(offset, &bytes[..allowed])?;
        if allowed < bytes.len() {
            return Err(io::Error::other("injected write failure (torn write)"));
        }
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.inner.sync_data()?;
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl Fs for FaultyFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        StdFs.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        StdFs.list(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        StdFs.read(path)
    }
    fn read_range(
        &self,
        path: &Path,
        offset: u64,
        len_max: usize,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        StdFs.read_range(path, offset, len_max, out)
    }
    fn len(&self, path: &Path) -> io::Result<u64> {
        StdFs.len(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        Ok(Box::new(FaultyFile {
            inner: StdFs.create(path)?,
            faults: self.faults.clone(),
        }))
    }
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        Ok(Box::new(FaultyFile {
            inner: StdFs.open_write(path)?,
            faults: self.faults.clone(),
        }))
    }
    /// Zero-filling happens off the commit path, so the write budget (torn record writes) does
    /// not apply to it — a test's budget is spent on the records it means to tear; a failing
    /// disk (`fail_sync`) fails it.
    fn create_zeroed(&self, path: &Path, len: u64, cancelled: &dyn Fn() -> bool) -> io::Result<()> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure (zero-filling)"));
        }
        StdFs.create_zeroed(path, len, cancelled)
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        StdFs.truncate(path, len)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        StdFs.remove(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.faults.fail_sync.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure (directory)"));
        }
        StdFs.sync_dir(dir)
    }
}
