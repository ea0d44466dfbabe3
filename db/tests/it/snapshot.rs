//! The bulk snapshot a reconcile pass reads.

use std::time::Duration;

use mist_db::Db;
use mist_db::conditions::{ConditionStatus, ConditionType, ObjectRef, Severity};
use mist_db::queue::QueueConfig;
use mist_db::state::{ArtifactKind, Delta, SyncState, VersionObserved, VersionState};
use mist_db::testing::each_backend;

use crate::common::{T0, address, artifact, game, user, version_spec};

#[tokio::test]
async fn snapshot_holds_everything_a_pass_compares() {
    each_backend(
        "snapshot_holds_everything_a_pass_compares",
        |t| async move {
            let db = &t.db;
            let empty = db.load_snapshot().await.unwrap();
            assert_eq!(empty.sync_state, SyncState::default());
            assert!(empty.games.is_empty() && empty.versions.is_empty() && empty.jobs.is_empty());

            let games: Vec<_> = (0..5).map(|n| game(&format!("game-{n}"))).collect();
            db.upsert_games(&games, T0).await.unwrap();
            let mut version_specs = Vec::new();
            for game in &games {
                for n in (0..3).rev() {
                    version_specs.push(version_spec(&game.name, &format!("1.{n}"), n));
                }
            }
            db.upsert_version_specs(&version_specs, T0).await.unwrap();
            db.upsert_users(&[user("bob"), user("alice")], T0)
                .await
                .unwrap();
            db.record_artifact(&artifact(1, ArtifactKind::Manifest))
                .await
                .unwrap();
            db.record_artifact(&artifact(2, ArtifactKind::Delta))
                .await
                .unwrap();
            let observed = VersionObserved {
                tree_digest: Some(address(100)),
                manifest_address: Some(address(1)),
                pack_address: None,
                state: VersionState::Ingested,
            };
            db.set_version_observed("game-0", "1.0", &observed, T0)
                .await
                .unwrap();
            let delta = Delta {
                game: "game-0".to_owned(),
                from_version: "1.0".to_owned(),
                to_version: "1.1".to_owned(),
                address: address(2),
            };
            db.upsert_delta(&delta, T0).await.unwrap();
            db.set_condition(
                &ObjectRef::version("game-0", "1.0"),
                ConditionType::Ready,
                ConditionStatus::False,
                "Packing",
                "Packing 1.0.",
                T0,
            )
            .await
            .unwrap();
            let sync_state = SyncState {
                observed_commit: Some("f".repeat(40)),
                last_attempted_commit: Some("f".repeat(40)),
                last_applied_commit: Some("f".repeat(40)),
            };
            db.set_sync_state(&sync_state, T0).await.unwrap();
            let queue = db.queue(QueueConfig::default());
            for key in ["pack:game-0:1.0", "done-job"] {
                queue
                    .enqueue(
                        &mist_db::queue::NewJob {
                            key: key.to_owned(),
                            kind: "pack".to_owned(),
                            game: Some("game-0".to_owned()),
                            version: Some("1.0".to_owned()),
                            payload_json: "{}".to_owned(),
                            priority: 0,
                        },
                        T0,
                    )
                    .await
                    .unwrap();
            }
            let claimed = queue
                .claim("w", T0, Duration::from_secs(30))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(claimed.key, "done-job");
            queue.complete("done-job", "w", T0).await.unwrap();

            let snapshot = db.load_snapshot().await.unwrap();
            assert_eq!(snapshot.sync_state, sync_state);
            assert_eq!(snapshot.games, games);
            assert_eq!(snapshot.versions.len(), 15);
            // By game, then version order.
            let first: Vec<_> = snapshot.versions[..3]
                .iter()
                .map(|v| (v.spec.game.as_str(), v.spec.name.as_str()))
                .collect();
            assert_eq!(
                first,
                [("game-0", "1.0"), ("game-0", "1.1"), ("game-0", "1.2")]
            );
            assert_eq!(snapshot.versions[0].observed, observed);
            let users: Vec<_> = snapshot.users.iter().map(|u| u.name.as_str()).collect();
            assert_eq!(users, ["alice", "bob"]);
            assert_eq!(snapshot.artifacts.len(), 2);
            assert_eq!(snapshot.deltas, vec![delta]);
            assert_eq!(snapshot.conditions.len(), 1);
            assert_eq!(snapshot.conditions[0].reason, "Packing");
            let jobs: Vec<_> = snapshot.jobs.iter().map(|j| j.key.as_str()).collect();
            assert_eq!(jobs, ["pack:game-0:1.0"], "done jobs are left out");
            assert_eq!(snapshot.jobs, queue.unfinished().await.unwrap());
        },
    )
    .await;
}

