//! Test databases, for the tests and benchmarks of this crate and the crates above it.
//! Behind the `testing` feature: enable it in `[dev-dependencies]` only.
//!
//! [`TestDb::sqlite`] makes a database in a temp dir; [`TestDb::postgres`] makes a fresh
//! schema `t_<pid>_<nanos>_<n>` on the server named by `MIST_TEST_POSTGRES` (reached through
//! `options=-c search_path=…` in the URL) and drops it when the [`TestDb`] is dropped, even
//! after a panic. [`each_backend`] runs a test on SQLite, then on Postgres when
//! `MIST_TEST_POSTGRES` is set, and otherwise says once, past the output capture, that
//! Postgres was skipped, so a fresh laptop still passes. [`WriteProbe`] tells whether anything
//! was written to a test database, and [`TABLES`] names every table.

use std::future::Future;
use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AnyConnection, Connection, Executor, Row, SqlSafeStr};

use crate::{Backend, Db};

/// The variable that names the Postgres server tests may use, e.g.
/// `postgres://postgres@127.0.0.1:5432/test?sslmode=disable` (`sslmode=disable` makes the
/// runs several times faster: no TLS handshake per connection).
pub const POSTGRES_ENV: &str = "MIST_TEST_POSTGRES";

/// Every table of the schema, in the order of the migrations.
pub const TABLES: [&str; 14] = [
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
    "game_metadata",
    "job_log_lines",
];

/// A database for one test on one backend, removed when dropped.
///
/// `TestDb` implements `Drop`, which matters: a closure such as `|t| async move { t.db… }`
/// captures only the fields it uses, and would otherwise drop the rest (the temp dir!) as soon
/// as it returned the future. A type with `Drop` cannot be taken apart, so `t` is captured
/// whole.
pub struct TestDb {
    /// A read-write handle, migrated.
    pub db: Db,
    /// The URL that opens this database (for Postgres: with the test's schema as search
    /// path), for a second handle or a raw connection.
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[expect(dead_code, reason = "held for its Drop")] tempfile::TempDir),
    Postgres { base_url: String, schema: String },
}

/// The Postgres URL from [`POSTGRES_ENV`], when it is set and not empty.
pub fn postgres_base_url() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.is_empty())
}

/// Runs `test` on SQLite, then on Postgres when [`POSTGRES_ENV`] is set; otherwise says,
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
        None => note_postgres_skipped(),
    }
}

/// Says, once per process and on the real stderr (not through `eprintln!`, which the test
/// harness captures), that the Postgres runs were skipped.
pub fn note_postgres_skipped() {
    static NOTE: Once = Once::new();
    NOTE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "skipping Postgres: {POSTGRES_ENV} unset \
             (e.g. {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)"
        );
    });
}

impl TestDb {
    /// A migrated SQLite database in a new temp dir.
    ///
    /// # Panics
    /// When the temp dir or the database cannot be made: this is for tests.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create temp dir");
        let url = crate::sqlite_url_in(dir.path());
        let db = Db::connect(&url).await.expect("connect to SQLite");
        TestDb {
            db,
            url,
            backend: Backend::Sqlite,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A migrated database in a fresh schema of the Postgres server at `base_url`.
    ///
    /// # Panics
    /// When the server cannot be reached or the schema cannot be made: this is for tests.
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
        crate::install_drivers();
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
            cleanup: Cleanup::Postgres {
                base_url: base_url.to_owned(),
                schema,
            },
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Cleanup::Postgres { base_url, schema } = &self.cleanup else {
            return;
        };
        let base_url = base_url.clone();
        let schema_name = schema.clone();
        // Drop may run inside the test's runtime, which cannot be blocked on; a thread with
        // its own runtime can. This also runs when the test panicked.
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

/// Tells whether anything was written to the database between two calls of
/// [`WriteProbe::marker`].
///
/// SQLite: `PRAGMA data_version` on a connection of its own changes whenever another
/// connection commits a change. Postgres: every row's `xmin` (the transaction that wrote that
/// row version) changes when the row is rewritten, even with equal values. Both also include
/// the change counter (`Db::change_seq`), which must stay put whenever nothing was written.
pub struct WriteProbe {
    connection: AnyConnection,
    backend: Backend,
}

impl WriteProbe {
    /// A probe on a connection of its own to `test_db`.
    ///
    /// # Panics
    /// When the database cannot be reached: this is for tests.
    pub async fn new(test_db: &TestDb) -> WriteProbe {
        let connection = AnyConnection::connect(&test_db.url)
            .await
            .expect("probe connection");
        WriteProbe {
            connection,
            backend: test_db.backend,
        }
    }

    /// A text that changes whenever the database was written since the last call.
    ///
    /// # Panics
    /// When a query fails: this is for tests.
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
