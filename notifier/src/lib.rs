//! The notifier: a consumer of the change feed (the WAL) with its own durable cursor, turning
//! order, return and alert events into customer and manager messages ([`derive`], rendered
//! from editable [`template`]s) and delivering them through SMTP, an HTTP webhook (SMS) and a
//! log file ([`channel`]), at least once, through a durable [`outbox`].
//!
//! Shape: one feed task reads durable records off the WAL (never on the ledger's hot path),
//! derives the messages, and appends them with the new cursor in one fsynced write; then the
//! WAL may be released up to that cursor (the `advance` callback). One worker per enabled
//! channel sends its own due messages in batches and records each outcome: SENT, or a retry
//! after exponential backoff with jitter, or FAILED after `attempts_max` (the dead letter,
//! listed until retried). A channel that is down delays its own messages only.
//!
//! See `docs/ARCHITECTURE.md`, "Notifier".

pub mod channel;
pub mod derive;
pub mod error;
pub mod limits;
pub mod message;
pub mod outbox;
pub mod stats;
pub mod template;
pub mod testing;
pub mod time;

mod dispatch;
mod feed;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use engine::Engine;
use parking_lot::Mutex;
use tokio::sync::Notify;

pub use channel::smtp::SmtpConfig;
pub use error::NotifyError;
pub use message::{Channel, Message, Status};

#[derive(Debug, Clone, PartialEq)]
pub struct NotifierConfig {
    /// The durable outbox (see [`outbox`] for its layout).
    pub outbox_path: PathBuf,
    /// The log channel's file.
    pub log_path: PathBuf,
    /// Templates here replace the shipped ones of the same name.
    pub templates_dir: Option<PathBuf>,
    pub channels: Vec<Channel>,
    /// Required when [`Channel::Email`] is enabled.
    pub smtp: Option<SmtpConfig>,
    /// Required when [`Channel::Sms`] is enabled.
    pub webhook_url: String,
    /// CA bundle for `https` webhooks.
    pub ca_file: PathBuf,
    /// Inventory managers' addresses (alert mails).
    pub managers: Vec<String>,
    pub attempts_max: u32,
    pub backoff_initial_millis: u64,
    pub backoff_max_millis: u64,
    pub outbox_compact_bytes: u64,
}

impl NotifierConfig {
    /// The defaults for a data directory: the log channel only.
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            outbox_path: data_dir.join("notifier").join("outbox.jsonl"),
            log_path: data_dir.join("notifications.log"),
            templates_dir: None,
            channels: vec![Channel::Log],
            smtp: None,
            webhook_url: String::new(),
            ca_file: PathBuf::from(channel::tls::SYSTEM_CA_FILE),
            managers: Vec::new(),
            attempts_max: limits::ATTEMPTS_MAX_DEFAULT,
            backoff_initial_millis: limits::BACKOFF_INITIAL_MILLIS_DEFAULT,
            backoff_max_millis: limits::BACKOFF_MAX_MILLIS_DEFAULT,
            outbox_compact_bytes: limits::OUTBOX_COMPACT_BYTES_DEFAULT,
        }
    }
}

/// What the feed task and the channel workers share.
struct Shared {
    config: NotifierConfig,
    templates: template::Templates,
    outbox: Mutex<outbox::Outbox>,
    stats: stats::Stats,
    /// Per channel: woken on enqueue and on a manual retry.
    wake: [Notify; 3],
    handled_lsn: AtomicU64,
}

impl Shared {
    fn enabled(&self) -> [bool; 3] {
        let mut on = [false; 3];
        for c in &self.config.channels {
            on[c.index()] = true;
        }
        on
    }
}

pub struct Notifier {
    shared: Arc<Shared>,
    transports: Mutex<Vec<(Channel, channel::Transport)>>,
}

