-- Mist schema, Postgres flavour. Keep in step with ../sqlite/0001_initial.sql: the two differ
-- only where the backends do (booleans are BOOLEAN here, the event id is an identity column,
-- so trimmed ids are never reused, and text columns use the "C" collation so they compare and
-- sort by bytes, as SQLite's default BINARY collation does). Times are epoch milliseconds; JSON
-- is text.

-- The one-row summary of what the reconciler has seen and applied.
CREATE TABLE sync_state (
    id                    INTEGER PRIMARY KEY CHECK (id = 1),
    observed_commit       TEXT COLLATE "C",
    last_attempted_commit TEXT COLLATE "C",
    last_applied_commit   TEXT COLLATE "C",
    updated_at            BIGINT NOT NULL
);
INSERT INTO sync_state (id, updated_at) VALUES (1, 0);

-- Every spec commit the reconciler evaluated, with the outcome of loading it.
CREATE TABLE revisions (
    commit_id   TEXT COLLATE "C" PRIMARY KEY,
    seen_at     BIGINT NOT NULL,
    outcome     TEXT COLLATE "C" NOT NULL CHECK (outcome IN ('ok', 'failed')),
    errors_json TEXT COLLATE "C" NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX revisions_by_seen_at ON revisions (seen_at);

CREATE TABLE games (
    name        TEXT COLLATE "C" PRIMARY KEY,
    spec_json   TEXT COLLATE "C" NOT NULL,
    suspended   BOOLEAN NOT NULL,
    private     BOOLEAN NOT NULL,
    grants_json TEXT COLLATE "C" NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Content-addressed, immutable files in the NAS artifact store.
CREATE TABLE artifacts (
    address     TEXT COLLATE "C" PRIMARY KEY,
    kind        TEXT COLLATE "C" NOT NULL CHECK (kind IN ('pack', 'delta', 'manifest')),
    size        BIGINT NOT NULL CHECK (size >= 0),
    path        TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    verified_at BIGINT
);

CREATE TABLE versions (
    game             TEXT COLLATE "C" NOT NULL REFERENCES games (name),
    name             TEXT COLLATE "C" NOT NULL,
    order_index      BIGINT NOT NULL,
    source           TEXT COLLATE "C" NOT NULL,
    pinned_digest    TEXT COLLATE "C",
    spec_json        TEXT COLLATE "C" NOT NULL,
    tree_digest      TEXT COLLATE "C",
    manifest_address TEXT COLLATE "C" REFERENCES artifacts (address),
    pack_address     TEXT COLLATE "C" REFERENCES artifacts (address),
    state            TEXT COLLATE "C" NOT NULL
        CHECK (state IN ('pending', 'ingested', 'ready', 'stalled', 'retired')),
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (game, name)
);
CREATE INDEX versions_by_order ON versions (game, order_index);

-- Edges of the update graph: the delta artifact that turns one version into another.
CREATE TABLE deltas (
    game         TEXT COLLATE "C" NOT NULL,
    from_version TEXT COLLATE "C" NOT NULL,
    to_version   TEXT COLLATE "C" NOT NULL,
    address      TEXT COLLATE "C" NOT NULL REFERENCES artifacts (address),
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (game, from_version, to_version),
    FOREIGN KEY (game, from_version) REFERENCES versions (game, name),
    FOREIGN KEY (game, to_version) REFERENCES versions (game, name)
);
CREATE INDEX deltas_by_to_version ON deltas (game, to_version);

CREATE TABLE users (
    name          TEXT COLLATE "C" PRIMARY KEY,
    display_name  TEXT COLLATE "C",
    role          TEXT COLLATE "C" NOT NULL CHECK (role IN ('user', 'admin')),
    password_hash TEXT COLLATE "C" NOT NULL,
    disabled      BOOLEAN NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE TABLE jobs (
    job_key          TEXT COLLATE "C" PRIMARY KEY,
    kind             TEXT COLLATE "C" NOT NULL,
    game             TEXT COLLATE "C",
    version          TEXT COLLATE "C",
    payload_json     TEXT COLLATE "C" NOT NULL,
    priority         INTEGER NOT NULL,
    state            TEXT COLLATE "C" NOT NULL
        CHECK (state IN ('queued', 'running', 'done', 'failed', 'terminal')),
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT COLLATE "C",
    lease_owner      TEXT COLLATE "C",
    lease_expires_at BIGINT,
    lease_ms         BIGINT,
    stage_index      INTEGER NOT NULL CHECK (stage_index >= 0),
    stage            TEXT COLLATE "C" NOT NULL,
    progress_done    BIGINT NOT NULL CHECK (progress_done >= 0),
    progress_total   BIGINT NOT NULL CHECK (progress_total >= 0),
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT
);
CREATE INDEX jobs_claimable ON jobs (priority, next_attempt_at, job_key)
    WHERE state IN ('queued', 'failed');
CREATE INDEX jobs_running ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_by_state ON jobs (state);
CREATE INDEX jobs_by_object ON jobs (game, version);

-- Serialises claimers on Postgres (SELECT … FOR UPDATE); SQLite uses BEGIN IMMEDIATE instead,
-- and keeps the table only so both schemas are the same.
CREATE TABLE queue_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO queue_lock (id) VALUES (1);

CREATE TABLE conditions (
    object_kind    TEXT COLLATE "C" NOT NULL,
    object_name    TEXT COLLATE "C" NOT NULL,
    condition_type TEXT COLLATE "C" NOT NULL CHECK (condition_type IN ('Ready', 'Reconciling', 'Stalled')),
    status         TEXT COLLATE "C" NOT NULL CHECK (status IN ('True', 'False', 'Unknown')),
    reason         TEXT COLLATE "C" NOT NULL,
    message        TEXT COLLATE "C" NOT NULL,
    since          BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (object_kind, object_name, condition_type)
);

CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_kind TEXT COLLATE "C" NOT NULL,
    object_name TEXT COLLATE "C" NOT NULL,
    at          BIGINT NOT NULL,
    severity    TEXT COLLATE "C" NOT NULL CHECK (severity IN ('normal', 'warning')),
    reason      TEXT COLLATE "C" NOT NULL,
    message     TEXT COLLATE "C" NOT NULL
);
CREATE INDEX events_by_object ON events (object_kind, object_name, id);
