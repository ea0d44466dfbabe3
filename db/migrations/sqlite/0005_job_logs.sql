-- Job logs, SQLite flavour. Keep in step with ../postgres/0005_job_logs.sql.
--
-- Each job keeps a bounded log of what it did: lines with a time and a level, numbered from 1
-- per job. A job's `log_seq` is the number of the last line it wrote; the oldest lines are
-- deleted when a job has more than its writer's limit, so the lines dropped are those below
-- the first kept (`docs/db.md`). The lines go with their job: deleting a job deletes them.

ALTER TABLE jobs ADD COLUMN log_seq BIGINT NOT NULL DEFAULT 0 CHECK (log_seq >= 0);

CREATE TABLE job_log_lines (
    job_key TEXT NOT NULL REFERENCES jobs (job_key) ON DELETE CASCADE,
    seq     BIGINT NOT NULL CHECK (seq >= 1),
    at      BIGINT NOT NULL,
    level   TEXT NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    message TEXT NOT NULL,
    PRIMARY KEY (job_key, seq)
);

CREATE TRIGGER job_log_lines_insert_bumps_change_seq AFTER INSERT ON job_log_lines
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER job_log_lines_update_bumps_change_seq AFTER UPDATE ON job_log_lines
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER job_log_lines_delete_bumps_change_seq AFTER DELETE ON job_log_lines
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
