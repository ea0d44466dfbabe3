//! Users as the specs declare them, with the password hash the API checks at login.

use super::{User, user_columns, user_from_record};
use crate::{Db, EpochMs, Error, QueryContext};

impl Db {
    /// Inserts or updates users in one transaction; returns how many rows changed.
    pub async fn upsert_users(&self, users: &[User], now: EpochMs) -> Result<usize, Error> {
        let mut transaction = self.begin_write("upsert users").await?;
        let mut n_changed = 0;
        for user in users {
            let result = sqlx::query(
                "INSERT INTO users (name, display_name, role, password_hash, disabled, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name, \
                 role = excluded.role, password_hash = excluded.password_hash, \
                 disabled = excluded.disabled, updated_at = excluded.updated_at \
                 WHERE users.display_name IS DISTINCT FROM excluded.display_name \
                 OR users.role IS DISTINCT FROM excluded.role \
                 OR users.password_hash IS DISTINCT FROM excluded.password_hash \
                 OR users.disabled IS DISTINCT FROM excluded.disabled",
            )
            .bind(&user.name)
            .bind(&user.display_name)
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .bind(user.disabled)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .op("upsert user")?;
            n_changed += usize::from(result.rows_affected() > 0);
        }
        transaction.commit().await.op("upsert users")?;
        Ok(n_changed)
    }

    /// One user by login name, for the API's login.
    pub async fn user(&self, name: &str) -> Result<Option<User>, Error> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .op("read user")?
        .map(|row| user_from_record(&row))
        .transpose()
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await
        .op("list users")?;
        rows.iter().map(|row| user_from_record(row)).collect()
    }

    /// Deletes a user (removed from the specs: they can no longer log in); returns whether
    /// they existed.
    pub async fn delete_user(&self, name: &str) -> Result<bool, Error> {
        let result = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .op("delete user")?;
        Ok(result.rows_affected() > 0)
    }
}
