//! Games, versions, users, artifacts, deltas, revisions and the sync state.

use mist_db::Error;
use mist_db::conditions::{ConditionStatus, ConditionType, ObjectRef};
use mist_db::state::{
    ArtifactKind, Delta, Outcome, Revision, Role, SyncState, VersionObserved, VersionState,
    is_content_address,
};
use mist_db::testing::{WriteProbe, each_backend};
use sqlx::Row;

use crate::common::{T0, address, artifact, game, user, version_spec};

fn sync_state(commit: &str) -> SyncState {
    SyncState {
        observed_commit: Some(commit.to_owned()),
        last_attempted_commit: Some(commit.to_owned()),
        last_applied_commit: Some(commit.to_owned()),
    }
}

fn ingested(manifest: u32, pack: Option<u32>, state: VersionState) -> VersionObserved {
    VersionObserved {
        tree_digest: Some(address(manifest + 1_000_000)),
        manifest_address: Some(address(manifest)),
        pack_address: pack.map(address),
        state,
    }
}

#[tokio::test]
async fn upsert_without_change_writes_nothing() {
    each_backend("upsert_without_change_writes_nothing", |t| async move {
        let db = &t.db;
        let mut private_game = game("secret");
        private_game.private = true;
        private_game.grants = vec!["alice".to_owned(), "bob".to_owned()];
        let games = vec![game("celeste"), private_game];
        let versions = vec![
            version_spec("celeste", "1.0", 0),
            version_spec("celeste", "1.1", 1),
            version_spec("secret", "0.9", 0),
        ];
        let users = vec![user("alice"), user("bob")];
        let revision = Revision {
            commit_id: "a".repeat(40),
            seen_at: T0,
            outcome: Outcome::Ok,
            errors_json: "[]".to_owned(),
        };
        let delta = Delta {
            game: "celeste".to_owned(),
            from_version: "1.0".to_owned(),
            to_version: "1.1".to_owned(),
            address: address(3),
        };
        let object = ObjectRef::version("celeste", "1.1");

        // The first pass writes everything.
        assert_eq!(db.upsert_games(&games, T0).await.unwrap(), 2);
        assert_eq!(db.upsert_version_specs(&versions, T0).await.unwrap(), 3);
        assert_eq!(db.upsert_users(&users, T0).await.unwrap(), 2);
        assert!(db.record_revision(&revision, T0).await.unwrap());
        assert!(
            db.set_sync_state(&sync_state(&revision.commit_id), T0)
                .await
                .unwrap()
        );
        for n in 1..=3 {
            assert!(
                db.record_artifact(&artifact(n, ArtifactKind::Manifest))
                    .await
                    .unwrap()
            );
        }
        let observed = ingested(1, Some(2), VersionState::Ready);
        assert_eq!(
            db.set_version_observed("celeste", "1.0", &observed, T0)
                .await
                .unwrap(),
            Some(true)
        );
        assert!(db.upsert_delta(&delta, T0).await.unwrap());
        assert!(
            db.set_condition(
                &object,
                ConditionType::Ready,
                ConditionStatus::True,
                "Ready",
                "Served.",
                T0
            )
            .await
            .unwrap()
        );

        // The second pass, later, with equal values: every call says "unchanged", and the
        // database was not written at all.
        let mut probe = WriteProbe::new(&t).await;
        let before = probe.marker().await;
        let later = T0 + 60_000;
        assert_eq!(db.upsert_games(&games, later).await.unwrap(), 0);
        assert!(!db.upsert_game(&games[1], later).await.unwrap());
        assert_eq!(db.upsert_version_specs(&versions, later).await.unwrap(), 0);
        assert_eq!(db.upsert_users(&users, later).await.unwrap(), 0);
        assert!(!db.record_revision(&revision, later).await.unwrap());
        assert!(
            !db.set_sync_state(&sync_state(&revision.commit_id), later)
                .await
                .unwrap()
        );
        assert!(
            !db.record_artifact(&artifact(1, ArtifactKind::Manifest))
                .await
                .unwrap()
        );
        assert_eq!(
            db.set_version_observed("celeste", "1.0", &observed, later)
                .await
                .unwrap(),
            Some(false)
        );
        assert!(!db.upsert_delta(&delta, later).await.unwrap());
        assert!(
            !db.set_condition(
                &object,
                ConditionType::Ready,
                ConditionStatus::True,
                "Ready",
                "Served.",
                later
            )
            .await
            .unwrap()
        );
        assert_eq!(
            probe.marker().await,
            before,
            "a no-op pass wrote to the database"
        );

        // updated_at still says T0 everywhere.
        for table in [
            "games",
            "versions",
            "users",
            "revisions",
            "deltas",
            "conditions",
        ] {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT MAX(updated_at) AS newest FROM {table}"
            )))
            .fetch_one(db.pool())
            .await
            .unwrap();
            assert_eq!(row.try_get::<i64, _>("newest").unwrap(), T0, "{table}");
        }

        // The probe does see a real change.
        let mut changed = games[0].clone();
        changed.suspended = true;
        assert!(db.upsert_game(&changed, later).await.unwrap());
        assert_ne!(probe.marker().await, before, "the probe missed a write");
        assert_eq!(db.game("celeste").await.unwrap(), Some(changed));
    })
    .await;
}

