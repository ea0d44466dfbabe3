//! `GET /v1/jobs/{key}/log`: what a job did, line by line (admins only). Start at
//! [`JobLog`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::status::JobState;

/// A job's log, or the part of it after the line the caller asked from.
///
/// A job keeps its newest lines only; `nDropped` counts the older ones that were deleted,
/// which came before the first line kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobLog {
    /// The job's key.
    pub key: String,
    /// Where the job is: while it is `running`, more lines may come.
    pub state: JobState,
    /// The number of the job's last line (0: none yet). Ask again with `after` set to it
    /// for the lines that follow.
    pub last_seq: u64,
    /// How many of the job's oldest lines were dropped to keep the log bounded.
    pub n_dropped: u64,
    /// The lines asked for, oldest first.
    pub lines: Vec<JobLogLine>,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobLogLine {
    /// The line's number in the job's log, from 1.
    pub seq: u64,
    /// When it was written (epoch milliseconds).
    pub at: i64,
    /// How much it matters.
    pub level: LogLevel,
    /// What happened.
    pub message: String,
}

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// What the job did.
    Info,
    /// Something went wrong, and the job went on.
    Warn,
    /// Something went wrong, and the attempt failed.
    Error,
}

impl LogLevel {
    /// The name on the wire, e.g. `warn`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}
