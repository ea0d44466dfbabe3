//! [`BoardData`]: what the status board reads from the database, kept while the change
//! counter stands still.

use std::collections::BTreeMap;

use mist_db::conditions::Event;
use mist_db::joblog::JobLog;
use mist_db::queue::Job;
use mist_db::state::ArtifactTotals;
use mist_wire::status::StatusReport;

/// What the board shows from the database, read at one value of the change counter.
pub(crate) struct BoardData {
    /// The reconciler's status report.
    pub(crate) report: StatusReport,
    /// When the commit in force was first seen.
    pub(crate) applied_seen_at: Option<i64>,
    /// The newest events, newest first.
    pub(crate) events: Vec<Event>,
    /// The jobs that finished last, newest first.
    pub(crate) history: Vec<Job>,
    /// The artifact store in numbers.
    pub(crate) artifacts: ArtifactTotals,
    /// The logs of the jobs the board shows (unfinished, and the history), by key.
    pub(crate) logs: BTreeMap<String, JobLog>,
}
