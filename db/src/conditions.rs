//! Conditions per object and a bounded history of events: the status the reconciler writes
//! and the API shows.
//!
//! Conditions follow the Kubernetes/Flux convention: each object has at most one condition of
//! each [`ConditionType`], with a status, a stable machine-readable reason (`DigestMismatch`),
//! a readable message, and `since` — when the status last changed. Setting a condition to the
//! values it already has writes nothing.

use sqlx::{Any, Executor};

use crate::{Db, EpochMs, Error, QueryContext, Record, get, text_enum};

// The column lists, each in the order its decoder at the end of this file reads them.
macro_rules! condition_columns {
    () => {
        "object_kind, object_name, condition_type, status, reason, message, since"
    };
}
macro_rules! event_columns {
    () => {
        "id, object_kind, object_name, at, severity, reason, message"
    };
}
pub(crate) use condition_columns;

text_enum! {
    /// What kind of object a condition or event is about.
    pub enum ObjectKind ("object_kind") {
        /// A game; the name is the game's name.
        Game => "game",
        /// A version; the name is `<game>/<version>`.
        Version => "version",
        /// A user; the name is the login name.
        User => "user",
        /// The spec repository as a whole; the name is the branch.
        Specs => "specs",
    }
}

/// The object a condition or event is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its name, unique within the kind.
    pub name: String,
}

text_enum! {
    /// The conditions an object can have.
    pub enum ConditionType ("conditions.condition_type") {
        /// The object is fully reconciled; for a version: served to friends.
        Ready => "Ready",
        /// Work for the object is queued or running.
        Reconciling => "Reconciling",
        /// The reconciler cannot make progress without a change (a terminal error, drift).
        Stalled => "Stalled",
        /// A game's store metadata could not be fetched: the last good one is still served.
        MetadataStale => "MetadataStale",
    }
}

text_enum! {
    /// Whether a condition holds.
    pub enum ConditionStatus ("conditions.status") {
        /// It holds.
        True => "True",
        /// It does not hold.
        False => "False",
        /// Not known yet.
        Unknown => "Unknown",
    }
}

/// One condition of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The object.
    pub object: ObjectRef,
    /// Which condition.
    pub condition_type: ConditionType,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A stable CamelCase reason, e.g. `DigestMismatch`.
    pub reason: String,
    /// A readable sentence for people.
    pub message: String,
    /// When `status` last changed.
    pub since: EpochMs,
}

/// The new value of one condition, for [`Db::set_conditions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// The object.
    pub object: ObjectRef,
    /// Which condition.
    pub condition_type: ConditionType,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A stable CamelCase reason.
    pub reason: String,
    /// A readable sentence for people.
    pub message: String,
}

text_enum! {
    /// How much an event matters.
    pub enum Severity ("events.severity") {
        /// Something happened as expected.
        Normal => "normal",
        /// Something went wrong or needs attention.
        Warning => "warning",
    }
}

/// Something that happened to an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Increasing id; ids are never reused, so "events after id N" is a stable cursor.
    pub id: i64,
    /// The object.
    pub object: ObjectRef,
    /// When it happened.
    pub at: EpochMs,
    /// How much it matters.
    pub severity: Severity,
    /// A stable CamelCase reason, e.g. `DeltaCreated`.
    pub reason: String,
    /// A readable sentence for people.
    pub message: String,
}

impl ObjectRef {
    /// A game.
    pub fn game(name: &str) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::Game,
            name: name.to_owned(),
        }
    }

    /// A version of a game.
    pub fn version(game: &str, version: &str) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::Version,
            name: format!("{game}/{version}"),
        }
    }

    /// A user.
    pub fn user(name: &str) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::User,
            name: name.to_owned(),
        }
    }

    /// The spec repository, by branch.
    pub fn specs(branch: &str) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::Specs,
            name: branch.to_owned(),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

impl Db {
    /// Sets one condition of an object; returns whether anything changed. `since` moves to
    /// `now` only when the status changes; a new reason or message alone keeps it.
    pub async fn set_condition(
        &self,
        object: &ObjectRef,
        condition_type: ConditionType,
        status: ConditionStatus,
        reason: &str,
        message: &str,
        now: EpochMs,
    ) -> Result<bool, Error> {
        let update = ConditionUpdate {
            object: object.clone(),
            condition_type,
            status,
            reason: reason.to_owned(),
            message: message.to_owned(),
        };
        set_condition_on(&self.pool, &update, now).await
    }

    /// Sets many conditions in one transaction, as [`Db::set_condition`] does; returns how
    /// many changed. A first sync of thousands of versions wants this: on Postgres each
    /// separate statement is its own commit.
    pub async fn set_conditions(
        &self,
        updates: &[ConditionUpdate],
        now: EpochMs,
    ) -> Result<usize, Error> {
        let mut transaction = self.begin_write("set conditions").await?;
        let mut n_changed = 0;
        for update in updates {
            n_changed += usize::from(set_condition_on(&mut *transaction, update, now).await?);
        }
        transaction.commit().await.op("set conditions")?;
        Ok(n_changed)
    }

