-- Catalog metadata, Postgres flavour. Keep in step with ../sqlite/0004_game_metadata.sql.
--
-- What the catalog shows of a game beyond its spec: the store metadata pulled from Steam (the
-- last good fetch, kept and served while later fetches fail) with how the latest fetch went,
-- and the header images, each a content-addressed file in the artifact store (Steam's, and
-- the one the spec repository gives next to game.yaml, which wins). See docs/metadata.md.

CREATE TABLE game_metadata (
    game                TEXT COLLATE "C" PRIMARY KEY,
    -- The last good fetch: the app it was for, its fields as JSON, when.
    app_id              BIGINT,
    details_json        TEXT COLLATE "C",
    fetched_at          BIGINT,
    -- Steam's header image, stored (NULL: none yet, or Steam has none).
    steam_image_address TEXT COLLATE "C",
    steam_image_size    BIGINT CHECK (steam_image_size >= 0),
    steam_image_type    TEXT COLLATE "C",
    steam_image_source  TEXT COLLATE "C",
    -- The spec repository's header image, stored.
    spec_image_address  TEXT COLLATE "C",
    spec_image_size     BIGINT CHECK (spec_image_size >= 0),
    spec_image_type     TEXT COLLATE "C",
    -- The latest fetch tried: for which app, when, failures in a row, why the last failed
    -- ("<Reason>: <message>") and when the next try is due.
    attempted_app_id    BIGINT,
    attempted_at        BIGINT,
    failures            BIGINT NOT NULL CHECK (failures >= 0),
    last_error          TEXT COLLATE "C",
    retry_at            BIGINT,
    updated_at          BIGINT NOT NULL
);

CREATE CONSTRAINT TRIGGER game_metadata_bumps_change_seq AFTER INSERT OR UPDATE OR DELETE ON game_metadata
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mist_bump_change_seq();

-- A game's metadata can be stale: the condition type `MetadataStale` joins the others.
ALTER TABLE conditions DROP CONSTRAINT conditions_condition_type_check;
ALTER TABLE conditions ADD CONSTRAINT conditions_condition_type_check
    CHECK (condition_type IN ('Ready', 'Reconciling', 'Stalled', 'MetadataStale'));
