//! Job logs: what each job did, in lines with a time and a level. Start at
//! [`Db::append_job_log`].
//!
//! A job's lines are numbered from 1 (`seq`) and kept with the job (table `job_log_lines`,
//! migration `0005_job_logs`); deleting the job deletes them. The log is bounded: a line longer
//! than [`LogLimits::max_line_bytes`] is cut (ending in `…`), and when a job has more than
//! [`LogLimits::max_lines`] lines the oldest are deleted. The lines dropped are counted, not
//! lost silently: [`JobLog::n_dropped`] says how many came before the first one kept, so a
//! reader can show "… 12 lines dropped" where they were.
//!
//! Only the worker holding a job's lease writes its log, as with progress: a worker whose
//! lease was lost gets [`Error::LeaseLost`] and writes nothing.

use std::collections::BTreeMap;

use crate::queue::JobState;
use crate::{Db, EpochMs, Error, QueryContext, get, text_enum, to_i64, to_u64};

text_enum! {
    /// How much a log line matters.
    pub enum LogLevel ("job_log_lines.level") {
        /// What the job did.
        Info => "info",
        /// Something went wrong, and the job went on.
        Warn => "warn",
        /// Something went wrong, and the attempt failed.
        Error => "error",
    }
}

/// A line to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When it happened.
    pub at: EpochMs,
    /// How much it matters.
    pub level: LogLevel,
    /// What happened, in words.
    pub message: String,
}

/// A line as stored: its number in the job's log, and the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLogLine {
    /// The line's number in its job's log, from 1.
    pub seq: u64,
    /// The line.
    pub line: LogLine,
}

/// A job's log, or the part of it after a given line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobLog {
    /// The job's key.
    pub key: String,
    /// Where the job is in its life.
    pub state: JobState,
    /// The number of the last line the job wrote (0: none yet).
    pub last_seq: u64,
    /// The number of the first line still kept, if any is.
    pub first_kept_seq: Option<u64>,
    /// The lines asked for, oldest first.
    pub lines: Vec<StoredLogLine>,
}

/// How much log a job keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    /// Lines kept per job; older ones are deleted.
    pub max_lines: u32,
    /// Bytes kept of one line's message; the rest is cut.
    pub max_line_bytes: usize,
}

impl Default for LogLimits {
    /// 200 lines of at most 1 KiB each: at most 200 KiB of messages per job.
    fn default() -> LogLimits {
        LogLimits {
            max_lines: 200,
            max_line_bytes: 1024,
        }
    }
}

impl JobLog {
    /// How many of the job's oldest lines were deleted to keep the log within its limits.
    pub fn n_dropped(&self) -> u64 {
        match self.first_kept_seq {
            Some(first) => first.saturating_sub(1),
            None => self.last_seq,
        }
    }
}

