//! The demo's notification catcher: a webhook receiver on loopback that prints each
//! notification `mistd demo` sends it, so that a new user sees what friends would be told
//! (the first sync's digest, then each new version) without configuring Discord.
//!
//! It is an ordinary generic webhook sink (`mist_notify::sink::SinkKind::Webhook`): the
//! demo points the sender at [`Catcher::url`], and the catcher answers `204` to every
//! notification, printing one line for it on stdout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use mist_platform::units::{count, human_size};
use serde_json::Value;
use tokio::sync::Notify;

/// A running catcher.
#[derive(Debug)]
pub struct Catcher {
    /// Where to send notifications: `http://127.0.0.1:<port>/notify`.
    pub url: String,
    received: Arc<Received>,
    task: tokio::task::JoinHandle<()>,
}

/// How many notifications arrived, and a signal for each.
#[derive(Debug, Default)]
struct Received {
    count: AtomicUsize,
    arrived: Notify,
}

impl Catcher {
    /// Starts a catcher on a free loopback port. Must be called inside a tokio runtime.
    pub async fn start() -> std::io::Result<Catcher> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let address = listener.local_addr()?;
        let received = Arc::new(Received::default());
        let app = Router::new()
            .route("/notify", post(receive))
            .with_state(received.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "the demo's notification catcher stopped");
            }
        });
        Ok(Catcher {
            url: format!("http://{address}/notify"),
            received,
            task,
        })
    }

    /// How many notifications arrived so far.
    pub fn count(&self) -> usize {
        self.received.count.load(Ordering::SeqCst)
    }

    /// Waits until more than `seen` notifications arrived, or `timeout` passed; returns the
    /// count then.
    pub async fn wait_beyond(&self, seen: usize, timeout: std::time::Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.received.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.count() > seen {
                return self.count();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.count();
            }
        }
    }
}

impl Drop for Catcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(received): State<Arc<Received>>, body: Bytes) -> StatusCode {
    let line = match serde_json::from_slice::<Value>(&body) {
        Ok(notification) => describe(&notification),
        Err(_) => format!("{} bytes that are not JSON", body.len()),
    };
    println!("Notification: {line}");
    received.count.fetch_add(1, Ordering::SeqCst);
    received.arrived.notify_waiters();
    StatusCode::NO_CONTENT
}

/// One line for a notification as the generic webhook sends it: `{"event", "data": {…}}`.
fn describe(notification: &Value) -> String {
    let event = notification["event"].as_str().unwrap_or("?");
    let data = &notification["data"];
    let text = |value: &Value| value.as_str().unwrap_or("?").to_owned();
    // A version's name, and what its download costs as a parenthesis (or nothing).
    let version = |data: &Value| {
        let name = format!(
            "{} {}",
            data["title"]
                .as_str()
                .unwrap_or(data["game"].as_str().unwrap_or("?")),
            text(&data["version"])
        );
        let mut cost = String::new();
        if let Some(size) = data["fullSize"].as_u64() {
            cost.push_str(&format!(" ({} download", human_size(size)));
            if let (Some(update), Some(from)) =
                (data["updateSize"].as_u64(), data["updateFrom"].as_str())
            {
                cost.push_str(&format!(", {} from {from}", human_size(update)));
            }
            cost.push(')');
        }
        (name, cost)
    };
    match event {
        "ready" => {
            let (name, cost) = version(data);
            format!("{name} is ready{cost}")
        }
        "digest" => {
            let titles: Vec<String> = data["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|data| {
                    let (name, cost) = version(data);
                    name + &cost
                })
                .collect();
            format!(
                "{} of {} are ready: {}",
                count(data["count"].as_u64().unwrap_or(0), "version"),
                count(data["gameCount"].as_u64().unwrap_or(0), "game"),
                titles.join("; ")
            )
        }
        "stalled" => format!(
            "{} {} is stalled: {}",
            text(&data["game"]),
            text(&data["version"]),
            text(&data["message"])
        ),
        "recovered" => format!(
            "{} {} is no longer stalled",
            text(&data["game"]),
            text(&data["version"])
        ),
        other => format!("{other}: {data}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_read_as_one_line() {
        let ready = serde_json::json!({"event": "ready", "data": {"game": "starfall",
            "title": "Starfall", "version": "1.1", "fullSize": 2_200_000,
            "updateFrom": "1.0", "updateSize": 41_000}});
        assert_eq!(
            describe(&ready),
            "Starfall 1.1 is ready (2.2 MB download, 41.0 kB from 1.0)"
        );
        let digest = serde_json::json!({"event": "digest", "data": {"count": 2, "gameCount": 1,
            "versions": [{"game": "g", "title": "G", "version": "1"},
                         {"game": "g", "title": "G", "version": "2"}]}});
        assert_eq!(
            describe(&digest),
            "2 versions of 1 game are ready: G 1; G 2"
        );
    }
}
