//! Mist's database: desired and observed state, status, events and the durable job queue.
//!
//! The principal type in this crate is [`Db`], a handle to one database — SQLite (a file in
//! `--data`, the default) or Postgres (`--db postgres://…`) — through sqlx's `Any` driver, so
//! one binary serves both with the same queries. [`Db::connect`] opens it read-write and applies
//! the embedded migrations; [`Db::connect_read_only`] is what the API uses: every write through
//! it fails.
//!
//! What lives where:
//! - [`state`]: the spec-derived rows (games, versions, users), what the reconciler observed
//!   (recorded digests, content-addressed [`state::Artifact`]s, deltas) and the revisions seen.
//! - [`conditions`]: conditions (`Ready`, `Reconciling`, `Stalled`) and a bounded event history
//!   per object.
//! - [`metadata`]: what the catalog shows of a game beyond its spec: store metadata pulled
//!   from Steam, the latest fetch's outcome, and the header images in the artifact store.
//! - [`logins`]: failed logins counted per limited key, shared by every API replica.
//! - [`outbox`]: the notification outbox, written in the same transaction as the state change
//!   that causes a notification, and each delivery to each sink.
//! - [`queue`]: the durable job [`queue::Queue`] with content-derived keys, a concurrency cap,
//!   leases, backoff, terminal errors and forward-only progress.
//! - [`joblog`]: each job's bounded log of what it did (lines with a time and a level), kept
//!   with the job and deleted with it.
//! - [`snapshot`]: [`Db::load_snapshot`] reads everything a reconcile pass compares against in
//!   a handful of queries; [`Db::change_seq`] tells, in one tiny query, whether anything was
//!   committed since.
//! - `testing` (feature `testing`, for dev-dependencies): per-test databases, SQLite in a temp
//!   dir and Postgres in a fresh schema.
//!
//! Conventions: every time is an [`EpochMs`] passed in by the caller (tests control time without
//! sleeping); JSON is stored as text; every write that could be a no-op compares first and
//! writes nothing when nothing changed, so a converged reconcile pass leaves the database
//! untouched. The schema and the reasons behind it are in `docs/db.md`.
#![deny(missing_docs)]

pub mod conditions;
pub mod joblog;
pub mod logins;
pub mod metadata;
pub mod outbox;
pub mod queue;
pub mod read;
pub mod snapshot;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
mod writer;

pub use writer::WriterError;

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Executor, Row, SqlSafeStr, Transaction};

/// Milliseconds since the Unix epoch. All times in the database are stored this way.
pub type EpochMs = i64;

/// A handle to the Mist database. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    read_only: bool,
    /// SQLite, [`Db::connect`]: this process's claim on the file (`writer`), kept while any
    /// clone lives.
    _writer: Option<std::sync::Arc<writer::WriterLock>>,
}