#[tokio::test]
async fn rows_round_trip() {
    each_backend("rows_round_trip", |t| async move {
        let db = &t.db;
        let mut secret = game("secret");
        secret.private = true;
        secret.suspended = true;
        secret.grants = vec!["alice".to_owned(), "o'brien \"x\"".to_owned()];
        db.upsert_games(&[game("celeste"), secret.clone()], T0)
            .await
            .unwrap();
        assert_eq!(
            db.games().await.unwrap(),
            vec![game("celeste"), secret.clone()]
        );
        assert_eq!(db.game("secret").await.unwrap(), Some(secret));
        assert_eq!(db.game("missing").await.unwrap(), None);

        let mut pinned = version_spec("celeste", "1.10", 2);
        pinned.pinned_digest = Some(address(9));
        db.upsert_version_specs(
            &[
                version_spec("celeste", "1.2", 1),
                pinned.clone(),
                version_spec("celeste", "1.0", 0),
            ],
            T0,
        )
        .await
        .unwrap();
        let versions = db.versions_of("celeste").await.unwrap();
        let names: Vec<_> = versions.iter().map(|v| v.spec.name.as_str()).collect();
        assert_eq!(
            names,
            ["1.0", "1.2", "1.10"],
            "version order, not text order"
        );
        assert_eq!(versions[2].spec, pinned);
        assert_eq!(versions[2].observed.state, VersionState::Pending);
        assert_eq!(versions[2].observed.manifest_address, None);

        // A spec change leaves the observed part alone.
        db.record_artifact(&artifact(1, ArtifactKind::Manifest))
            .await
            .unwrap();
        let observed = ingested(1, None, VersionState::Ingested);
        db.set_version_observed("celeste", "1.10", &observed, T0)
            .await
            .unwrap();
        let mut repinned = pinned.clone();
        repinned.pinned_digest = Some(address(10));
        assert_eq!(
            db.upsert_version_specs(&[repinned.clone()], T0 + 1)
                .await
                .unwrap(),
            1
        );
        let version = db.version("celeste", "1.10").await.unwrap().unwrap();
        assert_eq!(version.spec, repinned);
        assert_eq!(version.observed, observed);
        assert_eq!(
            db.set_version_observed("celeste", "9.9", &observed, T0)
                .await
                .unwrap(),
            None,
            "no such version"
        );

        let mut admin = user("root");
        admin.role = Role::Admin;
        admin.display_name = None;
        admin.disabled = true;
        db.upsert_users(&[admin.clone(), user("alice")], T0)
            .await
            .unwrap();
        assert_eq!(
            db.users().await.unwrap(),
            vec![user("alice"), admin.clone()]
        );
        assert_eq!(db.user("root").await.unwrap(), Some(admin));
        assert!(
            !format!("{:?}", user("alice")).contains("argon2"),
            "hash in Debug"
        );
        assert!(db.delete_user("alice").await.unwrap());
        assert!(!db.delete_user("alice").await.unwrap());
        assert_eq!(db.user("alice").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn revisions_keep_first_seen_and_latest_outcome() {
    each_backend(
        "revisions_keep_first_seen_and_latest_outcome",
        |t| async move {
            let db = &t.db;
            let failed = Revision {
                commit_id: "b".repeat(40),
                seen_at: T0,
                outcome: Outcome::Failed,
                errors_json: r#"[{"file":"games/x/game.yaml","line":3,"message":"unknown field"}]"#
                    .to_owned(),
            };
            assert!(db.record_revision(&failed, T0).await.unwrap());
            let ok = Revision {
                commit_id: "c".repeat(40),
                seen_at: T0 + 10,
                outcome: Outcome::Ok,
                errors_json: "[]".to_owned(),
            };
            assert!(db.record_revision(&ok, T0 + 10).await.unwrap());
            // Re-evaluating the failed commit with a different result (a fixed loader, say)
            // updates the outcome but keeps when it was first seen.
            let mut re_evaluated = failed.clone();
            re_evaluated.seen_at = T0 + 20;
            re_evaluated.errors_json = "[]".to_owned();
            re_evaluated.outcome = Outcome::Ok;
            assert!(db.record_revision(&re_evaluated, T0 + 20).await.unwrap());
            let stored = db.revision(&failed.commit_id).await.unwrap().unwrap();
            assert_eq!(stored.seen_at, T0);
            assert_eq!(stored.outcome, Outcome::Ok);

            let recent = db.recent_revisions(10).await.unwrap();
            let ids: Vec<_> = recent.iter().map(|r| r.commit_id.clone()).collect();
            assert_eq!(ids, [ok.commit_id.clone(), failed.commit_id.clone()]);
            assert_eq!(db.recent_revisions(1).await.unwrap().len(), 1);

            // The failed commit is the last attempted, the good one stays applied.
            let state = SyncState {
                observed_commit: Some(failed.commit_id.clone()),
                last_attempted_commit: Some(failed.commit_id.clone()),
                last_applied_commit: Some(ok.commit_id.clone()),
            };
            assert!(db.set_sync_state(&state, T0).await.unwrap());
            assert_eq!(db.sync_state().await.unwrap(), state);
        },
    )
    .await;
}

#[tokio::test]
async fn artifacts_are_content_addressed_and_immutable() {
    each_backend(
        "artifacts_are_content_addressed_and_immutable",
        |t| async move {
            let db = &t.db;
            let pack = artifact(7, ArtifactKind::Pack);
            assert!(db.record_artifact(&pack).await.unwrap());
            assert!(
                !db.record_artifact(&pack).await.unwrap(),
                "same facts: no-op"
            );
            assert_eq!(
                db.artifact(&pack.address).await.unwrap(),
                Some(pack.clone())
            );

            let mut other_size = pack.clone();
            other_size.size += 1;
            assert!(matches!(
                db.record_artifact(&other_size).await,
                Err(Error::ArtifactConflict { .. })
            ));
            let mut bad = pack.clone();
            bad.address = "sha256:abc".to_owned();
            assert!(matches!(
                db.record_artifact(&bad).await,
                Err(Error::InvalidValue { .. })
            ));
            assert!(is_content_address(&address(1)));
            assert!(!is_content_address(&address(1).to_uppercase()));
            assert!(!is_content_address("blake3:abc"));

            assert!(
                db.mark_artifact_verified(&pack.address, T0 + 5)
                    .await
                    .unwrap()
            );
            assert_eq!(
                db.artifact(&pack.address)
                    .await
                    .unwrap()
                    .unwrap()
                    .verified_at,
                Some(T0 + 5)
            );
            assert!(!db.mark_artifact_verified(&address(99), T0).await.unwrap());

            // A referenced artifact cannot be deleted; an unreferenced one can.
            db.upsert_game(&game("celeste"), T0).await.unwrap();
            db.upsert_version_specs(&[version_spec("celeste", "1.0", 0)], T0)
                .await
                .unwrap();
            db.set_version_observed(
                "celeste",
                "1.0",
                &VersionObserved {
                    tree_digest: None,
                    manifest_address: None,
                    pack_address: Some(pack.address.clone()),
                    state: VersionState::Ingested,
                },
                T0,
            )
            .await
            .unwrap();
            assert!(matches!(
                db.delete_artifact(&pack.address).await,
                Err(Error::Query { .. })
            ));
            db.record_artifact(&artifact(8, ArtifactKind::Delta))
                .await
                .unwrap();
            assert!(db.delete_artifact(&address(8)).await.unwrap());
        },
    )
    .await;
}

#[tokio::test]
async fn deltas_and_version_deletion() {
    each_backend("deltas_and_version_deletion", |t| async move {
        let db = &t.db;
        db.upsert_game(&game("celeste"), T0).await.unwrap();
        db.upsert_version_specs(
            &[
                version_spec("celeste", "1.0", 0),
                version_spec("celeste", "1.1", 1),
                version_spec("celeste", "1.2", 2),
            ],
            T0,
        )
        .await
        .unwrap();
        for n in 1..=3 {
            db.record_artifact(&artifact(n, ArtifactKind::Delta))
                .await
                .unwrap();
        }
        let edge = |from: &str, to: &str, n: u32| Delta {
            game: "celeste".to_owned(),
            from_version: from.to_owned(),
            to_version: to.to_owned(),
            address: address(n),
        };
        for delta in [
            edge("1.0", "1.1", 1),
            edge("1.1", "1.2", 2),
            edge("1.0", "1.2", 3),
        ] {
            assert!(db.upsert_delta(&delta, T0).await.unwrap());
        }
        assert_eq!(db.deltas_of("celeste").await.unwrap().len(), 3);

        // A delta needs both versions and its artifact.
        assert!(db.upsert_delta(&edge("1.0", "9.9", 1), T0).await.is_err());
        assert!(db.upsert_delta(&edge("1.0", "1.1", 42), T0).await.is_err());
        // A version needs its game, and a game with versions cannot be deleted.
        assert!(
            db.upsert_version_specs(&[version_spec("nope", "1.0", 0)], T0)
                .await
                .is_err()
        );
        assert!(db.delete_game("celeste").await.is_err());

        // Deleting a version takes the deltas from and to it along; the artifacts stay.
        assert!(db.delete_version("celeste", "1.1").await.unwrap());
        assert_eq!(
            db.deltas_of("celeste").await.unwrap(),
            vec![edge("1.0", "1.2", 3)]
        );
        assert!(db.artifact(&address(1)).await.unwrap().is_some());
        assert!(!db.delete_version("celeste", "1.1").await.unwrap());
        assert!(db.delete_delta("celeste", "1.0", "1.2").await.unwrap());
        assert!(db.delete_version("celeste", "1.0").await.unwrap());
        assert!(db.delete_version("celeste", "1.2").await.unwrap());
        assert!(db.delete_game("celeste").await.unwrap());
        assert!(db.games().await.unwrap().is_empty());
    })
    .await;
}
