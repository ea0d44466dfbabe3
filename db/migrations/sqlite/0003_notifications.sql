-- The notification outbox, SQLite flavour. Keep in step with ../postgres/0003_notifications.sql.
--
-- A notification is written in the same transaction as the state change that causes it (a
-- version's Ready or Stalled condition), so none is lost and none is invented; `mistd run`'s
-- sender delivers it to every configured sink and records each delivery here. See
-- docs/notifications.md.

CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('ready', 'stalled', 'recovered', 'digest')),
    audience    TEXT NOT NULL CHECK (audience IN ('friends', 'admins')),
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Every version announced to the friends, once ever: by its own notification or by the digest
-- of the first sync.
CREATE TABLE announced_versions (
    game            TEXT NOT NULL,
    version         TEXT NOT NULL,
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
    sink     TEXT PRIMARY KEY,
    since_id BIGINT NOT NULL
);

CREATE TABLE notification_deliveries (
    notification_id BIGINT NOT NULL,
    sink            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (notification_id, sink)
);

-- The change counter moves with these tables too (0002_change_seq.sql).
CREATE TRIGGER notifications_insert_bumps_change_seq AFTER INSERT ON notifications
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notifications_update_bumps_change_seq AFTER UPDATE ON notifications
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notifications_delete_bumps_change_seq AFTER DELETE ON notifications
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER announced_versions_insert_bumps_change_seq AFTER INSERT ON announced_versions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER announced_versions_update_bumps_change_seq AFTER UPDATE ON announced_versions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER announced_versions_delete_bumps_change_seq AFTER DELETE ON announced_versions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notify_state_insert_bumps_change_seq AFTER INSERT ON notify_state
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notify_state_update_bumps_change_seq AFTER UPDATE ON notify_state
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notify_state_delete_bumps_change_seq AFTER DELETE ON notify_state
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notification_sinks_insert_bumps_change_seq AFTER INSERT ON notification_sinks
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notification_sinks_update_bumps_change_seq AFTER UPDATE ON notification_sinks
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notification_sinks_delete_bumps_change_seq AFTER DELETE ON notification_sinks
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notification_deliveries_insert_bumps_change_seq AFTER INSERT ON notification_deliveries
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notification_deliveries_update_bumps_change_seq AFTER UPDATE ON notification_deliveries
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER notification_deliveries_delete_bumps_change_seq AFTER DELETE ON notification_deliveries
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