/// Which database engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file, opened in WAL mode.
    Sqlite,
    /// A Postgres server.
    Postgres,
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL names neither SQLite nor Postgres.
    #[error("unsupported database url '{url}': expected sqlite://PATH or postgres://…")]
    UnsupportedUrl {
        /// The URL, with any password replaced by `***`.
        url: String,
    },
    /// Another process holds the SQLite database ([`Db::connect`]), or its lock file
    /// cannot be used.
    #[error(transparent)]
    Writer(#[from] writer::WriterError),
    /// Connecting failed.
    #[error("failed to connect to {url}")]
    Connect {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("failed to apply migrations to {url}")]
    Migrate {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A read-only handle found a database whose schema is not the one this binary expects.
    #[error(
        "database at {url} has schema version {found:?}, this binary expects {expected} \
         (start the reconciler once to migrate it)"
    )]
    SchemaVersion {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The newest applied migration, or `None` when the schema is missing.
        found: Option<i64>,
        /// The newest embedded migration.
        expected: i64,
    },
    /// A query failed.
    #[error("database operation '{operation}' failed")]
    Query {
        /// What was being done, e.g. `upsert game`.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A stored value does not fit the Rust type (e.g. an unknown enum text).
    #[error("column '{column}' holds an invalid value '{value}'")]
    InvalidValue {
        /// The column.
        column: &'static str,
        /// The offending value, as text.
        value: String,
    },
    /// A number does not fit the database's signed 64-bit integers.
    #[error("{what} value {value} does not fit in a signed 64-bit integer")]
    OutOfRange {
        /// What the number is.
        what: &'static str,
        /// The number.
        value: u64,
    },
    /// A JSON value could not be encoded or decoded.
    #[error("invalid JSON in '{column}'")]
    Json {
        /// The column.
        column: &'static str,
        /// The serde_json error.
        #[source]
        source: serde_json::Error,
    },
    /// An artifact with this address is already recorded with different facts. Since the
    /// address is the digest of the bytes, this means a bug or a corrupted store.
    #[error("artifact {address} is already recorded as {existing}, not {new}")]
    ArtifactConflict {
        /// The content address.
        address: String,
        /// The recorded kind and size.
        existing: String,
        /// The kind and size that were offered.
        new: String,
    },
    /// A job is not running under this owner's lease any more: it finished, was released, or
    /// its lease expired and it was recovered. The caller must stop working on it.
    #[error("job '{key}' is not running under lease owner '{owner}'")]
    LeaseLost {
        /// The job key.
        key: String,
        /// The owner that tried to act on it.
        owner: String,
    },
    /// A progress report with `done > total`.
    #[error("invalid progress for job '{key}': done {done} is more than total {total}")]
    InvalidProgress {
        /// The job key.
        key: String,
        /// Units done.
        done: u64,
        /// Units in total.
        total: u64,
    },
}

impl Backend {
    /// The backend a URL names: `sqlite:` or `postgres:`/`postgresql:`.
    pub fn from_url(url: &str) -> Result<Backend, Error> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(Error::UnsupportedUrl {
                url: redact_url(url),
            })
        }
    }
}

/// The URL of the default SQLite database file inside a data directory, created if missing
/// (`mode=rwc`). The directory itself must exist.
pub fn sqlite_url_in(data_dir: &Path) -> String {
    let path = data_dir.join("mist.db");
    let mut encoded = String::new();
    for c in path.to_string_lossy().chars() {
        // sqlx percent-decodes the file name, so these three must be escaped.
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    format!("sqlite://{encoded}?mode=rwc")
}

/// A URL with the password (if any) replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &userinfo[..colon],
        &url[authority_start + at..]
    )
}

