//! The bulk snapshot a reconcile pass reads.

use std::time::Duration;

use mist_db::queue::QueueConfig;
use mist_db::state::{ArtifactKind, Delta, SyncState, VersionObserved, VersionState};
use mist_db::status::{ConditionStatus, ConditionType, ObjectRef};

use crate::common::{T0, address, artifact, each_backend, game, user, version_spec};

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
