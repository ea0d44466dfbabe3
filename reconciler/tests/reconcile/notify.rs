//! The notifications a reconciler writes into the outbox: one digest at the end of the first
//! sync, then each new version once, and Stalled and recovered versions for the admins.

use mist_db::outbox::{Audience, Notification, NotificationKind};
use mist_db::testing::{TestDb, each_backend};

use crate::synced;
use crate::world::{World, write_build};

/// The outbox after `after_id`, as (kind, audience, game/version or count).
async fn outbox(world: &World, after_id: i64) -> Vec<Notification> {
    world.db().notifications_after(after_id, 100).await.unwrap()
}

fn facts(notification: &Notification) -> serde_json::Value {
    serde_json::from_str(&notification.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_after_the_first_sync_then_each_version_once_and_stalls_for_the_admins() {
    each_backend("notifications", |test_db: TestDb| async move {
        let mut world = synced(test_db).await;

        // The first sync: nine versions Ready, one digest, no message per version.
        let first = outbox(&world, 0).await;
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].kind, NotificationKind::Digest);
        assert_eq!(first[0].audience, Audience::Friends);
        assert_eq!(facts(&first[0])["count"], 9);
        assert_eq!(facts(&first[0])["gameCount"], 3);
        let mut last_id = first[0].id;

        // A new version: announced once, with its sizes.
        world.version("alpha", "1.3", 3);
        world.commit("alpha 1.3");
        world.reconciler().run_until_idle().await.unwrap();
        let new = outbox(&world, last_id).await;
        assert_eq!(new.len(), 1, "{new:?}");
        assert_eq!(new[0].kind, NotificationKind::Ready);
        let ready = facts(&new[0]);
        assert_eq!(ready["version"], "1.3");
        assert_eq!(ready["updateFrom"], "1.2");
        assert!(ready["updateSize"].as_u64().unwrap() > 0, "{ready}");
        assert!(
            ready["fullSize"].as_u64().unwrap() > ready["updateSize"].as_u64().unwrap(),
            "{ready}"
        );
        last_id = new[0].id;

        // A version whose build is missing stalls: the admins are told, the friends not.
        world.declare_version("beta", "1.3", None);
        world.commit("beta 1.3, build not uploaded yet");
        world.reconciler().run_until_idle().await.unwrap();
        let stalled = outbox(&world, last_id).await;
        assert_eq!(stalled.len(), 1, "{stalled:?}");
        assert_eq!(stalled[0].kind, NotificationKind::Stalled);
        assert_eq!(stalled[0].audience, Audience::Admins);
        assert_eq!(facts(&stalled[0])["reason"], "SourceMissing");
        last_id = stalled[0].id;

        // The build arrives: recovered (admins), then Ready (friends).
        write_build(&world.build_path("beta", "1.3"), "beta", 3);
        world.reconciler().run_until_idle().await.unwrap();
        let recovered = outbox(&world, last_id).await;
        let kinds: Vec<_> = recovered.iter().map(|n| (n.kind, n.audience)).collect();
        assert_eq!(
            kinds,
            [
                (NotificationKind::Recovered, Audience::Admins),
                (NotificationKind::Ready, Audience::Friends)
            ],
            "{recovered:?}"
        );
        last_id = recovered[1].id;

        // Passes over the converged state, in this process and a fresh one, write nothing.
        let reconciler = world.reconciler();
        reconciler.reconcile_once().await.unwrap();
        let report = reconciler.reconcile_once().await.unwrap();
        assert!(report.is_converged(), "{report:?}");
        assert!(outbox(&world, last_id).await.is_empty());
    })
    .await;
}
