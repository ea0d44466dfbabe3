//! End-to-end tests of the reconciler: real git repositories, a real temp NAS, real builds,
//! SQLite always and Postgres when `MIST_TEST_POSTGRES` is set.

#[path = "../common/mod.rs"]
mod common;

mod checks;
mod logs;
mod metadata;
mod notify;
mod sources;
mod world;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mist_db::Db;
use mist_db::conditions::{ConditionStatus, ConditionType, ObjectRef};
use mist_db::queue::QueueConfig;
use mist_db::state::{VersionObserved, VersionState};
use mist_db::testing::{TestDb, each_backend};
use mist_reconciler::diff::action::Action;
use mist_wire::status::JobState;

use crate::checks::{delta_edges, verify_artifacts};
use crate::world::{GameOptions, World, db_rows, fs_snapshot, poll, status, summary};

/// Three games of three versions and two users, reconciled until idle.
async fn synced(test_db: TestDb) -> World {
    let mut world = World::new(test_db);
    for game in ["alpha", "beta", "gamma"] {
        world.game(game, &GameOptions::default());
        for (n, version) in ["1.0", "1.1", "1.2"].iter().enumerate() {
            world.version(game, version, n as u32);
        }
    }
    world.user("alice");
    world.user("bob");
    world.commit("three games");
    world
        .reconciler()
        .run_until_idle()
        .await
        .expect("reconcile");
    world
}

