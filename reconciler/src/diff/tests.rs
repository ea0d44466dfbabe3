//! Table tests of the pure diff. Every case goes through [`check`]: a small text describing
//! the desired and observed state, and the expected diff rendered as text
//! (`UPDATE_EXPECT=1 cargo test -p mist-reconciler` rewrites the expectations).
//!
//! The input, one item per line:
//!
//! ```text
//! may-prune                          the desired state allows pruning
//! game g [suspend] [keep=N] [prune] [steam=ID] [image=X]
//!                                    a game in the specs (with a Steam app id, and a header
//!                                    image of address `blake3:X` in the spec repository)
//!   1.0 [flags]                      a version in the specs, oldest first
//!   ~0.9 [flags]                     a version only in the database
//! gone g 1.0 [flags]                 a version of a game no longer in the specs
//! delta g 1.0 1.2 [missing]          a delta row (its artifact present unless `missing`)
//! job <key> <state> [error…]         an unfinished job
//! user alice | user-db alice [old]   a user in the specs | in the database
//! metadata g [fetched=APP@T] [tried=APP@T] [failed=N:REASON] [retry=T] [steam-image[?]]
//!            [spec-image=X[?]]       a game's metadata row (`?`: its file is not on the NAS)
//! now T                              the time observed (epoch ms; default 0)
//! ```
//!
//! Version flags: `src` (source on the NAS), `d=X` (ingested with digest `blake3:X`), `pin=X`,
//! `m`/`m?` (manifest present / recorded but missing), `p`/`p?` (pack), `<` (the delta from
//! the previous version is present), `drift`.

use expect_test::{Expect, expect};
use mist_db::queue::JobState;
use mist_db::state::{Role, User, VersionState};

use super::input::Input;
use super::metadata::ObservedMetadata;
use super::*;

fn check(input: &str, expect: Expect) {
    let (desired, observed) = parse(input);
    let diff = diff(&desired, &observed, DiffConfig::default());
    expect.assert_eq(&render(&diff));
}

fn parse(input: &str) -> (Desired, Observed) {
    let mut desired = Desired::default();
    let mut observed = Observed::default();
    let mut current_game: Option<String> = None;
    for line in input.lines() {
        let indented = line.starts_with("  ");
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(&first) = words.first() else {
            continue;
        };
        if indented {
            let game = current_game
                .clone()
                .expect("a version line follows a game line");
            let (name, in_specs) = match first.strip_prefix('~') {
                Some(name) => (name, false),
                None => (first, true),
            };
            let previous = desired.games[&game].versions.last().map(|v| v.name.clone());
            let pinned = flag_value(&words, "pin=").map(digest);
            if in_specs {
                desired
                    .games
                    .get_mut(&game)
                    .expect("game")
                    .versions
                    .push(DesiredVersion {
                        name: name.to_string(),
                        source: format!("incoming/{game}/{name}"),
                        pinned,
                    });
            }
            add_version(&mut observed, &game, name, &words[1..], previous.as_deref());
            continue;
        }
        match first {
            "may-prune" => desired.may_prune = true,
            "confirm-retire" => desired.confirm_retire = true,
            "game" => {
                let name = words[1].to_string();
                let game = DesiredGame {
                    suspend: words.contains(&"suspend"),
                    keep_versions: flag_value(&words, "keep=").map_or(0, |n| n.parse().unwrap()),
                    prune: words.contains(&"prune"),
                    versions: Vec::new(),
                    steam_app_id: flag_value(&words, "steam=").map(|id| id.parse().unwrap()),
                    header_image: flag_value(&words, "image=").map(image),
                };
                desired.games.insert(name.clone(), game);
                current_game = Some(name);
            }
            "gone" => add_version(&mut observed, words[1], words[2], &words[3..], None),
            "metadata" => {
                let metadata = metadata_row(words[1], &words[2..]);
                observed.metadata.insert(words[1].to_string(), metadata);
            }
            "now" => observed.now = words[1].parse().unwrap(),
            "delta" => {
                let presence = if words.contains(&"missing") {
                    Presence::Missing
                } else {
                    Presence::Present
                };
                add_delta(&mut observed, words[1], words[2], words[3], presence);
            }
            "job" => {
                let state = JobState::parse(words[2]).unwrap();
                let error = (words.len() > 3).then(|| words[3..].join(" "));
                observed.jobs.insert(
                    words[1].to_string(),
                    ObservedJob {
                        state,
                        attempts: 1,
                        last_error: error,
                    },
                );
            }
            "user" => {
                desired
                    .users
                    .insert(words[1].to_string(), user(words[1], "new"));
            }
            "user-db" => {
                let hash = if words.contains(&"old") { "old" } else { "new" };
                observed
                    .users
                    .insert(words[1].to_string(), user(words[1], hash));
            }
            other => panic!("unknown line {other:?}"),
        }
    }
    // What observation derives: packs and deltas by digest.
    for ((_, _), version) in &observed.versions {
        if let (Some(digest), Presence::Present) = (&version.digest, version.pack) {
            observed
                .packs
                .insert(digest.clone(), format!("pack-of-{}", &digest[7..]));
        }
    }
    let deltas: Vec<_> = observed
        .deltas
        .iter()
        .filter(|(_, presence)| **presence == Presence::Present)
        .map(|(key, _)| key.clone())
        .collect();
    for (game, from, to) in deltas {
        let digest_of = |version: &str| {
            observed
                .versions
                .get(&(game.clone(), version.to_string()))
                .and_then(|v| v.digest.clone())
        };
        if let (Some(from_digest), Some(to_digest)) = (digest_of(&from), digest_of(&to)) {
            let address = format!("delta-{}-{}", &from_digest[7..], &to_digest[7..]);
            observed
                .delta_artifacts
                .insert((from_digest, to_digest), address);
        }
    }
    (desired, observed)
}

