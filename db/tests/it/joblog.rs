//! Job logs: bounded, written only under the lease, read whole or after a line, deleted with
//! their job.

use mist_db::joblog::{JobLog, LogLevel, LogLimits, LogLine};
use mist_db::queue::JobState;
use mist_db::testing::{TestDb, WriteProbe, each_backend};
use mist_db::{EpochMs, Error};
use sqlx::Row;

use crate::common::T0;
use crate::queue::{LEASE, config, new_job};

const LIMITS: LogLimits = LogLimits {
    max_lines: 3,
    max_line_bytes: 16,
};

fn queue(t: &TestDb) -> mist_db::queue::Queue {
    t.db.queue(config(10))
}

fn line(at: EpochMs, level: LogLevel, message: &str) -> LogLine {
    LogLine {
        at,
        level,
        message: message.to_owned(),
    }
}

/// The log as `(seq, at, level, message)` rows, for comparing.
fn rows(log: &JobLog) -> Vec<(u64, EpochMs, &'static str, &str)> {
    log.lines
        .iter()
        .map(|stored| {
            (
                stored.seq,
                stored.line.at,
                stored.line.level.as_str(),
                stored.line.message.as_str(),
            )
        })
        .collect()
}

async fn n_stored_lines(t: &TestDb) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM job_log_lines")
        .fetch_one(t.db.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

#[tokio::test]
async fn a_log_keeps_its_newest_lines_and_counts_the_dropped() {
    each_backend(
        "a_log_keeps_its_newest_lines_and_counts_the_dropped",
        |t| async move {
            let queue = queue(&t);
            queue.enqueue(&new_job("j"), T0).await.unwrap();
            queue.claim("w", T0, LEASE).await.unwrap().unwrap();
            let before = t.db.change_seq().await.unwrap();

            t.db.append_job_log(
                "j",
                "w",
                &[
                    line(T0 + 1, LogLevel::Info, "read the build"),
                    line(T0 + 2, LogLevel::Warn, "slow disk"),
                ],
                &LIMITS,
            )
            .await
            .unwrap();
            assert_ne!(
                t.db.change_seq().await.unwrap(),
                before,
                "a log line is a change"
            );
            let log = t.db.job_log("j", 0).await.unwrap().unwrap();
            assert_eq!(
                rows(&log),
                [
                    (1, T0 + 1, "info", "read the build"),
                    (2, T0 + 2, "warn", "slow disk"),
                ]
            );
            assert_eq!(
                (log.state, log.last_seq, log.n_dropped()),
                (JobState::Running, 2, 0)
            );

            // Three more lines: the two oldest go, and are counted; a long line is cut.
            t.db.append_job_log(
                "j",
                "w",
                &[
                    line(T0 + 3, LogLevel::Info, "packed"),
                    line(T0 + 4, LogLevel::Error, "a message far too long to keep"),
                    line(T0 + 5, LogLevel::Info, "done"),
                ],
                &LIMITS,
            )
            .await
            .unwrap();
            let log = t.db.job_log("j", 0).await.unwrap().unwrap();
            assert_eq!(
                rows(&log),
                [
                    (3, T0 + 3, "info", "packed"),
                    (4, T0 + 4, "error", "a message far…"),
                    (5, T0 + 5, "info", "done"),
                ]
            );
            assert_eq!((log.last_seq, log.n_dropped()), (5, 2));
            assert_eq!(n_stored_lines(&t).await, 3);

            // After a line: only the newer ones, with the same count of dropped lines.
            let tail = t.db.job_log("j", 4).await.unwrap().unwrap();
            assert_eq!(rows(&tail), [(5, T0 + 5, "info", "done")]);
            assert_eq!(tail.n_dropped(), 2);
            let nothing_new = t.db.job_log("j", 5).await.unwrap().unwrap();
            assert!(nothing_new.lines.is_empty());
            assert_eq!(nothing_new.last_seq, 5);

            assert_eq!(t.db.job_log("no-such-job", 0).await.unwrap(), None);
        },
    )
    .await;
}

#[tokio::test]
async fn only_the_lease_owner_writes_a_log() {
    each_backend("only_the_lease_owner_writes_a_log", |t| async move {
        let queue = queue(&t);
        queue.enqueue(&new_job("j"), T0).await.unwrap();
        let lines = [line(T0, LogLevel::Info, "hello")];

        // Queued, not running: nobody may write.
        let mut probe = WriteProbe::new(&t).await;
        let before = probe.marker().await;
        assert!(matches!(
            t.db.append_job_log("j", "w", &lines, &LIMITS).await,
            Err(Error::LeaseLost { .. })
        ));
        queue.claim("w", T0, LEASE).await.unwrap().unwrap();
        let claimed = probe.marker().await;
        assert_ne!(claimed, before);
        // Another worker, and an unknown job: refused, nothing written.
        assert!(matches!(
            t.db.append_job_log("j", "other", &lines, &LIMITS).await,
            Err(Error::LeaseLost { .. })
        ));
        assert!(matches!(
            t.db.append_job_log("nope", "w", &lines, &LIMITS).await,
            Err(Error::LeaseLost { .. })
        ));
        // No lines: nothing to write, and nothing written.
        t.db.append_job_log("j", "w", &[], &LIMITS).await.unwrap();
        assert_eq!(probe.marker().await, claimed, "a refused log write wrote");

        t.db.append_job_log("j", "w", &lines, &LIMITS)
            .await
            .unwrap();
        queue.complete("j", "w", T0 + 1).await.unwrap();
        // Done: the log stays, and no more lines are taken.
        assert!(matches!(
            t.db.append_job_log("j", "w", &lines, &LIMITS).await,
            Err(Error::LeaseLost { .. })
        ));
        let log = t.db.job_log("j", 0).await.unwrap().unwrap();
        assert_eq!(rows(&log), [(1, T0, "info", "hello")]);
        assert_eq!(log.state, JobState::Done);
    })
    .await;
}

#[tokio::test]
async fn logs_are_deleted_with_their_jobs_and_the_board_reads_the_jobs_it_shows() {
    each_backend(
        "logs_are_deleted_with_their_jobs_and_the_board_reads_the_jobs_it_shows",
        |t| async move {
            let queue = queue(&t);
            // Three done jobs (finished at T0+10, +20, +30), one failed, one queued.
            for (job_idx, key) in ["done-a", "done-b", "done-c", "failing", "waiting"]
                .into_iter()
                .enumerate()
            {
                queue.enqueue(&new_job(key), T0).await.unwrap();
                if key == "waiting" {
                    continue;
                }
                let now = T0 + 10 * (job_idx as i64 + 1);
                let job = queue.claim("w", now, LEASE).await.unwrap().unwrap();
                assert_eq!(job.key, key);
                let text = format!("{key} ran");
                t.db.append_job_log(key, "w", &[line(now, LogLevel::Info, &text)], &LIMITS)
                    .await
                    .unwrap();
                if key == "failing" {
                    queue.fail(key, "w", now, "disk full").await.unwrap();
                } else {
                    queue.complete(key, "w", now).await.unwrap();
                }
            }

            // The board: every unfinished job and the newest two done ones, with lines.
            let logs = t.db.job_logs_of_unfinished_and_recent(2).await.unwrap();
            let shown: Vec<(&str, JobState, Vec<&str>)> = logs
                .values()
                .map(|log| {
                    (
                        log.key.as_str(),
                        log.state,
                        log.lines
                            .iter()
                            .map(|stored| stored.line.message.as_str())
                            .collect(),
                    )
                })
                .collect();
            assert_eq!(
                shown,
                [
                    ("done-b", JobState::Done, vec!["done-b ran"]),
                    ("done-c", JobState::Done, vec!["done-c ran"]),
                    ("failing", JobState::Failed, vec!["failing ran"]),
                ]
            );

            // Cleaning up done jobs takes their logs with them, and only theirs.
            assert_eq!(queue.delete_done_before(T0 + 25).await.unwrap(), 2);
            assert_eq!(t.db.job_log("done-a", 0).await.unwrap(), None);
            assert_eq!(n_stored_lines(&t).await, 2);
            let kept = t.db.job_log("done-c", 0).await.unwrap().unwrap();
            assert_eq!(kept.lines.len(), 1);
        },
    )
    .await;
}
