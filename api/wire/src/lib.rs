//! Mist's API contract: every request and response body of `/v1`, the status report, and the
//! notifications' facts with the generic webhook's body ([`notification`]), as typed serde
//! types. The server (`mist-api`) serializes them and derives its OpenAPI
//! document from them; `mist` (the client), `mistpipe`, `mistd status` and
//! `mist-status-view` deserialize them. A field changes here, once, and the compiler finds
//! every reader.
//!
//! Newcomers should start at [`catalog::GameList`] (what `GET /v1/games` answers) and
//! [`update::UpdatePlan`] (how a client gets from one version to another), then
//! [`status::StatusReport`], the reconciler's status as admins see it.
//!
//! States, roles, conditions and routes are enums, never strings. Names are camelCase on
//! the wire, as the OpenAPI document (`GET /v1/openapi.json`) says.
//!
//! **Architecture Invariant:** this crate is a leaf. It holds data and the checks that need
//! nothing but the data ([`update::UpdatePlan::check`], [`digest::is_digest`]); it knows
//! nothing about HTTP, databases or files.
#![deny(missing_docs)]

pub mod auth;
pub mod catalog;
pub mod digest;
pub mod error;
pub mod joblog;
pub mod notification;
pub mod repair;
pub mod status;
pub mod update;