fn add_version(
    observed: &mut Observed,
    game: &str,
    name: &str,
    flags: &[&str],
    previous: Option<&str>,
) {
    let has = |flag: &str| flags.contains(&flag);
    let presence = |letter: &str| {
        if has(letter) {
            Presence::Present
        } else if has(&format!("{letter}?")) {
            Presence::Missing
        } else {
            Presence::Absent
        }
    };
    let digest = flag_value(flags, "d=").map(digest);
    let has_row = digest.is_some() || has("row");
    let version = ObservedVersion {
        state: if has("ready") {
            VersionState::Ready
        } else if digest.is_some() {
            VersionState::Ingested
        } else {
            VersionState::Pending
        },
        source_present: has("src"),
        digest,
        manifest: presence("m"),
        pack: presence("p"),
        drifted: has("drift"),
    };
    if has_row || version.source_present {
        observed
            .versions
            .insert((game.to_string(), name.to_string()), version);
    }
    if has("<") {
        add_delta(
            observed,
            game,
            previous.expect("a previous version"),
            name,
            Presence::Present,
        );
    }
}

fn add_delta(observed: &mut Observed, game: &str, from: &str, to: &str, presence: Presence) {
    observed.deltas.insert(
        (game.to_string(), from.to_string(), to.to_string()),
        presence,
    );
}

fn flag_value<'a>(words: &[&'a str], prefix: &str) -> Option<&'a str> {
    words.iter().find_map(|word| word.strip_prefix(prefix))
}

fn digest(label: &str) -> String {
    format!("blake3:{label}")
}

fn user(name: &str, hash: &str) -> User {
    User {
        name: name.to_string(),
        display_name: None,
        role: Role::User,
        password_hash: hash.to_string(),
        disabled: false,
    }
}

