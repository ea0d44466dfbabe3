-- Job logs, Postgres flavour. Keep in step with ../sqlite/0005_job_logs.sql.
--
-- Each job keeps a bounded log of what it did: lines with a time and a level, numbered from 1
-- per job. A job's `log_seq` is the number of the last line it wrote; the oldest lines are
-- deleted when a job has more than its writer's limit, so the lines dropped are those below
-- the first kept (`docs/db.md`). The lines go with their job: deleting a job deletes them.

ALTER TABLE jobs ADD COLUMN log_seq BIGINT NOT NULL DEFAULT 0 CHECK (log_seq >= 0);

CREATE TABLE job_log_lines (
    job_key TEXT COLLATE "C" NOT NULL REFERENCES jobs (job_key) ON DELETE CASCADE,
    seq     BIGINT NOT NULL CHECK (seq >= 1),
    at      BIGINT NOT NULL,
    level   TEXT COLLATE "C" NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    message TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (job_key, seq)
);

CREATE CONSTRAINT TRIGGER job_log_lines_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON job_log_lines
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
