//! The durable outbox: every rendered message with its delivery state, and the change-feed
//! cursor, in one append-only file.
//!
//! # On-disk layout (`outbox.jsonl`)
//!
//! JSON lines, one entry per line, appended and `fdatasync`ed before the write returns:
//!
//! - `{"Put":{...Message...}}` — the whole current state of one message; the last `Put` of an
//!   id wins (a delivery result is a new `Put` of the updated message);
//! - `{"Cursor":N}` — every WAL record at or below LSN `N` has been turned into messages whose
//!   `Put`s precede this line. It is written in the same write (and fsync) as those `Put`s, so
//!   the cursor never passes a message that is not durable: at-least-once, never lost.
//!
//! Only a crash mid-append can damage the file, and only its last line: a last line that does
//! not parse is dropped (truncated away) on open; a bad line anywhere else is corruption and
//! refuses to open. Once the file passes `compact_bytes`, it is rewritten (temp file, fsync,
//! rename, fsync of the directory) as one `Cursor` plus one `Put` per kept message: every
//! PENDING and FAILED one and the newest [`limits::SENT_KEPT_MAX`] SENT ones.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::NotifyError;
use crate::limits;
use crate::message::{Channel, Message, Status};

#[derive(Serialize, Deserialize)]
enum Entry {
    Put(Box<Message>),
    Cursor(u64),
}

pub struct Outbox {
    path: PathBuf,
    file: File,
    bytes: u64,
    compact_bytes: u64,
    cursor: u64,
    messages: HashMap<String, Message>,
    /// PENDING messages per channel by (due time, id): what each worker takes next.
    /// PENDING messages per channel by (next attempt, event LSN, event index, id): due ones
    /// go out in the order their events happened (the id alone would sort "10-…" before "9-…").
    queues: [BTreeSet<QueueKey>; 3],
}