fn render(diff: &Diff) -> String {
    let mut out = String::new();
    for action in &diff.actions {
        let line = match action {
            Action::Ingest {
                game,
                version,
                pinned,
                ..
            } => format!(
                "ingest {game}/{version}{}",
                pinned
                    .as_ref()
                    .map_or(String::new(), |p| format!(" pin={p}"))
            ),
            Action::Pack { game, version, .. } => format!("pack {game}/{version}"),
            Action::Delta { game, from, to, .. } => format!("delta {game} {from} -> {to}"),
            Action::LinkPack {
                game,
                version,
                address,
            } => format!("link-pack {game}/{version} = {address}"),
            Action::LinkDelta {
                game,
                from,
                to,
                address,
            } => format!("link-delta {game} {from} -> {to} = {address}"),
            Action::Prune {
                game,
                version,
                remove,
            } => format!(
                "prune {game}/{version}{}",
                if *remove { " and its row" } else { "" }
            ),
            Action::Metadata { game, app_id, due } => {
                format!("fetch metadata {game} app={app_id} due={due}")
            }
            Action::SpecImage { game, address } => match address {
                Some(address) => format!("store spec image {game} = {address}"),
                None => format!("unrecord spec image {game}"),
            },
        };
        out.push_str(&line);
        out.push('\n');
    }
    for ((game, version), status) in &diff.conditions {
        out.push_str(&format!(
            "{game}/{version}: {} {} ({}): {}\n",
            status.condition.status.as_str(),
            status.condition.reason,
            status.state,
            status.condition.message
        ));
    }
    for (game, stale) in &diff.metadata_stale {
        out.push_str(&format!(
            "{game}: MetadataStale {}: {}\n",
            stale.reason, stale.message
        ));
    }
    if let Some(at) = diff.next_metadata_at {
        out.push_str(&format!("next metadata fetch at {at}\n"));
    }
    for user in &diff.upsert_users {
        out.push_str(&format!("upsert user {}\n", user.name));
    }
    for name in &diff.delete_users {
        out.push_str(&format!("delete user {name}\n"));
    }
    out
}

