//! Helpers for the tests of this crate: a write probe and small rows. The test databases
//! themselves (SQLite in a temp dir, Postgres in a fresh schema when `MIST_TEST_POSTGRES` is
//! set) come from `mist_db::testing`, shared with the crates above.

use mist_db::state::{Artifact, ArtifactKind, Game, Role, User, VersionSpec};
use mist_db::testing::TestDb;
use mist_db::{Backend, EpochMs};
use sqlx::{AnyConnection, Connection, Row};

/// A fixed "now" for tests; time only moves when a test moves it.
pub const T0: EpochMs = 1_700_000_000_000;

/// Tells whether anything was written to the database between two calls of [`WriteProbe::marker`].
///
/// SQLite: `PRAGMA data_version` on a connection of its own changes whenever another
/// connection commits a change. Postgres: every row's `xmin` (the transaction that wrote that
/// row version) changes when the row is rewritten, even with equal values. Both also include
/// the change counter (`Db::change_seq`), which must stay put whenever nothing was written.
pub struct WriteProbe {
    connection: AnyConnection,
    backend: Backend,
}

const TABLES: &[&str] = &[
    "sync_state",
    "revisions",
    "games",
    "artifacts",
    "versions",
    "deltas",
    "users",
    "jobs",
    "queue_lock",
    "conditions",
    "events",
    "change_seq",
];

impl WriteProbe {
    pub async fn new(test_db: &TestDb) -> WriteProbe {
        let connection = AnyConnection::connect(&test_db.url)
            .await
            .expect("probe connection");
        WriteProbe {
            connection,
            backend: test_db.backend,
        }
    }

    pub async fn marker(&mut self) -> String {
        match self.backend {
            Backend::Sqlite => {
                let row = sqlx::query("PRAGMA data_version")
                    .fetch_one(&mut self.connection)
                    .await
                    .expect("data_version");
                let data_version = row.try_get::<i64, _>(0).expect("data_version");
                let row = sqlx::query("SELECT seq FROM change_seq")
                    .fetch_one(&mut self.connection)
                    .await
                    .expect("change_seq");
                let change_seq = row.try_get::<i64, _>(0).expect("change_seq");
                format!("data_version {data_version} change_seq {change_seq}")
            }
            Backend::Postgres => {
                let mut marker = String::new();
                for table in TABLES {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT xmin::text AS x FROM {table} ORDER BY xmin::text"
                    )))
                    .fetch_all(&mut self.connection)
                    .await
                    .expect("xmin");
                    marker.push_str(table);
                    for row in rows {
                        marker.push(' ');
                        marker.push_str(&row.try_get::<String, _>("x").expect("xmin"));
                    }
                    marker.push('\n');
                }
                marker
            }
        }
    }
}

pub fn game(name: &str) -> Game {
    Game {
        name: name.to_owned(),
        spec_json: format!(r#"{{"title":"{name}"}}"#),
        suspended: false,
        private: false,
        grants: Vec::new(),
    }
}

pub fn version_spec(game: &str, name: &str, order_index: i64) -> VersionSpec {
    VersionSpec {
        game: game.to_owned(),
        name: name.to_owned(),
        order_index,
        source: format!("incoming/{game}/{name}"),
        pinned_digest: None,
        spec_json: format!(r#"{{"source":"incoming/{game}/{name}"}}"#),
    }
}

pub fn user(name: &str) -> User {
    User {
        name: name.to_owned(),
        display_name: Some(name.to_uppercase()),
        role: Role::User,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
        disabled: false,
    }
}

/// A well-formed content address derived from a small number.
pub fn address(n: u32) -> String {
    format!("blake3:{n:064x}")
}

pub fn artifact(n: u32, kind: ArtifactKind) -> Artifact {
    Artifact {
        address: address(n),
        kind,
        size: u64::from(n) * 1000,
        path: format!("artifacts/{n:064x}"),
        created_at: T0,
        verified_at: Some(T0),
    }
}