/// Pool size for SQLite: one writer at a time anyway, a few readers alongside it.
const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// Pool size for Postgres: workers (the concurrency cap), the reconciler and the API.
const POSTGRES_MAX_CONNECTIONS: u32 = 16;
/// How long an SQLite statement waits for the write lock before failing with `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Db {
    /// Opens the database read-write, creating the SQLite file when the URL says `mode=rwc`,
    /// and applies any pending migrations.
    ///
    /// SQLite connections use WAL (readers never block the writer), `synchronous = NORMAL`
    /// (durable across a process crash; a power cut may lose the last transactions, which the
    /// level-triggered reconciler redoes), a busy timeout and foreign keys. One process at a
    /// time may hold an SQLite database read-write ([`WriterError::InUse`] for the next one), for as
    /// long as any clone of the handle lives.
    pub async fn connect(url: &str) -> Result<Db, Error> {
        let db = Db::open(url, false, true).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Opens the database for reading only; every write through this handle fails.
    ///
    /// SQLite is opened with `mode=ro` (any `mode` in the URL is replaced); Postgres sessions
    /// run `SET default_transaction_read_only = on` as they connect. No migration is applied:
    /// instead the schema version is checked and [`Error::SchemaVersion`] returned when it is
    /// not the one this binary was built with.
    pub async fn connect_read_only(url: &str) -> Result<Db, Error> {
        let db = Db::open(url, true, false).await?;
        db.check_schema_version(url).await?;
        Ok(db)
    }

    /// Opens the database read-write without applying migrations, and checks the schema
    /// version like [`Db::connect_read_only`]. For the `api` role, whose only writes are the
    /// failed-login counts ([`logins`]): the reconciler migrates.
    /// It takes no writer lock: on SQLite it may run beside the reconciler's process.
    pub async fn connect_unmigrated(url: &str) -> Result<Db, Error> {
        let db = Db::open(url, false, false).await?;
        db.check_schema_version(url).await?;
        Ok(db)
    }

    /// `sole_writer`: on SQLite, claim the file for this process (`writer`).
    async fn open(url: &str, read_only: bool, sole_writer: bool) -> Result<Db, Error> {
        install_drivers();
        let backend = Backend::from_url(url)?;
        let connect_error = |source| Error::Connect {
            url: redact_url(url),
            source,
        };
        let url = match (backend, read_only) {
            (Backend::Sqlite, true) => sqlite_url_with_mode(url, "ro"),
            _ => url.to_owned(),
        };
        // Before anything is opened, so that a second process neither migrates nor writes.
        let writer = match backend {
            Backend::Sqlite if sole_writer && !read_only => writer::lock(&url)?,
            _ => None,
        };
        let connect_options: AnyConnectOptions = url.parse().map_err(connect_error)?;
        let connect_options = connect_options.disable_statement_logging();
        let pool_options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        // One lone connection first: it fails fast when the server or file is not there (the
        // pool would keep retrying until its acquire timeout), and on SQLite it switches the
        // file to WAL. The journal mode is stored in the file, and switching it needs an
        // exclusive lock that the busy timeout does not wait for, so it is done once here
        // rather than from every pooled connection.
        let mut connection = connect_options.connect().await.map_err(connect_error)?;
        if backend == Backend::Sqlite && !read_only {
            connection
                .execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(connect_error)?;
        }
        connection.close().await.map_err(connect_error)?;
        let pool = match backend {
            Backend::Sqlite => pool_options
                .max_connections(SQLITE_MAX_CONNECTIONS)
                .after_connect(|connection, _metadata| {
                    Box::pin(async move {
                        let pragmas = sqlx::AssertSqlSafe(format!(
                            "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; \
                                 PRAGMA synchronous = NORMAL;",
                            SQLITE_BUSY_TIMEOUT.as_millis()
                        ));
                        connection.execute(pragmas.into_sql_str()).await?;
                        Ok(())
                    })
                })
                .connect_with(connect_options)
                .await
                .map_err(connect_error)?,
            Backend::Postgres => {
                let pool_options = pool_options.max_connections(POSTGRES_MAX_CONNECTIONS);
                let pool_options = if read_only {
                    pool_options.after_connect(|connection, _metadata| {
                        Box::pin(async move {
                            connection
                                .execute("SET default_transaction_read_only = on")
                                .await?;
                            Ok(())
                        })
                    })
                } else {
                    pool_options
                };
                pool_options
                    .connect_with(connect_options)
                    .await
                    .map_err(connect_error)?
            }
        };
        Ok(Db {
            pool,
            backend,
            read_only,
            _writer: writer,
        })
    }

    /// Applies the embedded migrations that are not applied yet. Safe to run any number of
    /// times. On Postgres the migrator takes an advisory lock, so several processes may start
    /// at once; SQLite has no such lock, so there only one process (the reconciler) should
    /// open the database read-write while a migration is pending.
    pub async fn migrate(&self) -> Result<(), Error> {
        let migrator = migrator(self.backend);
        migrator
            .run(&self.pool)
            .await
            .map_err(|source| Error::Migrate {
                url: self.describe(),
                source,
            })
    }

    async fn check_schema_version(&self, url: &str) -> Result<(), Error> {
        let expected = migrator(self.backend)
            .iter()
            .map(|migration| migration.version)
            .max()
            .unwrap_or(0);
        // A missing table is an error on both backends; treat it as "no schema".
        let found = sqlx::query("SELECT MAX(version) AS version FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await
            .ok()
            .and_then(|row| row.try_get::<Option<i64>, _>("version").ok().flatten());
        if found == Some(expected) {
            Ok(())
        } else {
            Err(Error::SchemaVersion {
                url: redact_url(url),
                found,
                expected,
            })
        }
    }

    /// The engine behind this handle.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether this handle was opened with [`Db::connect_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The underlying pool, for tools and tests that need a query this crate does not offer
    /// (for example snapshotting every row to prove a pass wrote nothing).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection; pending queries finish first.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn describe(&self) -> String {
        match self.backend {
            Backend::Sqlite => "the SQLite database".to_owned(),
            Backend::Postgres => "the Postgres database".to_owned(),
        }
    }

    /// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`, which takes the
    /// write lock up front (waiting for it with the busy timeout): a deferred transaction that
    /// reads and then writes can fail with `SQLITE_BUSY` at once when another connection wrote
    /// in between.
    pub(crate) async fn begin_write(
        &self,
        operation: &'static str,
    ) -> Result<Transaction<'static, Any>, Error> {
        let transaction = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        transaction.op(operation)
    }
}