impl Notifier {
    /// Loads the templates and the outbox and sets up the enabled channels' transports.
    pub fn open(config: NotifierConfig) -> Result<Self, NotifyError> {
        use channel::Transport;
        if config.attempts_max == 0 {
            return Err(NotifyError::Config(
                "attempts_max must be at least 1".into(),
            ));
        }
        let templates = template::Templates::load(config.templates_dir.as_deref())?;
        let mut transports = Vec::new();
        let mut channels = config.channels.clone();
        channels.sort();
        channels.dedup();
        for c in channels {
            let transport = match c {
                Channel::Email => {
                    let smtp = config.smtp.clone().ok_or_else(|| {
                        NotifyError::Config("channel email needs an SMTP host".into())
                    })?;
                    Transport::Smtp(channel::smtp::Smtp::new(smtp)?)
                }
                Channel::Sms => {
                    if config.webhook_url.is_empty() {
                        return Err(NotifyError::Config(
                            "channel sms needs a webhook url".into(),
                        ));
                    }
                    Transport::Webhook(channel::webhook::Webhook::new(
                        &config.webhook_url,
                        &config.ca_file,
                    )?)
                }
                Channel::Log => {
                    Transport::Log(channel::logfile::LogFile::new(config.log_path.clone()))
                }
            };
            transports.push((c, transport));
        }
        let outbox = outbox::Outbox::open(&config.outbox_path, config.outbox_compact_bytes)?;
        let handled = outbox.cursor();
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                templates,
                outbox: Mutex::new(outbox),
                stats: stats::Stats::default(),
                wake: Default::default(),
                handled_lsn: AtomicU64::new(handled),
            }),
            transports: Mutex::new(transports),
        })
    }

    /// Highest LSN fully handled: every record at or below it is durably in the outbox (a
    /// record with nothing to notify counts as handled).
    pub fn handled_lsn(&self) -> u64 {
        self.shared.handled_lsn.load(Ordering::Relaxed)
    }

    /// Follows `engine`'s change feed from the outbox cursor and delivers until `shutdown`
    /// resolves. `advance(lsn)` is told each new durable cursor (to release the WAL below it).
    /// Call once.
    pub async fn run(
        &self,
        engine: Arc<Engine>,
        advance: Arc<dyn Fn(u64) + Send + Sync>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for (channel, transport) in std::mem::take(&mut *self.transports.lock()) {
            tasks.push(tokio::spawn(dispatch::deliver(
                self.shared.clone(),
                channel,
                transport,
                stop_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(feed::follow(
            self.shared.clone(),
            engine,
            advance,
            stop_rx,
        )));
        shutdown.await;
        let _ = stop_tx.send(true);
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Notifications with `status` (all when `None`), newest first, at most
    /// [`limits::LIST_MAX`].
    pub fn list(&self, status: Option<Status>) -> Vec<Message> {
        self.shared.outbox.lock().list(status, limits::LIST_MAX)
    }

    /// Schedules a FAILED message for delivery now, with `attempts_max` fresh attempts; a
    /// PENDING one is returned as it is; a SENT one is refused. Blocking (an outbox fsync).
    pub fn retry(&self, id: &str) -> Result<Message, NotifyError> {
        let mut outbox = self.shared.outbox.lock();
        let mut m = outbox
            .get(id)
            .cloned()
            .ok_or_else(|| NotifyError::NotFound(id.to_string()))?;
        match m.status {
            Status::Sent => Err(NotifyError::AlreadySent(id.to_string())),
            Status::Pending => Ok(m),
            Status::Failed => {
                m.status = Status::Pending;
                m.attempts_base = m.attempts;
                m.next_attempt_ms = time::now_ms();
                outbox.update(vec![m.clone()])?;
                self.shared.wake[m.channel.index()].notify_one();
                Ok(m)
            }
        }
    }

    /// Appends the notifier's Prometheus metrics.
    pub fn render_metrics(&self, out: &mut String) {
        let depth = {
            let outbox = self.shared.outbox.lock();
            Channel::ALL.map(|c| outbox.pending(c))
        };
        self.shared.stats.render(depth, self.handled_lsn(), out);
    }

    pub fn sent_total(&self, channel: Channel) -> u64 {
        self.shared.stats.sent_total(channel)
    }
}
