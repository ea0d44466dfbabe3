//! `mistpipe validate --nas` (the loader with `nas_root`) and the server's ingest give the
//! same verdict on every kind of source tree: both call `mist_specs::nas::check_source_on_nas`.

use std::path::Path;

use mist_db::testing::each_backend;
use mist_specs::load::{LoadOptions, load_git};

use crate::world::{GameOptions, World, status, write_build};

/// A source tree on the NAS: its name (also the game's), how it is made below `nas` (with a
/// folder outside the NAS), and the version's `spec.source`.
type Case = (&'static str, fn(&Path, &Path), &'static str, bool);

fn files(dir: &Path) {
    write_build(dir, "seed", 0);
}

fn link(target: &str, at: &Path) {
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, at).unwrap();
}

const CASES: &[Case] = &[
    (
        "plain",
        |nas, _| files(&nas.join("incoming/plain")),
        "incoming/plain",
        true,
    ),
    (
        "linkedin",
        |nas, _| {
            files(&nas.join("builds/linkedin"));
            link("../builds/linkedin", &nas.join("incoming/linkedin"));
        },
        "incoming/linkedin",
        true,
    ),
    (
        "linkedout",
        |nas, outside| {
            files(&outside.join("linkedout"));
            link(
                outside.join("linkedout").to_str().unwrap(),
                &nas.join("incoming/linkedout"),
            );
        },
        "incoming/linkedout",
        false,
    ),
    (
        "innerin",
        |nas, _| {
            files(&nas.join("incoming/innerin"));
            link("game.bin", &nas.join("incoming/innerin/shortcut"));
        },
        "incoming/innerin",
        true,
    ),
    (
        "innerout",
        |nas, _| {
            files(&nas.join("incoming/innerout"));
            link("../../builds", &nas.join("incoming/innerout/escape"));
        },
        "incoming/innerout",
        false,
    ),
    (
        "statedir",
        |nas, _| files(&nas.join(".mist/builds/statedir")),
        ".mist/builds/statedir",
        false,
    ),
    (
        "intostate",
        |nas, _| {
            files(&nas.join(".mist/kept/intostate"));
            link("../.mist/kept/intostate", &nas.join("incoming/intostate"));
        },
        "incoming/intostate",
        false,
    ),
    ("missing", |_, _| {}, "incoming/missing", false),
    (
        "empty",
        |nas, _| std::fs::create_dir_all(nas.join("incoming/empty/sub")).unwrap(),
        "incoming/empty",
        false,
    ),
    (
        "afile",
        |nas, _| std::fs::write(nas.join("incoming/afile"), b"not a folder").unwrap(),
        "incoming/afile",
        false,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_and_the_server_agree_on_every_source_tree() {
    each_backend(
        "validate_and_the_server_agree_on_every_source_tree",
        |test_db| async move {
            let mut world = World::new(test_db);
            let outside = world.root.path().join("outside");
            let nas = world.nas();
            for (game, make, source, _) in CASES {
                make(&nas, &outside);
                world.game(game, &GameOptions::default());
                world.files.insert(
                    format!("games/{game}/versions/1.0.yaml"),
                    format!(
                        "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"1.0\"\n  \
                         game: {game}\nspec:\n  source: {source}\n"
                    ),
                );
            }
            world.commit("one game per source tree");

            let options = LoadOptions {
                nas_root: Some(nas.clone()),
            };
            let loaded = load_git(&world.root.path().join("specs"), "HEAD", &options).unwrap();
            let reconciler = world.reconciler();
            reconciler.run_until_idle().await.unwrap();
            let report = status(&world).await;

            // A missing build is waited for ("not on the NAS"); every other refusal carries
            // the words validate prints.
            for (game, _, source, expected) in CASES {
                let file = format!("games/{game}/versions/1.0.yaml");
                let refused_by_validate: Vec<&str> = loaded
                    .diagnostics
                    .iter()
                    .filter(|d| d.file == file)
                    .map(|d| d.message.as_str())
                    .collect();
                let version = report
                    .games
                    .iter()
                    .find(|g| g.name == *game)
                    .and_then(|g| g.versions.first())
                    .unwrap_or_else(|| panic!("{game} has no version in the status"));
                let served = version.ready;
                assert_eq!(
                    refused_by_validate.is_empty(),
                    served,
                    "{game} ({source}): validate says {refused_by_validate:?}, the server says \
                     {} {}: {}",
                    version.status,
                    version.reason,
                    version.message
                );
                assert_eq!(served, *expected, "{game}: {}", version.message);
                if !served && *game != "missing" {
                    let problem = refused_by_validate[0].trim_start_matches("`spec.source` ");
                    assert!(
                        version.message.contains(problem),
                        "{game}: the server says `{}`, validate `{problem}`",
                        version.message
                    );
                }
            }
        },
    )
    .await;
}
