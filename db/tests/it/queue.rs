//! The durable job queue.

use std::time::Duration;

use mist_db::queue::{
    Enqueued, JobState, NewJob, Progress, ProgressWrite, Queue, QueueConfig, QueueCounts,
    backoff_delay,
};
use mist_db::testing::{WriteProbe, each_backend};
use mist_db::{Db, Error};

use crate::common::T0;

pub(crate) const LEASE: Duration = Duration::from_secs(30);
const LEASE_MS: i64 = 30_000;

pub(crate) fn config(max_running: u32) -> QueueConfig {
    QueueConfig {
        max_running,
        backoff_base: Duration::from_secs(1),
        backoff_cap: Duration::from_secs(8),
        jitter: false,
    }
}

pub(crate) fn new_job(key: &str) -> NewJob {
    NewJob {
        key: key.to_owned(),
        kind: "ingest".to_owned(),
        game: Some("celeste".to_owned()),
        version: Some("1.0".to_owned()),
        payload_json: format!(r#"{{"key":"{key}"}}"#),
        priority: 0,
    }
}

fn progress(stage_index: u32, stage: &str, done: u64, total: u64) -> Progress {
    Progress {
        stage_index,
        stage: stage.to_owned(),
        done,
        total,
    }
}

async fn claim_key(queue: &Queue, owner: &str, now: i64) -> Option<String> {
    queue
        .claim(owner, now, LEASE)
        .await
        .unwrap()
        .map(|job| job.key)
}

#[tokio::test]
async fn enqueue_is_idempotent_by_key() {
    each_backend("enqueue_is_idempotent_by_key", |t| async move {
        let queue = t.db.queue(config(4));
        assert_eq!(
            queue.enqueue(&new_job("a"), T0).await.unwrap(),
            Enqueued::Added
        );

        let mut probe = WriteProbe::new(&t).await;
        let before = probe.marker().await;
        let mut changed_payload = new_job("a");
        changed_payload.payload_json = "{}".to_owned();
        assert_eq!(
            queue.enqueue(&changed_payload, T0 + 1).await.unwrap(),
            Enqueued::Exists(JobState::Queued)
        );
        assert_eq!(probe.marker().await, before, "a duplicate enqueue wrote");
        let job = queue.job("a").await.unwrap().unwrap();
        assert_eq!(
            job.payload_json,
            new_job("a").payload_json,
            "first payload kept"
        );
        assert_eq!(job.created_at, T0);

        // Running, done: still the same job, never queued twice.
        let claimed = queue.claim("w1", T0, LEASE).await.unwrap().unwrap();
        assert_eq!(claimed.key, "a");
        assert_eq!(claimed.state, JobState::Running);
        assert_eq!(claimed.game.as_deref(), Some("celeste"));
        assert_eq!(
            queue.enqueue(&new_job("a"), T0).await.unwrap(),
            Enqueued::Exists(JobState::Running)
        );
        queue.complete("a", "w1", T0 + 5).await.unwrap();
        assert_eq!(
            queue.enqueue(&new_job("a"), T0 + 6).await.unwrap(),
            Enqueued::Exists(JobState::Done)
        );
        assert_eq!(queue.claim("w1", T0 + 10, LEASE).await.unwrap(), None);
        let job = queue.job("a").await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done);
        assert_eq!(job.finished_at, Some(T0 + 5));
        assert_eq!(job.lease_owner, None);

        // An explicit requeue (the output vanished) runs it again.
        assert!(queue.requeue("a", T0 + 20).await.unwrap());
        assert!(
            !queue.requeue("a", T0 + 20).await.unwrap(),
            "already queued"
        );
        assert_eq!(claim_key(&queue, "w1", T0 + 20).await.as_deref(), Some("a"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_cap_holds_across_claimers() {
    each_backend("concurrency_cap_holds_across_claimers", |t| async move {
        // Two handles with their own pools, as two processes would have.
        let other_db = Db::connect(&t.url).await.unwrap();
        let queue_a = t.db.queue(config(2));
        let queue_b = other_db.queue(config(2));
        for n in 0..5 {
            queue_a
                .enqueue(&new_job(&format!("job-{n}")), T0)
                .await
                .unwrap();
        }
        assert!(claim_key(&queue_a, "a", T0).await.is_some());
        assert!(claim_key(&queue_b, "b", T0).await.is_some());
        assert_eq!(claim_key(&queue_a, "a", T0).await, None, "cap reached");
        assert_eq!(claim_key(&queue_b, "b", T0).await, None, "cap reached");
        let running = queue_a.unfinished().await.unwrap();
        let running: Vec<_> = running
            .iter()
            .filter(|job| job.state == JobState::Running)
            .collect();
        assert_eq!(running.len(), 2);
        queue_a
            .complete(
                &running[0].key,
                running[0].lease_owner.as_deref().unwrap(),
                T0 + 1,
            )
            .await
            .unwrap();
        assert!(
            claim_key(&queue_b, "b", T0 + 1).await.is_some(),
            "room again"
        );
        assert_eq!(claim_key(&queue_a, "a", T0 + 1).await, None);

        // A running job whose lease expired no longer counts against the cap.
        assert!(claim_key(&queue_a, "a", T0 + LEASE_MS + 1).await.is_some());

        // Many claimers at once, on both handles: exactly `max_running` win.
        let fresh = t.db.queue(config(3));
        let fresh_other = other_db.queue(config(3));
        let now = T0 + 10 * LEASE_MS; // every earlier lease has expired
        for n in 0..20 {
            fresh
                .enqueue(&new_job(&format!("burst-{n:02}")), now)
                .await
                .unwrap();
        }
        let mut tasks = Vec::new();
        for claimer in 0..10 {
            let queue = if claimer % 2 == 0 {
                fresh.clone()
            } else {
                fresh_other.clone()
            };
            tasks.push(tokio::spawn(async move {
                queue
                    .claim(&format!("c{claimer}"), now, LEASE)
                    .await
                    .unwrap()
            }));
        }
        let mut claimed = Vec::new();
        for task in tasks {
            if let Some(job) = task.await.unwrap() {
                claimed.push(job.key);
            }
        }
        claimed.sort();
        claimed.dedup();
        assert_eq!(claimed.len(), 3, "claimed {claimed:?}");
        other_db.close().await;
    })
    .await;
}

#[tokio::test]
async fn backoff_schedule_doubles_up_to_the_cap() {
    each_backend("backoff_schedule_doubles_up_to_the_cap", |t| async move {
        let queue = t.db.queue(config(1));
        queue.enqueue(&new_job("flaky"), T0).await.unwrap();
        let mut now = T0;
        let mut delays = Vec::new();
        for attempt in 1..=6u32 {
            assert_eq!(claim_key(&queue, "w", now).await.as_deref(), Some("flaky"));
            let next = queue
                .fail("flaky", "w", now, &format!("NAS unreachable ({attempt})"))
                .await
                .unwrap();
            delays.push(next - now);
            let job = queue.job("flaky").await.unwrap().unwrap();
            assert_eq!(job.state, JobState::Failed);
            assert_eq!(job.attempts, attempt);
            assert_eq!(job.next_attempt_at, next);
            assert_eq!(job.last_error, Some(format!("NAS unreachable ({attempt})")));
            assert_eq!(job.lease_owner, None);
            // Not a millisecond early.
            assert_eq!(claim_key(&queue, "w", next - 1).await, None);
            now = next;
        }
        assert_eq!(delays, [1000, 2000, 4000, 8000, 8000, 8000]);

        // Success after failures clears the error.
        assert!(claim_key(&queue, "w", now).await.is_some());
        queue.complete("flaky", "w", now).await.unwrap();
        let job = queue.job("flaky").await.unwrap().unwrap();
        assert_eq!((job.state, job.last_error), (JobState::Done, None));
    })
    .await;
}

#[test]
fn backoff_jitter_is_bounded_and_deterministic() {
    let plain = config(1);
    let jittered = QueueConfig {
        jitter: true,
        ..config(1)
    };
    let mut differs = false;
    for attempts in 1..=10 {
        for key in ["a", "b", "delta:celeste:1.0:1.1"] {
            let delay = backoff_delay(&plain, key, attempts);
            let with_jitter = backoff_delay(&jittered, key, attempts);
            assert!(with_jitter <= delay);
            assert!(
                with_jitter >= delay - delay / 10,
                "{with_jitter:?} vs {delay:?}"
            );
            assert_eq!(with_jitter, backoff_delay(&jittered, key, attempts));
            differs |= with_jitter != delay;
        }
    }
    assert!(differs, "jitter never changed a delay");
    // Huge attempt counts saturate at the cap instead of overflowing.
    assert_eq!(backoff_delay(&plain, "a", u32::MAX), Duration::from_secs(8));
    assert_eq!(backoff_delay(&plain, "a", 0), Duration::from_secs(1));
    let default = QueueConfig::default();
    assert!(default.max_running >= 1);
    assert!(default.backoff_base < default.backoff_cap);
}

#[tokio::test]
async fn terminal_errors_wait_for_a_new_key() {
    each_backend("terminal_errors_wait_for_a_new_key", |t| async move {
        let queue = t.db.queue(config(2));
        let old_key = "ingest:celeste:1.0:pinned=blake3:aaaa";
        queue.enqueue(&new_job(old_key), T0).await.unwrap();
        assert!(claim_key(&queue, "w", T0).await.is_some());
        queue
            .fail_terminal(
                old_key,
                "w",
                T0 + 1,
                "digest mismatch: the build is not the pinned one",
            )
            .await
            .unwrap();
        let job = queue.job(old_key).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Terminal);
        assert_eq!(job.attempts, 1);
        assert_eq!(job.finished_at, Some(T0 + 1));

        // Never claimed again, however long we wait, and enqueueing it again changes nothing.
        let year = 365 * 24 * 3600 * 1000;
        assert_eq!(claim_key(&queue, "w", T0 + year).await, None);
        assert_eq!(
            queue.enqueue(&new_job(old_key), T0 + year).await.unwrap(),
            Enqueued::Exists(JobState::Terminal)
        );
        assert_eq!(claim_key(&queue, "w", T0 + year).await, None);
        // Cleaning up done jobs keeps terminal ones.
        assert_eq!(queue.delete_done_before(T0 + year).await.unwrap(), 0);

        // The admin fixes the pin: the content-derived key changes, and the new job runs.
        let new_key = "ingest:celeste:1.0:pinned=blake3:bbbb";
        assert_eq!(
            queue.enqueue(&new_job(new_key), T0 + year).await.unwrap(),
            Enqueued::Added
        );
        assert_eq!(
            claim_key(&queue, "w", T0 + year).await.as_deref(),
            Some(new_key)
        );
        assert_eq!(
            queue.job(old_key).await.unwrap().unwrap().state,
            JobState::Terminal
        );
    })
    .await;
}

#[tokio::test]
async fn progress_only_moves_forward() {
    each_backend("progress_only_moves_forward", |t| async move {
        let queue = t.db.queue(config(1));
        queue.enqueue(&new_job("p"), T0).await.unwrap();
        let claimed = queue.claim("w", T0, LEASE).await.unwrap().unwrap();
        assert_eq!(claimed.progress, Progress::default());

        let report = |now, progress: Progress| {
            let queue = queue.clone();
            async move { queue.progress("p", "w", now, &progress).await.unwrap() }
        };
        assert_eq!(
            report(T0 + 1000, progress(0, "scan", 10, 100)).await,
            ProgressWrite::Recorded
        );
        // A lower `done` in the same stage is ignored.
        assert_eq!(
            report(T0 + 2000, progress(0, "scan", 5, 100)).await,
            ProgressWrite::Ignored
        );
        let job = queue.job("p").await.unwrap().unwrap();
        assert_eq!(job.progress, progress(0, "scan", 10, 100));
        // The ignored report still renewed the lease.
        assert_eq!(job.lease_expires_at, Some(T0 + 2000 + LEASE_MS));

        assert_eq!(
            report(T0 + 3000, progress(0, "scan", 10, 100)).await,
            ProgressWrite::Recorded
        );
        assert_eq!(
            report(T0 + 4000, progress(1, "hash", 0, 500)).await,
            ProgressWrite::Recorded
        );
        // An earlier stage is ignored, even with more done.
        assert_eq!(
            report(T0 + 5000, progress(0, "scan", 100, 100)).await,
            ProgressWrite::Ignored
        );
        assert_eq!(
            report(T0 + 6000, progress(1, "hash", 500, 500)).await,
            ProgressWrite::Recorded
        );
        let job = queue.job("p").await.unwrap().unwrap();
        assert_eq!(job.progress, progress(1, "hash", 500, 500));
        assert_eq!(job.updated_at, T0 + 6000);

        // Nonsense and strangers are refused.
        assert!(matches!(
            queue
                .progress("p", "w", T0, &progress(2, "write", 11, 10))
                .await,
            Err(Error::InvalidProgress { .. })
        ));
        assert!(matches!(
            queue
                .progress("p", "intruder", T0, &progress(3, "x", 0, 0))
                .await,
            Err(Error::LeaseLost { .. })
        ));
        assert!(matches!(
            queue
                .progress("nope", "w", T0, &progress(0, "x", 0, 0))
                .await,
            Err(Error::LeaseLost { .. })
        ));

        // Progress belongs to the attempt: a new claim starts from zero.
        queue.release("p", "w", T0 + 7000).await.unwrap();
        let again = queue.claim("w2", T0 + 7000, LEASE).await.unwrap().unwrap();
        assert_eq!(again.progress, Progress::default());
        assert_eq!(again.attempts, 0, "a release is not an attempt");
    })
    .await;
}

#[tokio::test]
async fn expired_leases_are_recovered() {
    each_backend("expired_leases_are_recovered", |t| async move {
        let queue = t.db.queue(config(1));
        queue.enqueue(&new_job("crashy"), T0).await.unwrap();
        let claimed = queue
            .claim("dead-worker", T0, LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.lease_expires_at, Some(T0 + LEASE_MS));
        // A renewal pushes the expiry out.
        queue
            .renew_lease("crashy", "dead-worker", T0 + 10_000)
            .await
            .unwrap();
        let expiry = T0 + 10_000 + LEASE_MS;

        assert_eq!(queue.recover_expired_leases(expiry - 1).await.unwrap(), 0);
        // The cap is still taken while the lease lives.
        queue.enqueue(&new_job("other"), T0).await.unwrap();
        assert_eq!(claim_key(&queue, "w", expiry - 1).await, None);

        assert_eq!(queue.recover_expired_leases(expiry).await.unwrap(), 1);
        let job = queue.job("crashy").await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(job.attempts, 1);
        assert_eq!(job.lease_owner, None);
        assert!(job.last_error.unwrap().contains("dead-worker"));

        // The dead worker wakes up: every call it makes is refused.
        assert!(matches!(
            queue.complete("crashy", "dead-worker", expiry).await,
            Err(Error::LeaseLost { .. })
        ));
        assert!(matches!(
            queue.fail("crashy", "dead-worker", expiry, "late").await,
            Err(Error::LeaseLost { .. })
        ));
        assert!(matches!(
            queue
                .fail_terminal("crashy", "dead-worker", expiry, "late")
                .await,
            Err(Error::LeaseLost { .. })
        ));
        assert!(matches!(
            queue.release("crashy", "dead-worker", expiry).await,
            Err(Error::LeaseLost { .. })
        ));

        // Another worker picks it up, after "other", which has been due for longer.
        assert_eq!(
            claim_key(&queue, "new-worker", expiry).await.as_deref(),
            Some("other")
        );
        queue.complete("other", "new-worker", expiry).await.unwrap();
        let again = queue
            .claim("new-worker", expiry, LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.key, "crashy");
        assert_eq!(again.attempts, 1);
        queue
            .complete("crashy", "new-worker", expiry + 1)
            .await
            .unwrap();
        assert!(matches!(
            queue.complete("crashy", "dead-worker", expiry + 2).await,
            Err(Error::LeaseLost { .. })
        ));
        assert_eq!(
            queue.job("crashy").await.unwrap().unwrap().state,
            JobState::Done
        );
    })
    .await;
}

#[tokio::test]
async fn release_returns_jobs_without_counting_an_attempt() {
    each_backend(
        "release_returns_jobs_without_counting_an_attempt",
        |t| async move {
            let queue = t.db.queue(config(3));
            for key in ["a", "b", "c"] {
                queue.enqueue(&new_job(key), T0).await.unwrap();
            }
            assert!(claim_key(&queue, "stable-owner", T0).await.is_some());
            assert!(claim_key(&queue, "stable-owner", T0).await.is_some());
            assert!(claim_key(&queue, "someone-else", T0).await.is_some());

            // SIGTERM: the running step is abandoned cleanly.
            queue.release("a", "stable-owner", T0 + 5).await.unwrap();
            let job = queue.job("a").await.unwrap().unwrap();
            assert_eq!((job.state, job.attempts), (JobState::Queued, 0));
            assert_eq!(job.next_attempt_at, T0 + 5);

            // A restart with the same owner name takes back what its predecessor held.
            assert_eq!(
                queue.release_owner("stable-owner", T0 + 6).await.unwrap(),
                1
            );
            assert_eq!(
                queue.release_owner("stable-owner", T0 + 6).await.unwrap(),
                0
            );
            let counts = queue.counts().await.unwrap();
            assert_eq!(
                counts,
                QueueCounts {
                    queued: 2,
                    running: 1,
                    ..QueueCounts::default()
                }
            );
            assert_eq!(
                queue.job("c").await.unwrap().unwrap().state,
                JobState::Running
            );
        },
    )
    .await;
}

#[tokio::test]
async fn claims_go_by_priority_then_due_time_then_key() {
    each_backend(
        "claims_go_by_priority_then_due_time_then_key",
        |t| async move {
            let queue = t.db.queue(config(10));
            let job = |key: &str, priority| NewJob {
                priority,
                ..new_job(key)
            };
            queue.enqueue(&job("late", 0), T0 + 100).await.unwrap();
            queue.enqueue(&job("b-normal", 0), T0).await.unwrap();
            queue.enqueue(&job("a-normal", 0), T0).await.unwrap();
            queue.enqueue(&job("urgent", -1), T0 + 50).await.unwrap();
            queue.enqueue(&job("background", 5), T0).await.unwrap();

            let mut order = Vec::new();
            while let Some(key) = claim_key(&queue, "w", T0 + 60).await {
                order.push(key);
            }
            assert_eq!(order, ["urgent", "a-normal", "b-normal", "background"]);
            assert_eq!(
                claim_key(&queue, "w", T0 + 100).await.as_deref(),
                Some("late")
            );
        },
    )
    .await;
}

#[tokio::test]
async fn idle_claims_write_nothing() {
    each_backend("idle_claims_write_nothing", |t| async move {
        let queue = t.db.queue(config(1));
        let mut probe = WriteProbe::new(&t).await;
        let before = probe.marker().await;
        assert_eq!(claim_key(&queue, "w", T0).await, None, "empty queue");
        assert_eq!(probe.marker().await, before);

        queue.enqueue(&new_job("a"), T0).await.unwrap();
        queue.enqueue(&new_job("b"), T0).await.unwrap();
        queue.enqueue(&new_job("later"), T0 + 1000).await.unwrap();
        assert!(claim_key(&queue, "w", T0).await.is_some());
        let before = probe.marker().await;
        assert_eq!(claim_key(&queue, "w", T0).await, None, "cap reached");
        assert_eq!(queue.recover_expired_leases(T0).await.unwrap(), 0);
        assert_eq!(probe.marker().await, before);
    })
    .await;
}

#[tokio::test]
async fn unfinished_counts_and_cleanup() {
    each_backend("unfinished_counts_and_cleanup", |t| async move {
        let queue = t.db.queue(config(10));
        for key in ["done-old", "done-new", "failing", "stuck", "waiting"] {
            queue.enqueue(&new_job(key), T0).await.unwrap();
        }
        for _ in 0..4 {
            claim_key(&queue, "w", T0).await.unwrap();
        }
        // Claimed in key order: done-new, done-old, failing, stuck.
        queue.complete("done-old", "w", T0).await.unwrap();
        queue.complete("done-new", "w", T0 + 100).await.unwrap();
        queue.fail("failing", "w", T0, "boom").await.unwrap();
        queue
            .fail_terminal("stuck", "w", T0, "invalid build")
            .await
            .unwrap();

        let counts = queue.counts().await.unwrap();
        assert_eq!(
            counts,
            QueueCounts {
                queued: 1,
                running: 0,
                failed: 1,
                done: 2,
                terminal: 1,
            }
        );
        let unfinished: Vec<_> = queue
            .unfinished()
            .await
            .unwrap()
            .into_iter()
            .map(|job| job.key)
            .collect();
        assert_eq!(unfinished, ["stuck", "waiting", "failing"]);
        assert_eq!(queue.delete_done_before(T0 + 100).await.unwrap(), 1);
        assert!(queue.job("done-old").await.unwrap().is_none());
        assert!(queue.job("done-new").await.unwrap().is_some());
        assert_eq!(queue.config().max_running, 10);
    })
    .await;
}