impl Outbox {
    pub fn open(path: &Path, compact_bytes: u64) -> Result<Self, NotifyError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| NotifyError::io(dir, e))?;
        }
        let mut outbox = Self {
            path: path.to_path_buf(),
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(path)
                .map_err(|e| NotifyError::io(path, e))?,
            bytes: 0,
            compact_bytes,
            cursor: 0,
            messages: HashMap::new(),
            queues: Default::default(),
        };
        outbox.load()?;
        Ok(outbox)
    }

    fn load(&mut self) -> Result<(), NotifyError> {
        let io = |e| NotifyError::io(&self.path, e);
        let reader = BufReader::new(File::open(&self.path).map_err(io)?);
        let mut good_bytes = 0u64;
        let mut torn: Option<(usize, String)> = None;
        for (n, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(|e| NotifyError::io(&self.path, e))?;
            if let Some((at, reason)) = torn.take() {
                return Err(NotifyError::Corrupt {
                    path: self.path.clone(),
                    line: at + 1,
                    reason,
                });
            }
            match serde_json::from_slice::<Entry>(&line) {
                Ok(entry) => {
                    good_bytes += line.len() as u64 + 1;
                    self.apply(entry);
                }
                Err(e) => torn = Some((n, e.to_string())),
            }
        }
        let len = self
            .file
            .metadata()
            .map_err(|e| NotifyError::io(&self.path, e))?
            .len();
        if good_bytes < len {
            // A torn last append (or a last line without its newline): drop it.
            tracing::warn!(
                path = %self.path.display(),
                dropped = len - good_bytes,
                "outbox: torn tail dropped"
            );
            self.file
                .set_len(good_bytes)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| NotifyError::io(&self.path, e))?;
        }
        self.bytes = good_bytes;
        Ok(())
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Cursor(lsn) => self.cursor = self.cursor.max(lsn),
            Entry::Put(message) => self.index(*message),
        }
    }

    fn index(&mut self, message: Message) {
        let queue = &mut self.queues[message.channel.index()];
        if let Some(old) = self.messages.get(&message.id) {
            queue.remove(&queue_key(old));
        }
        if message.status == Status::Pending {
            queue.insert(queue_key(&message));
        }
        self.messages.insert(message.id.clone(), message);
    }

    /// Everything at or below this LSN is durably turned into messages.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Adds the messages not already present (a re-derived message keeps the state it has) and
    /// moves the cursor to `cursor`, in one durable append. Returns how many were new.
    pub fn enqueue(&mut self, messages: Vec<Message>, cursor: u64) -> Result<usize, NotifyError> {
        let fresh: Vec<Message> = messages
            .into_iter()
            .filter(|m| !self.messages.contains_key(&m.id))
            .collect();
        let mut entries: Vec<Entry> = fresh
            .iter()
            .map(|m| Entry::Put(Box::new(m.clone())))
            .collect();
        if cursor > self.cursor {
            entries.push(Entry::Cursor(cursor));
        }
        self.append(&entries)?;
        let count = fresh.len();
        for m in fresh {
            self.index(m);
        }
        self.cursor = self.cursor.max(cursor);
        Ok(count)
    }

    /// Records new states of known messages durably.
    pub fn update(&mut self, messages: Vec<Message>) -> Result<(), NotifyError> {
        let entries: Vec<Entry> = messages
            .iter()
            .map(|m| Entry::Put(Box::new(m.clone())))
            .collect();
        self.append(&entries)?;
        for m in messages {
            self.index(m);
        }
        if self.bytes > self.compact_bytes {
            self.compact()?;
        }
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), NotifyError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(entries.len() * 512);
        for entry in entries {
            serde_json::to_writer(&mut buf, entry).expect("entries always serialise");
            buf.push(b'\n');
        }
        self.file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| NotifyError::io(&self.path, e))?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Rewrites the file with the live state only (see the layout above).
    pub fn compact(&mut self) -> Result<(), NotifyError> {
        let mut sent: Vec<&Message> = self
            .messages
            .values()
            .filter(|m| m.status == Status::Sent)
            .collect();
        sent.sort_by_key(|m| std::cmp::Reverse((m.sent_at_ms, m.event_lsn)));
        let forget: Vec<String> = sent
            .iter()
            .skip(limits::SENT_KEPT_MAX)
            .map(|m| m.id.clone())
            .collect();
        for id in &forget {
            self.messages.remove(id);
        }
        let temp = self.path.with_extension("jsonl.tmp");
        let io = |e| NotifyError::io(&temp, e);
        let mut buf = Vec::new();
        serde_json::to_writer(&mut buf, &Entry::Cursor(self.cursor)).expect("serialises");
        buf.push(b'\n');
        for m in self.messages.values() {
            serde_json::to_writer(&mut buf, &Entry::Put(Box::new(m.clone()))).expect("serialises");
            buf.push(b'\n');
        }
        {
            let mut f = File::create(&temp).map_err(io)?;
            f.write_all(&buf).and_then(|()| f.sync_all()).map_err(io)?;
        }
        std::fs::rename(&temp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| NotifyError::io(dir, e))?;
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| NotifyError::io(&self.path, e))?;
        self.bytes = buf.len() as u64;
        tracing::info!(
            kept = self.messages.len(),
            forgotten = forget.len(),
            bytes = self.bytes,
            "outbox compacted"
        );
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Message> {
        self.messages.get(id)
    }

    /// Up to `max` PENDING messages of `channel` due at `now_ms`, earliest first, and when the
    /// next one not yet due is.
    pub fn due(&self, channel: Channel, now_ms: u64, max: usize) -> (Vec<Message>, Option<u64>) {
        let queue = &self.queues[channel.index()];
        let due: Vec<Message> = queue
            .iter()
            .take_while(|(at, ..)| *at <= now_ms)
            .take(max)
            .filter_map(|(.., id)| self.messages.get(id).cloned())
            .collect();
        let next = queue
            .iter()
            .find(|(at, ..)| *at > now_ms)
            .map(|(at, ..)| *at);
        (due, next)
    }

    pub fn pending(&self, channel: Channel) -> usize {
        self.queues[channel.index()].len()
    }

    /// Messages with `status` (all when `None`), newest event first, at most `max`.
    pub fn list(&self, status: Option<Status>, max: usize) -> Vec<Message> {
        let mut out: Vec<&Message> = self
            .messages
            .values()
            .filter(|m| status.is_none_or(|s| m.status == s))
            .collect();
        out.sort_by(|a, b| {
            (b.event_lsn, b.event_index, &b.id).cmp(&(a.event_lsn, a.event_index, &a.id))
        });
        out.into_iter().take(max).cloned().collect()
    }

    pub fn file_bytes(&self) -> u64 {
        self.bytes
    }
}

