-- Catalog metadata, SQLite flavour. Keep in step with ../postgres/0004_game_metadata.sql.
--
-- What the catalog shows of a game beyond its spec: the store metadata pulled from Steam (the
-- last good fetch, kept and served while later fetches fail) with how the latest fetch went,
-- and the header images, each a content-addressed file in the artifact store (Steam's, and
-- the one the spec repository gives next to game.yaml, which wins). See docs/metadata.md.

CREATE TABLE game_metadata (
    game                TEXT PRIMARY KEY,
    -- The last good fetch: the app it was for, its fields as JSON, when.
    app_id              BIGINT,
    details_json        TEXT,
    fetched_at          BIGINT,
    -- Steam's header image, stored (NULL: none yet, or Steam has none).
    steam_image_address TEXT,
    steam_image_size    BIGINT CHECK (steam_image_size >= 0),
    steam_image_type    TEXT,
    steam_image_source  TEXT,
    -- The spec repository's header image, stored.
    spec_image_address  TEXT,
    spec_image_size     BIGINT CHECK (spec_image_size >= 0),
    spec_image_type     TEXT,
    -- The latest fetch tried: for which app, when, failures in a row, why the last failed
    -- ("<Reason>: <message>") and when the next try is due.
    attempted_app_id    BIGINT,
    attempted_at        BIGINT,
    failures            INTEGER NOT NULL CHECK (failures >= 0),
    last_error          TEXT,
    retry_at            BIGINT,
    updated_at          BIGINT NOT NULL
);

CREATE TRIGGER game_metadata_insert_bumps_change_seq AFTER INSERT ON game_metadata
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER game_metadata_update_bumps_change_seq AFTER UPDATE ON game_metadata
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER game_metadata_delete_bumps_change_seq AFTER DELETE ON game_metadata
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;

-- A game's metadata can be stale: the condition type `MetadataStale` joins the others. SQLite
-- cannot change a CHECK in place, so the table is made again (nothing refers to it).
CREATE TABLE conditions_0004 (
    object_kind    TEXT NOT NULL,
    object_name    TEXT NOT NULL,
    condition_type TEXT NOT NULL
        CHECK (condition_type IN ('Ready', 'Reconciling', 'Stalled', 'MetadataStale')),
    status         TEXT NOT NULL CHECK (status IN ('True', 'False', 'Unknown')),
    reason         TEXT NOT NULL,
    message        TEXT NOT NULL,
    since          BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (object_kind, object_name, condition_type)
);
INSERT INTO conditions_0004 (object_kind, object_name, condition_type, status, reason, message,
                             since, updated_at)
    SELECT object_kind, object_name, condition_type, status, reason, message, since, updated_at
    FROM conditions;
DROP TABLE conditions;
ALTER TABLE conditions_0004 RENAME TO conditions;
CREATE TRIGGER conditions_insert_bumps_change_seq AFTER INSERT ON conditions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER conditions_update_bumps_change_seq AFTER UPDATE ON conditions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
CREATE TRIGGER conditions_delete_bumps_change_seq AFTER DELETE ON conditions
    BEGIN UPDATE change_seq SET seq = seq + 1 WHERE id = 1; END;