#[tokio::test]
async fn snapshot_decodes_awkward_values_like_single_reads() {
    // On SQLite the snapshot goes through JSON; it must agree with the row reads exactly.
    each_backend(
        "snapshot_decodes_awkward_values_like_single_reads",
        |t| async move {
            let db = &t.db;
            let mut odd = game("odd");
            odd.spec_json =
                r#"{"title":"Ça \"marche\" – 日本語 \\ \n 🎮","n":12345678901234}"#.to_owned();
            odd.grants = vec![
                "o'brien".to_owned(),
                "\"quoted\"".to_owned(),
                "tab\there".to_owned(),
            ];
            odd.private = true;
            odd.suspended = true;
            db.upsert_games(&[odd, game("plain")], T0).await.unwrap();
            let mut spec = version_spec("odd", "1.0-β", i64::MAX);
            spec.pinned_digest = Some(address(1));
            db.upsert_version_specs(&[spec, version_spec("odd", "0", i64::MIN)], T0)
                .await
                .unwrap();
            let mut nobody = user("nobody");
            nobody.display_name = None;
            nobody.disabled = true;
            db.upsert_users(&[nobody, user("émile")], T0).await.unwrap();
            let mut big = artifact(2, ArtifactKind::Pack);
            big.size = i64::MAX as u64;
            big.verified_at = None;
            db.record_artifact(&big).await.unwrap();
            let object = ObjectRef::version("odd", "1.0-β");
            db.set_condition(
                &object,
                ConditionType::Stalled,
                ConditionStatus::True,
                "DigestMismatch",
                "The build at incoming/odd/1.0-β no longer matches \"blake3:…\".",
                -1,
            )
            .await
            .unwrap();
            let queue = db.queue(QueueConfig::default());
            queue
                .enqueue(
                    &mist_db::queue::NewJob {
                        key: "ingest:odd:1.0-β".to_owned(),
                        kind: "ingest".to_owned(),
                        game: None,
                        version: None,
                        payload_json: r#"{"path":"a\\b"}"#.to_owned(),
                        priority: i32::MIN,
                    },
                    T0,
                )
                .await
                .unwrap();

            let snapshot = db.load_snapshot().await.unwrap();
            assert_eq!(snapshot.games, db.games().await.unwrap());
            let mut versions = db.versions_of("odd").await.unwrap();
            versions.extend(db.versions_of("plain").await.unwrap());
            assert_eq!(snapshot.versions, versions);
            assert_eq!(snapshot.versions[0].spec.order_index, i64::MIN);
            assert_eq!(snapshot.users, db.users().await.unwrap());
            assert_eq!(snapshot.artifacts, vec![big]);
            assert_eq!(
                snapshot.conditions,
                db.conditions_of(&object).await.unwrap()
            );
            assert_eq!(snapshot.jobs, queue.unfinished().await.unwrap());
            assert_eq!(snapshot.jobs[0].priority, i32::MIN);
        },
    )
    .await;
}

