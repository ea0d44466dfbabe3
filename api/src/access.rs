//! Who may see what: the visibility rules of the catalog, as pure functions.
//!
//! Friends see public games and the private games that grant them; of those, only Ready
//! versions. Admins see everything. Whatever a viewer may not see answers exactly as if it
//! did not exist (`404`), so a friend cannot learn that a private game or an unreleased
//! version exists.

use mist_db::state::{Game, Role, VersionState};

/// The user a request acts for, as checked against the database on this request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Viewer {
    /// The user name.
    pub(crate) name: String,
    /// The role the database holds now.
    pub(crate) role: Role,
}

impl Viewer {
    pub(crate) fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the viewer may see `game` at all.
    pub(crate) fn sees_game(&self, game: &Game) -> bool {
        self.is_admin() || !game.private || game.grants.contains(&self.name)
    }

    /// Whether the viewer may see (install, update to, download for) a version in `state`
    /// of a game they see.
    pub(crate) fn sees_version(&self, state: VersionState) -> bool {
        self.is_admin() || state == VersionState::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn game(private: bool, grants: &[&str]) -> Game {
        Game {
            name: "g".into(),
            spec_json: "{}".into(),
            suspended: false,
            private,
            grants: grants.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn viewer(name: &str, role: Role) -> Viewer {
        Viewer {
            name: name.into(),
            role,
        }
    }

    #[test]
    fn visibility_table() {
        let cases = [
            (game(false, &[]), viewer("alice", Role::User), true),
            (game(true, &[]), viewer("alice", Role::User), false),
            (game(true, &["bob"]), viewer("alice", Role::User), false),
            (
                game(true, &["bob", "alice"]),
                viewer("alice", Role::User),
                true,
            ),
            (game(true, &["alice-2"]), viewer("alice", Role::User), false),
            (game(true, &[]), viewer("root", Role::Admin), true),
        ];
        for (game, viewer, expected) in cases {
            assert_eq!(viewer.sees_game(&game), expected, "{game:?} {viewer:?}");
        }
        let user = viewer("alice", Role::User);
        let admin = viewer("root", Role::Admin);
        for state in [
            VersionState::Pending,
            VersionState::Ingested,
            VersionState::Stalled,
            VersionState::Retired,
        ] {
            assert!(!user.sees_version(state));
            assert!(admin.sees_version(state));
        }
        assert!(user.sees_version(VersionState::Ready));
    }
}