#[test]
fn new_game_is_ingested() {
    check(
        "
game g
  1.0 src
  1.1 src
  1.2
",
        expect![[r#"
            ingest g/1.0
            ingest g/1.1
            g/1.0: Reconciling Ingesting (pending): ingesting the build in incoming/g/1.0
            g/1.1: Reconciling Ingesting (pending): ingesting the build in incoming/g/1.1
            g/1.2: Stalled SourceMissing (stalled): the build incoming/g/1.2 is not on the NAS; Mist looks again as soon as something changes under incoming/, and at every periodic resync (--resync)
        "#]],
    );
}

#[test]
fn ingested_versions_get_packs_direct_and_skip_deltas() {
    check(
        "
game g
  1.0 src d=a m
  1.1 src d=b m
  1.2 src d=c m
  1.3 src d=d m
",
        expect![[r#"
            pack g/1.0
            pack g/1.1
            pack g/1.2
            pack g/1.3
            delta g 1.0 -> 1.1
            delta g 1.0 -> 1.3
            delta g 1.1 -> 1.2
            delta g 1.1 -> 1.3
            delta g 1.2 -> 1.3
            g/1.0: Reconciling Building (ingested): packing
            g/1.1: Reconciling Building (ingested): packing; making the delta from 1.0
            g/1.2: Reconciling Building (ingested): packing; making the delta from 1.1
            g/1.3: Reconciling Building (ingested): packing; making the delta from 1.2
        "#]],
    );
}

#[test]
fn ready_needs_manifest_pack_and_delta_from_previous() {
    check(
        "
game g
  1.0 src d=a m p
  1.1 src d=b m p <
  1.2 src d=c m? p <
  1.3 src d=d m p? <
  1.4 src d=e m p
delta g 1.1 1.4
delta g 1.2 1.4
",
        expect![[r#"
            ingest g/1.2
            pack g/1.3
            delta g 1.3 -> 1.4
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.1: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.2: Reconciling Ingesting (ingested): ingesting the build in incoming/g/1.2
            g/1.3: Reconciling Building (ingested): packing
            g/1.4: Reconciling Building (ingested): making the delta from 1.3
        "#]],
    );
}

#[test]
fn converged_diff_is_empty() {
    check(
        "
game g
  1.0 d=a m p
  1.1 d=b m p <
  1.2 d=c m p <
delta g 1.0 1.2
user alice
user-db alice
",
        expect![[r#"
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.1: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.2: Ready Ready (ready): manifest, pack and delta from the previous version are ready
        "#]],
    );
}

#[test]
fn drift_stalls_and_is_never_reingested() {
    // 1.1 drifted: stalled, not re-ingested, its source no longer used. The delta to 1.2 is
    // still made, from 1.1's pack.
    check(
        "
game g
  1.0 src d=a m p
  1.1 src d=b m p < drift
  1.2 src d=c m p
",
        expect![[r#"
            delta g 1.0 -> 1.2
            delta g 1.1 -> 1.2
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.1: Stalled DigestMismatch (stalled): the build in incoming/g/1.1 changed on the NAS after it was ingested as blake3:b; it is not served and not re-ingested: restore the build, or publish the new one as a new version
            g/1.2: Reconciling Building (ingested): making the delta from 1.1
        "#]],
    );
}

#[test]
fn pins() {
    // A new pin on an ingested version is an explicit request to ingest again; a pin on a
    // version whose build is gone cannot be checked.
    check(
        "
game g
  1.0 src d=a m p pin=b
  1.1 d=b m p < pin=x
",
        expect![[r#"
            ingest g/1.0 pin=blake3:b
            g/1.0: Reconciling Ingesting (ingested): ingesting the build in incoming/g/1.0
            g/1.1: Stalled PinnedDigestMismatch (stalled): the spec pins blake3:x but the version was ingested as blake3:b, and the build incoming/g/1.1 is not on the NAS
        "#]],
    );
}

#[test]
fn job_states_show_in_conditions() {
    check(
        "
game g
  1.0 src
  1.1 src
  1.2 src d=c m
job ingest:g:1.0:incoming/g/1.0:- terminal PinnedDigestMismatch: the build hashes to x
job ingest:g:1.1:incoming/g/1.1:- failed disk on fire
job pack:blake3:c running
",
        expect![[r#"
            g/1.0: Stalled PinnedDigestMismatch (stalled): the build hashes to x
            g/1.1: Reconciling Ingesting (pending): ingesting the build in incoming/g/1.1 (attempt 1 failed: disk on fire; retrying)
            g/1.2: Stalled Blocked (stalled): waiting for the previous version 1.1 to be ingested, to make the delta from it
        "#]],
    );
}

#[test]
fn terminal_job_of_an_old_key_does_not_matter() {
    // The pin changed since the terminal ingest: a new key, so a new ingest.
    check(
        "
game g
  1.0 src pin=b
job ingest:g:1.0:incoming/g/1.0:blake3:a terminal PinnedDigestMismatch: nope
",
        expect![[r#"
            ingest g/1.0 pin=blake3:b
            g/1.0: Reconciling Ingesting (pending): ingesting the build in incoming/g/1.0
        "#]],
    );
}

#[test]
fn missing_source_is_replayed_from_the_delta_chain() {
    // 1.1's build is gone; the delta 1.1 -> 1.2 and the skip delta 1.1 -> 1.3 need its tree,
    // which a replay of 1.0 + delta(1.0 -> 1.1) gives.
    check(
        "
game g
  1.0 src d=a m p
  1.1 d=b m p <
  1.2 src d=c m p
  1.3 src d=d m p <
",
        expect![[r#"
            delta g 1.0 -> 1.3
            delta g 1.1 -> 1.2
            delta g 1.1 -> 1.3
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.1: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.2: Reconciling Building (ingested): making the delta from 1.1
            g/1.3: Ready Ready (ready): manifest, pack and delta from the previous version are ready
        "#]],
    );
}

#[test]
fn missing_source_without_chain_or_pack_stalls() {
    check(
        "
game g
  1.0 src d=a m p
  1.1 d=b m
  1.2 src d=c m p
",
        expect![[r#"
            delta g 1.0 -> 1.2
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.1: Stalled SourceMissing (stalled): the build of 1.1 is not on the NAS (incoming/g/1.1) and cannot be rebuilt from the delta chain or its pack
            g/1.2: Stalled Blocked (stalled): the build of 1.1 is not on the NAS (incoming/g/1.1) and cannot be rebuilt from the delta chain or its pack
        "#]],
    );
}

#[test]
fn identical_content_is_linked_not_rebuilt() {
    check(
        "
game g
  1.0 src d=a m p
  1.1 src d=b m p <
game h
  2.0 src d=a m
  2.1 src d=b m
",
        expect![[r#"
            link-pack h/2.0 = pack-of-a
            link-pack h/2.1 = pack-of-b
            link-delta h 2.0 -> 2.1 = delta-a-b
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.1: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            h/2.0: Reconciling Building (ingested): linking the pack of identical content
            h/2.1: Reconciling Building (ingested): linking the pack of identical content; linking the delta of identical content
        "#]],
    );
}

#[test]
fn retention_prunes_only_when_allowed_and_kept_versions_are_ready() {
    let ready = "
game g keep=2 prune
  1.0 d=a m p
  1.1 d=b m p <
  1.2 d=c m p <
  1.3 d=d m p <
";
    check(
        &format!("may-prune{ready}"),
        expect![[r#"
            prune g/1.0
            prune g/1.1
            g/1.0: Inactive Pruned (retired): beyond the newest 2 versions kept; removing its artifacts
            g/1.1: Inactive Pruned (retired): beyond the newest 2 versions kept; removing its artifacts
            g/1.2: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.3: Ready Ready (ready): manifest, pack and delta from the previous version are ready
        "#]],
    );
    // A failing or empty spec tree prunes nothing.
    check(
        ready,
        expect![[r#"
            g/1.0: Inactive Pruned (retired): beyond the newest 2 versions kept; nothing is pruned while the latest spec commit fails, the specs cannot be read, or no game is declared
            g/1.1: Inactive Pruned (retired): beyond the newest 2 versions kept; nothing is pruned while the latest spec commit fails, the specs cannot be read, or no game is declared
            g/1.2: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.3: Ready Ready (ready): manifest, pack and delta from the previous version are ready
        "#]],
    );
    // Nothing is pruned before the versions kept are ready; the oldest kept version needs no
    // delta (its predecessor is pruned).
    check(
        "
may-prune
game g keep=2 prune
  1.0 d=a m p
  1.1 d=b m p <
  1.2 src d=c m
  1.3 d=d m p <
",
        expect![[r#"
            pack g/1.2
            g/1.0: Inactive Pruned (retired): beyond the newest 2 versions kept; its artifacts are removed once the newer versions are ready
            g/1.1: Inactive Pruned (retired): beyond the newest 2 versions kept; its artifacts are removed once the newer versions are ready
            g/1.2: Reconciling Building (ingested): packing
            g/1.3: Ready Ready (ready): manifest, pack and delta from the previous version are ready
        "#]],
    );
    // Already pruned: nothing left to do.
    check(
        "
may-prune
game g keep=1 prune
  1.0 d=a
  1.1 d=b m p
",
        expect![[r#"
            g/1.0: Inactive Pruned (retired): beyond the newest 1 versions kept; its artifacts were removed (its build in incoming/g/1.0 is left alone)
            g/1.1: Ready Ready (ready): manifest, pack and delta from the previous version are ready
        "#]],
    );
}

#[test]
fn keep_versions_without_prune_keeps_everything() {
    check(
        "
may-prune
game g keep=1
  1.0 d=a m p
  1.1 d=b m p <
",
        expect![[r#"
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.1: Ready Ready (ready): manifest, pack and delta from the previous version are ready
        "#]],
    );
}

#[test]
fn removed_versions_are_retired_or_pruned_by_policy() {
    check(
        "
may-prune
game g
  ~0.9 d=z m p
  1.0 d=a m p
game h prune
  ~0.9 d=y m p
  1.0 d=b m p
gone old 1.0 d=x m p
",
        expect![[r#"
            prune h/0.9 and its row
            g/0.9: Inactive Retired (retired): removed from the specs; its data is kept (no retention policy prunes it)
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            h/0.9: Inactive Retired (retired): removed from the specs; removing its artifacts
            h/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            old/1.0: Inactive Retired (retired): its game is no longer in the specs; its data is kept
        "#]],
    );
}

#[test]
fn a_commit_retiring_most_of_what_is_ready_is_held_until_confirmed() {
    // One game of three left: 4 of the 6 Ready versions would be retired (and one pruned).
    let half = "
may-prune
game g
  1.0 d=a m p ready
  1.1 d=b m p < ready
gone h 1.0 d=c m p ready
gone h 1.1 d=d m p ready
";
    let world = format!("{half}gone k 1.0 d=e m p ready\ngone k 1.1 d=f m p ready\n");
    check(
        &world,
        expect![[r#"
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.1: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            h/1.0: Stalled NeedsConfirmation (ready): removed from the specs, but this commit would retire 4 of the 6 Ready versions (more than 50%), so it is held and the version is still served; if that is intended, run `mistpipe confirm-retire` in the spec repository and push, otherwise revert the commit
            h/1.1: Stalled NeedsConfirmation (ready): removed from the specs, but this commit would retire 4 of the 6 Ready versions (more than 50%), so it is held and the version is still served; if that is intended, run `mistpipe confirm-retire` in the spec repository and push, otherwise revert the commit
            k/1.0: Stalled NeedsConfirmation (ready): removed from the specs, but this commit would retire 4 of the 6 Ready versions (more than 50%), so it is held and the version is still served; if that is intended, run `mistpipe confirm-retire` in the spec repository and push, otherwise revert the commit
            k/1.1: Stalled NeedsConfirmation (ready): removed from the specs, but this commit would retire 4 of the 6 Ready versions (more than 50%), so it is held and the version is still served; if that is intended, run `mistpipe confirm-retire` in the spec repository and push, otherwise revert the commit
        "#]],
    );
    // Confirmed by the commit in force: retired.
    check(
        &format!("confirm-retire\n{world}"),
        expect![[r#"
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.1: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            h/1.0: Inactive Retired (retired): its game is no longer in the specs; its data is kept
            h/1.1: Inactive Retired (retired): its game is no longer in the specs; its data is kept
            k/1.0: Inactive Retired (retired): its game is no longer in the specs; its data is kept
            k/1.1: Inactive Retired (retired): its game is no longer in the specs; its data is kept
        "#]],
    );
    // Half of what is Ready is not more than half: retired without asking.
    check(
        half,
        expect![[r#"
            g/1.0: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            g/1.1: Ready Ready (ready): manifest, pack and delta from the previous version are ready
            h/1.0: Inactive Retired (retired): its game is no longer in the specs; its data is kept
            h/1.1: Inactive Retired (retired): its game is no longer in the specs; its data is kept
        "#]],
    );
}

#[test]
fn suspended_game_is_left_alone() {
    check(
        "
may-prune
game g suspend keep=1 prune
  ~0.9 d=z m p
  1.0 src
  1.1 d=b m drift
",
        expect![""],
    );
}

#[test]
fn users_are_published() {
    check(
        "
user alice
user bob
user-db bob old
user-db carol
",
        expect![[r#"
            upsert user alice
            upsert user bob
            delete user carol
        "#]],
    );
}

#[test]
fn input_for_prefers_source_then_replay_then_pack() {
    let facts = |spec: &str| -> Vec<InputFacts> {
        spec.split_whitespace()
            .map(|word| InputFacts {
                source_ok: word.contains('s'),
                manifest: word.contains('m'),
                pack: word.contains('p'),
                delta_from_previous: word.contains('<'),
            })
            .collect()
    };
    let cases = [
        ("sm m<", 1, Some(Input::Replay { base: 0 })),
        ("sm m< m<p", 2, Some(Input::Replay { base: 0 })),
        ("sm m mp", 2, Some(Input::Pack)),
        ("sm m m", 2, None),
        ("s m<", 1, None),
        ("m smp", 1, Some(Input::Source)),
        ("smp", 0, Some(Input::Source)),
        ("p", 0, None),
    ];
    for (spec, idx, want) in cases {
        assert_eq!(input_for(&facts(spec), idx), want, "{spec} @ {idx}");
    }
}

/// A stored image of address `blake3:<x>`, 10 bytes of PNG.
fn image(x: &str) -> mist_db::metadata::StoredImage {
    mist_db::metadata::StoredImage {
        address: format!("blake3:{x}"),
        size: 10,
        media_type: "image/png".to_string(),
    }
}

/// A metadata row from `metadata` line flags.
fn metadata_row(game: &str, words: &[&str]) -> ObservedMetadata {
    use mist_db::metadata::{FetchAttempt, FetchedDetails, GameMetadata, SteamDetails};
    let at = |flag: &str| {
        flag_value(words, flag).map(|value| {
            let (app, time) = value.split_once('@').unwrap();
            (app.parse::<i64>().unwrap(), time.parse::<i64>().unwrap())
        })
    };
    let fetched = at("fetched=");
    let tried = at("tried=").or(fetched);
    let failed = flag_value(words, "failed=").map(|value| {
        let (n, reason) = value.split_once(':').unwrap();
        (n.parse::<u32>().unwrap(), reason.to_string())
    });
    let spec_image = flag_value(words, "spec-image=");
    ObservedMetadata {
        row: GameMetadata {
            game: game.to_string(),
            fetched: fetched.map(|(app_id, fetched_at)| FetchedDetails {
                app_id,
                details: SteamDetails::default(),
                fetched_at,
            }),
            steam_image: words
                .iter()
                .any(|w| w.starts_with("steam-image"))
                .then(|| image("steam")),
            steam_image_source: None,
            spec_image: spec_image.map(|x| image(x.trim_end_matches('?'))),
            attempt: tried.map(|(app_id, at)| FetchAttempt {
                app_id,
                at,
                failures: failed.as_ref().map_or(0, |(n, _)| *n),
                last_error: failed
                    .as_ref()
                    .map(|(_, reason)| format!("{reason}: it went wrong")),
                retry_at: flag_value(words, "retry=").map(|t| t.parse().unwrap()),
            }),
        },
        steam_image_present: words.contains(&"steam-image"),
        spec_image_present: spec_image.is_some_and(|x| !x.ends_with('?')),
    }
}

#[test]
fn store_metadata_is_fetched_when_new_when_the_id_changes_and_when_a_refresh_is_due() {
    // Never fetched; then the id changed since the last good fetch.
    check(
        "
game a steam=620
game b steam=730
metadata b fetched=620@1000 steam-image
now 5000
",
        expect![[r#"
            fetch metadata a app=620 due=0
            fetch metadata b app=730 due=0
        "#]],
    );
    // Fetched: not again before the week (±10 % by game) is over; then at its due time.
    check(
        "
game a steam=620
metadata a fetched=620@1000 steam-image
now 5000
",
        expect![[r#"
            next metadata fetch at 613268200
        "#]],
    );
    check(
        "
game a steam=620
metadata a fetched=620@1000 steam-image
now 613268200
",
        expect![[r#"
            fetch metadata a app=620 due=613268200
        "#]],
    );
    // Its header image gone from the NAS: fetched again at once.
    check(
        "
game a steam=620
metadata a fetched=620@1000 steam-image?
now 5000
",
        expect![[r#"
            fetch metadata a app=620 due=0
        "#]],
    );
    // A game without a Steam app id, or suspended, is never fetched.
    check(
        "
game a
game b suspend steam=620
",
        expect![""],
    );
}

#[test]
fn failed_fetches_make_the_metadata_stale_and_wait_for_their_backoff() {
    check(
        "
game a steam=620
metadata a fetched=620@1000 tried=620@2000 failed=3:RateLimited retry=9000
now 5000
game b steam=999
metadata b fetched=620@1000 tried=999@2000 failed=1:UnknownApp retry=9000
game c steam=620
metadata c tried=620@2000 failed=1:NetworkError retry=4000
",
        expect![[r#"
            fetch metadata c app=620 due=4000
            a: MetadataStale RateLimited: fetching app 620 failed (3 tries in a row): it went wrong; the metadata fetched at 1970-01-01 00:00 UTC is shown meanwhile; next try at 1970-01-01 00:00 UTC
            b: MetadataStale UnknownApp: fetching app 999 failed (the last try): it went wrong; the metadata of app 620 fetched at 1970-01-01 00:00 UTC is shown meanwhile; next try at 1970-01-01 00:00 UTC
            c: MetadataStale NetworkError: fetching app 620 failed (the last try): it went wrong; no metadata is shown yet; next try at 1970-01-01 00:00 UTC
            next metadata fetch at 9000
        "#]],
    );
    // The fetch that is due is queued already: not asked for twice.
    check(
        "
game c steam=620
metadata c tried=620@2000 failed=1:NetworkError retry=4000
now 5000
job metadata:c:620:4000 queued
",
        expect![[r#"
            c: MetadataStale NetworkError: fetching app 620 failed (the last try): it went wrong; no metadata is shown yet; next try at 1970-01-01 00:00 UTC
        "#]],
    );
}

#[test]
fn the_specs_header_image_is_stored_when_it_is_not_and_unrecorded_when_gone() {
    check(
        "
game a image=x
game b image=y
metadata b spec-image=y
game c image=z
metadata c spec-image=z?
game d image=new
metadata d spec-image=old
game e
metadata e spec-image=old
",
        expect![[r#"
            store spec image a = blake3:x
            store spec image c = blake3:z
            store spec image d = blake3:new
            unrecord spec image e
        "#]],
    );
}
