//! The status board through real HTTP: who may see it, and that it shows every section from
//! the status report and the database.

use std::sync::Arc;

use mist_api::config::ApiConfig;
use mist_db::Db;
use mist_db::conditions::{ObjectRef, Severity};
use mist_db::joblog::{LogLevel, LogLimits, LogLine};
use mist_db::state::{Outcome, Revision};
use mist_wire::status::{
    GameStatus, JobKind, JobProgress, JobState, Phase, QueueEntry, StatusError, StatusReport,
    VersionStatus,
};

use crate::common::*;
use crate::pages::{get_page, sign_in};

/// A report with a refused commit, one version of each phase and a job of each state.
fn board_report(config: &mut ApiConfig) {
    config.status = Some(Arc::new(|_db: Db| {
        Box::pin(async move {
            let version = |name: &str, status: Phase, reason: &str, message: &str| VersionStatus {
                name: name.to_owned(),
                ready: status == Phase::Ready,
                status,
                reason: reason.to_owned(),
                message: message.to_owned(),
                progress: (status == Phase::Reconciling).then(|| progress(40, 100)),
            };
            let job = |kind: JobKind, state: JobState, error: Option<&str>| QueueEntry {
                key: format!("{kind}-{state}"),
                kind,
                game: Some("open".to_owned()),
                version: Some("1.3".to_owned()),
                state,
                attempts: u32::from(error.is_some()) * 3,
                last_error: error.map(str::to_owned),
                next_attempt_at: T0 + 60_000,
                progress: progress(40, 100),
                log_lines: 0,
            };
            Ok(StatusReport {
                commit: Some("bad0c0ffee00bad0c0ffee00".to_owned()),
                last_applied_revision: Some("600dc0ffee00600dc0ffee00".to_owned()),
                last_attempted_revision: Some("bad0c0ffee00bad0c0ffee00".to_owned()),
                errors: vec![StatusError {
                    file: Some("games/open/game.yaml".to_owned()),
                    line: Some(3),
                    column: Some(5),
                    message: "unknown field `titel`".to_owned(),
                    hint: Some("did you mean `title`?".to_owned()),
                }],
                games: vec![GameStatus {
                    name: "open".to_owned(),
                    suspended: false,
                    metadata_stale: None,
                    versions: vec![
                        version("1.0", Phase::Ready, "Ready", "Served."),
                        version("1.3", Phase::Reconciling, "Building", "Packing."),
                        version(
                            "1.4",
                            Phase::Stalled,
                            "DigestMismatch",
                            "The build changed.",
                        ),
                    ],
                }],
                queue: vec![
                    job(JobKind::Pack, JobState::Running, None),
                    job(JobKind::Delta, JobState::Queued, None),
                    job(JobKind::Ingest, JobState::Failed, Some("disk on fire")),
                ],
            })
        })
    }));
}

