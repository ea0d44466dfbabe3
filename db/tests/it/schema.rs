//! Connecting, migrations and the read-only handle.

use mist_db::conditions::{ConditionStatus, ConditionType, ObjectRef, Severity};
use mist_db::queue::{NewJob, QueueConfig};
use mist_db::state::{SyncState, VersionObserved, VersionState};
use mist_db::testing::{TestDb, each_backend};
use mist_db::{Backend, Db, Error};
use sqlx::Row;

use crate::common::{T0, game, user, version_spec};

#[tokio::test]
async fn migrations_apply_twice_idempotently() {
    each_backend("migrations_apply_twice_idempotently", |t| async move {
        t.db.upsert_game(&game("celeste"), T0).await.unwrap();

        // Again on the same handle, and through a second connect (which migrates too).
        t.db.migrate().await.unwrap();
        let second = Db::connect(&t.url).await.unwrap();
        second.migrate().await.unwrap();

        let row = sqlx::query("SELECT COUNT(*) AS n, MAX(version) AS v FROM _sqlx_migrations")
            .fetch_one(second.pool())
            .await
            .unwrap();
        assert_eq!(row.try_get::<i64, _>("n").unwrap(), 6);
        assert_eq!(row.try_get::<i64, _>("v").unwrap(), 7);
        // Data survived.
        assert_eq!(second.games().await.unwrap(), vec![game("celeste")]);
        second.close().await;
    })
    .await;
}

#[tokio::test]
async fn read_only_handle_refuses_writes() {
    each_backend("read_only_handle_refuses_writes", |t| async move {
        t.db.upsert_game(&game("celeste"), T0).await.unwrap();
        t.db.upsert_version_specs(&[version_spec("celeste", "1.0", 0)], T0)
            .await
            .unwrap();
        t.db.upsert_users(&[user("alice")], T0).await.unwrap();

        let read_only = Db::connect_read_only(&t.url).await.unwrap();
        assert!(read_only.is_read_only());

        // Reads work.
        assert_eq!(read_only.games().await.unwrap(), vec![game("celeste")]);
        assert_eq!(read_only.user("alice").await.unwrap(), Some(user("alice")));
        assert_eq!(read_only.load_snapshot().await.unwrap().versions.len(), 1);

        // Every kind of write fails, and nothing changes.
        let mut changed = game("celeste");
        changed.suspended = true;
        assert_query_error(read_only.upsert_game(&changed, T0 + 1).await);
        assert_query_error(read_only.upsert_games(&[game("other")], T0 + 1).await);
        assert_query_error(
            read_only
                .upsert_version_specs(&[version_spec("celeste", "2.0", 1)], T0 + 1)
                .await,
        );
        assert_query_error(
            read_only
                .set_version_observed(
                    "celeste",
                    "1.0",
                    &VersionObserved {
                        tree_digest: None,
                        manifest_address: None,
                        pack_address: None,
                        state: VersionState::Stalled,
                    },
                    T0 + 1,
                )
                .await,
        );
        assert_query_error(read_only.delete_user("alice").await);
        assert_query_error(
            read_only
                .set_sync_state(
                    &SyncState {
                        observed_commit: Some("abc".to_owned()),
                        ..SyncState::default()
                    },
                    T0 + 1,
                )
                .await,
        );
        let object = ObjectRef::game("celeste");
        assert_query_error(
            read_only
                .set_condition(
                    &object,
                    ConditionType::Ready,
                    ConditionStatus::True,
                    "Ready",
                    "",
                    T0,
                )
                .await,
        );
        assert_query_error(
            read_only
                .record_event(&object, Severity::Normal, "Tried", "", T0, 10)
                .await,
        );
        let queue = read_only.queue(QueueConfig::default());
        assert_query_error(
            queue
                .enqueue(
                    &NewJob {
                        key: "k".to_owned(),
                        kind: "ingest".to_owned(),
                        game: None,
                        version: None,
                        payload_json: "{}".to_owned(),
                        priority: 0,
                    },
                    T0,
                )
                .await,
        );

        assert_eq!(t.db.games().await.unwrap(), vec![game("celeste")]);
        assert_eq!(t.db.users().await.unwrap(), vec![user("alice")]);
        assert_eq!(t.db.sync_state().await.unwrap(), SyncState::default());
        read_only.close().await;

        // The API may start while the reconciler is down (on SQLite: no -wal or -shm file
        // left behind); it still reads, and still cannot write.
        t.db.close().await;
        let read_only = Db::connect_read_only(&t.url).await.unwrap();
        assert_eq!(read_only.games().await.unwrap(), vec![game("celeste")]);
        assert_query_error(read_only.upsert_game(&game("other"), T0).await);
        read_only.close().await;
    })
    .await;
}

