//! The notification outbox: what friends and admins are told, written in the same transaction
//! as the state change that causes it, and each delivery to each sink.
//!
//! A version's announcement is written with the condition that makes it Ready
//! ([`Db::set_conditions_notifying`]), and only if the version was never announced before
//! (`announced_versions`), so each version is announced once, ever. The first sync of a server
//! announces everything Ready at once in one digest ([`Db::write_first_sync_digest`]) instead.
//! A sender delivers each notification to each sink and records the outcome
//! ([`Db::due_notifications`], [`Db::record_delivery`]); a sink registered later starts after
//! the newest notification of that moment ([`Db::register_sink`]).

use sqlx::{Any, Executor};

use crate::conditions::ConditionUpdate;
use crate::{Db, EpochMs, Error, QueryContext, Record, get, text_enum};

text_enum! {
    /// What a notification says.
    pub enum NotificationKind ("notifications.kind") {
        /// A version became Ready for the first time: friends can install or update.
        Ready => "ready",
        /// A version went Stalled.
        Stalled => "stalled",
        /// A Stalled version became Ready again.
        Recovered => "recovered",
        /// The versions Ready at the end of the first sync, in one message.
        Digest => "digest",
    }
}

text_enum! {
    /// Who a notification is for.
    pub enum Audience ("notifications.audience") {
        /// The friends: new versions.
        Friends => "friends",
        /// The admins: versions that went Stalled and recovered.
        Admins => "admins",
    }
}

/// A notification to write, for [`Db::set_conditions_notifying`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNotification {
    /// What it says.
    pub kind: NotificationKind,
    /// Who it is for.
    pub audience: Audience,
    /// The facts the templates render, as JSON text.
    pub payload: String,
    /// The version it announces, `(game, version)`: the notification is written only if
    /// that version was never announced.
    pub announces: Option<(String, String)>,
}

/// A notification in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Increasing id, never reused.
    pub id: i64,
    /// What it says.
    pub kind: NotificationKind,
    /// Who it is for.
    pub audience: Audience,
    /// The facts the templates render, as JSON text.
    pub payload: String,
    /// When it was written.
    pub created_at: EpochMs,
}

/// A notification due for delivery to one sink, with the attempts made so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueNotification {
    /// The notification.
    pub notification: Notification,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// How one delivery attempt ended, for [`Db::record_delivery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The sink accepted it (a 2xx): never sent again.
    Sent,
    /// It failed and is tried again at `at`.
    Retry {
        /// When to try again.
        at: EpochMs,
        /// Why it failed.
        error: String,
    },
    /// It failed for good (too many attempts, or refused outright): never sent again.
    Failed {
        /// Why.
        error: String,
    },
}

/// A delivery that failed for good: the visible error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedDelivery {
    /// The notification.
    pub notification_id: i64,
    /// The sink.
    pub sink: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When it was given up.
    pub at: EpochMs,
}

impl Db {
    /// Sets many conditions and writes the notifications they cause, in one transaction:
    /// either both are committed or neither is. A notification that announces a version
    /// already announced is not written. Returns how many rows changed (conditions and
    /// notifications).
    pub async fn set_conditions_notifying(
        &self,
        updates: &[ConditionUpdate],
        notifications: &[NewNotification],
        now: EpochMs,
    ) -> Result<usize, Error> {
        let mut transaction = self.begin_write("set conditions").await?;
        let mut n_changed = 0;
        for update in updates {
            n_changed += usize::from(
                crate::conditions::set_condition_on(&mut *transaction, update, now).await?,
            );
        }
        for notification in notifications {
            n_changed +=
                usize::from(insert_notification(&mut transaction, notification, now).await?);
        }
        transaction.commit().await.op("set conditions")?;
        Ok(n_changed)
    }

