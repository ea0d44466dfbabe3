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
use mist_wire::notification::{DigestFacts, Event, VersionFacts, WebhookBody};
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
    let line = describe(&body).unwrap_or_else(|error| {
        format!("{} bytes that are not a notification: {error}", body.len())
    });
    println!("Notification: {line}");
    received.count.fetch_add(1, Ordering::SeqCst);
    received.arrived.notify_waiters();
    StatusCode::NO_CONTENT
}

/// One line for a notification as the generic webhook sends it.
fn describe(body: &[u8]) -> serde_json::Result<String> {
    let notification: WebhookBody<serde_json::Value> = serde_json::from_slice(body)?;
    let data = notification.data;
    Ok(match notification.event {
        Event::Ready => {
            let facts: VersionFacts = serde_json::from_value(data)?;
            format!("{} is ready{}", name(&facts), cost(&facts))
        }
        Event::Digest => {
            let facts: DigestFacts = serde_json::from_value(data)?;
            let titles: Vec<String> = facts
                .versions
                .iter()
                .map(|version| name(version) + &cost(version))
                .collect();
            format!(
                "{} of {} are ready: {}",
                count(facts.count, "version"),
                count(facts.game_count, "game"),
                titles.join("; ")
            )
        }
        Event::Stalled => {
            let facts: VersionFacts = serde_json::from_value(data)?;
            let message = facts.message.as_deref().unwrap_or("no reason given");
            format!("{} {} is stalled: {message}", facts.game, facts.version)
        }
        Event::Recovered => {
            let facts: VersionFacts = serde_json::from_value(data)?;
            format!("{} {} is no longer stalled", facts.game, facts.version)
        }
    })
}

/// A version's title and name, e.g. `Starfall 1.1`.
fn name(facts: &VersionFacts) -> String {
    format!("{} {}", facts.title, facts.version)
}

/// What a version's download costs, as a parenthesis, or nothing when the pack is not made.
fn cost(facts: &VersionFacts) -> String {
    let Some(size) = facts.full_size else {
        return String::new();
    };
    match (facts.update_size, &facts.update_from) {
        (Some(update), Some(from)) => format!(
            " ({} download, {} from {from})",
            human_size(size),
            human_size(update)
        ),
        _ => format!(" ({} download)", human_size(size)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_read_as_one_line() {
        let ready = serde_json::json!({"id": 1, "event": "ready", "audience": "friends",
            "createdAt": 0, "data": {"game": "starfall", "title": "Starfall", "version": "1.1",
            "fullSize": 2_200_000, "updateFrom": "1.0", "updateSize": 41_000}});
        assert_eq!(
            describe(ready.to_string().as_bytes()).unwrap(),
            "Starfall 1.1 is ready (2.2 MB download, 41.0 kB from 1.0)"
        );
        let digest = serde_json::json!({"id": 2, "event": "digest", "audience": "friends",
            "createdAt": 0, "data": {"count": 2, "gameCount": 1,
            "versions": [{"game": "g", "title": "G", "version": "1"},
                         {"game": "g", "title": "G", "version": "2"}]}});
        assert_eq!(
            describe(digest.to_string().as_bytes()).unwrap(),
            "2 versions of 1 game are ready: G 1; G 2"
        );
    }
}