fn assert_query_error<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::Query { .. }) => {}
        other => panic!("expected the write to fail, got {other:?}"),
    }
}

#[tokio::test]
async fn read_only_handle_requires_a_migrated_schema() {
    // SQLite: a database file that exists but was never migrated.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mist.db");
    std::fs::File::create(&path).unwrap();
    let url = format!("sqlite://{}", path.display());
    match Db::connect_read_only(&url).await {
        Err(Error::SchemaVersion {
            found: None,
            expected: 7,
            ..
        }) => {}
        other => panic!("expected a schema version error, got {other:?}"),
    }
    // A missing file is a connect error, not a silently created database.
    let missing = format!("sqlite://{}", dir.path().join("missing.db").display());
    assert!(matches!(
        Db::connect_read_only(&missing).await,
        Err(Error::Connect { .. })
    ));

    each_backend(
        "read_only_handle_requires_a_migrated_schema",
        |t| async move {
            // A migrated database passes the check on both backends.
            let read_only = Db::connect_read_only(&t.url).await.unwrap();
            assert_eq!(read_only.backend(), t.backend);
            read_only.close().await;
        },
    )
    .await;
}

#[tokio::test]
async fn sqlite_uses_wal_and_foreign_keys() {
    let t = TestDb::sqlite().await;
    let row = sqlx::query("PRAGMA journal_mode")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>(0).unwrap(), "wal");
    let row = sqlx::query("PRAGMA foreign_keys")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert_eq!(row.try_get::<i64, _>(0).unwrap(), 1);
    let row = sqlx::query("PRAGMA busy_timeout")
        .fetch_one(t.db.pool())
        .await
        .unwrap();
    assert!(row.try_get::<i64, _>(0).unwrap() >= 5000);
}

#[tokio::test]
async fn urls() {
    assert_eq!(Backend::from_url("sqlite://x.db").unwrap(), Backend::Sqlite);
    assert_eq!(
        Backend::from_url("postgres://u@h/db").unwrap(),
        Backend::Postgres
    );
    assert_eq!(
        Backend::from_url("postgresql://u@h/db").unwrap(),
        Backend::Postgres
    );
    let error = Db::connect("mysql://root:hunter2@host/db")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::UnsupportedUrl { .. }));
    assert!(!error.to_string().contains("hunter2"), "{error}");

    assert_eq!(
        mist_db::redact_url("postgres://mist:s3cret@db.lan:5432/mist?sslmode=require"),
        "postgres://mist:***@db.lan:5432/mist?sslmode=require"
    );
    assert_eq!(
        mist_db::redact_url("postgres://mist@db.lan/mist"),
        "postgres://mist@db.lan/mist"
    );
    assert_eq!(
        mist_db::redact_url("sqlite:///data/mist.db?mode=rwc"),
        "sqlite:///data/mist.db?mode=rwc"
    );

    // A refused connection names the server without the password.
    let error = Db::connect("postgres://mist:s3cret@127.0.0.1:1/mist")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(!format!("{error}").contains("s3cret"), "{error}");

    // Awkward characters in a data directory survive the URL.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("odd ?#% name");
    std::fs::create_dir(&data_dir).unwrap();
    let db = Db::connect(&mist_db::sqlite_url_in(&data_dir))
        .await
        .unwrap();
    db.close().await;
    assert!(data_dir.join("mist.db").exists());
}
