//! The status board, `/admin` (admins only; a `404` page for anyone else): what a GitOps
//! operator needs at a glance — the spec commit in force and every error of a refused one,
//! every game and version with its phase, reason and what to do when it is Stalled, the jobs
//! with their progress and their logs (each in a `<details>`), the events per game and
//! version, the users and the server.
//!
//! The data is read once per change of the database's change counter and kept
//! ([`BoardData`] in a `SeqCache`), so while nothing changes a request costs the one query
//! that reads the counter. The page works without JavaScript; `board.js` follows
//! `/v1/events` and swaps in a fresh board whenever the status changes.

pub(crate) mod data;
pub(crate) mod view;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use mist_db::queue::QueueConfig;
use mist_platform::error::ErrorChain;

use crate::http::context::ApiContext;
use crate::http::error::Error;
use crate::http::status::status_report;
use crate::pages::board::data::BoardData;
use crate::pages::board::view::{BoardPage, ServerView};
use crate::pages::render::{PageError, page};
use crate::pages::session::PageUser;

/// How many events the board reads, newest first, across every object.
const MAX_EVENTS: u32 = 2000;

/// How many finished jobs the history shows.
const MAX_HISTORY: u32 = 20;

/// `GET /admin`: the status board.
pub(crate) async fn board(
    State(ctx): State<Arc<ApiContext>>,
    user: PageUser,
) -> Result<Response, PageError> {
    if !user.viewer.is_admin() {
        return Err(PageError::NotFound);
    }
    let change_seq = user.catalog.change_seq();
    let data = ctx.board.get_at(change_seq, || load(&ctx)).await?;
    let server = ServerView {
        version: env!("CARGO_PKG_VERSION"),
        database: match ctx.db.backend() {
            mist_db::Backend::Sqlite => "SQLite",
            mist_db::Backend::Postgres => "Postgres",
        },
        nas_free_bytes: nas_free_space(&ctx),
        n_artifacts: data.artifacts.n_artifacts,
        artifact_bytes: data.artifacts.bytes,
    };
    let board = BoardPage::new(&data, &user.catalog.users(), server);
    page(StatusCode::OK, "admin.html", Some(&user.viewer), board)
}

/// Reads everything the board shows; called after the change counter was read.
async fn load(ctx: &ApiContext) -> Result<BoardData, Error> {
    let report = status_report(ctx).await?;
    let applied_seen_at = match &report.last_applied_revision {
        Some(commit) => ctx
            .db
            .revision(commit)
            .await?
            .map(|revision| revision.seen_at),
        None => None,
    };
    let events = ctx.db.recent_events(MAX_EVENTS).await?;
    let history = ctx
        .db
        .queue(QueueConfig::default())
        .recently_done(MAX_HISTORY)
        .await?;
    let artifacts = ctx.db.artifact_totals().await?;
    let logs = ctx
        .db
        .job_logs_of_unfinished_and_recent(MAX_HISTORY)
        .await?;
    Ok(BoardData {
        report,
        applied_seen_at,
        events,
        history,
        artifacts,
        logs,
    })
}

/// The space left on the NAS, when the server knows where it is and can ask.
fn nas_free_space(ctx: &ApiContext) -> Option<u64> {
    let nas = ctx.config.nas_root.as_deref()?;
    match mist_platform::fs::free_space(nas) {
        Ok(free) => free,
        Err(error) => {
            tracing::warn!(nas = %nas.display(), error = %ErrorChain(&error), "cannot read the NAS's free space");
            None
        }
    }
}
