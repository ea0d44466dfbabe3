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
