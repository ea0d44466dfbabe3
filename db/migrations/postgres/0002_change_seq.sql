-- The change counter, Postgres flavour. Keep in step with ../sqlite/0002_change_seq.sql.
--
-- `change_seq.seq` moves whenever a transaction that wrote a row of any table commits, so a
-- reader that remembers the value it read along with its data can tell, with one tiny query,
-- whether that data is still current (`Db::change_seq`, `Snapshot::change_seq`).
-- Triggers on every table, rather than a bump in every writing method, make it impossible to
-- forget: a write that changes no row (a compare-first upsert that found nothing to do) fires
-- no trigger and leaves the counter alone.
--
-- The triggers are deferred constraint triggers, so they run at commit: the counter row is
-- locked only for the end of the commit, after every other lock the transaction takes, so
-- writers never deadlock on it and never hold it while they work. Each transaction bumps it
-- once: the first trigger to run sets a transaction-local flag and the others see it.

CREATE TABLE change_seq (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_seq (id, seq) VALUES (1, 0);

CREATE FUNCTION mist_bump_change_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mist.change_seq_bumped', true) IS DISTINCT FROM 'on' THEN
        UPDATE change_seq SET seq = seq + 1 WHERE id = 1;
        PERFORM set_config('mist.change_seq_bumped', 'on', true);
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER sync_state_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON sync_state
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER revisions_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON revisions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER games_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON games
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER artifacts_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON artifacts
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER versions_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON versions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER deltas_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON deltas
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER users_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER jobs_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER queue_lock_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON queue_lock
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER conditions_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON conditions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER events_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
