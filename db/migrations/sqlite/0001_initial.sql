-- Mist schema, SQLite flavour. Keep in step with ../postgres/0001_initial.sql: the two differ
-- only where the backends do (booleans are INTEGER 0/1 here, the event id is an AUTOINCREMENT
-- rowid so trimmed ids are never reused). Times are epoch milliseconds; JSON is text.

-- The one-row summary of what the reconciler has seen and applied.
CREATE TABLE sync_state (
    id                    INTEGER PRIMARY KEY CHECK (id = 1),
    observed_commit       TEXT,
    last_attempted_commit TEXT,
    last_applied_commit   TEXT,
    updated_at            BIGINT NOT NULL
);
INSERT INTO sync_state (id, updated_at) VALUES (1, 0);

-- Every spec commit the reconciler evaluated, with the outcome of loading it.
CREATE TABLE revisions (
    commit_id   TEXT PRIMARY KEY,
    seen_at     BIGINT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
    errors_json TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX revisions_by_seen_at ON revisions (seen_at);

CREATE TABLE games (
    name        TEXT PRIMARY KEY,
    spec_json   TEXT NOT NULL,
    suspended   INTEGER NOT NULL CHECK (suspended IN (0, 1)),
    private     INTEGER NOT NULL CHECK (private IN (0, 1)),
    grants_json TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Content-addressed, immutable files in the NAS artifact store.
CREATE TABLE artifacts (
    address     TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('pack', 'delta', 'manifest')),
    size        BIGINT NOT NULL CHECK (size >= 0),
    path        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    verified_at BIGINT
);

CREATE TABLE versions (
    game             TEXT NOT NULL REFERENCES games (name),
    name             TEXT NOT NULL,
    order_index      BIGINT NOT NULL,
    source           TEXT NOT NULL,
    pinned_digest    TEXT,
    spec_json        TEXT NOT NULL,
    tree_digest      TEXT,
    manifest_address TEXT REFERENCES artifacts (address),
    pack_address     TEXT REFERENCES artifacts (address),
    state            TEXT NOT NULL
        CHECK (state IN ('pending', 'ingested', 'ready', 'stalled', 'retired')),
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (game, name)
);
CREATE INDEX versions_by_order ON versions (game, order_index);

-- Edges of the update graph: the delta artifact that turns one version into another.
CREATE TABLE deltas (
    game         TEXT NOT NULL,
    from_version TEXT NOT NULL,
    to_version   TEXT NOT NULL,
    address      TEXT NOT NULL REFERENCES artifacts (address),
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (game, from_version, to_version),
    FOREIGN KEY (game, from_version) REFERENCES versions (game, name),
    FOREIGN KEY (game, to_version) REFERENCES versions (game, name)
);
CREATE INDEX deltas_by_to_version ON deltas (game, to_version);

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    display_name  TEXT,
    role          TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    updated_at    BIGINT NOT NULL
);

CREATE TABLE jobs (
    job_key          TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    game             TEXT,
    version          TEXT,
    payload_json     TEXT NOT NULL,
    priority         INTEGER NOT NULL,
    state            TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'done', 'failed', 'terminal')),
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    lease_ms         BIGINT,
    stage_index      INTEGER NOT NULL CHECK (stage_index >= 0),
    stage            TEXT NOT NULL,
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
    object_kind    TEXT NOT NULL,
    object_name    TEXT NOT NULL,
    condition_type TEXT NOT NULL CHECK (condition_type IN ('Ready', 'Reconciling', 'Stalled')),
    status         TEXT NOT NULL CHECK (status IN ('True', 'False', 'Unknown')),
    reason         TEXT NOT NULL,
    message        TEXT NOT NULL,
    since          BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (object_kind, object_name, condition_type)
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    object_kind TEXT NOT NULL,
    object_name TEXT NOT NULL,
    at          BIGINT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('normal', 'warning')),
    reason      TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX events_by_object ON events (object_kind, object_name, id);