impl Db {
    /// Appends `lines` to the log of the job `key`, which `owner` must be running, then
    /// deletes the lines beyond `limits.max_lines`, oldest first, all in one transaction.
    /// Messages longer than `limits.max_line_bytes` are cut. Fails with
    /// [`Error::LeaseLost`], writing nothing, when the job is not running under `owner`.
    pub async fn append_job_log(
        &self,
        key: &str,
        owner: &str,
        lines: &[LogLine],
        limits: &LogLimits,
    ) -> Result<(), Error> {
        if lines.is_empty() {
            return Ok(());
        }
        let n_lines = to_i64(lines.len() as u64, "log lines")?;
        let mut transaction = self.begin_write("append job log").await?;
        let row = sqlx::query(
            "UPDATE jobs SET log_seq = log_seq + $3 \
             WHERE job_key = $1 AND lease_owner = $2 AND state = 'running' RETURNING log_seq",
        )
        .bind(key)
        .bind(owner)
        .bind(n_lines)
        .fetch_optional(&mut *transaction)
        .await
        .op("number job log lines")?;
        let Some(row) = row else {
            transaction.rollback().await.op("append job log")?;
            return Err(Error::LeaseLost {
                key: key.to_owned(),
                owner: owner.to_owned(),
            });
        };
        let last_seq: i64 = get(&row, "log_seq")?;
        let first_seq = last_seq - n_lines + 1;
        for (line_idx, line) in lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO job_log_lines (job_key, seq, at, level, message) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(key)
            .bind(first_seq + to_i64(line_idx as u64, "log line")?)
            .bind(line.at)
            .bind(line.level.as_str())
            .bind(cut(&line.message, limits.max_line_bytes))
            .execute(&mut *transaction)
            .await
            .op("write job log line")?;
        }
        sqlx::query("DELETE FROM job_log_lines WHERE job_key = $1 AND seq <= $2")
            .bind(key)
            .bind(last_seq - i64::from(limits.max_lines))
            .execute(&mut *transaction)
            .await
            .op("drop old job log lines")?;
        transaction.commit().await.op("append job log")?;
        Ok(())
    }

    /// The log of the job `key`: its lines numbered above `after` (0: all), or `None` when
    /// there is no such job. One query.
    pub async fn job_log(&self, key: &str, after: u64) -> Result<Option<JobLog>, Error> {
        let rows = sqlx::query(
            "SELECT j.state AS state, j.log_seq AS log_seq, \
             (SELECT MIN(seq) FROM job_log_lines WHERE job_key = j.job_key) AS first_seq, \
             l.seq AS seq, l.at AS at, l.level AS level, l.message AS message \
             FROM jobs j LEFT JOIN job_log_lines l ON l.job_key = j.job_key AND l.seq > $2 \
             WHERE j.job_key = $1 ORDER BY l.seq",
        )
        .bind(key)
        .bind(to_i64(after, "after")?)
        .fetch_all(&self.pool)
        .await
        .op("read job log")?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut log = JobLog {
            key: key.to_owned(),
            state: JobState::parse(&get::<String>(first, "state")?)?,
            last_seq: to_u64(get(first, "log_seq")?, "jobs.log_seq")?,
            first_kept_seq: get::<Option<i64>>(first, "first_seq")?
                .map(|seq| to_u64(seq, "job_log_lines.seq"))
                .transpose()?,
            lines: Vec::new(),
        };
        for row in &rows {
            if let Some(seq) = get::<Option<i64>>(row, "seq")? {
                log.lines.push(stored_line(row, seq)?);
            }
        }
        Ok(Some(log))
    }

    /// The whole logs of every job that is not done and of the `n_recently_done` jobs that
    /// finished last (the jobs the status board shows), by key; jobs without lines are left
    /// out. One query.
    pub async fn job_logs_of_unfinished_and_recent(
        &self,
        n_recently_done: u32,
    ) -> Result<BTreeMap<String, JobLog>, Error> {
        let rows = sqlx::query(
            "SELECT l.job_key AS job_key, j.state AS state, j.log_seq AS log_seq, \
             l.seq AS seq, l.at AS at, l.level AS level, l.message AS message \
             FROM job_log_lines l JOIN jobs j ON j.job_key = l.job_key \
             WHERE j.state <> 'done' OR j.job_key IN (SELECT job_key FROM jobs \
             WHERE state = 'done' ORDER BY finished_at DESC, job_key LIMIT $1) \
             ORDER BY l.job_key, l.seq",
        )
        .bind(i64::from(n_recently_done))
        .fetch_all(&self.pool)
        .await
        .op("read job logs")?;
        let mut logs: BTreeMap<String, JobLog> = BTreeMap::new();
        for row in &rows {
            let key: String = get(row, "job_key")?;
            let seq: i64 = get(row, "seq")?;
            let line = stored_line(row, seq)?;
            if let Some(log) = logs.get_mut(&key) {
                log.lines.push(line);
                continue;
            }
            let log = JobLog {
                key: key.clone(),
                state: JobState::parse(&get::<String>(row, "state")?)?,
                last_seq: to_u64(get(row, "log_seq")?, "jobs.log_seq")?,
                first_kept_seq: Some(line.seq),
                lines: vec![line],
            };
            logs.insert(key, log);
        }
        Ok(logs)
    }
}

fn stored_line(row: &sqlx::any::AnyRow, seq: i64) -> Result<StoredLogLine, Error> {
    Ok(StoredLogLine {
        seq: to_u64(seq, "job_log_lines.seq")?,
        line: LogLine {
            at: get(row, "at")?,
            level: LogLevel::parse(&get::<String>(row, "level")?)?,
            message: get(row, "message")?,
        },
    })
}

/// `message` cut to at most `max_bytes` bytes at a character boundary, ending in `…` when
/// cut.
fn cut(message: &str, max_bytes: usize) -> String {
    if message.len() <= max_bytes {
        return message.to_owned();
    }
    let ellipsis = "…";
    let mut end = max_bytes.saturating_sub(ellipsis.len());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("abcdefghij", 10), "abcdefghij");
        assert_eq!(cut("abcdefghijk", 10), "abcdefg…");
        // 'é' is two bytes; the cut never splits it.
        let cut_text = cut("ééééééé", 8);
        assert!(cut_text.len() <= 8, "{cut_text}");
        assert_eq!(cut_text, "éé…");
    }
}
