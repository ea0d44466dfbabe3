-- Failed logins, Postgres flavour. Keep in step with ../sqlite/0007_login_failures.sql.
--
-- One row per limited key (a client address, a user and address, a user name): the failures
-- counted in a fixed window that starts at the key's first failure. Every API replica on the
-- database counts in the same rows, so the limits hold across replicas. Rows whose window
-- ended are pruned by the API. Not part of the reconciler's state: no change_seq trigger, so
-- a failed login never wakes a reconcile pass.

CREATE TABLE login_failures (
    key          TEXT COLLATE "C" PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL
);

CREATE INDEX login_failures_by_window_start ON login_failures (window_start);
