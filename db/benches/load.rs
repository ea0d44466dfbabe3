//! Bulk load of 1,000 games × 10 versions: how long the first sync writes take, and how long a
//! converged pass's reads (`Db::load_snapshot`) and compare-first no-op upserts take. Printed,
//! not asserted. Runs on SQLite, and on Postgres too when `MIST_TEST_POSTGRES` is set.
//!
//! `cargo bench -p mist-db --bench load` runs the full size; under `cargo test` (no `--bench`
//! argument) it runs a small size as a smoke test.

use std::time::{Duration, Instant};

use mist_db::conditions::{ConditionStatus, ConditionType, ConditionUpdate, ObjectRef};
use mist_db::queue::{NewJob, QueueConfig};
use mist_db::state::{Game, User, VersionSpec};
use mist_db::testing::{self, TestDb};
use mist_db::{Backend, Db};

const T0: i64 = 1_700_000_000_000;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (n_games, n_versions) = if full { (1000, 10) } else { (20, 3) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let test_db = TestDb::sqlite().await;
        run("SQLite", &test_db.db, n_games, n_versions).await;
        test_db.db.close().await;

        match testing::postgres_base_url() {
            Some(base_url) => {
                let test_db = TestDb::postgres(&base_url).await;
                assert_eq!(test_db.db.backend(), Backend::Postgres);
                run("Postgres", &test_db.db, n_games, n_versions).await;
                test_db.db.close().await;
            }
            None => println!("skipping Postgres: MIST_TEST_POSTGRES unset"),
        }
    });
}

async fn run(backend: &str, db: &Db, n_games: usize, n_versions: usize) {
    let games: Vec<Game> = (0..n_games)
        .map(|game_idx| Game {
            name: format!("game-{game_idx:04}"),
            spec_json: format!(
                r#"{{"title":"Game {game_idx}","launch":{{"executable":"game","args":[]}}}}"#
            ),
            suspended: false,
            private: game_idx % 10 == 0,
            grants: vec!["alice".to_owned()],
        })
        .collect();
    let version_specs: Vec<VersionSpec> = games
        .iter()
        .flat_map(|game| {
            (0..n_versions).map(move |version_idx| VersionSpec {
                game: game.name.clone(),
                name: format!("1.{version_idx}"),
                order_index: version_idx as i64,
                source: format!("incoming/{}/1.{version_idx}", game.name),
                pinned_digest: Some(format!("blake3:{version_idx:064x}")),
                spec_json: format!(r#"{{"source":"incoming/{}/1.{version_idx}"}}"#, game.name),
            })
        })
        .collect();
    let users: Vec<User> = (0..50)
        .map(|user_idx| User {
            name: format!("user-{user_idx:02}"),
            display_name: None,
            role: mist_db::state::Role::User,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            disabled: false,
        })
        .collect();

    let started = Instant::now();
    db.upsert_games(&games, T0).await.expect("games");
    db.upsert_version_specs(&version_specs, T0)
        .await
        .expect("versions");
    db.upsert_users(&users, T0).await.expect("users");
    let first_sync = started.elapsed();

    let started = Instant::now();
    let condition_updates: Vec<ConditionUpdate> = version_specs
        .iter()
        .map(|version_spec| ConditionUpdate {
            object: ObjectRef::version(&version_spec.game, &version_spec.name),
            condition_type: ConditionType::Ready,
            status: ConditionStatus::True,
            reason: "Ready".to_owned(),
            message: "Served.".to_owned(),
        })
        .collect();
    db.set_conditions(&condition_updates, T0)
        .await
        .expect("conditions");
    let conditions = started.elapsed();

    let queue = db.queue(QueueConfig::default());
    for job_idx in 0..100 {
        queue
            .enqueue(
                &NewJob {
                    key: format!("warm:{job_idx}"),
                    kind: "warm".to_owned(),
                    game: None,
                    version: None,
                    payload_json: "{}".to_owned(),
                    priority: 0,
                },
                T0,
            )
            .await
            .expect("enqueue");
    }

    let mut snapshot_times = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let snapshot = db.load_snapshot().await.expect("snapshot");
        snapshot_times.push(started.elapsed());
        assert_eq!(snapshot.versions.len(), n_games * n_versions);
        assert_eq!(snapshot.conditions.len(), n_games * n_versions);
    }
    snapshot_times.sort();
    let started = Instant::now();
    let n_changed = db.upsert_games(&games, T0 + 1).await.expect("games")
        + db.upsert_version_specs(&version_specs, T0 + 1)
            .await
            .expect("versions")
        + db.upsert_users(&users, T0 + 1).await.expect("users")
        + db.set_conditions(&condition_updates, T0 + 1)
            .await
            .expect("conditions");
    let no_op_upserts = started.elapsed();
    assert_eq!(n_changed, 0, "a no-op upsert wrote");

    let n_rows = n_games + n_games * n_versions;
    println!(
        "{backend}: {n_games} games × {n_versions} versions ({n_rows} rows + {} users)",
        users.len()
    );
    println!(
        "  first sync (batched upserts, 3 transactions):    {}",
        ms(first_sync)
    );
    println!(
        "  {} conditions (set_conditions, 1 transaction): {}",
        version_specs.len(),
        ms(conditions)
    );
    println!(
        "  load_snapshot (9 queries, 1 transaction):        min {}  median {}  max {}",
        ms(snapshot_times[0]),
        ms(snapshot_times[snapshot_times.len() / 2]),
        ms(snapshot_times[snapshot_times.len() - 1])
    );
    println!(
        "  no-op re-upsert of all rows + conditions:        {}",
        ms(no_op_upserts)
    );
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}
