//! Job logs: every job says what it read, what it made, how long it took, and why it failed.

use std::time::Duration;

use mist_db::joblog::{JobLog, LogLevel};
use mist_db::testing::each_backend;

use crate::world::{GameOptions, World, poll, status, summary};

/// The messages of the jobs of `kind` (the key's first part), oldest line first.
fn messages_of(logs: &[JobLog], kind: &str) -> Vec<Vec<String>> {
    logs.iter()
        .filter(|log| log.key.split(':').next() == Some(kind))
        .map(|log| {
            log.lines
                .iter()
                .map(|stored| format!("{} {}", stored.line.level, stored.line.message))
                .collect()
        })
        .collect()
}

fn assert_has(lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|line| line.contains(expected)),
        "{expected:?} in {lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_logs_what_it_did_and_why_it_failed() {
    each_backend(
        "every_job_logs_what_it_did_and_why_it_failed",
        |test_db| async move {
            let mut world = World::new(test_db);
            world.game("alpha", &GameOptions::default());
            world.version("alpha", "1.0", 0);
            world.version("alpha", "1.1", 1);
            world.commit("alpha");
            let reconciler = world
                .reconciler()
                .with_backoff(Duration::from_millis(300), Duration::from_secs(1));
            reconciler.run_until_idle().await.unwrap();
            let ready = summary(&status(&world).await);
            assert!(crate::all_ready(&ready), "{ready:?}");

            let logs: Vec<JobLog> = world
                .db()
                .job_logs_of_unfinished_and_recent(100)
                .await
                .unwrap()
                .into_values()
                .collect();
            let ingests = messages_of(&logs, "ingest");
            assert_eq!(ingests.len(), 2, "{logs:#?}");
            for lines in &ingests {
                assert!(
                    lines[0].starts_with("info attempt 1 of this ingest job, on worker test-owner")
                );
                assert_has(lines, "info reading the build in ");
                assert_has(lines, "info scanned ");
                assert_has(lines, ": blake3:");
                assert_has(lines, "info stored the manifest as ");
                assert!(
                    lines.last().unwrap().starts_with("info done in "),
                    "{lines:?}"
                );
            }
            let packs = messages_of(&logs, "pack");
            assert_eq!(packs.len(), 2, "{logs:#?}");
            for lines in &packs {
                assert_has(lines, "from its build in incoming/alpha/");
                assert_has(lines, "at zstd level");
                assert_has(lines, "info packed into ");
                assert!(lines.last().unwrap().starts_with("info done in "));
            }
            let deltas = messages_of(&logs, "delta");
            assert!(!deltas.is_empty(), "{logs:#?}");
            assert_has(&deltas[0], "info diffing ");
            assert_has(&deltas[0], "info made a delta of ");
            assert_has(&deltas[0], "info methods: ");

            // A job whose writes fail says so, with the cause, and that it will be retried.
            world.version("alpha", "1.2", 2);
            world.commit("alpha 1.2");
            let tmp = world.nas().join(".mist/tmp");
            std::fs::remove_dir_all(&tmp).ok();
            std::fs::write(&tmp, b"in the way").unwrap();
            reconciler.run_until_idle().await.unwrap();
            let failed = poll(
                Duration::from_secs(20),
                "a failed job with a log",
                || async {
                    let logs = world
                        .db()
                        .job_logs_of_unfinished_and_recent(0)
                        .await
                        .unwrap();
                    logs.into_values().find(|log| {
                        log.lines
                            .iter()
                            .any(|stored| stored.line.level == LogLevel::Error)
                    })
                },
            )
            .await;
            let error = failed
                .lines
                .iter()
                .find(|stored| stored.line.level == LogLevel::Error)
                .unwrap();
            assert!(
                error.line.message.starts_with("failed after ")
                    && error
                        .line
                        .message
                        .ends_with("; it will be retried after a pause")
                    && error.line.message.contains(".mist/tmp"),
                "{error:?}"
            );
            // The status report counts the job's lines, so /v1/events sends a new status (and
            // the live board its log) with every line written.
            let report = status(&world).await;
            let entry = report
                .queue
                .iter()
                .find(|entry| entry.key == failed.key)
                .expect("the failed job in the status report");
            assert_eq!(entry.log_lines, failed.last_seq);
            std::fs::remove_file(&tmp).unwrap();
        },
    )
    .await;
}
