//! Tables for [`super::diff`]: a spec tree and a server state in, the text plan out.
//!
//! Server states are written as JSON keyed by name (`{"games": {"doom": {…}}, "users":
//! {"bob": {…}}}`); [`server_state`] reads them into the contract's types.

use mist_specs::load::{LoadOptions, load_dir};
use serde_json::{Value, json};

use super::{ServerState, diff, render};

/// A server state from JSON keyed by name; each entry gets its key as its `name`.
fn server_state(server: Value) -> ServerState {
    let named = |map: &Value| -> serde_json::Map<String, Value> {
        map.as_object()
            .into_iter()
            .flatten()
            .map(|(name, entry)| {
                let mut entry = entry.clone();
                entry["name"] = Value::from(name.as_str());
                (name.clone(), entry)
            })
            .collect()
    };
    ServerState {
        games: named(&server["games"])
            .into_iter()
            .map(|(name, game)| (name, serde_json::from_value(game).unwrap()))
            .collect(),
        users: named(&server["users"])
            .into_iter()
            .map(|(name, user)| (name, serde_json::from_value(user).unwrap()))
            .collect(),
    }
}

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$VSCI+jA9Bru4HaCnQla5zQ$4KXIQI4OZP1OVISsVgWVjgJxbWSj5rOtN7mq84QUH58";
const DIGEST_A: &str = "blake3:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DIGEST_B: &str = "blake3:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// The one place that runs the diff: writes `files` into a temp dir, loads them with the
/// real loader, diffs against `server` and compares the rendered plan with `expected`.
#[track_caller]
fn check(files: &[(String, String)], server: Value, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let loaded = load_dir(dir.path(), &LoadOptions::default()).unwrap();
    assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
    let server = server_state(server);
    let plan = diff(&loaded.specs, &server);
    assert_eq!(plan.in_sync, plan.changes.is_empty());
    assert_eq!(render(&plan, &loaded.specs, &server), expected);
}

fn game(name: &str, spec: &str) -> (String, String) {
    let path = format!("games/{name}/game.yaml");
    (
        path,
        format!(
            "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: {name}\nspec:\n  title: T\n{spec}"
        ),
    )
}

fn version(game: &str, name: &str, spec: &str) -> (String, String) {
    let path = format!("games/{game}/versions/{name}.yaml");
    (
        path,
        format!(
            "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"{name}\"\n  game: {game}\n\
             spec:\n  source: incoming/{game}/{name}\n{spec}"
        ),
    )
}

fn user(name: &str, spec: &str) -> (String, String) {
    let path = format!("users/{name}.yaml");
    (
        path,
        format!(
            "apiVersion: mist/v1\nkind: User\nmetadata:\n  name: {name}\nspec:\n  role: user\n  \
             passwordHash: \"{HASH}\"\n{spec}"
        ),
    )
}

fn server_game(versions: Value) -> Value {
    json!({"title": "T", "private": false, "suspended": false, "versions": versions})
}

fn ready(name: &str) -> Value {
    json!({"name": name, "state": "ready"})
}

#[test]
fn the_same_state_is_in_sync() {
    check(
        &[
            game("doom", "  launch:\n    executable: doom.exe\n"),
            version(
                "doom",
                "1.0",
                &format!("  digest: {DIGEST_A}\n  notes: hi\n"),
            ),
            user("bob", ""),
        ],
        json!({
            "games": {"doom": {"title": "T", "private": false, "suspended": false,
                "launch": {"executable": "doom.exe", "args": []},
                "versions": [{"name": "1.0", "notes": "hi", "treeDigest": DIGEST_A, "state": "ready"}]}},
            "users": {"bob": {"role": "user", "disabled": false}}
        }),
        "In sync: the server has what the specs say (1 game, 1 version, 1 user).\n",
    );
}

#[test]
fn new_games_versions_and_users_are_added() {
    check(
        &[
            game("doom", ""),
            version("doom", "1.0", ""),
            version("doom", "1.1", ""),
            game("quake", "  private: true\n"),
            version("quake", "1", ""),
            user("bob", ""),
        ],
        json!({"games": {"doom": server_game(json!([ready("1.0")]))}, "users": {}}),
        "\
+ version doom 1.1
+ game quake (private)
+ version quake 1
+ user bob (user)
Plan: 4 to add, 0 to change, 0 to remove (server: 1 game, 0 users).
",
    );
}

#[test]
fn game_fields_the_api_shows_are_compared() {
    check(
        &[game(
            "doom",
            "  description: new\n  private: true\n  suspend: true\n  launch:\n    executable: d\n",
        )],
        json!({"games": {"doom": {"title": "Old", "private": false, "suspended": false,
            "versions": []}}, "users": {}}),
        "\
~ game doom (title \"Old\" → \"T\"; description changed; public → private; launch changed; suspended: left exactly as it is)
Plan: 0 to add, 1 to change, 0 to remove (server: 1 game, 0 users).
",
    );
}