fn all_ready(lines: &[String]) -> bool {
    lines.iter().all(|line| line.ends_with("Ready Ready"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_makes_every_version_ready() {
    each_backend(
        "first_sync_makes_every_version_ready",
        |test_db| async move {
            let world = synced(test_db).await;
            let report = status(&world).await;
            let lines = summary(&report);
            assert_eq!(lines.len(), 9, "{lines:?}");
            assert!(all_ready(&lines), "{lines:?}");
            assert!(report.errors.is_empty());
            assert!(
                report
                    .queue
                    .iter()
                    .all(|job| job.state != JobState::Running)
            );
            // Manifests, packs, direct deltas and the skip delta, every one re-hashed.
            let n_artifacts = verify_artifacts(&world).await;
            assert_eq!(
                n_artifacts,
                3 * (3 + 3 + 3),
                "3 manifests, 3 packs, 3 deltas per game"
            );
            for game in ["alpha", "beta", "gamma"] {
                assert_eq!(
                    delta_edges(&world, game).await,
                    ["1.0->1.1", "1.0->1.2", "1.1->1.2"]
                );
            }
            let users: Vec<String> = world
                .db()
                .users()
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.name)
                .collect();
            assert_eq!(users, ["alice", "bob"]);
            let commit = world.repo.head().unwrap().target().unwrap().to_string();
            assert_eq!(report.commit.as_deref(), Some(commit.as_str()));
            assert_eq!(
                report.last_applied_revision.as_deref(),
                Some(commit.as_str())
            );
            // Nothing under incoming/ was written: no file but the builds themselves.
            for entry in std::fs::read_dir(world.nas().join("incoming/alpha/1.0")).unwrap() {
                let name = entry.unwrap().file_name();
                assert!(["bin", "data", "readme.txt"].contains(&name.to_str().unwrap()));
            }
            // The status JSON has the documented shape, with full commit ids.
            let json = serde_json::to_value(&report).unwrap();
            for key in [
                "commit",
                "lastAppliedRevision",
                "lastAttemptedRevision",
                "errors",
                "games",
                "queue",
            ] {
                assert!(json.get(key).is_some(), "{key} missing from {json}");
            }
            assert_eq!(json["commit"].as_str().unwrap().len(), 40);
            let version = &json["games"][0]["versions"][0];
            for key in ["name", "ready", "reason", "message", "progress"] {
                assert!(version.get(key).is_some(), "{key} missing from {version}");
            }
            assert_eq!(json["games"][0]["suspended"], false);
            assert_eq!(version["ready"], true);

            // A user removed from the specs is deleted; the others stay.
            let mut world = world;
            world.files.remove("users/bob.yaml");
            world.commit("bob leaves");
            world.reconciler().run_until_idle().await.unwrap();
            let users: Vec<String> = world
                .db()
                .users()
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.name)
                .collect();
            assert_eq!(users, ["alice"]);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_version_commit_gets_its_delta_and_becomes_ready() {
    each_backend(
        "new_version_commit_gets_its_delta_and_becomes_ready",
        |test_db| async move {
            let mut world = synced(test_db).await;
            world.version("alpha", "1.3", 3);
            world.commit("alpha 1.3");
            let reconciler = world.reconciler();
            let report = reconciler.reconcile_once().await.unwrap();
            assert!(
                report.actions.iter().any(
                    |action| matches!(action, Action::Ingest { version, .. } if version == "1.3")
                ),
                "{:?}",
                report.actions
            );
            reconciler.run_until_idle().await.unwrap();
            let lines = summary(&status(&world).await);
            assert!(
                lines.contains(&"alpha/1.3 Ready Ready".to_string()),
                "{lines:?}"
            );
            assert!(all_ready(&lines), "{lines:?}");
            // The direct delta, and warm skip deltas from the two versions before the previous.
            assert_eq!(
                delta_edges(&world, "alpha").await,
                [
                    "1.0->1.1", "1.0->1.2", "1.0->1.3", "1.1->1.2", "1.1->1.3", "1.2->1.3"
                ]
            );
            verify_artifacts(&world).await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_commit_changes_nothing_and_reports_every_error() {
    each_backend("invalid_commit_changes_nothing_and_reports_every_error", |test_db| async move {
        let mut world = synced(test_db).await;
        let good = world.repo.head().unwrap().target().unwrap().to_string();
        let rows_before = db_rows(&world.test_db).await;
        let nas_before = fs_snapshot(&world.nas());
        // A new version (that must not be ingested) and two broken files.
        world.version("alpha", "1.3", 3);
        world.files.insert(
            "games/beta/game.yaml".to_string(),
            "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: beta\nspec:\n  title: beta\n  colour: red\n"
                .to_string(),
        );
        world.files.insert(
            "users/carol.yaml".to_string(),
            "apiVersion: mist/v1\nkind: User\nmetadata:\n  name: carol\nspec:\n  role: user\n".to_string(),
        );
        let nas_with_build = fs_snapshot(&world.nas());
        let bad = world.commit("broken");
        let reconciler = world.reconciler();
        reconciler.run_until_idle().await.unwrap();

        let report = status(&world).await;
        assert_eq!(report.commit.as_deref(), Some(bad.as_str()));
        assert_eq!(report.last_attempted_revision.as_deref(), Some(bad.as_str()));
        assert_eq!(report.last_applied_revision.as_deref(), Some(good.as_str()));
        let files: Vec<&str> = report.errors.iter().filter_map(|e| e.file.as_deref()).collect();
        assert!(files.contains(&"games/beta/game.yaml"), "{:?}", report.errors);
        assert!(files.contains(&"users/carol.yaml"), "{:?}", report.errors);
        assert!(report.errors.iter().all(|e| !e.message.is_empty()));
        assert!(all_ready(&summary(&report)));

        // The state is exactly as it was, but for the sync state, the revision tried, the
        // specs condition and its event (and the change counter, which those writes moved).
        let rows_after = db_rows(&world.test_db).await;
        for (table, rows) in &rows_before {
            if ["sync_state", "revisions", "conditions", "events", "change_seq"]
                .contains(&table.as_str())
            {
                continue;
            }
            assert_eq!(&rows_after[table], rows, "table {table} changed");
        }
        let versions_conditions = |rows: &BTreeMap<String, Vec<String>>| -> Vec<String> {
            rows["conditions"].iter().filter(|r| r.contains("object_kind=Some(\"version\")")).cloned().collect()
        };
        assert_eq!(versions_conditions(&rows_after), versions_conditions(&rows_before));
        assert_eq!(fs_snapshot(&world.nas()), nas_with_build);
        assert!(nas_with_build.len() > nas_before.len());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_version_without_retention_deletes_nothing() {
    each_backend(
        "removing_a_version_without_retention_deletes_nothing",
        |test_db| async move {
            let mut world = synced(test_db).await;
            let artifacts_before = fs_snapshot(&world.nas().join(".mist/artifacts"));
            let artifact_rows = db_rows(&world.test_db).await["artifacts"].clone();
            world.files.remove("games/alpha/versions/1.0.yaml");
            world.files.remove("games/gamma/game.yaml");
            for version in ["1.0", "1.1", "1.2"] {
                world
                    .files
                    .remove(&format!("games/gamma/versions/{version}.yaml"));
            }
            world.commit("drop alpha 1.0 and gamma");
            world.reconciler().run_until_idle().await.unwrap();
            assert_eq!(
                fs_snapshot(&world.nas().join(".mist/artifacts")),
                artifacts_before
            );
            assert_eq!(db_rows(&world.test_db).await["artifacts"], artifact_rows);
            let lines = summary(&status(&world).await);
            assert!(
                lines.contains(&"alpha/1.0 Inactive Retired".to_string()),
                "{lines:?}"
            );
            assert!(
                lines.contains(&"alpha/1.1 Ready Ready".to_string()),
                "{lines:?}"
            );
            assert!(
                lines.contains(&"gamma/1.2 Inactive Retired".to_string()),
                "{lines:?}"
            );
            let row = world.db().version("alpha", "1.0").await.unwrap().unwrap();
            assert_eq!(row.observed.state, VersionState::Retired);
            assert!(row.observed.pack_address.is_some());
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_retiring_every_game_is_held_until_an_admin_confirms_it() {
    each_backend(
        "a_commit_retiring_every_game_is_held_until_an_admin_confirms_it",
        |test_db| async move {
            let mut world = synced(test_db).await;
            let artifacts_before = fs_snapshot(&world.nas().join(".mist/artifacts"));
            // A push to the wrong branch: every game gone, the users kept.
            world.files.retain(|path, _| !path.starts_with("games/"));
            world.commit("the wrong branch");
            world.reconciler().run_until_idle().await.unwrap();
            let lines = summary(&status(&world).await);
            assert_eq!(lines.len(), 9, "{lines:?}");
            assert!(
                lines
                    .iter()
                    .all(|line| line.ends_with("Stalled NeedsConfirmation")),
                "{lines:?}"
            );
            // Still served: the rows stay Ready, nothing is removed.
            let row = world.db().version("gamma", "1.2").await.unwrap().unwrap();
            assert_eq!(row.observed.state, VersionState::Ready);
            assert_eq!(
                fs_snapshot(&world.nas().join(".mist/artifacts")),
                artifacts_before
            );
            let report = status(&world).await;
            let held = &report.games[0].versions[0];
            assert!(held.message.contains("mistpipe confirm-retire"), "{held:?}");

            // The admin confirms with the trailer `mistpipe confirm-retire` writes.
            world.commit(&format!(
                "Confirm retiring\n\n{}\n",
                mist_specs::CONFIRM_RETIRE_TRAILER
            ));
            world.reconciler().run_until_idle().await.unwrap();
            let lines = summary(&status(&world).await);
            assert!(
                lines.iter().all(|line| line.ends_with("Inactive Retired")),
                "{lines:?}"
            );
            let row = world.db().version("gamma", "1.2").await.unwrap().unwrap();
            assert_eq!(row.observed.state, VersionState::Retired);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_only_artifacts() {
    each_backend("retention_prunes_only_artifacts", |test_db| async move {
        let mut world = World::new(test_db);
        world.game("alpha", &GameOptions::default());
        for (n, version) in ["1.0", "1.1", "1.2", "1.3"].iter().enumerate() {
            world.version("alpha", version, n as u32);
        }
        world.commit("four versions");
        world.reconciler().run_until_idle().await.unwrap();
        assert!(all_ready(&summary(&status(&world).await)));
        let incoming_before = fs_snapshot(&world.nas().join("incoming"));
        let mut pruned = Vec::new();
        for version in ["1.0", "1.1"] {
            pruned.push(world.db().version("alpha", version).await.unwrap().unwrap());
        }

        world.game(
            "alpha",
            &GameOptions {
                keep_versions: 2,
                prune: true,
                ..Default::default()
            },
        );
        world.commit("keep two");
        world.reconciler().run_until_idle().await.unwrap();

        let lines = summary(&status(&world).await);
        assert_eq!(
            lines,
            [
                "alpha/1.0 Inactive Pruned",
                "alpha/1.1 Inactive Pruned",
                "alpha/1.2 Ready Ready",
                "alpha/1.3 Ready Ready"
            ]
        );
        // Their manifests and packs are gone from the NAS and the database…
        for row in &pruned {
            for address in [&row.observed.manifest_address, &row.observed.pack_address] {
                let address = address.as_ref().unwrap();
                assert!(
                    world.db().artifact(address).await.unwrap().is_none(),
                    "{address}"
                );
                let hex = &address["blake3:".len()..];
                assert!(
                    !world
                        .nas()
                        .join(".mist/artifacts")
                        .join(&hex[..2])
                        .join(hex)
                        .exists()
                );
            }
        }
        // …as are the deltas touching them; the kept versions' delta is there.
        assert_eq!(delta_edges(&world, "alpha").await, ["1.2->1.3"]);
        // The builds are untouched.
        assert_eq!(fs_snapshot(&world.nas().join("incoming")), incoming_before);
        let row = world.db().version("alpha", "1.0").await.unwrap().unwrap();
        assert_eq!(row.observed.state, VersionState::Retired);
        assert!(
            row.observed.tree_digest.is_some(),
            "the recorded digest is history, kept"
        );
        verify_artifacts(&world).await;

        // With `prune: true`, a version removed from the specs loses its row too.
        world.files.remove("games/alpha/versions/1.0.yaml");
        world.commit("forget 1.0");
        world.reconciler().run_until_idle().await.unwrap();
        assert!(world.db().version("alpha", "1.0").await.unwrap().is_none());
        assert_eq!(fs_snapshot(&world.nas().join("incoming")), incoming_before);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_build_goes_stalled_after_reverification() {
    each_backend(
        "tampered_build_goes_stalled_after_reverification",
        |test_db| async move {
            let mut world = World::new(test_db);
            world.verify_interval = Duration::ZERO;
            world.game("alpha", &GameOptions::default());
            for (n, version) in ["1.0", "1.1", "1.2"].iter().enumerate() {
                world.version("alpha", version, n as u32);
            }
            world.commit("alpha");
            let reconciler = world.reconciler();
            reconciler.run_until_idle().await.unwrap();
            let digest_before = world
                .db()
                .version("alpha", "1.1")
                .await
                .unwrap()
                .unwrap()
                .observed
                .tree_digest;

            let readme = world.build_path("alpha", "1.1").join("readme.txt");
            let original = std::fs::read(&readme).unwrap();
            std::fs::write(&readme, b"tampered\n").unwrap();
            let report = reconciler.reconcile_once().await.unwrap();
            assert!(report.n_verified >= 3, "{report:?}");
            assert!(
                !report
                    .actions
                    .iter()
                    .any(|action| matches!(action, Action::Ingest { .. })),
                "nothing is re-ingested: {:?}",
                report.actions
            );
            reconciler.run_until_idle().await.unwrap();
            let status_report = status(&world).await;
            let lines = summary(&status_report);
            assert_eq!(
                lines,
                [
                    "alpha/1.0 Ready Ready",
                    "alpha/1.1 Stalled DigestMismatch",
                    "alpha/1.2 Ready Ready"
                ]
            );
            let version = &status_report.games[0].versions[1];
            assert!(!version.ready);
            assert!(
                version.message.contains("changed on the NAS"),
                "{}",
                version.message
            );
            let row = world.db().version("alpha", "1.1").await.unwrap().unwrap();
            assert_eq!(row.observed.state, VersionState::Stalled);
            assert_eq!(row.observed.tree_digest, digest_before);
            let events = world
                .db()
                .events_of(&ObjectRef::version("alpha", "1.1"), 10)
                .await
                .unwrap();
            assert!(
                events.iter().any(|e| e.reason == "DriftDetected"),
                "{events:?}"
            );

            // A restart remembers the drift without re-scanning first.
            let mut world_again = world;
            world_again.verify_interval = Duration::from_secs(3600);
            let restarted = world_again.reconciler();
            restarted.reconcile_once().await.unwrap();
            assert_eq!(
                summary(&status(&world_again).await)[1],
                "alpha/1.1 Stalled DigestMismatch"
            );

            // Restoring the build heals it at the next re-scan.
            std::fs::write(&readme, original).unwrap();
            reconciler.run_until_idle().await.unwrap();
            assert!(all_ready(&summary(&status(&world_again).await)));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_source_is_rebuilt_by_chain_replay() {
    each_backend(
        "removed_source_is_rebuilt_by_chain_replay",
        |test_db| async move {
            let mut world = World::new(test_db);
            world.game("alpha", &GameOptions::default());
            for (n, version) in ["1.0", "1.1", "1.2"].iter().enumerate() {
                world.version("alpha", version, n as u32);
            }
            world.commit("alpha");
            world.reconciler().run_until_idle().await.unwrap();
            // 1.1's build leaves the NAS; 1.3 arrives and wants a skip delta from 1.1.
            std::fs::remove_dir_all(world.build_path("alpha", "1.1")).unwrap();
            world.version("alpha", "1.3", 3);
            world.commit("alpha 1.3");
            world.reconciler().run_until_idle().await.unwrap();
            let lines = summary(&status(&world).await);
            assert!(all_ready(&lines), "{lines:?}");
            assert!(
                delta_edges(&world, "alpha")
                    .await
                    .contains(&"1.1->1.3".to_string())
            );
            let events = world
                .db()
                .events_of(&ObjectRef::version("alpha", "1.1"), 20)
                .await
                .unwrap();
            assert!(
                events
                    .iter()
                    .any(|e| e.reason == "Replayed" && e.message.contains("from 1.0")),
                "{events:?}"
            );
            assert!(
                !world.build_path("alpha", "1.1").exists(),
                "the build is not recreated"
            );
            verify_artifacts(&world).await;

            // The skip delta really turns 1.1 into 1.3: apply it to 1.1 unpacked from its pack.
            let snapshot = world.db().load_snapshot().await.unwrap();
            let store = world.nas().join(".mist/artifacts");
            let path_of = |address: &str| {
                store.join(
                    &snapshot
                        .artifacts
                        .iter()
                        .find(|a| a.address == address)
                        .unwrap()
                        .path,
                )
            };
            let v11 = world.db().version("alpha", "1.1").await.unwrap().unwrap();
            let manifest: mist_games::manifest::Manifest = serde_json::from_slice(
                &std::fs::read(path_of(v11.observed.manifest_address.as_deref().unwrap())).unwrap(),
            )
            .unwrap();
            let tmp = tempfile::tempdir().unwrap();
            let old = tmp.path().join("1.1");
            mist_games::pack::read::unpack(
                std::fs::File::open(path_of(v11.observed.pack_address.as_deref().unwrap()))
                    .unwrap(),
                &manifest,
                &old,
            )
            .unwrap();
            let delta = world
                .db()
                .deltas_of("alpha")
                .await
                .unwrap()
                .into_iter()
                .find(|d| d.from_version == "1.1" && d.to_version == "1.3")
                .unwrap();
            let package =
                mist_games::treedelta::package::Package::open(&path_of(&delta.address)).unwrap();
            let new = tmp.path().join("1.3");
            mist_games::treedelta::apply::apply_to_dir(
                &old,
                &manifest,
                &package,
                &new,
                &Default::default(),
            )
            .unwrap();
            let want = mist_games::scan::scan(&world.build_path("alpha", "1.3")).unwrap();
            assert_eq!(
                mist_games::scan::scan(&new).unwrap().tree_digest(),
                want.tree_digest()
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_game_is_left_untouched() {
    each_backend("suspended_game_is_left_untouched", |test_db| async move {
        let mut world = synced(test_db).await;
        let game_rows =
            |rows: &BTreeMap<String, Vec<String>>, table: &str, needle: &str| -> Vec<String> {
                rows[table]
                    .iter()
                    .filter(|r| r.contains(needle))
                    .cloned()
                    .collect()
            };
        let before = db_rows(&world.test_db).await;
        world.game(
            "alpha",
            &GameOptions {
                suspend: true,
                keep_versions: 1,
                prune: true,
            },
        );
        world.version("alpha", "1.3", 3);
        world.files.remove("games/alpha/versions/1.0.yaml");
        world.version("beta", "1.3", 3);
        world.commit("suspend alpha");
        world.reconciler().run_until_idle().await.unwrap();
        let after = db_rows(&world.test_db).await;
        assert_eq!(
            game_rows(&after, "versions", "game=Some(\"alpha\")"),
            game_rows(&before, "versions", "game=Some(\"alpha\")")
        );
        assert_eq!(
            game_rows(&after, "deltas", "game=Some(\"alpha\")"),
            game_rows(&before, "deltas", "game=Some(\"alpha\")")
        );
        assert_eq!(
            game_rows(&after, "conditions", "\"alpha/"),
            game_rows(&before, "conditions", "\"alpha/")
        );
        assert!(world.db().version("alpha", "1.3").await.unwrap().is_none());
        let report = status(&world).await;
        let alpha = report.games.iter().find(|g| g.name == "alpha").unwrap();
        assert!(alpha.suspended);
        assert_eq!(alpha.versions.len(), 3);
        assert!(summary(&report).contains(&"beta/1.3 Ready Ready".to_string()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converged_pass_writes_nothing() {
    each_backend("converged_pass_writes_nothing", |test_db| async move {
        let world = synced(test_db).await;
        let rows_before = db_rows(&world.test_db).await;
        let nas_before = fs_snapshot(&world.nas());
        // A fresh process (nothing remembered) and the one that did the work.
        for reconciler in [world.reconciler(), world.reconciler()] {
            let report = reconciler.reconcile_once().await.unwrap();
            let report_again = reconciler.reconcile_once().await.unwrap();
            assert!(report_again.is_converged(), "{report_again:?}");
            assert_eq!(report_again.n_writes, 0);
            assert!(report.actions.is_empty(), "{report:?}");
            // A new process reads the database; the pass after it, with nothing committed in
            // between and nothing changed on the NAS, works from the same snapshot and finds
            // the same converged outcome.
            assert!(!report.snapshot_reused);
            assert!(report_again.snapshot_reused && report_again.converged_reused);
        }
        // Every row of every table, the change counter included, and the NAS are unchanged.
        assert_eq!(db_rows(&world.test_db).await, rows_before);
        assert_eq!(fs_snapshot(&world.nas()), nas_before);
    })
    .await;
}

/// A pass reuses the previous pass's database snapshot only while nothing was committed,
/// and the outcome of a converged pass only while nothing it read changed: whatever another
/// process (or an admin's SQL) changes in the database between two passes, or whatever goes
/// missing on the NAS, the second one sees, and puts right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_by_another_writer_is_seen_by_the_next_pass() {
    each_backend(
        "a_change_by_another_writer_is_seen_by_the_next_pass",
        |test_db| async move {
            let world = synced(test_db).await;
            let reconciler = world.reconciler();
            reconciler.reconcile_once().await.unwrap();
            let report = reconciler.reconcile_once().await.unwrap();
            assert!(
                report.snapshot_reused && report.is_converged(),
                "{report:?}"
            );
            assert!(report.converged_reused, "{report:?}");

            // Another handle, with its own connections, as another process would have.
            let other = Db::connect(&world.test_db.url).await.unwrap();
            let object = ObjectRef::version("beta", "1.1");
            other
                .set_condition(
                    &object,
                    ConditionType::Ready,
                    ConditionStatus::False,
                    "Tampered",
                    "changed behind the reconciler's back",
                    mist_db_now(),
                )
                .await
                .unwrap();
            let row = other.version("beta", "1.1").await.unwrap().unwrap();
            let stalled = VersionObserved {
                state: VersionState::Stalled,
                ..row.observed
            };
            other
                .set_version_observed("beta", "1.1", &stalled, mist_db_now())
                .await
                .unwrap();
            let report = reconciler.reconcile_once().await.unwrap();
            assert!(!report.snapshot_reused, "{report:?}");
            // The condition, the row's state and a `Ready` event.
            assert_eq!(report.n_writes, 3, "{report:?}");
            assert!(all_ready(&summary(&status(&world).await)));
            let row = world.db().version("beta", "1.1").await.unwrap().unwrap();
            assert_eq!(row.observed.state, VersionState::Ready);

            // The pass's own writes are read back by the next pass, which finds nothing to do;
            // the one after it reuses that snapshot.
            let report = reconciler.reconcile_once().await.unwrap();
            assert!(
                !report.snapshot_reused && report.is_converged(),
                "{report:?}"
            );
            let rows_before = db_rows(&world.test_db).await;
            let report = reconciler.reconcile_once().await.unwrap();
            assert!(
                report.snapshot_reused && report.is_converged(),
                "{report:?}"
            );
            assert!(report.converged_reused, "{report:?}");
            assert_eq!(db_rows(&world.test_db).await, rows_before);

            // The NAS is looked at on every pass: a pack gone while the database stays the same
            // is seen at once, and made again.
            let row = world.db().version("gamma", "1.2").await.unwrap().unwrap();
            let pack = row.observed.pack_address.unwrap();
            let artifact = world.db().artifact(&pack).await.unwrap().unwrap();
            std::fs::remove_file(world.nas().join(".mist/artifacts").join(&artifact.path)).unwrap();
            let report = reconciler.reconcile_once().await.unwrap();
            assert!(
                report.snapshot_reused && !report.converged_reused,
                "{report:?}"
            );
            assert_eq!(report.n_requeued, 1, "{report:?}");
            reconciler.run_until_idle().await.unwrap();
            assert!(all_ready(&summary(&status(&world).await)));

            // A write outside mist-db's methods (an admin's SQL) is seen too: a deleted user is
            // published again.
            sqlx::query("DELETE FROM users WHERE name = 'alice'")
                .execute(other.pool())
                .await
                .unwrap();
            let report = reconciler.reconcile_once().await.unwrap();
            assert!(!report.snapshot_reused, "{report:?}");
            assert_eq!(report.n_writes, 1, "{report:?}");
            assert!(world.db().user("alice").await.unwrap().is_some());
            other.close().await;
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_keys_dedupe_work() {
    each_backend("job_keys_dedupe_work", |test_db| async move {
        let mut world = World::new(test_db);
        world.game("alpha", &GameOptions::default());
        world.version("alpha", "1.0", 0);
        world.version("alpha", "1.1", 1);
        // A second game with byte-identical builds: its packs and delta are linked, not made.
        world.game("twin", &GameOptions::default());
        world.version_with("twin", "1.0", 0, "alpha", None);
        world.version_with("twin", "1.1", 1, "alpha", None);
        world.commit("alpha and its twin");
        let reconciler = world.reconciler();
        let first = reconciler.reconcile_once().await.unwrap();
        let second = reconciler.reconcile_once().await.unwrap();
        assert_eq!(first.n_enqueued, 4);
        assert_eq!(second.n_enqueued, 0, "{second:?}");
        let queue = world.db().queue(QueueConfig::default());
        let mut keys: Vec<String> = queue
            .unfinished()
            .await
            .unwrap()
            .into_iter()
            .map(|job| job.key)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "ingest:alpha:1.0:incoming/alpha/1.0:-",
                "ingest:alpha:1.1:incoming/alpha/1.1:-",
                "ingest:twin:1.0:incoming/twin/1.0:-",
                "ingest:twin:1.1:incoming/twin/1.1:-",
            ]
        );
        reconciler.run_until_idle().await.unwrap();
        assert!(all_ready(&summary(&status(&world).await)));
        let snapshot = world.db().load_snapshot().await.unwrap();
        let n_packs = snapshot
            .artifacts
            .iter()
            .filter(|a| a.kind == mist_db::state::ArtifactKind::Pack)
            .count();
        let n_deltas = snapshot
            .artifacts
            .iter()
            .filter(|a| a.kind == mist_db::state::ArtifactKind::Delta)
            .count();
        assert_eq!(
            (n_packs, n_deltas),
            (2, 1),
            "identical content is built once"
        );
        assert_eq!(snapshot.deltas.len(), 2, "both games have the edge");
        let alpha = world.db().version("alpha", "1.1").await.unwrap().unwrap();
        let twin = world.db().version("twin", "1.1").await.unwrap().unwrap();
        assert_eq!(alpha.observed.pack_address, twin.observed.pack_address);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_back_off_and_terminal_ones_wait_for_a_spec_change() {
    each_backend(
        "retryable_failures_back_off_and_terminal_ones_wait_for_a_spec_change",
        |test_db| async move {
            let mut world = World::new(test_db);
            world.game("alpha", &GameOptions::default());
            world.version("alpha", "1.0", 0);
            world.commit("alpha");
            // No temporary folder can be made: every artifact write fails.
            let tmp = world.nas().join(".mist/tmp");
            std::fs::create_dir_all(world.nas().join(".mist")).unwrap();
            std::fs::write(&tmp, b"in the way").unwrap();
            let reconciler = world
                .reconciler()
                .with_backoff(Duration::from_millis(300), Duration::from_secs(1));
            let started = mist_db_now();
            reconciler.run_until_idle().await.unwrap();
            let report = status(&world).await;
            let job = &report.queue[0];
            assert_eq!((job.state.as_str(), job.attempts), ("failed", 1), "{job:?}");
            assert!(job.next_attempt_at > started && job.next_attempt_at <= mist_db_now() + 300);
            let version = &report.games[0].versions[0];
            assert_eq!(version.reason, "Ingesting");
            assert!(version.message.contains("retrying"), "{}", version.message);
            // Still failing: the next attempt comes later, and the delay grows.
            let first_retry = job.next_attempt_at;
            poll(Duration::from_secs(20), "the second attempt", || async {
                reconciler.run_until_idle().await.unwrap();
                let report = status(&world).await;
                (report.queue[0].attempts >= 2).then_some(())
            })
            .await;
            let report = status(&world).await;
            assert!(report.queue[0].next_attempt_at - first_retry >= 300);
            // Fixed: it succeeds after the backoff.
            std::fs::remove_file(&tmp).unwrap();
            std::fs::create_dir(&tmp).unwrap();
            poll(Duration::from_secs(20), "all versions ready", || async {
                reconciler.run_until_idle().await.unwrap();
                all_ready(&summary(&status(&world).await)).then_some(())
            })
            .await;

            // A wrong pin fails terminally and waits for a spec change.
            world.version_with(
                "alpha",
                "1.1",
                1,
                "alpha",
                Some(&format!("blake3:{}", "0".repeat(64))),
            );
            world.commit("alpha 1.1 with a wrong pin");
            reconciler.run_until_idle().await.unwrap();
            let report = status(&world).await;
            assert_eq!(
                summary(&report)[1],
                "alpha/1.1 Stalled PinnedDigestMismatch"
            );
            assert!(
                report
                    .queue
                    .iter()
                    .any(|job| job.state == JobState::Terminal)
            );
            let again = reconciler.reconcile_once().await.unwrap();
            assert_eq!(
                again.n_enqueued + again.n_requeued,
                0,
                "terminal work is not retried"
            );
            // The right pin is a new key: ingested and ready.
            let digest = mist_games::scan::scan(&world.build_path("alpha", "1.1"))
                .unwrap()
                .tree_digest()
                .to_string();
            world.declare_version("alpha", "1.1", Some(&digest));
            world.commit("alpha 1.1 with the right pin");
            reconciler.run_until_idle().await.unwrap();
            assert!(all_ready(&summary(&status(&world).await)));
        },
    )
    .await;
}

fn mist_db_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reacts_to_commits_and_shuts_down_gracefully() {
    each_backend(
        "run_reacts_to_commits_and_shuts_down_gracefully",
        |test_db| async move {
            let mut world = World::new(test_db);
            world.game("alpha", &GameOptions::default());
            world.version("alpha", "1.0", 0);
            world.version("alpha", "1.1", 1);
            world.commit("alpha");
            let reconciler = Arc::new(world.reconciler());
            let (stop, running) = world::spawn_run(&reconciler);
            poll(Duration::from_secs(60), "the first sync", || async {
                let lines = summary(&status(&world).await);
                (lines.len() == 2 && all_ready(&lines)).then_some(())
            })
            .await;
            // A commit is picked up by the ref watcher, without any call.
            world.version("alpha", "1.2", 2);
            world.commit("alpha 1.2");
            poll(Duration::from_secs(60), "1.2 to be ready", || async {
                let lines = summary(&status(&world).await);
                (lines.len() == 3 && all_ready(&lines)).then_some(())
            })
            .await;
            // Shut down while a bigger build is being worked on.
            let big = world.build_path("alpha", "2.0");
            world::write_build(&big, "alpha", 4);
            std::fs::write(big.join("data/big.bin"), vec![7u8; 24 << 20]).unwrap();
            world.declare_version("alpha", "2.0", None);
            world.commit("alpha 2.0");
            poll(Duration::from_secs(60), "a job to run", || async {
                let report = status(&world).await;
                report
                    .queue
                    .iter()
                    .any(|job| job.state == JobState::Running)
                    .then_some(())
            })
            .await;
            let shutdown_started = std::time::Instant::now();
            stop.send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(12), running)
                .await
                .expect("shut down within 10 s")
                .unwrap()
                .unwrap();
            assert!(shutdown_started.elapsed() < Duration::from_secs(11));
            let report = status(&world).await;
            assert!(
                report
                    .queue
                    .iter()
                    .all(|job| job.state != JobState::Running),
                "every job finished or was released: {:?}",
                report.queue
            );
            // A later run picks up where it stopped.
            reconciler.run_until_idle().await.unwrap();
            assert!(all_ready(&summary(&status(&world).await)));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_copied_after_its_spec_is_ingested_without_waiting_for_the_resync() {
    each_backend(
        "a_build_copied_after_its_spec_is_ingested_without_waiting_for_the_resync",
        |test_db| async move {
            let mut world = World::new(test_db);
            world.game("alpha", &GameOptions::default());
            world.declare_version("alpha", "1.0", None);
            world.commit("alpha 1.0, before its build is copied");
            let mut config = world.config();
            config.resync = Duration::from_secs(3600);
            let reconciler = Arc::new(
                mist_reconciler::reconciler::Reconciler::new(config, world.db().clone()).unwrap(),
            );
            let (stop, running) = world::spawn_run(&reconciler);
            poll(Duration::from_secs(60), "the first pass", || async {
                let lines = summary(&status(&world).await);
                (lines == ["alpha/1.0 Stalled SourceMissing"]).then_some(())
            })
            .await;
            // The copy lands in incoming/ after the commit: the watcher, not the hour-long
            // resync, starts the pass that ingests it.
            let copied = std::time::Instant::now();
            world::write_build(&world.build_path("alpha", "1.0"), "alpha", 0);
            poll(Duration::from_secs(5), "1.0 to be ready", || async {
                all_ready(&summary(&status(&world).await)).then_some(())
            })
            .await;
            assert!(copied.elapsed() < Duration::from_secs(5));
            stop.send(()).unwrap();
            running.await.unwrap().unwrap();
        },
    )
    .await;
}
