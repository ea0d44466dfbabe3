//! Integration tests for `mist-db`. Every test runs on SQLite in a temp dir, and on Postgres
//! in a fresh schema when `MIST_TEST_POSTGRES` is set (see `mist_db::testing::each_backend`).

mod common;
mod conditions;
mod joblog;
mod logins;
mod metadata;
mod queue;
mod schema;
mod snapshot;
mod state;
