//! The API through real HTTP: every test starts the router on 127.0.0.1 over a read-only
//! handle on a real database (SQLite, and Postgres when `MIST_TEST_POSTGRES` is set), with a
//! real artifact store in a temp dir (see `common`).

mod auth;
mod board;
mod catalog;
mod common;
mod contract;
mod downloads;
mod hostile;
mod logins;
mod metadata;
mod pages;
mod plans;
mod repair;
mod status;
