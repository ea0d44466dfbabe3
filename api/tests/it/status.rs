//! `/v1/status` and the `/v1/events` stream.

use std::time::Duration;

use mist_db::state::{Role, User, VersionState};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_whole_for_admins_and_filtered_for_friends() {
    each_backend("status_views", defaults, |api| async move {
        world(&api).await;
        let root = api.login("root").await;
        let alice = api.login("alice").await;
        let (status, full) = api.get_json("/v1/status", Some(&root)).await;
        assert_eq!(status, 200);
        assert_eq!(full["commit"], "c0ffee");
        assert!(full.to_string().contains("admin-only"));
        let (status, view) = api.get_json("/v1/status", Some(&alice)).await;
        assert_eq!(status, 200);
        assert_eq!(
            view,
            json!({"games": [{"name": "open", "versions": [
                {"name": "1.0", "ready": true}, {"name": "1.1", "ready": true},
                {"name": "1.2", "ready": true}]}]})
        );
        assert_eq!(api.get_json("/v1/status", None).await.0, 401);
    })
    .await;
}

/// Reads SSE events until one `status` event is complete; `None` when the stream ended.
async fn next_status_event(response: &mut reqwest::Response, buffer: &mut String) -> Option<Value> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event
                .lines()
                .find_map(|line| line.strip_prefix("data:"))
                .filter(|_| event.contains("event: status") || event.contains("event:status"))
            {
                return Some(serde_json::from_str(data.trim()).unwrap());
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("an event within the deadline")
            .unwrap()?;
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_changes_and_end_when_the_user_is_disabled() {
    each_backend("events_follow_changes", defaults, |api| async move {
        let w = world(&api).await;
        let alice = api.login("alice").await;
        let mut response = api.get("/v1/events", Some(&alice), &[]).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut buffer = String::new();
        let first = next_status_event(&mut response, &mut buffer).await.unwrap();
        assert_eq!(first["games"][0]["versions"].as_array().unwrap().len(), 3);

        // 1.3 becomes Ready: the friend hears of it.
        api.set_state(
            "open",
            "1.3",
            VersionState::Ready,
            Some(&w.open_manifests[0]),
            Some(&w.open_packs[0]),
        )
        .await;
        let second = next_status_event(&mut response, &mut buffer).await.unwrap();
        assert_eq!(second["games"][0]["versions"][3]["name"], "1.3");

        // Disabled: the stream ends.
        api.db()
            .upsert_users(
                &[User {
                    name: "alice".into(),
                    display_name: None,
                    role: Role::User,
                    password_hash: password_hash(),
                    disabled: true,
                }],
                T0,
            )
            .await
            .unwrap();
        assert_eq!(next_status_event(&mut response, &mut buffer).await, None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_logs_are_for_admins_and_follow_from_a_line() {
    each_backend("job_logs", defaults, |api| async move {
        use mist_db::joblog::{LogLevel, LogLimits, LogLine};

        world(&api).await;
        let key = "pack:open:blake3:abc";
        running_job(&api, key, "pack").await;
        let lines: Vec<LogLine> = ["one", "two", "three"]
            .iter()
            .enumerate()
            .map(|(line_idx, message)| LogLine {
                at: T0 + line_idx as i64,
                level: if line_idx == 2 {
                    LogLevel::Error
                } else {
                    LogLevel::Info
                },
                message: (*message).to_owned(),
            })
            .collect();
        let limits = LogLimits {
            max_lines: 2,
            max_line_bytes: 100,
        };
        api.db()
            .append_job_log(key, "w", &lines, &limits)
            .await
            .unwrap();

        let path = "/v1/jobs/pack:open:blake3:abc/log";
        let root = api.login("root").await;
        let (status, log) = api.get_json(path, Some(&root)).await;
        assert_eq!(status, 200, "{log}");
        assert_eq!(
            log,
            json!({"key": key, "state": "running", "lastSeq": 3, "nDropped": 1, "lines": [
                {"seq": 2, "at": T0 + 1, "level": "info", "message": "two"},
                {"seq": 3, "at": T0 + 2, "level": "error", "message": "three"}]})
        );
        // Following: only what came after the line given.
        let (status, tail) = api.get_json(&format!("{path}?after=2"), Some(&root)).await;
        assert_eq!(status, 200);
        assert_eq!(tail["lines"].as_array().unwrap().len(), 1);
        assert_eq!(tail["lines"][0]["message"], "three");

        let (status, body) = api.get_json(&format!("{path}?after=x"), Some(&root)).await;
        assert_eq!(status, 400);
        assert!(body["error"].to_string().contains("after"), "{body}");
        assert_eq!(api.get_json("/v1/jobs/nope/log", Some(&root)).await.0, 404);
        let alice = api.login("alice").await;
        assert_eq!(api.get_json(path, Some(&alice)).await.0, 403);
        assert_eq!(api.get_json(path, None).await.0, 401);
    })
    .await;
}