    /// Whether the first sync's digest was written (then versions are announced one by one).
    pub async fn first_sync_done(&self) -> Result<bool, Error> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM notify_state")
            .fetch_one(&self.pool)
            .await
            .op("read notify state")?;
        Ok(get::<i64>(&row, "n")? > 0)
    }

    /// Ends the first sync: marks it done and announces, in one digest notification, every
    /// version of `ready` not announced yet (no notification when there is none). Returns
    /// false, writing nothing, when the first sync was already done.
    pub async fn write_first_sync_digest(
        &self,
        ready: &[(String, String)],
        payload: &str,
        now: EpochMs,
    ) -> Result<bool, Error> {
        let mut transaction = self.begin_write("write the first sync digest").await?;
        let inserted = sqlx::query(
            "INSERT INTO notify_state (id, first_sync_at) VALUES (1, $1) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(now)
        .execute(&mut *transaction)
        .await
        .op("write notify state")?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        if !ready.is_empty() {
            let row = sqlx::query(
                "INSERT INTO notifications (kind, audience, payload, created_at) \
                 VALUES ('digest', 'friends', $1, $2) RETURNING id",
            )
            .bind(payload)
            .bind(now)
            .fetch_one(&mut *transaction)
            .await
            .op("write digest")?;
            let id: i64 = get(&row, "id")?;
            for (game, version) in ready {
                mark_announced(&mut *transaction, game, version, id).await?;
            }
        }
        transaction
            .commit()
            .await
            .op("write the first sync digest")?;
        Ok(true)
    }

    /// Registers a sink, if new, to receive the notifications written from now on; returns
    /// the id after which it receives them.
    pub async fn register_sink(&self, sink: &str) -> Result<i64, Error> {
        sqlx::query(
            "INSERT INTO notification_sinks (sink, since_id) \
             SELECT $1, COALESCE(MAX(id), 0) FROM notifications WHERE true \
             ON CONFLICT (sink) DO NOTHING",
        )
        .bind(sink)
        .execute(&self.pool)
        .await
        .op("register sink")?;
        let row = sqlx::query("SELECT since_id FROM notification_sinks WHERE sink = $1")
            .bind(sink)
            .fetch_one(&self.pool)
            .await
            .op("read sink")?;
        get(&row, "since_id")
    }

    /// Up to `limit` notifications with an id greater than `after_id`, oldest first.
    pub async fn notifications_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, Error> {
        let rows = sqlx::query(
            "SELECT id, kind, audience, payload, created_at FROM notifications \
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .op("list notifications")?;
        rows.iter()
            .map(|row| notification_from_record(row))
            .collect()
    }

    /// Up to `limit` notifications for `audiences` that `sink` has not received, never
    /// given up, and whose next attempt is due at `now`, oldest first.
    pub async fn due_notifications(
        &self,
        sink: &str,
        audiences: &[Audience],
        now: EpochMs,
        limit: u32,
    ) -> Result<Vec<DueNotification>, Error> {
        let friends = audiences.contains(&Audience::Friends);
        let admins = audiences.contains(&Audience::Admins);
        let rows = sqlx::query(
            "SELECT n.id, n.kind, n.audience, n.payload, n.created_at, \
             COALESCE(d.attempts, 0) AS attempts FROM notifications n \
             LEFT JOIN notification_deliveries d ON d.notification_id = n.id AND d.sink = $1 \
             WHERE n.id > (SELECT since_id FROM notification_sinks WHERE sink = $1) \
             AND ((n.audience = 'friends' AND $2 = 1) OR (n.audience = 'admins' AND $3 = 1)) \
             AND (d.state IS NULL OR (d.state = 'pending' AND d.next_attempt_at <= $4)) \
             ORDER BY n.id LIMIT $5",
        )
        .bind(sink)
        .bind(i64::from(friends))
        .bind(i64::from(admins))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .op("list due notifications")?;
        rows.iter()
            .map(|row| {
                Ok(DueNotification {
                    notification: notification_from_record(row)?,
                    attempts: u32::try_from(row.int(5, "notification_deliveries.attempts")?)
                        .unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// When `sink`'s next retry is due, if one is pending.
    pub async fn next_retry_at(&self, sink: &str) -> Result<Option<EpochMs>, Error> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_at) AS at FROM notification_deliveries \
             WHERE sink = $1 AND state = 'pending'",
        )
        .bind(sink)
        .fetch_one(&self.pool)
        .await
        .op("read next retry")?;
        row.opt_int(0, "notification_deliveries.next_attempt_at")
    }

    /// Records how an attempt to deliver notification `id` to `sink` ended.
    pub async fn record_delivery(
        &self,
        id: i64,
        sink: &str,
        outcome: &DeliveryOutcome,
        now: EpochMs,
    ) -> Result<(), Error> {
        let (state, next_attempt_at, error, failed_attempt) = match outcome {
            DeliveryOutcome::Sent => ("sent", now, None, 0_i64),
            DeliveryOutcome::Retry { at, error } => ("pending", *at, Some(error.as_str()), 1),
            DeliveryOutcome::Failed { error } => ("failed", now, Some(error.as_str()), 1),
        };
        sqlx::query(
            "INSERT INTO notification_deliveries (notification_id, sink, state, attempts, \
             next_attempt_at, last_error, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (notification_id, sink) DO UPDATE SET state = excluded.state, \
             attempts = notification_deliveries.attempts + excluded.attempts, \
             next_attempt_at = excluded.next_attempt_at, \
             last_error = COALESCE(excluded.last_error, notification_deliveries.last_error), \
             updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(sink)
        .bind(state)
        .bind(failed_attempt)
        .bind(next_attempt_at)
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await
        .op("record delivery")?;
        Ok(())
    }

    /// Deliveries given up, newest first, at most `limit`.
    pub async fn failed_deliveries(&self, limit: u32) -> Result<Vec<FailedDelivery>, Error> {
        let rows = sqlx::query(
            "SELECT notification_id, sink, attempts, last_error, updated_at \
             FROM notification_deliveries WHERE state = 'failed' \
             ORDER BY updated_at DESC, notification_id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .op("list failed deliveries")?;
        rows.iter()
            .map(|row| {
                Ok(FailedDelivery {
                    notification_id: row.int(0, "notification_deliveries.notification_id")?,
                    sink: row.text(1, "notification_deliveries.sink")?,
                    attempts: u32::try_from(row.int(2, "notification_deliveries.attempts")?)
                        .unwrap_or(u32::MAX),
                    error: row
                        .opt_text(3, "notification_deliveries.last_error")?
                        .unwrap_or_default(),
                    at: row.int(4, "notification_deliveries.updated_at")?,
                })
            })
            .collect()
    }
}

/// Writes one notification inside `transaction`, unless it announces a version already
/// announced; returns whether it was written.
async fn insert_notification(
    transaction: &mut sqlx::Transaction<'static, Any>,
    notification: &NewNotification,
    now: EpochMs,
) -> Result<bool, Error> {
    if let Some((game, version)) = &notification.announces {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM announced_versions WHERE game = $1 AND version = $2",
        )
        .bind(game)
        .bind(version)
        .fetch_one(&mut **transaction)
        .await
        .op("read announced versions")?;
        if get::<i64>(&row, "n")? > 0 {
            return Ok(false);
        }
    }
    let id = insert_row(&mut **transaction, notification, now).await?;
    if let Some((game, version)) = &notification.announces {
        mark_announced(&mut **transaction, game, version, id).await?;
    }
    Ok(true)
}

/// Records that notification `id` announced `game`/`version` (kept if one already did).
async fn mark_announced<'e, E>(executor: E, game: &str, version: &str, id: i64) -> Result<(), Error>
where
    E: Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO announced_versions (game, version, notification_id) \
         VALUES ($1, $2, $3) ON CONFLICT (game, version) DO NOTHING",
    )
    .bind(game)
    .bind(version)
    .bind(id)
    .execute(executor)
    .await
    .op("mark announced")?;
    Ok(())
}

async fn insert_row<'e, E>(
    executor: E,
    notification: &NewNotification,
    now: EpochMs,
) -> Result<i64, Error>
where
    E: Executor<'e, Database = Any>,
{
    let row = sqlx::query(
        "INSERT INTO notifications (kind, audience, payload, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(notification.kind.as_str())
    .bind(notification.audience.as_str())
    .bind(&notification.payload)
    .bind(now)
    .fetch_one(executor)
    .await
    .op("write notification")?;
    get(&row, "id")
}

/// A notification from the columns `id, kind, audience, payload, created_at`.
fn notification_from_record(record: &dyn Record) -> Result<Notification, Error> {
    Ok(Notification {
        id: record.int(0, "notifications.id")?,
        kind: NotificationKind::parse(&record.text(1, "notifications.kind")?)?,
        audience: Audience::parse(&record.text(2, "notifications.audience")?)?,
        payload: record.text(3, "notifications.payload")?,
        created_at: record.int(4, "notifications.created_at")?,
    })
}
