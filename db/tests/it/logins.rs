//! Failed logins: counted per key in a window, shared by every handle on the database,
//! pruned when their window ends, cleared on success, and never a bump of the change counter.

use mist_db::Db;
use mist_db::logins::LoginFailures;
use mist_db::testing::each_backend;

use crate::common::T0;

const WINDOW_MS: i64 = 60_000;

#[tokio::test]
async fn login_failures_count_per_key_across_handles_and_prune() {
    each_backend("login_failures", |t| async move {
        let other = Db::connect_unmigrated(&t.url).await.expect("second handle");
        let seq = t.db.change_seq().await.unwrap();
        t.db.record_login_failure(&["client:a", "user:x"], T0, T0 - WINDOW_MS)
            .await
            .unwrap();
        other
            .record_login_failure(&["client:a"], T0 + 1, T0 + 1 - WINDOW_MS)
            .await
            .unwrap();
        let live_since = T0 + 2 - WINDOW_MS;
        assert_eq!(
            other.login_failures("client:a", live_since).await.unwrap(),
            Some(LoginFailures {
                failures: 2,
                window_start: T0
            }),
            "both handles counted in one row, in the window of the first failure"
        );
        assert_eq!(
            t.db.login_failures("user:x", live_since).await.unwrap(),
            Some(LoginFailures {
                failures: 1,
                window_start: T0
            })
        );
        assert_eq!(
            t.db.login_failures("user:y", live_since).await.unwrap(),
            None
        );
        assert_eq!(
            t.db.change_seq().await.unwrap(),
            seq,
            "failed logins are not state"
        );

        // The window ends: the count reads as zero, and the next failure prunes it.
        let later = T0 + WINDOW_MS;
        assert_eq!(
            t.db.login_failures("client:a", later - WINDOW_MS)
                .await
                .unwrap(),
            None
        );
        t.db.record_login_failure(&["client:b"], later, later - WINDOW_MS)
            .await
            .unwrap();
        assert_eq!(
            t.db.login_failure_rows().await.unwrap(),
            1,
            "ended windows pruned"
        );
        t.db.record_login_failure(&["client:a"], later, later - WINDOW_MS)
            .await
            .unwrap();
        assert_eq!(
            t.db.login_failures("client:a", later - WINDOW_MS)
                .await
                .unwrap(),
            Some(LoginFailures {
                failures: 1,
                window_start: later
            }),
            "a new window"
        );

        other.clear_login_failures("client:a").await.unwrap();
        assert_eq!(
            t.db.login_failures("client:a", later - WINDOW_MS)
                .await
                .unwrap(),
            None
        );
        assert_eq!(t.db.login_failure_rows().await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn read_only_handles_cannot_count_failures() {
    each_backend("login_failures_read_only", |t| async move {
        let read_only = Db::connect_read_only(&t.url).await.unwrap();
        assert!(
            read_only
                .record_login_failure(&["client:a"], T0, T0 - WINDOW_MS)
                .await
                .is_err()
        );
        assert_eq!(t.db.login_failure_rows().await.unwrap(), 0);
    })
    .await;
}
