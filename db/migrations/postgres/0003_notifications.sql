-- The notification outbox, Postgres flavour. Keep in step with ../sqlite/0003_notifications.sql.
--
-- A notification is written in the same transaction as the state change that causes it (a
-- version's Ready or Stalled condition), so none is lost and none is invented; `mistd run`'s
-- sender delivers it to every configured sink and records each delivery here. See
-- docs/notifications.md.

CREATE TABLE notifications (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT COLLATE "C" NOT NULL CHECK (kind IN ('ready', 'stalled', 'recovered', 'digest')),
    audience    TEXT COLLATE "C" NOT NULL CHECK (audience IN ('friends', 'admins')),
    payload     TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Every version announced to the friends, once ever: by its own notification or by the digest
-- of the first sync.
CREATE TABLE announced_versions (
    game            TEXT COLLATE "C" NOT NULL,
    version         TEXT COLLATE "C" NOT NULL,
    notification_id BIGINT NOT NULL,
    PRIMARY KEY (game, version)
);

-- One row once the first sync has converged and its digest was written.
CREATE TABLE notify_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    first_sync_at BIGINT NOT NULL
);

-- The sinks the sender has delivered to, each from the notification after `since_id`: a sink
-- configured later gets what happens from then on, not the history.
CREATE TABLE notification_sinks (
    sink     TEXT COLLATE "C" PRIMARY KEY,
    since_id BIGINT NOT NULL
);

CREATE TABLE notification_deliveries (
    notification_id BIGINT NOT NULL,
    sink            TEXT COLLATE "C" NOT NULL,
    state           TEXT COLLATE "C" NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (notification_id, sink)
);

-- The change counter moves with these tables too (0002_change_seq.sql).
CREATE CONSTRAINT TRIGGER notifications_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON notifications
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER announced_versions_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON announced_versions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER notify_state_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON notify_state
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER notification_sinks_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON notification_sinks
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
CREATE CONSTRAINT TRIGGER notification_deliveries_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON notification_deliveries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();