#[test]
fn a_suspended_game_leaves_its_versions_alone() {
    check(
        &[
            game("doom", "  suspend: true\n"),
            version("doom", "2.0", ""),
        ],
        json!({"games": {"doom": {"title": "T", "private": false, "suspended": true,
            "versions": [ready("1.0")]}}, "users": {}}),
        "\
note: doom is suspended: 2 version changes wait until it is resumed
In sync: the server has what the specs say (1 game, 1 version, 0 users).
",
    );
    check(
        &[game("new", "  suspend: true\n"), version("new", "1.0", "")],
        json!({"games": {}, "users": {}}),
        "\
+ game new (public; suspended: its 1 version wait until it is resumed)
Plan: 1 to add, 0 to change, 0 to remove (server: 0 games, 0 users).
",
    );
}

#[test]
fn versions_changes_the_api_shows() {
    check(
        &[
            game("doom", ""),
            version("doom", "1.0", &format!("  digest: {DIGEST_B}\n")),
            version("doom", "1.1", "  notes: new notes\n"),
            version("doom", "1.2", &format!("  digest: {DIGEST_A}\n")),
        ],
        json!({"games": {"doom": server_game(json!([
            {"name": "1.0", "treeDigest": DIGEST_A, "state": "ready"},
            {"name": "1.1", "notes": "old", "state": "retired"},
            {"name": "1.2", "state": "pending"}
        ]))}, "users": {}}),
        "\
~ version doom 1.0 (pinned digest blake3:bbbbbbbbbbbb differs from the ingested blake3:aaaaaaaaaaaa: ingested again)
~ version doom 1.1 (retired on the server: served again once Ready; notes changed)
Plan: 0 to add, 2 to change, 0 to remove (server: 1 game, 0 users).
",
    );
}

#[test]
fn removed_versions_are_retired_unless_a_retention_policy_prunes_them() {
    let server = || {
        json!({"games": {"doom": server_game(json!([ready("1.0"), ready("1.1"),
            {"name": "0.9", "state": "retired"}]))}, "users": {}})
    };
    check(
        &[game("doom", ""), version("doom", "1.1", "")],
        server(),
        "\
- version doom 1.0 (retired: no longer served, and nothing is deleted: no retention policy prunes it)
Plan: 0 to add, 0 to change, 1 to remove (server: 1 game, 0 users).
",
    );
    check(
        &[
            game(
                "doom",
                "  retention:\n    keepVersions: 1\n    prune: true\n",
            ),
            version("doom", "1.1", ""),
        ],
        server(),
        "\
- version doom 1.0 (pruned: its artifacts and row are removed, never its build)
- version doom 0.9 (pruned: its artifacts and row are removed, never its build)
Plan: 0 to add, 0 to change, 2 to remove (server: 1 game, 0 users).
",
    );
}

#[test]
fn versions_beyond_the_kept_ones_are_retired_by_a_pruning_policy() {
    check(
        &[
            game(
                "doom",
                "  retention:\n    keepVersions: 1\n    prune: true\n",
            ),
            version("doom", "1.0", ""),
            version("doom", "1.1", ""),
        ],
        json!({"games": {"doom": server_game(json!([ready("1.0"), ready("1.1")]))}, "users": {}}),
        "\
~ version doom 1.0 (beyond the newest 1 kept: retired, its artifacts removed)
Plan: 0 to add, 1 to change, 0 to remove (server: 1 game, 0 users).
",
    );
}

#[test]
fn a_removed_game_retires_its_versions_once() {
    let server = |state: &str| {
        json!({"games": {"doom": server_game(json!([{"name": "1.0", "state": state}]))},
               "users": {}})
    };
    check(
        &[],
        server("ready"),
        "\
- game doom (its 1 version is retired: no longer served; nothing is deleted)
Plan: 0 to add, 0 to change, 1 to remove (server: 1 game, 0 users).
",
    );
    check(
        &[],
        server("retired"),
        "In sync: the server has what the specs say (0 games, 0 versions, 0 users).\n",
    );
}

#[test]
fn users_are_compared_by_role_display_name_and_disabled() {
    check(
        &[
            user("bob", "  displayName: Bobby\n  disabled: true\n"),
            user("eve", ""),
        ],
        json!({"games": {}, "users": {
            "bob": {"role": "admin", "displayName": "Bob", "disabled": false},
            "eve": {"role": "user", "disabled": true},
            "mallory": {"role": "user", "disabled": false}}}),
        "\
~ user bob (role admin → user; display name changed; disabled: can no longer log in)
~ user eve (enabled again)
- user mallory (deleted: can no longer log in)
Plan: 0 to add, 2 to change, 1 to remove (server: 0 games, 3 users).
",
    );
}
