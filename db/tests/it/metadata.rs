//! Games' catalog metadata: a good fetch replaces the details and Steam's image, a failure
//! keeps them and counts failures per app, the spec's image is written only when it differs,
//! and the snapshot holds every row.

use mist_db::conditions::{ConditionStatus, ConditionType, ObjectRef};
use mist_db::metadata::{FetchedDetails, SteamDetails, StoredImage};
use mist_db::testing::each_backend;

use crate::common::T0;

fn image(n: u8, media_type: &str) -> StoredImage {
    StoredImage {
        address: format!("blake3:{}", format!("{n:02x}").repeat(32)),
        size: 1000 + u64::from(n),
        media_type: media_type.to_owned(),
    }
}

fn details(app_id: i64, description: &str, at: i64) -> FetchedDetails {
    FetchedDetails {
        app_id,
        details: SteamDetails {
            description: Some(description.to_owned()),
            genres: vec!["Action".to_owned()],
            developers: vec!["Someone".to_owned()],
            release_date: Some("25 Jan, 2018".to_owned()),
        },
        fetched_at: at,
    }
}

#[tokio::test]
async fn fetches_failures_and_spec_images_are_recorded() {
    each_backend("game_metadata", |t| async move {
        let db = &t.db;
        assert_eq!(db.game_metadata("celeste").await.unwrap(), None);

        // A failure before any success: a row with the attempt only.
        db.record_metadata_failed("celeste", 620, "RateLimited: 429", T0 + 60_000, T0)
            .await
            .unwrap();
        let row = db.game_metadata("celeste").await.unwrap().unwrap();
        assert_eq!(row.fetched, None);
        let attempt = row.attempt.unwrap();
        assert_eq!((attempt.app_id, attempt.failures), (620, 1));
        assert_eq!(attempt.retry_at, Some(T0 + 60_000));

        // A success replaces everything Steam's and clears the failures.
        let steam = image(1, "image/jpeg");
        let good = details(620, "Good.", T0 + 1);
        db.record_metadata_fetched("celeste", &good, Some((&steam, "https://x/h.jpg")), T0 + 1)
            .await
            .unwrap();
        let row = db.game_metadata("celeste").await.unwrap().unwrap();
        assert_eq!(row.fetched.as_ref(), Some(&good));
        assert_eq!(row.steam_image.as_ref(), Some(&steam));
        assert_eq!(row.steam_image_source.as_deref(), Some("https://x/h.jpg"));
        let attempt = row.attempt.unwrap();
        assert_eq!(
            (attempt.failures, attempt.last_error, attempt.retry_at),
            (0, None, None)
        );

        // Failures keep the last good fetch; they count per app.
        for n in 1..=2 {
            db.record_metadata_failed("celeste", 620, "NetworkError: down", T0 + 10, T0 + 2)
                .await
                .unwrap();
            let row = db.game_metadata("celeste").await.unwrap().unwrap();
            assert_eq!(row.attempt.unwrap().failures, n);
            assert_eq!(row.fetched.as_ref(), Some(&good));
            assert_eq!(row.steam_image.as_ref(), Some(&steam));
        }
        db.record_metadata_failed("celeste", 999, "UnknownApp: no", T0 + 10, T0 + 3)
            .await
            .unwrap();
        let row = db.game_metadata("celeste").await.unwrap().unwrap();
        assert_eq!(
            row.attempt.as_ref().map(|a| (a.app_id, a.failures)),
            Some((999, 1))
        );

        // The spec's image: written when it differs, and only then.
        let spec = image(2, "image/png");
        assert!(db.set_spec_image("celeste", Some(&spec), T0).await.unwrap());
        let seq = db.change_seq().await.unwrap();
        assert!(
            !db.set_spec_image("celeste", Some(&spec), T0 + 5)
                .await
                .unwrap()
        );
        assert_eq!(
            db.change_seq().await.unwrap(),
            seq,
            "a no-op writes nothing"
        );
        assert!(db.set_spec_image("celeste", None, T0).await.unwrap());
        assert!(!db.set_spec_image("celeste", None, T0).await.unwrap());
        assert!(!db.set_spec_image("nothing", None, T0).await.unwrap());
        assert!(db.set_spec_image("secret", Some(&spec), T0).await.unwrap());

        // The snapshot holds every row, as single reads do.
        let snapshot = db.load_snapshot().await.unwrap();
        assert_eq!(snapshot.metadata, db.all_game_metadata().await.unwrap());
        assert_eq!(snapshot.metadata.len(), 2);
        assert_eq!(snapshot.metadata[1].spec_image.as_ref(), Some(&spec));

        // A game's metadata can be stale: a condition type of its own.
        db.set_condition(
            &ObjectRef::game("celeste"),
            ConditionType::MetadataStale,
            ConditionStatus::True,
            "UnknownApp",
            "the store does not know app 999",
            T0,
        )
        .await
        .unwrap();
        let conditions = db.conditions_of(&ObjectRef::game("celeste")).await.unwrap();
        assert_eq!(conditions[0].condition_type, ConditionType::MetadataStale);
    })
    .await;
}