type QueueKey = (u64, u64, u32, String);

fn queue_key(message: &Message) -> QueueKey {
    (
        message.next_attempt_ms,
        message.event_lsn,
        message.event_index,
        message.id.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::message_id;

    fn msg(lsn: u64, to: &str) -> Message {
        Message {
            id: message_id(lsn, 0, Channel::Email, to),
            channel: Channel::Email,
            recipient: to.into(),
            subject: "s".into(),
            body: "b".into(),
            event_kind: "OrderPaid".into(),
            event_lsn: lsn,
            event_index: 0,
            event_at_ms: 1,
            order_id: "o".into(),
            created_at_ms: 1,
            status: Status::Pending,
            attempts: 0,
            attempts_base: 0,
            last_error: String::new(),
            next_attempt_ms: 1,
            sent_at_ms: 0,
        }
    }

    #[test]
    fn survives_reopen_keeps_state_drops_a_torn_tail_and_dedupes_rederived_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        {
            let mut ob = Outbox::open(&path, u64::MAX).unwrap();
            assert_eq!(ob.enqueue(vec![msg(1, "a"), msg(2, "b")], 3).unwrap(), 2);
            let mut sent = ob.get(&msg(1, "a").id).unwrap().clone();
            sent.status = Status::Sent;
            sent.attempts = 1;
            ob.update(vec![sent]).unwrap();
        }
        // A crash mid-append leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"Put\":{\"id\":\"hal").unwrap();
        drop(f);
        let mut ob = Outbox::open(&path, u64::MAX).unwrap();
        assert_eq!(ob.cursor(), 3);
        assert_eq!(ob.get(&msg(1, "a").id).unwrap().status, Status::Sent);
        let (due, _) = ob.due(Channel::Email, 10, 10);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].recipient, "b");
        // Re-derived after a crash: the same ids, nothing new, the SENT one stays SENT.
        assert_eq!(ob.enqueue(vec![msg(1, "a"), msg(2, "b")], 3).unwrap(), 0);
        assert_eq!(ob.get(&msg(1, "a").id).unwrap().status, Status::Sent);
        drop(ob);
        let ob = Outbox::open(&path, u64::MAX).unwrap();
        assert_eq!(ob.list(None, 10).len(), 2);
    }

    #[test]
    fn damage_before_the_tail_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        Outbox::open(&path, u64::MAX)
            .unwrap()
            .enqueue(vec![msg(1, "a")], 1)
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("garbage\n{text}")).unwrap();
        let err = Outbox::open(&path, u64::MAX).err().unwrap().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn compaction_keeps_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.jsonl");
        let mut ob = Outbox::open(&path, 2_000).unwrap();
        for lsn in 1..=20 {
            ob.enqueue(vec![msg(lsn, "a")], lsn).unwrap();
        }
        for lsn in 1..=10 {
            let mut m = ob.get(&msg(lsn, "a").id).unwrap().clone();
            m.status = Status::Sent;
            ob.update(vec![m]).unwrap();
        }
        assert!(ob.file_bytes() < 20 * 400, "{}", ob.file_bytes());
        drop(ob);
        let ob = Outbox::open(&path, 2_000).unwrap();
        assert_eq!(ob.cursor(), 20);
        assert_eq!(ob.list(Some(Status::Sent), 100).len(), 10);
        assert_eq!(ob.pending(Channel::Email), 10);
    }
}
