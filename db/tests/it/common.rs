//! Helpers for the tests of this crate: small rows. The test databases themselves (SQLite in a
//! temp dir, Postgres in a fresh schema when `MIST_TEST_POSTGRES` is set) and the write probe
//! come from `mist_db::testing`, shared with the crates above.

use mist_db::EpochMs;
use mist_db::state::{Artifact, ArtifactKind, Game, Role, User, VersionSpec};

/// A fixed "now" for tests; time only moves when a test moves it.
pub const T0: EpochMs = 1_700_000_000_000;

pub fn game(name: &str) -> Game {
    Game {
        name: name.to_owned(),
        spec_json: format!(r#"{{"title":"{name}"}}"#),
        suspended: false,
        private: false,
        grants: Vec::new(),
    }
}

pub fn version_spec(game: &str, name: &str, order_index: i64) -> VersionSpec {
    VersionSpec {
        game: game.to_owned(),
        name: name.to_owned(),
        order_index,
        source: format!("incoming/{game}/{name}"),
        pinned_digest: None,
        spec_json: format!(r#"{{"source":"incoming/{game}/{name}"}}"#),
    }
}

pub fn user(name: &str) -> User {
    User {
        name: name.to_owned(),
        display_name: Some(name.to_uppercase()),
        role: Role::User,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
        disabled: false,
    }
}

/// A well-formed content address derived from a small number.
pub fn address(n: u32) -> String {
    format!("blake3:{n:064x}")
}

pub fn artifact(n: u32, kind: ArtifactKind) -> Artifact {
    Artifact {
        address: address(n),
        kind,
        size: u64::from(n) * 1000,
        path: format!("artifacts/{n:064x}"),
        created_at: T0,
        verified_at: Some(T0),
    }
}