    /// An object's conditions, in [`ConditionType`] order.
    pub async fn conditions_of(&self, object: &ObjectRef) -> Result<Vec<Condition>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            condition_columns!(),
            " FROM conditions WHERE object_kind = $1 AND object_name = $2"
        ))
        .bind(object.kind.as_str())
        .bind(&object.name)
        .fetch_all(&self.pool)
        .await
        .op("list conditions")?;
        let mut conditions = rows
            .iter()
            .map(|row| condition_from_record(row))
            .collect::<Result<Vec<_>, _>>()?;
        conditions.sort_by_key(|condition| condition.condition_type);
        Ok(conditions)
    }

    /// Deletes an object's conditions (the object is gone); returns how many there were.
    pub async fn delete_conditions(&self, object: &ObjectRef) -> Result<u64, Error> {
        let result =
            sqlx::query("DELETE FROM conditions WHERE object_kind = $1 AND object_name = $2")
                .bind(object.kind.as_str())
                .bind(&object.name)
                .execute(&self.pool)
                .await
                .op("delete conditions")?;
        Ok(result.rows_affected())
    }

    /// Records an event and trims the object's history to its `keep` newest events (at least
    /// one: the new event always stays). Returns the new event's id.
    pub async fn record_event(
        &self,
        object: &ObjectRef,
        severity: Severity,
        reason: &str,
        message: &str,
        at: EpochMs,
        keep: u32,
    ) -> Result<i64, Error> {
        let mut transaction = self.begin_write("record event").await?;
        let row = sqlx::query(
            "INSERT INTO events (object_kind, object_name, at, severity, reason, message) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(object.kind.as_str())
        .bind(&object.name)
        .bind(at)
        .bind(severity.as_str())
        .bind(reason)
        .bind(message)
        .fetch_one(&mut *transaction)
        .await
        .op("record event")?;
        let id: i64 = get(&row, "id")?;
        sqlx::query(
            "DELETE FROM events WHERE object_kind = $1 AND object_name = $2 AND id <= \
             (SELECT id FROM events WHERE object_kind = $1 AND object_name = $2 \
             ORDER BY id DESC LIMIT 1 OFFSET $3)",
        )
        .bind(object.kind.as_str())
        .bind(&object.name)
        .bind(i64::from(keep.max(1)))
        .execute(&mut *transaction)
        .await
        .op("trim events")?;
        transaction.commit().await.op("record event")?;
        Ok(id)
    }

    /// An object's `limit` newest events, newest first.
    pub async fn events_of(&self, object: &ObjectRef, limit: u32) -> Result<Vec<Event>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE object_kind = $1 AND object_name = $2 \
                 ORDER BY id DESC LIMIT $3"
        ))
        .bind(object.kind.as_str())
        .bind(&object.name)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .op("list events")?;
        rows.iter().map(|row| event_from_record(row)).collect()
    }

    /// The newest `limit` events of every object, newest first: the status board's history.
    pub async fn recent_events(&self, limit: u32) -> Result<Vec<Event>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .op("list recent events")?;
        rows.iter().map(|row| event_from_record(row)).collect()
    }

    /// Up to `limit` events of any object with an id greater than `after_id`, oldest first:
    /// the feed behind the API's live events.
    pub async fn events_after(&self, after_id: i64, limit: u32) -> Result<Vec<Event>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .op("list events")?;
        rows.iter().map(|row| event_from_record(row)).collect()
    }
}

pub(crate) async fn set_condition_on<'e, E>(
    executor: E,
    update: &ConditionUpdate,
    now: EpochMs,
) -> Result<bool, Error>
where
    E: Executor<'e, Database = Any>,
{
    let result = sqlx::query(
        "INSERT INTO conditions (object_kind, object_name, condition_type, status, reason, \
         message, since, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (object_kind, object_name, condition_type) DO UPDATE SET \
         status = excluded.status, reason = excluded.reason, message = excluded.message, \
         since = CASE WHEN conditions.status = excluded.status THEN conditions.since \
         ELSE excluded.since END, updated_at = excluded.updated_at \
         WHERE conditions.status IS DISTINCT FROM excluded.status \
         OR conditions.reason IS DISTINCT FROM excluded.reason \
         OR conditions.message IS DISTINCT FROM excluded.message",
    )
    .bind(update.object.kind.as_str())
    .bind(&update.object.name)
    .bind(update.condition_type.as_str())
    .bind(update.status.as_str())
    .bind(&update.reason)
    .bind(&update.message)
    .bind(now)
    .execute(executor)
    .await
    .op("set condition")?;
    Ok(result.rows_affected() > 0)
}

fn object_from_record(record: &dyn Record, first_idx: usize) -> Result<ObjectRef, Error> {
    Ok(ObjectRef {
        kind: ObjectKind::parse(&record.text(first_idx, "object_kind")?)?,
        name: record.text(first_idx + 1, "object_name")?,
    })
}

pub(crate) fn condition_from_record(record: &dyn Record) -> Result<Condition, Error> {
    Ok(Condition {
        object: object_from_record(record, 0)?,
        condition_type: ConditionType::parse(&record.text(2, "conditions.condition_type")?)?,
        status: ConditionStatus::parse(&record.text(3, "conditions.status")?)?,
        reason: record.text(4, "conditions.reason")?,
        message: record.text(5, "conditions.message")?,
        since: record.int(6, "conditions.since")?,
    })
}

fn event_from_record(record: &dyn Record) -> Result<Event, Error> {
    Ok(Event {
        id: record.int(0, "events.id")?,
        object: object_from_record(record, 1)?,
        at: record.int(3, "events.at")?,
        severity: Severity::parse(&record.text(4, "events.severity")?)?,
        reason: record.text(5, "events.reason")?,
        message: record.text(6, "events.message")?,
    })
}
