//! Mist's notifications: the sender that delivers the database's outbox to Discord and to
//! generic webhooks.
//!
//! The principal type is [`sender::Sender`]: `mistd run` starts one with the configured
//! [`sink::Sink`]s and the [`templates::Templates`], and it delivers every notification the
//! reconciler writes into the outbox (`mist_db::outbox`) — in the same transaction as the state
//! change that causes it — at least once, with retries, and never loses one across restarts.
//! `sink` is one attempt to one endpoint (a Discord message rendered from a template, or the
//! notification as JSON signed with HMAC-SHA256); `templates` holds the built-in templates of
//! `templates/notify/` and an admin's overrides. The guarantees and settings are in
//! `docs/notifications.md`.
#![deny(missing_docs)]

pub mod sender;
pub mod sink;
pub mod templates;
