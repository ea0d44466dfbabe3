//! The sender: one task per sink that delivers the outbox's due notifications, oldest first,
//! and records each outcome.
//!
//! Delivery is at least once. A notification is marked sent only after the sink answered
//! 2xx, so a process that dies between that answer and the record sends it again after a
//! restart; nothing else sends twice. A 429 pauses the sink for as long as it asks (the
//! `Retry-After` header or Discord's `retry_after`) and costs no attempt; a transient failure
//! (no connection, 5xx) is tried again with exponential backoff; after
//! [`SenderConfig::max_attempts`] attempts, or at once for a refusal (another 4xx), the
//! delivery is given up and logged as an error, and stays visible
//! (`Db::failed_deliveries`).

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mist_db::outbox::{DeliveryOutcome, DueNotification};
use mist_db::{Db, EpochMs};
use mist_platform::error::ErrorChain;

use crate::sink::{SendError, Sink};
use crate::templates::Templates;

/// How the sender retries.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// The first retry's delay; each next one doubles, up to [`SenderConfig::max_delay`].
    pub first_delay: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
    /// How often the outbox is looked at for new notifications (a read of the database's
    /// change counter; the outbox itself is read only when it moved).
    pub poll: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl Default for SenderConfig {
    /// 1 s doubling to 10 min, 12 attempts (about 40 minutes in all), a 250 ms poll and a
    /// 10 s request timeout.
    fn default() -> Self {
        SenderConfig {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(600),
            max_attempts: 12,
            poll: Duration::from_millis(250),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the sender cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// The HTTP client cannot be built (no TLS provider installed).
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The database cannot be read or written.
    #[error("the notification outbox is not usable")]
    Db(#[from] mist_db::Error),
}

/// Delivers the outbox to sinks.
pub struct Sender {
    db: Db,
    sinks: Vec<Sink>,
    templates: std::sync::Arc<Templates>,
    client: reqwest::Client,
    config: SenderConfig,
}

impl Sender {
    /// A sender for `sinks`, each registered in the database: a sink new to it receives the
    /// notifications written from now on.
    pub async fn new(
        db: Db,
        sinks: Vec<Sink>,
        templates: Templates,
        config: SenderConfig,
    ) -> Result<Sender, SenderError> {
        // reqwest's builder panics without a TLS provider (STACK.md); one may be installed
        // already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .build()
            .map_err(SenderError::Client)?;
        for sink in &sinks {
            db.register_sink(&sink.name).await?;
        }
        Ok(Sender {
            db,
            sinks,
            templates: std::sync::Arc::new(templates),
            client,
            config,
        })
    }

    /// Delivers until `stop` resolves. A database error is logged and the loop goes on after
    /// a pause: the outbox keeps everything meanwhile.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) {
        let mut tasks = tokio::task::JoinSet::new();
        for sink in self.sinks {
            let worker = SinkWorker {
                db: self.db.clone(),
                sink,
                templates: self.templates.clone(),
                client: self.client.clone(),
                config: self.config.clone(),
            };
            tasks.spawn(worker.run());
        }
        stop.await;
        tasks.shutdown().await;
    }
}

/// One sink's delivery loop.
struct SinkWorker {
    db: Db,
    sink: Sink,
    templates: std::sync::Arc<Templates>,
    client: reqwest::Client,
    config: SenderConfig,
}

impl SinkWorker {
    async fn run(self) {
        let mut seen_seq = None;
        loop {
            match self.round(&mut seen_seq).await {
                Ok(Some(pause)) => tokio::time::sleep(pause).await,
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(sink = %self.sink.name, error = %ErrorChain(&error),
                        "cannot read the notification outbox; trying again");
                    tokio::time::sleep(self.config.poll * 4).await;
                }
            }
        }
    }

    /// Delivers what is due; returns how long to wait before the next round (`None`: look
    /// again at once).
    async fn round(&self, seen_seq: &mut Option<i64>) -> Result<Option<Duration>, mist_db::Error> {
        let now = now_ms();
        let seq = self.db.change_seq().await?;
        let retry_due = self
            .db
            .next_retry_at(&self.sink.name)
            .await?
            .is_some_and(|at| at <= now);
        if *seen_seq == Some(seq) && !retry_due {
            return Ok(Some(self.config.poll));
        }
        let due = self
            .db
            .due_notifications(&self.sink.name, &self.sink.audiences, now, 16)
            .await?;
        if due.is_empty() {
            *seen_seq = Some(seq);
            return Ok(Some(self.config.poll));
        }
        for item in &due {
            if let Some(pause) = self.deliver(item).await? {
                return Ok(Some(pause));
            }
        }
        Ok(None)
    }

    /// One attempt; returns how long the whole sink must pause (a 429).
    async fn deliver(&self, item: &DueNotification) -> Result<Option<Duration>, mist_db::Error> {
        let notification = &item.notification;
        let result = self
            .sink
            .send(&self.client, &self.templates, notification)
            .await;
        let attempts = item.attempts + 1;
        let outcome = match result {
            Ok(()) => {
                tracing::info!(sink = %self.sink.name, id = notification.id,
                    kind = %notification.kind, "notification sent");
                DeliveryOutcome::Sent
            }
            Err(SendError::RateLimited { after }) => {
                tracing::info!(sink = %self.sink.name, id = notification.id,
                    after_ms = after.as_millis() as u64, "rate limited; waiting");
                return Ok(Some(after));
            }
            Err(SendError::Transient(error)) if attempts < self.config.max_attempts => {
                let delay = self.delay(attempts);
                tracing::warn!(sink = %self.sink.name, id = notification.id, attempts,
                    retry_in_ms = delay.as_millis() as u64, %error, "notification not delivered");
                DeliveryOutcome::Retry {
                    at: now_ms()
                        .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
                    error,
                }
            }
            Err(SendError::Transient(error) | SendError::Permanent(error)) => {
                tracing::error!(sink = %self.sink.name, id = notification.id, attempts,
                    %error, "notification given up");
                DeliveryOutcome::Failed { error }
            }
        };
        self.db
            .record_delivery(notification.id, &self.sink.name, &outcome, now_ms())
            .await?;
        Ok(None)
    }

    /// The delay after the `attempts`-th failure.
    fn delay(&self, attempts: u32) -> Duration {
        let factor = 2_u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.config
            .first_delay
            .saturating_mul(factor)
            .min(self.config.max_delay)
    }
}

/// Now, in milliseconds since the epoch.
fn now_ms() -> EpochMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