fn progress(done: u64, total: u64) -> JobProgress {
    JobProgress {
        kind: JobKind::Pack,
        stage: "compress".to_owned(),
        stage_index: 1,
        done,
        total,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_is_for_admins_and_shows_every_section() {
    each_backend("the_board", board_report, |api| async move {
        world(&api).await;
        api.db()
            .record_revision(
                &Revision {
                    commit_id: "600dc0ffee00600dc0ffee00".to_owned(),
                    seen_at: T0,
                    outcome: Outcome::Ok,
                    errors_json: "[]".to_owned(),
                },
                T0,
            )
            .await
            .unwrap();
        for (object, reason) in [
            (ObjectRef::version("open", "1.4"), "DriftDetected"),
            (ObjectRef::game("open"), "GameAdded"),
        ] {
            api.db()
                .record_event(
                    &object,
                    Severity::Warning,
                    reason,
                    "said for the test",
                    T0,
                    100,
                )
                .await
                .unwrap();
        }

        let anonymous = get_page(&api, "/admin", None).await;
        assert_eq!(
            (anonymous.status, anonymous.header("location")),
            (303, Some("/login"))
        );
        let alice = sign_in(&api, "alice").await;
        let friend = get_page(&api, "/admin", Some(&alice)).await;
        assert_eq!(friend.status, 404, "a friend never sees the board");
        assert!(!friend.body.contains("disk on fire") && !friend.body.contains("Spec repository"));
        assert!(
            !get_page(&api, "/", Some(&alice))
                .await
                .body
                .contains("/admin")
        );

        let root = sign_in(&api, "root").await;
        let board = get_page(&api, "/admin", Some(&root)).await;
        let body = &board.body;
        assert_eq!(board.status, 200, "{body}");
        for expected in [
            // The commit in force, when it was read, the refused one and its errors.
            "600dc0ffee00",
            "read 2023-11-14 22:13 UTC",
            "Commit <code>bad0c0ffee00</code> was refused",
            "games/open/game.yaml:3:5",
            "unknown field `titel`",
            // Versions with phases, plain reasons and advice for the Stalled one.
            "1 Ready",
            "1 Reconciling",
            "1 Stalled",
            "The build changed on the NAS after it was read",
            "What to do:",
            r#"<progress max="100" value="40""#,
            "compress",
            // Jobs: running, queued, failed with the error and the next try.
            "disk on fire",
            "Next try 2023-11-14 22:14 UTC",
            // Events per game and version.
            "DriftDetected",
            "GameAdded",
            // Users and the server.
            "carol",
            "disabled",
            "Artifacts",
            if api.db().backend() == mist_db::Backend::Sqlite {
                "SQLite"
            } else {
                "Postgres"
            },
            // The live part.
            r#"data-live="/v1/events""#,
            "/assets/board.",
        ] {
            assert!(body.contains(expected), "{expected} in {body}");
        }
        let stalled = body.find("1.4").unwrap();
        assert!(body[stalled..].contains("What to do:"));
        // The cookie follows the live events, as the board's script does.
        let events = reqwest::Client::new()
            .get(api.url("/v1/events"))
            .header("cookie", format!("mist_session={root}"))
            .send()
            .await
            .unwrap();
        assert_eq!(events.status().as_u16(), 200);
        assert_eq!(events.headers()["content-type"], "text/event-stream");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_shows_each_jobs_log_in_an_expandable_list() {
    each_backend("the_board_logs", board_report, |api| async move {
        world(&api).await;
        let limits = LogLimits {
            max_lines: 3,
            max_line_bytes: 200,
        };
        let line = |at: i64, level: LogLevel, message: &str| LogLine {
            at,
            level,
            message: message.to_owned(),
        };
        // A job that finished (the history), then the running pack job of the report.
        for (key, lines) in [
            (
                "delta-done",
                vec![line(T0, LogLevel::Info, "made a delta of 1.2 MB")],
            ),
            (
                "pack-running",
                vec![
                    line(T0, LogLevel::Info, "attempt 1 of this pack job"),
                    line(T0 + 1_000, LogLevel::Info, "reading 1.3 from its build"),
                    line(T0 + 2_000, LogLevel::Warn, "slow <disk> & retrying"),
                    line(T0 + 3_000, LogLevel::Error, "packing 12 files"),
                    line(T0 + 4_000, LogLevel::Info, "packed into 3.4 MB"),
                ],
            ),
        ] {
            let queue = running_job(&api, key, key.split('-').next().unwrap()).await;
            api.db()
                .append_job_log(key, "w", &lines, &limits)
                .await
                .unwrap();
            if key == "delta-done" {
                queue.complete(key, "w", T0 + 5_000).await.unwrap();
            }
        }

        // The failed ingest job of the report wrote more lines than the board shows.
        let queue = running_job(&api, "ingest-failed", "ingest").await;
        let many: Vec<LogLine> = (0..55)
            .map(|line_idx| line(T0, LogLevel::Info, &format!("line number {line_idx}.")))
            .collect();
        api.db()
            .append_job_log("ingest-failed", "w", &many, &LogLimits::default())
            .await
            .unwrap();
        queue
            .fail("ingest-failed", "w", T0, "disk on fire")
            .await
            .unwrap();

        let root = sign_in(&api, "root").await;
        let board = get_page(&api, "/admin", Some(&root)).await;
        let body = &board.body;
        assert_eq!(board.status, 200, "{body}");
        let failed = &body[body.find(r#"id="log-ingest-failed""#).expect("the failed job's log")..];
        let failed = &failed[..failed.find("</details>").unwrap()];
        for expected in [
            "Log of the ingest job (55 lines)",
            r#"… 5 earlier lines not shown here: <a href="/v1/jobs/ingest-failed/log">the whole log</a>"#,
            "line number 5.",
            "line number 54.",
        ] {
            assert!(failed.contains(expected), "{expected} in {failed}");
        }
        assert!(!failed.contains("line number 4."), "{failed}");
        // The running job's log: in a <details> of its own, the two oldest lines dropped and
        // said so, times to the second, levels, and the message escaped.
        let running = body.find(r#"<details class="job-log" id="log-pack-running">"#);
        let running = &body[running.expect("the running job's log")..];
        let running = &running[..running.find("</details>").unwrap()];
        for expected in [
            "Log of the pack job (3 lines)",
            "… 2 older lines dropped",
            r#"<li class="lvl-warn"><time>22:13:22</time> <span class="lvl">warn</span> slow &lt;disk&gt; &amp; retrying</li>"#,
            r#"<li class="lvl-error"><time>22:13:23</time>"#,
            "packed into 3.4 MB",
        ] {
            assert!(running.contains(expected), "{expected} in {running}");
        }
        assert!(!running.contains("attempt 1 of this pack job"), "{running}");
        // The finished job's log, in the history.
        let history = &body[body.find("Recently done").unwrap()..];
        assert!(
            history.contains(r#"id="log-delta-done""#) && history.contains("made a delta of 1.2 MB"),
            "{history}"
        );
        // A job without lines has no log to open.
        assert!(!body.contains(r#"id="log-delta-queued""#));
    })
    .await;
}

/// "No page needs more than one database round trip while the change counter stands still":
/// once the store and the board were read, every table but the counter is renamed away (which
/// writes no row, so the counter stands still), and both pages still render the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_read_only_the_change_counter_while_it_stands_still() {
    each_backend(
        "pages_read_only_the_counter",
        board_report,
        |api| async move {
            world(&api).await;
            let alice = sign_in(&api, "alice").await;
            let root = sign_in(&api, "root").await;
            let pages = [("/", &alice), ("/admin", &root), ("/games/open", &alice)];
            let mut before = Vec::new();
            for (path, session) in pages {
                let page = get_page(&api, path, Some(session)).await;
                assert_eq!(page.status, 200, "{path}");
                before.push(page.body);
            }
            let seq = api.db().change_seq().await.unwrap();
            for table in mist_db::testing::TABLES {
                if table != "change_seq" {
                    let sql = format!("ALTER TABLE {table} RENAME TO {table}_away");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(api.db().pool())
                        .await
                        .unwrap();
                }
            }
            assert_eq!(
                api.db().change_seq().await.unwrap(),
                seq,
                "the counter moved"
            );
            for ((path, session), before) in pages.into_iter().zip(before) {
                let page = get_page(&api, path, Some(session)).await;
                assert_eq!(
                    page.status, 200,
                    "{path} read more than the counter: {}",
                    page.body
                );
                assert_eq!(page.body, before, "{path}");
            }
        },
    )
    .await;
}
