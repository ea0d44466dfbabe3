//! The prune job: a version's artifacts (and its row) deleted by the retention policy; never
//! its build.

use mist_db::conditions::{ObjectRef, Severity};
use mist_db::joblog::LogLevel;
use mist_db::state::{Delta, VersionObserved, VersionState};

use super::error::{ActionError, retry};
use super::run::{Run, blocking};

impl Run {
    /// Deletes a version's artifacts (and its row when `remove`). Never touches its build.
    #[tracing::instrument(skip(self))]
    pub(super) async fn prune(
        &self,
        game: &str,
        version: &str,
        remove: bool,
    ) -> Result<(), ActionError> {
        let db = &self.ctx.db;
        let Some(row) = db.version(game, version).await.map_err(retry)? else {
            return Ok(());
        };
        let deltas: Vec<Delta> = db
            .deltas_of(game)
            .await
            .map_err(retry)?
            .into_iter()
            .filter(|delta| delta.from_version == version || delta.to_version == version)
            .collect();
        let mut addresses: Vec<String> = deltas.iter().map(|delta| delta.address.clone()).collect();
        addresses.extend(row.observed.manifest_address.clone());
        addresses.extend(row.observed.pack_address.clone());
        self.progress.stage(0, "prune", addresses.len() as u64);
        self.log(
            LogLevel::Info,
            format!(
                "pruning {version}: {} and {} to remove{}",
                mist_platform::units::count(deltas.len() as u64, "delta"),
                mist_platform::units::count(addresses.len() as u64, "artifact"),
                if remove { ", and its record" } else { "" }
            ),
        );
        for delta in &deltas {
            db.delete_delta(game, &delta.from_version, &delta.to_version)
                .await
                .map_err(retry)?;
        }
        {
            let _rows = self.ctx.rows.lock().await;
            if remove {
                db.delete_version(game, version).await.map_err(retry)?;
                db.delete_conditions(&ObjectRef::version(game, version))
                    .await
                    .map_err(retry)?;
            } else if let Some(row) = db.version(game, version).await.map_err(retry)? {
                let observed = VersionObserved {
                    manifest_address: None,
                    pack_address: None,
                    state: VersionState::Retired,
                    ..row.observed
                };
                db.set_version_observed(game, version, &observed, self.now())
                    .await
                    .map_err(retry)?;
            }
        }
        let mut n_removed = 0;
        for (address_idx, address) in addresses.iter().enumerate() {
            // The row goes first: a crash in between leaves an orphan file, never a row
            // pointing at nothing. A row still referred to (identical content elsewhere)
            // stays, and so does its file.
            match db.delete_artifact(address).await {
                Ok(true) => {
                    let store = self.ctx.store.clone();
                    let address = address.clone();
                    n_removed +=
                        usize::from(blocking(move || store.remove(&address).map_err(retry)).await?);
                }
                Ok(false) => {}
                Err(error) if is_foreign_key_violation(&error) => {}
                Err(error) => return Err(retry(error)),
            }
            self.progress
                .set(address_idx as u64 + 1, addresses.len() as u64);
        }
        self.log(
            LogLevel::Info,
            format!(
                "removed {} from the NAS; files still used by other versions stay",
                mist_platform::units::count(n_removed as u64, "artifact file")
            ),
        );
        self.event(
            &ObjectRef::game(game),
            Severity::Normal,
            "Pruned",
            &format!(
                "pruned {version}: {n_removed} artifact files removed{}",
                if remove { ", and its record" } else { "" }
            ),
        )
        .await;
        Ok(())
    }
}

/// Whether a database error is a foreign-key violation (the row is still referred to).
pub(crate) fn is_foreign_key_violation(error: &mist_db::Error) -> bool {
    let mist_db::Error::Query { source, .. } = error else {
        return false;
    };
    match source {
        sqlx::Error::Database(database_error) => {
            database_error.kind() == sqlx::error::ErrorKind::ForeignKeyViolation
                || database_error.message().contains("FOREIGN KEY")
                || database_error.code().as_deref() == Some("23503")
        }
        _ => false,
    }
}
