//! Where notifications go, and one delivery attempt to each kind of sink: a Discord webhook
//! (the message rendered from a template) or a generic webhook (the notification as JSON,
//! signed with HMAC-SHA256).
//!
//! A sink's URL is a secret (a Discord webhook URL carries its token): it is never logged and
//! never part of an error, which is why every reqwest error goes through `without_url`.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use mist_db::outbox::{Audience, Notification, NotificationKind};
use mist_wire::notification::{Event, WebhookBody};

use crate::templates::Templates;

/// The header that carries a generic webhook's signature: `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Mist-Signature-256";
/// The header that names the event of a generic webhook (`ready`, `stalled`, …).
pub const EVENT_HEADER: &str = "X-Mist-Event";
/// The header that carries the notification's id: the same on every attempt, so a receiver
/// can drop the rare second delivery.
pub const DELIVERY_HEADER: &str = "X-Mist-Delivery";

/// The longest wait a 429 may ask for; a longer one is treated as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A URL that is never shown: its `Debug` prints nothing of it.
#[derive(Clone)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL read from a secret file.
    pub fn new(url: String) -> SecretUrl {
        SecretUrl(url)
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretUrl(…)")
    }
}

/// What kind of endpoint a sink is. Its `Debug` leaves the key out.
#[derive(Clone)]
pub enum SinkKind {
    /// A Discord webhook: the templates' messages.
    Discord,
    /// A generic webhook: the notification as JSON, signed when a key is given.
    Webhook {
        /// The HMAC-SHA256 key; without one, no signature header is sent.
        key: Option<Vec<u8>>,
    },
}

impl std::fmt::Debug for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkKind::Discord => f.write_str("Discord"),
            SinkKind::Webhook { key } => write!(f, "Webhook {{ signed: {} }}", key.is_some()),
        }
    }
}

/// One place notifications are delivered to.
#[derive(Clone, Debug)]
pub struct Sink {
    /// A stable name, recorded with each delivery (`discord`, `discord-admins`, `webhook`).
    pub name: String,
    /// Where to POST.
    pub url: SecretUrl,
    /// What it is.
    pub kind: SinkKind,
    /// Who it speaks to: which notifications it receives.
    pub audiences: Vec<Audience>,
}

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The endpoint asked to wait (429): not the message's fault, tried again after `after`.
    #[error("rate limited: retry after {after:?}")]
    RateLimited {
        /// How long to wait.
        after: Duration,
    },
    /// A failure that may pass: no connection, a timeout, a 5xx.
    #[error("{0}")]
    Transient(String),
    /// A failure that will not pass by itself: a 4xx other than 429, a template that does
    /// not render.
    #[error("{0}")]
    Permanent(String),
}

impl Sink {
    /// One attempt to deliver `notification`.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        templates: &Templates,
        notification: &Notification,
    ) -> Result<(), SendError> {
        let facts: serde_json::Value = serde_json::from_str(&notification.payload)
            .map_err(|e| SendError::Permanent(format!("the stored facts are not JSON: {e}")))?;
        let mut request = client
            .post(&self.url.0)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let body = match &self.kind {
            SinkKind::Discord => templates
                .render_discord(notification.kind, &facts)
                .map_err(|e| SendError::Permanent(format!("the template does not render: {e}")))?,
            SinkKind::Webhook { key } => {
                let body = webhook_body(notification, facts);
                request = request
                    .header(EVENT_HEADER, notification.kind.as_str())
                    .header(DELIVERY_HEADER, notification.id.to_string());
                if let Some(key) = key {
                    request = request.header(SIGNATURE_HEADER, signature(key, &body));
                }
                body
            }
        };
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Transient(describe(&e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let header_wait = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.trim().parse::<f64>().ok());
        let text = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            // Discord puts the wait in the body as `retry_after` (seconds, fractional) and
            // in the Retry-After header; either will do, the longer wins.
            let body_wait = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("retry_after").and_then(serde_json::Value::as_f64));
            let seconds = body_wait
                .into_iter()
                .chain(header_wait)
                .fold(1.0_f64, f64::max);
            let after = Duration::try_from_secs_f64(seconds)
                .unwrap_or(MAX_RETRY_AFTER)
                .min(MAX_RETRY_AFTER);
            return Err(SendError::RateLimited { after });
        }
        let snippet: String = text.chars().take(200).collect();
        let message = format!("the endpoint answered {status}: {snippet}");
        if status.is_server_error() || status == reqwest::StatusCode::REQUEST_TIMEOUT {
            Err(SendError::Transient(message))
        } else {
            Err(SendError::Permanent(message))
        }
    }
}

/// A generic webhook's body: the notification and its facts
/// ([`mist_wire::notification::WebhookBody`]).
pub fn webhook_body(notification: &Notification, facts: serde_json::Value) -> Vec<u8> {
    let body = WebhookBody {
        id: notification.id,
        event: event_of(notification.kind),
        audience: notification.audience.as_str().to_owned(),
        created_at: notification.created_at,
        data: facts,
    };
    serde_json::to_vec(&body).expect("a body of JSON values always serializes")
}

/// The webhook's name of a notification's kind.
fn event_of(kind: NotificationKind) -> Event {
    match kind {
        NotificationKind::Ready => Event::Ready,
        NotificationKind::Stalled => Event::Stalled,
        NotificationKind::Recovered => Event::Recovered,
        NotificationKind::Digest => Event::Digest,
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `key`, as GitHub signs its webhooks.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A reqwest error (already without its URL) with its causes, once each.
fn describe(error: &reqwest::Error) -> String {
    mist_platform::error::ErrorChain(error).to_string()
}
