//! `GET /v1/jobs/{key}/log`: what a job did, line by line, for admins. A caller following a
//! running job asks again with `after` set to the `lastSeq` it got, and gets only the lines
//! that followed; the status board shows the same logs and refreshes them live from
//! `/v1/events` (a status's `logLines` grows with each line).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use mist_wire::error::ErrorBody;
use mist_wire::joblog::{JobLog, JobLogLine, LogLevel};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::context::ApiContext;
use crate::http::error::Error;
use crate::http::extractor::{AuthUser, Query};

pub(crate) fn router() -> Router<Arc<ApiContext>> {
    Router::new().route("/v1/jobs/{key}/log", get(get_job_log))
}

/// The path of a job.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct JobPath {
    /// The job's key, as the status report's queue names it.
    key: String,
}

/// Which lines to send.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// Send only the lines numbered above this one (the `lastSeq` of an earlier answer);
    /// absent for every line kept.
    #[param(pattern = r"^[0-9]{1,18}$")]
    after: Option<String>,
}

/// A job's log: its lines with time and level, oldest first, and how many older ones were
/// dropped.
#[utoipa::path(
    get,
    path = "/v1/jobs/{key}/log",
    tag = "status",
    params(JobPath, LogQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job's log", body = JobLog),
        (status = 400, description = "`after` is not a line number", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
pub(crate) async fn get_job_log(
    State(ctx): State<Arc<ApiContext>>,
    AuthUser(viewer, _): AuthUser,
    Path(path): Path<JobPath>,
    Query(query): Query<LogQuery>,
) -> Result<Json<JobLog>, Error> {
    if !viewer.is_admin() {
        return Err(Error::Forbidden);
    }
    let after = match query.after.as_deref() {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|after| *after <= i64::MAX as u64)
            .ok_or_else(|| {
                Error::BadRequest("`after` must be a line number, e.g. after=12".to_owned())
            })?,
    };
    let log = ctx
        .db
        .job_log(&path.key, after)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Json(wire_log(&log)))
}

/// A job's log as the API sends it.
pub(crate) fn wire_log(log: &mist_db::joblog::JobLog) -> JobLog {
    JobLog {
        key: log.key.clone(),
        state: wire_job_state(log.state),
        last_seq: log.last_seq,
        n_dropped: log.n_dropped(),
        lines: log
            .lines
            .iter()
            .map(|stored| JobLogLine {
                seq: stored.seq,
                at: stored.line.at,
                level: match stored.line.level {
                    mist_db::joblog::LogLevel::Info => LogLevel::Info,
                    mist_db::joblog::LogLevel::Warn => LogLevel::Warn,
                    mist_db::joblog::LogLevel::Error => LogLevel::Error,
                },
                message: stored.line.message.clone(),
            })
            .collect(),
    }
}

fn wire_job_state(state: mist_db::queue::JobState) -> mist_wire::status::JobState {
    use mist_db::queue::JobState as Db;
    use mist_wire::status::JobState as Wire;
    match state {
        Db::Queued => Wire::Queued,
        Db::Running => Wire::Running,
        Db::Done => Wire::Done,
        Db::Failed => Wire::Failed,
        Db::Terminal => Wire::Terminal,
    }
}
