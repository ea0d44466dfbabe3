//! Conditions and the bounded event history.

use mist_db::conditions::{
    ConditionStatus, ConditionType, ConditionUpdate, ObjectKind, ObjectRef, Severity,
};
use mist_db::testing::each_backend;

use crate::common::T0;

#[tokio::test]
async fn condition_since_moves_only_when_status_changes() {
    each_backend(
        "condition_since_moves_only_when_status_changes",
        |t| async move {
            let db = &t.db;
            let object = ObjectRef::version("celeste", "1.4.0.1");
            let set = |status, reason: &'static str, message: &'static str, now| {
                let object = object.clone();
                async move {
                    db.set_condition(&object, ConditionType::Ready, status, reason, message, now)
                        .await
                        .unwrap()
                }
            };
            assert!(set(ConditionStatus::False, "Ingesting", "Hashing 40 %.", T0).await);
            // Same status, new message: written, since kept.
            assert!(
                set(
                    ConditionStatus::False,
                    "Ingesting",
                    "Hashing 80 %.",
                    T0 + 10
                )
                .await
            );
            // Same everything: not written.
            assert!(
                !set(
                    ConditionStatus::False,
                    "Ingesting",
                    "Hashing 80 %.",
                    T0 + 20
                )
                .await
            );
            let conditions = db.conditions_of(&object).await.unwrap();
            assert_eq!(conditions.len(), 1);
            assert_eq!(conditions[0].since, T0);
            assert_eq!(conditions[0].message, "Hashing 80 %.");

            // New status: since moves.
            assert!(set(ConditionStatus::True, "Ready", "Served.", T0 + 30).await);
            db.set_condition(
                &object,
                ConditionType::Stalled,
                ConditionStatus::False,
                "Ready",
                "",
                T0 + 30,
            )
            .await
            .unwrap();
            db.set_condition(
                &object,
                ConditionType::Reconciling,
                ConditionStatus::False,
                "Ready",
                "",
                T0 + 30,
            )
            .await
            .unwrap();
            let conditions = db.conditions_of(&object).await.unwrap();
            let types: Vec<_> = conditions.iter().map(|c| c.condition_type).collect();
            assert_eq!(
                types,
                [
                    ConditionType::Ready,
                    ConditionType::Reconciling,
                    ConditionType::Stalled
                ]
            );
            assert_eq!(conditions[0].since, T0 + 30);
            assert_eq!(conditions[0].status, ConditionStatus::True);
            assert_eq!(conditions[0].object.kind, ObjectKind::Version);

            // Other objects are separate.
            assert!(
                db.conditions_of(&ObjectRef::game("celeste"))
                    .await
                    .unwrap()
                    .is_empty()
            );
            // The batch form: only the one that differs is written.
            let update = |condition_type, status: ConditionStatus| ConditionUpdate {
                object: object.clone(),
                condition_type,
                status,
                reason: "Ready".to_owned(),
                message: if status == ConditionStatus::True {
                    "Served.".to_owned()
                } else {
                    String::new()
                },
            };
            let updates = [
                update(ConditionType::Ready, ConditionStatus::True),
                update(ConditionType::Reconciling, ConditionStatus::False),
                update(ConditionType::Stalled, ConditionStatus::True),
            ];
            assert_eq!(db.set_conditions(&updates, T0 + 40).await.unwrap(), 1);
            assert_eq!(db.set_conditions(&updates, T0 + 50).await.unwrap(), 0);
            let conditions = db.conditions_of(&object).await.unwrap();
            assert_eq!(conditions[0].since, T0 + 30);
            assert_eq!(conditions[2].since, T0 + 40);
            assert_eq!(conditions[2].status, ConditionStatus::True);

            assert_eq!(db.delete_conditions(&object).await.unwrap(), 3);
            assert!(db.conditions_of(&object).await.unwrap().is_empty());
        },
    )
    .await;
}

#[tokio::test]
async fn events_are_bounded_per_object() {
    each_backend("events_are_bounded_per_object", |t| async move {
        let db = &t.db;
        let noisy = ObjectRef::game("noisy");
        let quiet = ObjectRef::game("quiet");
        let quiet_id = db
            .record_event(
                &quiet,
                Severity::Warning,
                "DigestMismatch",
                "Changed on the NAS.",
                T0,
                5,
            )
            .await
            .unwrap();
        let mut ids = Vec::new();
        for n in 0..12 {
            let id = db
                .record_event(
                    &noisy,
                    Severity::Normal,
                    "Tick",
                    &format!("tick {n}"),
                    T0 + n,
                    5,
                )
                .await
                .unwrap();
            ids.push(id);
        }
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids increase");

        let events = db.events_of(&noisy, 100).await.unwrap();
        let messages: Vec<_> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            ["tick 11", "tick 10", "tick 9", "tick 8", "tick 7"]
        );
        assert_eq!(events[0].at, T0 + 11);
        assert_eq!(db.events_of(&noisy, 2).await.unwrap().len(), 2);
        // Trimming one object leaves the others alone.
        let quiet_events = db.events_of(&quiet, 100).await.unwrap();
        assert_eq!(quiet_events.len(), 1);
        assert_eq!(quiet_events[0].id, quiet_id);
        assert_eq!(quiet_events[0].severity, Severity::Warning);
        assert_eq!(quiet_events[0].reason, "DigestMismatch");

        // The feed after an id, oldest first; trimmed ids are never handed out again.
        let feed = db.events_after(quiet_id, 100).await.unwrap();
        assert_eq!(feed.len(), 5);
        assert_eq!(feed[0].message, "tick 7");
        assert!(
            db.events_after(*ids.last().unwrap(), 100)
                .await
                .unwrap()
                .is_empty()
        );
        let next = db
            .record_event(&noisy, Severity::Normal, "Tick", "tick 12", T0 + 12, 5)
            .await
            .unwrap();
        assert!(next > *ids.last().unwrap());

        // keep = 0 still keeps the new event.
        db.record_event(&quiet, Severity::Normal, "Last", "only me", T0, 0)
            .await
            .unwrap();
        let quiet_events = db.events_of(&quiet, 100).await.unwrap();
        assert_eq!(quiet_events.len(), 1);
        assert_eq!(quiet_events[0].reason, "Last");
    })
    .await;
}
