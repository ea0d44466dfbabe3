//! The one place that makes test databases: SQLite in a temp dir, and Postgres in a fresh
//! schema when `MIST_TEST_POSTGRES` is set.

use std::future::Future;
use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mist_db::state::{Artifact, ArtifactKind, Game, Role, User, VersionSpec};
use mist_db::{Backend, Db, EpochMs};
use sqlx::{AnyConnection, Connection, Executor, Row, SqlSafeStr};

/// A fixed "now" for tests; time only moves when a test moves it.
pub const T0: EpochMs = 1_700_000_000_000;

/// A database for one test on one backend, removed when dropped.
///
/// `TestDb` implements `Drop`, which matters: a closure such as `|t| async move { t.db… }`
/// captures only the fields it uses, and would otherwise drop the rest (the temp dir!) as soon
/// as it returned the future. A type with `Drop` cannot be taken apart, so `t` is captured whole.
pub struct TestDb {
    /// A read-write handle, migrated.
    pub db: Db,
    /// The URL that opens this database (for Postgres: with the test's schema as search path).
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    _cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[expect(dead_code, reason = "held for its Drop")] tempfile::TempDir),
    Postgres { base_url: String, schema: String },
}

/// Runs `test` on SQLite, then on Postgres when `MIST_TEST_POSTGRES` is set; otherwise says,
/// once per test binary and past the output capture, that Postgres was skipped.
pub async fn each_backend<F, Fut>(test_name: &str, test: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    println!("{test_name}: SQLite");
    test(TestDb::sqlite().await).await;
    match postgres_base_url() {
        Some(base_url) => {
            println!("{test_name}: Postgres");
            test(TestDb::postgres(&base_url).await).await;
        }
        None => {
            static NOTE: Once = Once::new();
            NOTE.call_once(|| {
                // Written to the real stderr, not through eprintln!, so the test harness's
                // capture does not hide it.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping Postgres: MIST_TEST_POSTGRES unset \
                     (e.g. MIST_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test)"
                );
            });
        }
    }
}

pub fn postgres_base_url() -> Option<String> {
    std::env::var("MIST_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create temp dir");
        let url = mist_db::sqlite_url_in(dir.path());
        let db = Db::connect(&url).await.expect("connect to SQLite");
        TestDb {
            db,
            url,
            backend: Backend::Sqlite,
            _cleanup: Cleanup::Sqlite(dir),
        }
    }

    pub async fn postgres(base_url: &str) -> TestDb {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_nanos();
        let schema = format!(
            "t_{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::any::install_default_drivers();
        let mut connection = AnyConnection::connect(base_url)
            .await
            .expect("connect to MIST_TEST_POSTGRES");
        connection
            .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")).into_sql_str())
            .await
            .expect("create test schema");
        connection.close().await.expect("close");
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");
        let db = Db::connect(&url).await.expect("connect to Postgres");
        TestDb {
            db,
            url,
            backend: Backend::Postgres,
            _cleanup: Cleanup::Postgres {
                base_url: base_url.to_owned(),
                schema,
            },
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Cleanup::Postgres { base_url, schema } = &self._cleanup else {
            return;
        };
        let base_url = base_url.clone();
        let schema_name = schema.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with its
        // own runtime can. This also runs when the test panicked.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut connection = AnyConnection::connect(&base_url).await?;
                connection
                    .execute(
                        sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema_name} CASCADE"))
                            .into_sql_str(),
                    )
                    .await?;
                connection.close().await
            })
        });
        if let Ok(Err(error)) = dropper.join() {
            let _ = writeln!(std::io::stderr(), "could not drop {schema}: {error}");
        }
    }
}

/// Tells whether anything was written to the database between two calls of [`WriteProbe::marker`].
///
/// SQLite: `PRAGMA data_version` on a connection of its own changes whenever another
/// connection commits a change. Postgres: every row's `xmin` (the transaction that wrote that
/// row version) changes when the row is rewritten, even with equal values.
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
                row.try_get::<i64, _>(0).expect("data_version").to_string()
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
