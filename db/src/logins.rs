//! Failed logins, counted per limited key in the `login_failures` table.
//!
//! The API decides what a key is (a client address, a user name and address, a user name) and
//! how many failures each may have; this module only counts. A count lives in a fixed window
//! that starts at the key's first failure: a window that started at or before `live_since` has
//! ended, and its row counts as zero. Every API replica on the database reads and writes the
//! same rows, so the limits hold across replicas. Recording a failure deletes the rows whose
//! windows ended, so the table stays as small as the failures of one window.
//!
//! The table has no `change_seq` trigger: a failed login is not state the reconciler compares,
//! and must not wake a reconcile pass.

use sqlx::Row;

use crate::{Db, EpochMs, Error, QueryContext, to_u64};

/// One key's failures in its live window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginFailures {
    /// Failures counted since the window started.
    pub failures: u64,
    /// When the window started: the key's first failure in it.
    pub window_start: EpochMs,
}

impl Db {
    /// The failures of `key` in a window that started after `live_since`; `None` when it has
    /// none.
    pub async fn login_failures(
        &self,
        key: &str,
        live_since: EpochMs,
    ) -> Result<Option<LoginFailures>, Error> {
        let row = sqlx::query(
            "SELECT failures, window_start FROM login_failures \
             WHERE key = $1 AND window_start > $2",
        )
        .bind(key)
        .bind(live_since)
        .fetch_optional(&self.pool)
        .await
        .op("read login failures")?;
        row.map(|row| {
            Ok(LoginFailures {
                failures: to_u64(row.try_get("failures").op("failures")?, "failures")?,
                window_start: row.try_get("window_start").op("window_start")?,
            })
        })
        .transpose()
    }

    /// Counts one failure at `now` for each of `keys`, in one transaction: a key whose window
    /// started at or before `live_since` starts a new window at `now`. Deletes every row whose
    /// window ended.
    pub async fn record_login_failure(
        &self,
        keys: &[&str],
        now: EpochMs,
        live_since: EpochMs,
    ) -> Result<(), Error> {
        let mut transaction = self.begin_write("record login failure").await?;
        sqlx::query("DELETE FROM login_failures WHERE window_start <= $1")
            .bind(live_since)
            .execute(&mut *transaction)
            .await
            .op("prune login failures")?;
        for key in keys {
            sqlx::query(
                "INSERT INTO login_failures (key, failures, window_start) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE SET failures = login_failures.failures + 1",
            )
            .bind(*key)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .op("record login failure")?;
        }
        transaction.commit().await.op("record login failure")
    }

    /// Forgets the failures of `key` (a successful login).
    pub async fn clear_login_failures(&self, key: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .op("clear login failures")?;
        Ok(())
    }

    /// How many rows the table holds, live or not: for tests and operators checking that it
    /// is pruned.
    pub async fn login_failure_rows(&self) -> Result<u64, Error> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM login_failures")
            .fetch_one(&self.pool)
            .await
            .op("count login failures")?;
        to_u64(row.try_get("n").op("n")?, "n")
    }
}