fn install_drivers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(sqlx::any::install_default_drivers);
}

/// Replaces (or adds) the `mode` parameter of an SQLite URL.
fn sqlite_url_with_mode(url: &str, mode: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|param| !param.is_empty() && !param.starts_with("mode="))
        .collect();
    let mode_param = format!("mode={mode}");
    params.push(&mode_param);
    format!("{base}?{}", params.join("&"))
}

/// The migrations, embedded at compile time. They are listed by hand rather than with
/// `sqlx::migrate!` because that macro needs sqlx's `macros` feature, which the stack leaves
/// out; the checksums are the same either way.
fn migrator(backend: Backend) -> Migrator {
    let sources: &[(i64, &str, &'static str)] = match backend {
        Backend::Sqlite => &[
            (
                1,
                "initial",
                include_str!("../migrations/sqlite/0001_initial.sql"),
            ),
            (
                2,
                "change seq",
                include_str!("../migrations/sqlite/0002_change_seq.sql"),
            ),
            (
                3,
                "notifications",
                include_str!("../migrations/sqlite/0003_notifications.sql"),
            ),
            (
                4,
                "game metadata",
                include_str!("../migrations/sqlite/0004_game_metadata.sql"),
            ),
            (
                5,
                "job logs",
                include_str!("../migrations/sqlite/0005_job_logs.sql"),
            ),
            (
                7,
                "login failures",
                include_str!("../migrations/sqlite/0007_login_failures.sql"),
            ),
        ],
        Backend::Postgres => &[
            (
                1,
                "initial",
                include_str!("../migrations/postgres/0001_initial.sql"),
            ),
            (
                2,
                "change seq",
                include_str!("../migrations/postgres/0002_change_seq.sql"),
            ),
            (
                3,
                "notifications",
                include_str!("../migrations/postgres/0003_notifications.sql"),
            ),
            (
                4,
                "game metadata",
                include_str!("../migrations/postgres/0004_game_metadata.sql"),
            ),
            (
                5,
                "job logs",
                include_str!("../migrations/postgres/0005_job_logs.sql"),
            ),
            (
                7,
                "login failures",
                include_str!("../migrations/postgres/0007_login_failures.sql"),
            ),
        ],
    };
    Migrator::with_migrations(
        sources
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Attaches the operation's name to a driver error.
pub(crate) trait QueryContext<T> {
    fn op(self, operation: &'static str) -> Result<T, Error>;
}

impl<T> QueryContext<T> for Result<T, sqlx::Error> {
    fn op(self, operation: &'static str) -> Result<T, Error> {
        self.map_err(|source| Error::Query { operation, source })
    }
}

/// Reads a column, naming it in the error.
pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &'static str) -> Result<T, Error>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(column).op(column)
}

/// One row being decoded, by column position: either a row from the driver, or one element
/// of a JSON array of rows (how [`Db::load_snapshot`] reads big tables from SQLite, because it
/// is several times faster than one driver row per table row). Each decoder sits next to the
/// column list it reads, and the column name is only for error messages.
pub(crate) trait Record {
    fn text(&self, idx: usize, column: &'static str) -> Result<String, Error>;
    fn opt_text(&self, idx: usize, column: &'static str) -> Result<Option<String>, Error>;
    fn int(&self, idx: usize, column: &'static str) -> Result<i64, Error>;
    fn opt_int(&self, idx: usize, column: &'static str) -> Result<Option<i64>, Error>;
    /// Postgres has `BOOLEAN`; SQLite stores 0 or 1.
    fn boolean(&self, idx: usize, column: &'static str) -> Result<bool, Error>;
}

impl Record for AnyRow {
    fn text(&self, idx: usize, column: &'static str) -> Result<String, Error> {
        self.try_get(idx).op(column)
    }

    fn opt_text(&self, idx: usize, column: &'static str) -> Result<Option<String>, Error> {
        self.try_get(idx).op(column)
    }

    fn int(&self, idx: usize, column: &'static str) -> Result<i64, Error> {
        self.try_get(idx).op(column)
    }

    fn opt_int(&self, idx: usize, column: &'static str) -> Result<Option<i64>, Error> {
        self.try_get(idx).op(column)
    }

    fn boolean(&self, idx: usize, column: &'static str) -> Result<bool, Error> {
        match self.try_get::<i64, _>(idx) {
            Ok(value) => Ok(value != 0),
            Err(_) => self.try_get(idx).op(column),
        }
    }
}

/// One row of a JSON array of rows (`[[col0, col1, …], …]`).
pub(crate) struct JsonRecord<'a>(pub(crate) &'a [serde_json::Value]);

impl JsonRecord<'_> {
    fn value(&self, idx: usize, column: &'static str) -> Result<&serde_json::Value, Error> {
        self.0.get(idx).ok_or(Error::InvalidValue {
            column,
            value: "<missing>".to_owned(),
        })
    }

    fn invalid(value: &serde_json::Value, column: &'static str) -> Error {
        Error::InvalidValue {
            column,
            value: value.to_string(),
        }
    }
}

impl Record for JsonRecord<'_> {
    fn text(&self, idx: usize, column: &'static str) -> Result<String, Error> {
        let value = self.value(idx, column)?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| JsonRecord::invalid(value, column))
    }

    fn opt_text(&self, idx: usize, column: &'static str) -> Result<Option<String>, Error> {
        match self.value(idx, column)? {
            serde_json::Value::Null => Ok(None),
            _ => self.text(idx, column).map(Some),
        }
    }

    fn int(&self, idx: usize, column: &'static str) -> Result<i64, Error> {
        let value = self.value(idx, column)?;
        value
            .as_i64()
            .ok_or_else(|| JsonRecord::invalid(value, column))
    }

    fn opt_int(&self, idx: usize, column: &'static str) -> Result<Option<i64>, Error> {
        match self.value(idx, column)? {
            serde_json::Value::Null => Ok(None),
            _ => self.int(idx, column).map(Some),
        }
    }

    fn boolean(&self, idx: usize, column: &'static str) -> Result<bool, Error> {
        match self.value(idx, column)? {
            serde_json::Value::Bool(value) => Ok(*value),
            value => value
                .as_i64()
                .map(|n| n != 0)
                .ok_or_else(|| JsonRecord::invalid(value, column)),
        }
    }
}

/// Converts an unsigned count to the database's `BIGINT`.
pub(crate) fn to_i64(value: u64, what: &'static str) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::OutOfRange { what, value })
}

/// Converts a stored `BIGINT` that must not be negative.
pub(crate) fn to_u64(value: i64, column: &'static str) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::InvalidValue {
        column,
        value: value.to_string(),
    })
}

/// Declares a text-backed enum stored in a `CHECK`ed column, with its SQL spelling.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($column:literal) {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// The value as stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// Parses the stored value.
            pub fn parse(text: &str) -> Result<$name, $crate::Error> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::Error::InvalidValue {
                        column: $column,
                        value: text.to_owned(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;