#[tokio::test]
async fn change_seq_moves_on_every_committed_write_and_only_then() {
    each_backend(
        "change_seq_moves_on_every_committed_write_and_only_then",
        |t| async move {
            let db = &t.db;
            // Another handle (its own pool, as another process would have) and a read-only one.
            let other = Db::connect(&t.url).await.unwrap();
            let read_only = Db::connect_read_only(&t.url).await.unwrap();
            let mut seq = db.change_seq().await.unwrap();
            assert_eq!(db.load_snapshot().await.unwrap().change_seq, seq);
            // Asserts whether the counter moved since the last call, on every handle alike.
            let mut check = async |what: &str, moved: bool| {
                let now = db.change_seq().await.unwrap();
                assert_eq!(other.change_seq().await.unwrap(), now, "{what}");
                assert_eq!(read_only.change_seq().await.unwrap(), now, "{what}");
                assert_eq!(now > seq, moved, "{what}: {seq} -> {now}");
                assert!(now >= seq, "{what}: the counter went back");
                seq = now;
            };

            db.upsert_games(&[game("alpha"), game("beta")], T0)
                .await
                .unwrap();
            check("games inserted", true).await;
            db.upsert_games(&[game("alpha"), game("beta")], T0 + 1)
                .await
                .unwrap();
            check("the same games again (compare-first, no write)", false).await;
            let mut changed = game("alpha");
            changed.suspended = true;
            other.upsert_game(&changed, T0 + 2).await.unwrap();
            check("a game changed through another handle", true).await;
            db.upsert_version_specs(&[version_spec("alpha", "1.0", 0)], T0)
                .await
                .unwrap();
            check("a version inserted", true).await;
            db.set_version_observed(
                "alpha",
                "1.0",
                &VersionObserved {
                    tree_digest: Some(address(9)),
                    manifest_address: None,
                    pack_address: None,
                    state: VersionState::Ingested,
                },
                T0,
            )
            .await
            .unwrap();
            check("a version observed", true).await;
            db.record_artifact(&artifact(1, ArtifactKind::Pack))
                .await
                .unwrap();
            check("an artifact recorded", true).await;
            db.record_artifact(&artifact(1, ArtifactKind::Pack))
                .await
                .unwrap();
            check("the same artifact again", false).await;
            let object = ObjectRef::version("alpha", "1.0");
            for (reason, moved) in [("Ingesting", true), ("Ingesting", false), ("Ready", true)] {
                db.set_condition(
                    &object,
                    ConditionType::Ready,
                    ConditionStatus::False,
                    reason,
                    "",
                    T0,
                )
                .await
                .unwrap();
                check(&format!("condition {reason}"), moved).await;
            }
            db.record_event(&object, Severity::Normal, "Ready", "", T0, 1)
                .await
                .unwrap();
            check("an event", true).await;

            let queue = other.queue(QueueConfig::default());
            let claimed = queue.claim("w", T0, Duration::from_secs(30)).await.unwrap();
            assert!(claimed.is_none());
            check("claiming from an empty queue", false).await;
            let new_job = mist_db::queue::NewJob {
                key: "pack:x".to_owned(),
                kind: "pack".to_owned(),
                game: None,
                version: None,
                payload_json: "{}".to_owned(),
                priority: 0,
            };
            queue.enqueue(&new_job, T0).await.unwrap();
            check("a job queued", true).await;
            queue.enqueue(&new_job, T0).await.unwrap();
            check("the same job again", false).await;
            queue
                .claim("w", T0, Duration::from_secs(30))
                .await
                .unwrap()
                .unwrap();
            check("a job claimed", true).await;
            queue.complete("pack:x", "w", T0 + 1).await.unwrap();
            check("a job finished", true).await;
            assert_eq!(queue.recover_expired_leases(T0 + 60_000).await.unwrap(), 0);
            check("no lease to recover", false).await;

            // A write made outside this crate's methods moves it too (the triggers are in the
            // schema), and one rolled back does not.
            let mut transaction = db.pool().begin().await.unwrap();
            sqlx::query("UPDATE games SET spec_json = '{}' WHERE name = 'beta'")
                .execute(&mut *transaction)
                .await
                .unwrap();
            transaction.rollback().await.unwrap();
            check("a rolled back update", false).await;
            sqlx::query("UPDATE games SET spec_json = '{}' WHERE name = 'beta'")
                .execute(other.pool())
                .await
                .unwrap();
            check("a raw update", true).await;
            sqlx::query("DELETE FROM events")
                .execute(db.pool())
                .await
                .unwrap();
            check("a raw delete", true).await;

            // The snapshot carries the counter it was read at.
            assert_eq!(db.load_snapshot().await.unwrap().change_seq, seq);
            other.close().await;
            read_only.close().await;
        },
    )
    .await;
}
