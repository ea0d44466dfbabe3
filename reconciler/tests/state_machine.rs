//! The last-good state machine, table-driven: each case is a sequence of snapshots fed to
//! `Desired::observe`, with what must hold after each.

use std::sync::Arc;

use mist_reconciler::desired::{Desired, Outcome, Snapshot};
use mist_specs::load::{Diagnostic, Loaded, load_dir};

/// What a step feeds: a commit and the kind of tree at it.
#[derive(Clone, Copy)]
enum Tree {
    /// One game, valid.
    Games,
    /// Valid, no games.
    Empty,
    /// Invalid with this many errors.
    Errors(usize),
}

/// After each step: the outcome (as a short string), the commit in force, the commit last
/// attempted and `may_prune`.
struct Step {
    commit: &'static str,
    tree: Tree,
    outcome: &'static str,
    in_force: Option<&'static str>,
    attempted: &'static str,
    may_prune: bool,
}

const fn step(
    commit: &'static str,
    tree: Tree,
    outcome: &'static str,
    in_force: Option<&'static str>,
    may_prune: bool,
) -> Step {
    Step {
        commit,
        tree,
        outcome,
        in_force,
        attempted: commit,
        may_prune,
    }
}

use Tree::{Empty, Errors, Games};

#[rustfmt::skip]
const CASES: &[(&str, &[Step])] = &[
    ("first valid commit is accepted", &[
        step("a", Games, "accepted a (was none)", Some("a"), true),
    ]),
    ("same commit twice is unchanged", &[
        step("a", Games, "accepted a (was none)", Some("a"), true),
        step("a", Games, "unchanged a", Some("a"), true),
    ]),
    ("invalid first commit leaves nothing in force", &[
        step("a", Errors(2), "rejected a: 2 errors (keeping none)", None, false),
        step("a", Errors(2), "unchanged a", None, false),
    ]),
    ("invalid commit keeps the last good one", &[
        step("a", Games, "accepted a (was none)", Some("a"), true),
        step("b", Errors(3), "rejected b: 3 errors (keeping a)", Some("a"), false),
        step("b", Errors(3), "unchanged b", Some("a"), false),
    ]),
    ("same bad commit with other errors is rejected again", &[
        step("a", Games, "accepted a (was none)", Some("a"), true),
        step("b", Errors(1), "rejected b: 1 errors (keeping a)", Some("a"), false),
        step("b", Errors(2), "rejected b: 2 errors (keeping a)", Some("a"), false),
    ]),
    ("a failing commit that becomes valid is accepted", &[
        step("a", Games, "accepted a (was none)", Some("a"), true),
        step("b", Errors(1), "rejected b: 1 errors (keeping a)", Some("a"), false),
        step("b", Games, "accepted b (was a)", Some("b"), true),
    ]),
    ("fix after a failure is accepted", &[
        step("a", Games, "accepted a (was none)", Some("a"), true),
        step("b", Errors(1), "rejected b: 1 errors (keeping a)", Some("a"), false),
        step("c", Games, "accepted c (was a)", Some("c"), true),
    ]),
    ("reset back to the good commit is accepted again", &[
        step("a", Games, "accepted a (was none)", Some("a"), true),
        step("b", Errors(1), "rejected b: 1 errors (keeping a)", Some("a"), false),
        step("a", Games, "accepted a (was a)", Some("a"), true),
    ]),
    ("empty tree is applied but never prunes", &[
        step("a", Games, "accepted a (was none)", Some("a"), true),
        step("e", Empty, "accepted e (was a)", Some("e"), false),
        step("e", Empty, "unchanged e", Some("e"), false),
        step("f", Games, "accepted f (was e)", Some("f"), true),
    ]),
    ("invalid after empty keeps the empty tree and still never prunes", &[
        step("e", Empty, "accepted e (was none)", Some("e"), false),
        step("b", Errors(1), "rejected b: 1 errors (keeping e)", Some("e"), false),
    ]),
];

#[test]
fn state_machine() {
    let games = games_loaded();
    for (name, steps) in CASES {
        let mut desired = Desired::new();
        assert!(!desired.may_prune(), "{name}: nothing seen yet");
        for (step_idx, step) in steps.iter().enumerate() {
            let loaded = match step.tree {
                Games => games.clone(),
                Empty => Loaded::default(),
                Errors(n_errors) => invalid(n_errors),
            };
            let snapshot = Snapshot {
                commit: step.commit.to_string(),
                confirms_retire: false,
                loaded: Arc::new(loaded),
            };
            let context = format!("{name}, step {step_idx}");
            let outcome = render(&desired.observe(snapshot.clone()));
            assert_eq!(outcome, step.outcome, "{context}");
            assert_eq!(
                desired.last_good().map(|s| s.commit.as_str()),
                step.in_force,
                "{context}"
            );
            if let Some(good) = desired.last_good() {
                assert!(good.is_valid(), "{context}: the one in force is valid");
            }
            let attempt = desired.last_attempted().expect("an attempt");
            assert_eq!(attempt.commit, step.attempted, "{context}");
            assert_eq!(
                attempt.diagnostics, snapshot.loaded.diagnostics,
                "{context}: every error is kept"
            );
            assert_eq!(desired.is_failing(), !snapshot.is_valid(), "{context}");
            assert_eq!(desired.may_prune(), step.may_prune, "{context}");
        }
    }
}

fn render(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted { commit, previous } => format!(
            "accepted {commit} (was {})",
            previous.as_deref().unwrap_or("none")
        ),
        Outcome::Rejected {
            commit,
            n_errors,
            in_force,
        } => format!(
            "rejected {commit}: {n_errors} errors (keeping {})",
            in_force.as_deref().unwrap_or("none")
        ),
        Outcome::Unchanged { commit } => format!("unchanged {commit}"),
    }
}

fn invalid(n_errors: usize) -> Loaded {
    Loaded {
        specs: Default::default(),
        diagnostics: (0..n_errors)
            .map(|line| Diagnostic {
                file: "games/doom/game.yaml".to_string(),
                line: Some(line as u32 + 1),
                column: Some(1),
                message: format!("error {line}"),
                hint: None,
            })
            .collect(),
    }
}

/// A real, valid tree with one game, loaded by the spec loader.
fn games_loaded() -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let game_dir = dir.path().join("games/doom");
    std::fs::create_dir_all(&game_dir).unwrap();
    std::fs::write(
        game_dir.join("game.yaml"),
        "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: doom\nspec:\n  title: Doom\n",
    )
    .unwrap();
    let loaded = load_dir(dir.path(), &Default::default()).unwrap();
    assert!(loaded.is_valid(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.specs.games.len(), 1);
    loaded
}

#[test]
fn read_failure_changes_nothing_but_the_read_error() {
    let mut desired = Desired::new();
    desired.observe(Snapshot {
        commit: "a".to_string(),
        confirms_retire: false,
        loaded: Arc::new(games_loaded()),
    });
    let error = mist_reconciler::desired::DesiredError::Fetch {
        url: "https://***@example.invalid/specs.git".to_string(),
        message: "timed out".to_string(),
    };
    desired.read_failed(&error);
    assert_eq!(desired.last_good().unwrap().commit, "a");
    assert_eq!(desired.last_attempted().unwrap().commit, "a");
    assert!(desired.read_error().unwrap().contains("timed out"));
    assert!(!desired.may_prune(), "a stale desired state prunes nothing");
    desired.observe(Snapshot {
        commit: "a".to_string(),
        confirms_retire: false,
        loaded: Arc::new(games_loaded()),
    });
    assert_eq!(desired.read_error(), None, "cleared by the next read");
    assert!(desired.may_prune());
}
