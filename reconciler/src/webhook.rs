//! The git webhook: a verified delivery from GitHub, Gitea or Forgejo requests a run, and
//! does nothing else.
//!
//! The payload is never parsed or trusted: which branch or commit it names does not matter,
//! because a run reads the branch tip itself. So the endpoint only has to be sure the
//! sender knows the shared secret, which it checks with HMAC-SHA256 over the raw body:
//!
//! - GitHub sends `X-Hub-Signature-256: sha256=<hex>`;
//! - Gitea and Forgejo send `X-Gitea-Signature: <hex>` (newer ones also the GitHub header).
//!
//! Every signature header present must verify, and at least one must be present. The
//! comparison is constant-time. The secret is never logged: [`WebhookSecret`]'s `Debug`
//! hides it, and a rejection is logged at `debug` level with its reason only.
//!
//! [`handle`] is the whole logic as a plain function of (headers, body); [`webhook_router`]
//! mounts it at `POST /v1/hooks/git` with a 1 MiB body limit.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{KeyInit, Mac};

use crate::triggers::{Reason, Trigger};

/// Where [`webhook_router`] mounts the endpoint.
pub const WEBHOOK_PATH: &str = "/v1/hooks/git";

/// The largest body accepted (GitHub caps deliveries at 25 MB, but push payloads for a
/// spec repository are a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// GitHub's signature header (also sent by newer Gitea and Forgejo).
pub const GITHUB_HEADER: &str = "x-hub-signature-256";

/// Gitea's signature header.
pub const GITEA_HEADER: &str = "x-gitea-signature";

/// The shared webhook secret. Its `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret(Arc<[u8]>);

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header at all.
    #[error("no X-Hub-Signature-256 or X-Gitea-Signature header")]
    Missing,
    /// A header is not of the expected form.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// A signature does not match the body and secret.
    #[error("{0} does not match")]
    Mismatch(&'static str),
}

/// The secret is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// An empty secret would let anyone trigger runs.
    #[error("the webhook secret is empty")]
    Empty,
}

impl WebhookSecret {
    /// Wraps a secret; refuses an empty one.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let secret: Vec<u8> = secret.into();
        if secret.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(WebhookSecret(secret.into()))
    }

    fn mac(&self) -> hmac::Hmac<sha2::Sha256> {
        // HMAC takes keys of any length; the error exists only for fixed-size MACs.
        hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// The HMAC-SHA256 of `body` under `secret`, in lowercase hex: what a sender puts in the
/// header (after `sha256=` for GitHub).
pub fn signature_hex(secret: &WebhookSecret, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Verifies a GitHub `X-Hub-Signature-256` value, `sha256=<hex>`.
pub fn verify_github(
    secret: &WebhookSecret,
    body: &[u8],
    header_value: &[u8],
) -> Result<(), SignatureError> {
    let hex_signature = header_value
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed("X-Hub-Signature-256"))?;
    verify_hex(secret, body, hex_signature, "X-Hub-Signature-256")
}

/// Verifies a Gitea `X-Gitea-Signature` value, `<hex>`.
pub fn verify_gitea(
    secret: &WebhookSecret,
    body: &[u8],
    header_value: &[u8],
) -> Result<(), SignatureError> {
    verify_hex(secret, body, header_value, "X-Gitea-Signature")
}

/// Verifies a delivery's headers: at least one signature header, and every one present
/// matches.
pub fn verify(
    secret: &WebhookSecret,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    type Verifier = fn(&WebhookSecret, &[u8], &[u8]) -> Result<(), SignatureError>;
    let verifiers: [(&str, &'static str, Verifier); 2] = [
        (GITHUB_HEADER, "X-Hub-Signature-256", verify_github),
        (GITEA_HEADER, "X-Gitea-Signature", verify_gitea),
    ];
    let mut n_verified = 0;
    for (header, display_name, verifier) in verifiers {
        let mut values = headers.get_all(header).iter();
        let Some(value) = values.next() else {
            continue;
        };
        // Two values for one header is not something a forge sends.
        if values.next().is_some() {
            return Err(SignatureError::Malformed(display_name));
        }
        verifier(secret, body, value.as_bytes())?;
        n_verified += 1;
    }
    if n_verified == 0 {
        return Err(SignatureError::Missing);
    }
    Ok(())
}

/// The whole endpoint as a function: verifies the delivery and, if it is genuine, requests a
/// run. Returns `202 Accepted`, `401 Unauthorized` for a missing or wrong signature, or `413`
/// for a body over [`MAX_BODY`]. The payload is not looked at.
pub fn handle(
    secret: &WebhookSecret,
    trigger: &Trigger,
    headers: &HeaderMap,
    body: &[u8],
) -> StatusCode {
    if body.len() > MAX_BODY {
        tracing::debug!(n_bytes = body.len(), "webhook rejected: body too large");
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    match verify(secret, headers, body) {
        Ok(()) => {
            tracing::info!("webhook verified; reconcile requested");
            trigger.request(Reason::Webhook);
            StatusCode::ACCEPTED
        }
        Err(e) => {
            tracing::debug!(reason = %e, "webhook rejected");
            StatusCode::UNAUTHORIZED
        }
    }
}

/// A router serving [`handle`] at `POST` [`WEBHOOK_PATH`], with a [`MAX_BODY`] body limit.
/// The server merges it into its own router.
pub fn webhook_router(secret: WebhookSecret, trigger: Trigger) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(hook))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(HookState { secret, trigger }))
}

struct HookState {
    secret: WebhookSecret,
    trigger: Trigger,
}

async fn hook(State(state): State<Arc<HookState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    handle(&state.secret, &state.trigger, &headers, &body)
}

fn verify_hex(
    secret: &WebhookSecret,
    body: &[u8],
    hex_signature: &[u8],
    display_name: &'static str,
) -> Result<(), SignatureError> {
    let mut signature = [0u8; 32];
    hex::decode_to_slice(hex_signature, &mut signature)
        .map_err(|_| SignatureError::Malformed(display_name))?;
    let mut mac = secret.mac();
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch(display_name))
}
