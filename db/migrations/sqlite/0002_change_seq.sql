-- The change counter, SQLite flavour. Keep in step with ../postgres/0002_change_seq.sql.
--
-- `change_seq.seq` moves whenever a transaction that wrote a row of any table commits, so a
-- reader that remembers the value it read along with its data can tell, with one tiny query,
-- whether that data is still current (`Db::change_seq`, `Snapshot::change_seq`).
-- Triggers on every table, rather than a bump in every writing method, make it impossible to
-- forget: a write that changes no row (a compare-first upsert that found nothing to do) fires
-- no trigger and leaves the counter alone. SQLite has one writer at a time and no row locks,
-- so each written row simply bumps the counter inside the writing transaction.

CREATE TABLE change_seq (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_seq (id, seq) VALUES (1, 0);

CREATE TRIGGER sync_state_insert_bumps_change_seq AFTER INSERT ON sync_state
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER sync_state_update_bumps_change_seq AFTER UPDATE ON sync_state
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER sync_state_delete_bumps_change_seq AFTER DELETE ON sync_state
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

CREATE TRIGGER revisions_insert_bumps_change_seq AFTER INSERT ON revisions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER revisions_update_bumps_change_seq AFTER UPDATE ON revisions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER revisions_delete_bumps_change_seq AFTER DELETE ON revisions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

CREATE TRIGGER games_insert_bumps_change_seq AFTER INSERT ON games
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER games_update_bumps_change_seq AFTER UPDATE ON games
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER games_delete_bumps_change_seq AFTER DELETE ON games
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

CREATE TRIGGER artifacts_insert_bumps_change_seq AFTER INSERT ON artifacts
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER artifacts_update_bumps_change_seq AFTER UPDATE ON artifacts
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER artifacts_delete_bumps_change_seq AFTER DELETE ON artifacts
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

CREATE TRIGGER versions_insert_bumps_change_seq AFTER INSERT ON versions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER versions_update_bumps_change_seq AFTER UPDATE ON versions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER versions_delete_bumps_change_seq AFTER DELETE ON versions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

CREATE TRIGGER deltas_insert_bumps_change_seq AFTER INSERT ON deltas
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER deltas_update_bumps_change_seq AFTER UPDATE ON deltas
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER deltas_delete_bumps_change_seq AFTER DELETE ON deltas
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

CREATE TRIGGER users_insert_bumps_change_seq AFTER INSERT ON users
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER users_update_bumps_change_seq AFTER UPDATE ON users
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER users_delete_bumps_change_seq AFTER DELETE ON users
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

CREATE TRIGGER jobs_insert_bumps_change_seq AFTER INSERT ON jobs
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER jobs_update_bumps_change_seq AFTER UPDATE ON jobs
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER jobs_delete_bumps_change_seq AFTER DELETE ON jobs
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

CREATE TRIGGER queue_lock_insert_bumps_change_seq AFTER INSERT ON queue_lock
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER queue_lock_update_bumps_change_seq AFTER UPDATE ON queue_lock
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER queue_lock_delete_bumps_change_seq AFTER DELETE ON queue_lock
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

CREATE TRIGGER conditions_insert_bumps_change_seq AFTER INSERT ON conditions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER conditions_update_bumps_change_seq AFTER UPDATE ON conditions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER conditions_delete_bumps_change_seq AFTER DELETE ON conditions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

CREATE TRIGGER events_insert_bumps_change_seq AFTER INSERT ON events
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER events_update_bumps_change_seq AFTER UPDATE ON events
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER events_delete_bumps_change_seq AFTER DELETE ON events
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
