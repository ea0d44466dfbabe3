//! The sender against real HTTP servers on loopback that answer as Discord documents its
//! webhooks: 204 on success, 429 with `retry_after` (seconds) in the body and `Retry-After`,
//! 5xx when it has a bad moment, 404 for a deleted webhook.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mist_db::Db;
use mist_db::outbox::{Audience, NewNotification, NotificationKind};
use mist_db::testing::{TestDb, each_backend};
use mist_notify::sender::{Sender, SenderConfig};
use mist_notify::sink::{SecretUrl, Sink, SinkKind, signature};
use mist_notify::templates::{Templates, sample};

/// One answer the fake endpoint gives, in order; after the script, 204.
#[derive(Clone, Copy, Debug)]
enum Answer {
    NoContent,
    TooManyRequests { retry_after_ms: u64 },
    ServerError,
    NotFound,
}

/// A request the fake endpoint received.
#[derive(Clone, Debug)]
struct Received {
    at: Instant,
    headers: HeaderMap,
    body: Vec<u8>,
    answered: u16,
}

#[derive(Default)]
struct Endpoint {
    script: Vec<Answer>,
    received: Vec<Received>,
}

/// A fake webhook endpoint on 127.0.0.1; its URL's path carries a token, like Discord's.
struct FakeEndpoint {
    state: Arc<Mutex<Endpoint>>,
    url: String,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeEndpoint {
    async fn start(script: Vec<Answer>) -> FakeEndpoint {
        let state = Arc::new(Mutex::new(Endpoint {
            script,
            received: Vec::new(),
        }));
        let handler_state = state.clone();
        let app = axum::Router::new().route(
            "/api/webhooks/{id}/{token}",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = handler_state.clone();
                async move { answer(&state, headers, body.to_vec()) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeEndpoint {
            state,
            url: format!("http://{address}/api/webhooks/1234/s3cr3t-token"),
            _server: server,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }
}

fn answer(state: &Mutex<Endpoint>, headers: HeaderMap, body: Vec<u8>) -> Response {
    let mut endpoint = state.lock().unwrap();
    let next = if endpoint.script.is_empty() {
        Answer::NoContent
    } else {
        endpoint.script.remove(0)
    };
    let response = match next {
        Answer::NoContent => StatusCode::NO_CONTENT.into_response(),
        Answer::TooManyRequests { retry_after_ms } => {
            let seconds = retry_after_ms as f64 / 1000.0;
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", format!("{}", seconds.ceil() as u64))],
                format!(
                    r#"{{"message": "You are being rate limited.", "retry_after": {seconds}, "global": false}}"#
                ),
            )
                .into_response()
        }
        Answer::ServerError => (StatusCode::BAD_GATEWAY, "upstream hiccup").into_response(),
        Answer::NotFound => (
            StatusCode::NOT_FOUND,
            r#"{"message": "Unknown Webhook", "code": 10015}"#,
        )
            .into_response(),
    };
    endpoint.received.push(Received {
        at: Instant::now(),
        headers,
        body,
        answered: response.status().as_u16(),
    });
    response
}

fn fast_config() -> SenderConfig {
    SenderConfig {
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        max_attempts: 4,
        poll: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
    }
}

fn discord(url: &str) -> Sink {
    Sink {
        name: "discord".to_owned(),
        url: SecretUrl::new(url.to_owned()),
        kind: SinkKind::Discord,
        audiences: vec![Audience::Friends, Audience::Admins],
    }
}

/// Writes a Ready notification announcing `game/version`, as the reconciler does.
async fn announce(db: &Db, game: &str, version: &str, now: i64) -> usize {
    let mut facts = sample(NotificationKind::Ready);
    facts["game"] = game.into();
    facts["version"] = version.into();
    let notification = NewNotification {
        kind: NotificationKind::Ready,
        audience: Audience::Friends,
        payload: facts.to_string(),
        announces: Some((game.to_owned(), version.to_owned())),
    };
    db.set_conditions_notifying(&[], &[notification], now)
        .await
        .unwrap()
}

/// Runs a sender over `sinks` in the background; dropping the guard stops it.
struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(db: &Db, sinks: Vec<Sink>, config: SenderConfig) -> Running {
        let sender = Sender::new(db.clone(), sinks, Templates::load(None).unwrap(), config)
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            sender
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Running {
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
        (&mut self.task).await.unwrap();
    }
}

/// Waits until `sink` has nothing left to send: every notification it should get is recorded
/// as sent or given up, none pending a retry. After that the sender cannot send again, so a
/// doubled delivery would already be in what the endpoint received.
async fn settled(db: &Db, sink: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let due = db
            .due_notifications(sink, &[Audience::Friends, Audience::Admins], i64::MAX, 1)
            .await
            .unwrap();
        if due.is_empty() && db.next_retry_at(sink).await.unwrap().is_none() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {sink} to settle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `check` every 10 ms until it holds, or panics after `timeout`.
async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_version_is_sent_once_through_429_and_5xx() {
    each_backend("sent once through 429 and 5xx", |t: TestDb| async move {
        let endpoint = FakeEndpoint::start(vec![
            Answer::TooManyRequests {
                retry_after_ms: 300,
            },
            Answer::ServerError,
        ])
        .await;
        let running = Running::start(&t.db, vec![discord(&endpoint.url)], fast_config()).await;
        let written = Instant::now();
        assert_eq!(announce(&t.db, "celeste", "1.4", 1_000).await, 1);
        // Announcing the same version again writes nothing: once, ever.
        assert_eq!(announce(&t.db, "celeste", "1.4", 2_000).await, 0);
        wait_until("the message accepted", Duration::from_secs(10), || {
            !endpoint.accepted().is_empty()
        })
        .await;
        settled(&t.db, "discord").await;
        running.stop().await;

        let received = endpoint.received();
        let answers: Vec<u16> = received.iter().map(|r| r.answered).collect();
        assert_eq!(
            answers,
            [429, 502, 204],
            "one 429, one 5xx, then delivered once"
        );
        assert!(
            received[1].at - received[0].at >= Duration::from_millis(300),
            "the 429's retry_after was obeyed"
        );
        let message: serde_json::Value = serde_json::from_slice(&received[2].body).unwrap();
        assert_eq!(
            message["embeds"][0]["title"],
            "Celeste \"Farewell\" 1.4 is ready"
        );
        assert!(
            received[0].at - written < Duration::from_secs(2),
            "the first attempt left within 2 s"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_given_up_after_the_bound_with_a_visible_error() {
    each_backend("given up after the bound", |t: TestDb| async move {
        let endpoint = FakeEndpoint::start(vec![Answer::ServerError; 10]).await;
        let gone = FakeEndpoint::start(vec![Answer::NotFound]).await;
        let mut deleted = discord(&gone.url);
        deleted.name = "discord-admins".to_owned();
        let running =
            Running::start(&t.db, vec![discord(&endpoint.url), deleted], fast_config()).await;
        announce(&t.db, "celeste", "1.4", 1_000).await;
        let db = t.db.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        let failed = loop {
            let failed = db.failed_deliveries(10).await.unwrap();
            if failed.len() == 2 {
                break failed;
            }
            assert!(
                Instant::now() < deadline,
                "two deliveries given up: {failed:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        running.stop().await;

        let by_sink = |name: &str| failed.iter().find(|f| f.sink == name).unwrap().clone();
        let flaky = by_sink("discord");
        assert_eq!(flaky.attempts, 4, "max_attempts attempts");
        assert!(flaky.error.contains("502"), "{}", flaky.error);
        assert_eq!(endpoint.received().len(), 4);
        let refused = by_sink("discord-admins");
        assert_eq!(refused.attempts, 1, "a 404 is not retried");
        assert!(refused.error.contains("404"), "{}", refused.error);
        for failure in &failed {
            assert!(
                !failure.error.contains("s3cr3t-token"),
                "the webhook URL is secret: {}",
                failure.error
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_webhook_gets_the_event_as_signed_json() {
    each_backend("signed webhook", |t: TestDb| async move {
        let endpoint = FakeEndpoint::start(vec![]).await;
        let sink = Sink {
            name: "webhook".to_owned(),
            url: SecretUrl::new(endpoint.url.clone()),
            kind: SinkKind::Webhook {
                key: Some(b"hmac key".to_vec()),
            },
            audiences: vec![Audience::Friends, Audience::Admins],
        };
        let running = Running::start(&t.db, vec![sink], fast_config()).await;
        announce(&t.db, "celeste", "1.4", 1_000).await;
        wait_until("the event accepted", Duration::from_secs(10), || {
            !endpoint.accepted().is_empty()
        })
        .await;
        running.stop().await;

        let received = endpoint.accepted().remove(0);
        let header = |name: &str| received.headers[name].to_str().unwrap().to_owned();
        assert_eq!(
            header("x-mist-signature-256"),
            signature(b"hmac key", &received.body)
        );
        assert_eq!(header("x-mist-event"), "ready");
        let event: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(event["event"], "ready");
        assert_eq!(event["data"]["version"], "1.4");
        assert_eq!(event["id"].to_string(), header("x-mist-delivery"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_added_later_gets_what_happens_from_then_on() {
    each_backend("sink added later", |t: TestDb| async move {
        announce(&t.db, "celeste", "1.3", 1_000).await;
        let endpoint = FakeEndpoint::start(vec![]).await;
        let running = Running::start(&t.db, vec![discord(&endpoint.url)], fast_config()).await;
        announce(&t.db, "celeste", "1.4", 2_000).await;
        wait_until("the new version sent", Duration::from_secs(10), || {
            !endpoint.accepted().is_empty()
        })
        .await;
        settled(&t.db, "discord").await;
        running.stop().await;
        let versions: Vec<String> = endpoint
            .accepted()
            .iter()
            .map(|r| {
                let message: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                message["embeds"][0]["footer"]["text"].to_string()
                    + message["embeds"][0]["title"].as_str().unwrap()
            })
            .collect();
        assert_eq!(versions.len(), 1, "{versions:?}");
        assert!(versions[0].contains("1.4"), "{versions:?}");
    })
    .await;
}
