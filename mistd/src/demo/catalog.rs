//! The demo's games, versions, users and release history, and the files of every build.
//!
//! Everything here is pure: [`GameDef::build`] returns a build's files in memory, the same
//! bytes on every machine.

use std::collections::BTreeMap;

use mist_specs::model::Role;

use super::code::Program;
use super::media;
use super::pak::Pack;
use super::rng::Rng;
use super::text;

/// The files (and empty folders) of one build.
pub(crate) struct Build {
    /// Files by `/`-separated path.
    pub(crate) files: BTreeMap<String, BuildFile>,
    /// Folders that hold nothing but must exist.
    pub(crate) empty_dirs: Vec<String>,
}

/// One file of a build.
pub(crate) struct BuildFile {
    pub(crate) bytes: Vec<u8>,
    pub(crate) executable: bool,
}

/// A demo game and how to make each of its builds.
pub(crate) struct GameDef {
    pub(crate) name: &'static str,
    pub(crate) title: &'static str,
    pub(crate) description: &'static str,
    pub(crate) private: bool,
    pub(crate) grants: &'static [&'static str],
    pub(crate) executable: &'static str,
    /// Oldest first.
    pub(crate) versions: &'static [VersionDef],
    /// The files of the version with this index.
    pub(crate) build: fn(usize) -> Build,
}

/// A release of a demo game.
pub(crate) struct VersionDef {
    pub(crate) name: &'static str,
    pub(crate) notes: &'static str,
}

/// A demo user.
pub(crate) struct UserDef {
    pub(crate) name: &'static str,
    pub(crate) display_name: &'static str,
    pub(crate) role: Role,
}

pub(crate) const USERS: [UserDef; 2] = [
    UserDef {
        name: "admin",
        display_name: "Demo Admin",
        role: Role::Admin,
    },
    UserDef {
        name: "friend",
        display_name: "Demo Friend",
        role: Role::User,
    },
];

pub(crate) const GAMES: [GameDef; 3] = [
    GameDef {
        name: "starfall",
        title: "Starfall",
        description: "A fleet tactics game. Its updates are small code changes to one big executable.",
        private: false,
        grants: &[],
        executable: "bin/starfall",
        versions: &[
            VersionDef {
                name: "1.0.0",
                notes: "Launch build.",
            },
            VersionDef {
                name: "1.0.1",
                notes: "Fixes a crash when the fleet screen opens with no ships docked.",
            },
            VersionDef {
                name: "1.1.0",
                notes: "Adds photo mode and a field-of-view setting.",
            },
            VersionDef {
                name: "1.2.0",
                notes: "Faster physics in large battles.",
            },
        ],
        build: starfall,
    },
    GameDef {
        name: "tidewater",
        title: "Tidewater",
        description: "A harbour life game. Its updates insert new assets into the middle of one big asset pack.",
        private: false,
        grants: &[],
        executable: "tidewater",
        versions: &[
            VersionDef {
                name: "0.9.0",
                notes: "Early access: the harbour and the first two islands.",
            },
            VersionDef {
                name: "1.0.0",
                notes: "Adds the lighthouse island and rebalances fish prices.",
            },
            VersionDef {
                name: "1.1.0",
                notes: "Adds the storm season and new dialogue for the market.",
            },
        ],
        build: tidewater,
    },
    GameDef {
        name: "lantern",
        title: "Lantern",
        description: "A private beta. Its updates add, remove and rename files and mostly leave the rest alone.",
        private: true,
        grants: &["friend"],
        executable: "lantern.sh",
        versions: &[
            VersionDef {
                name: "1.0",
                notes: "First beta: four levels.",
            },
            VersionDef {
                name: "1.1",
                notes: "Adds the Caverns level; the level editor script is now executable.",
            },
            VersionDef {
                name: "1.2",
                notes: "Removes the unfinished Swamp level; music moves to audio/music.",
            },
            VersionDef {
                name: "2.0",
                notes: "Adds the Summit level, renumbers the Caverns and updates the engine.",
            },
        ],
        build: lantern,
    },
];

/// The releases after each game's first, oldest first, as (game index, version index): one
/// commit each. The first version of every game comes with the game itself.
pub(crate) const RELEASES: [(usize, usize); 8] = [
    (0, 1),
    (2, 1),
    (1, 1),
    (0, 2),
    (2, 2),
    (1, 2),
    (0, 3),
    (2, 3),
];

fn starfall(version_idx: usize) -> Build {
    const GAME: Program = Program {
        key: "starfall/bin",
        n_functions: 12_000,
        n_strings: 2_500,
    };
    const PHYSICS: Program = Program {
        key: "starfall/physics",
        n_functions: 1_600,
        n_strings: 200,
    };
    let version = GAMES[0].versions[version_idx].name;
    let mut files = BTreeMap::new();
    let version_string = format!(
        "Starfall {version} (build {}) for Linux x86-64",
        4100 + 37 * version_idx
    );
    files.insert(
        "bin/starfall".to_string(),
        executable(runnable(
            &version_string,
            GAME.build(version_idx, &version_string),
        )),
    );
    // The physics library changes only in 1.2.0; until then every build shares it.
    let physics_release = usize::from(version_idx >= 3);
    let physics_version = ["starphys 2.3.0", "starphys 2.4.0"][physics_release];
    files.insert(
        "lib/libstarphys.so".to_string(),
        data(PHYSICS.build(physics_release, physics_version)),
    );
    let mut config = String::from(
        "[video]\nwidth = 1920\nheight = 1080\nvsync = true\n\n[audio]\nmaster = 80\nmusic = 60\n",
    );
    if version_idx >= 2 {
        config.push_str("\n[camera]\nfield_of_view = 90\nphoto_mode = true\n");
    }
    files.insert("data/config.ini".to_string(), data(config.into_bytes()));
    files.insert(
        "README.txt".to_string(),
        data(b"Starfall\n\nRun bin/starfall. Settings live in data/config.ini.\n".to_vec()),
    );
    Build {
        files,
        empty_dirs: Vec::new(),
    }
}

fn tidewater(version_idx: usize) -> Build {
    const LAUNCHER: Program = Program {
        key: "tidewater/bin",
        n_functions: 1_200,
        n_strings: 300,
    };
    const ASSETS: Pack = Pack {
        key: "tidewater/assets",
        n_records: 200,
        n_inserted_per_round: 8,
        n_modified_per_round: 3,
    };
    let version = GAMES[1].versions[version_idx].name;
    let mut files = BTreeMap::new();
    files.insert(
        "tidewater".to_string(),
        executable(runnable(
            &format!("Tidewater {version}"),
            LAUNCHER.build(version_idx, &format!("Tidewater {version}")),
        )),
    );
    files.insert(
        "data/assets.pak".to_string(),
        data(ASSETS.build(version_idx)),
    );
    files.insert(
        "data/strings/en.txt".to_string(),
        data(dialogue("tidewater/strings/en", 700, version_idx)),
    );
    files.insert(
        "LICENSE.txt".to_string(),
        data(b"Tidewater is a synthetic demo game made by `mistd demo`.\n".to_vec()),
    );
    Build {
        files,
        empty_dirs: Vec::new(),
    }
}

fn lantern(version_idx: usize) -> Build {
    const ENGINE: Program = Program {
        key: "lantern/engine",
        n_functions: 2_500,
        n_strings: 400,
    };
    let mut files = BTreeMap::new();
    let version = GAMES[2].versions[version_idx].name;
    let launcher = if version_idx < 3 {
        "#!/bin/sh\n# Lantern launcher.\ncd \"$(dirname \"$0\")\" || exit 1\nexec ./bin/lantern-engine --data . \"$@\"\n"
    } else {
        "#!/bin/sh\n# Lantern launcher.\ncd \"$(dirname \"$0\")\" || exit 1\nexec ./bin/lantern-engine --data . --renderer auto \"$@\"\n"
    };
    files.insert(
        "lantern.sh".to_string(),
        executable(launcher.as_bytes().to_vec()),
    );
    let engine_release = usize::from(version_idx >= 3);
    let engine_version = ["lantern-engine 1.0", "lantern-engine 2.0"][engine_release];
    files.insert(
        "bin/lantern-engine".to_string(),
        executable(runnable(
            engine_version,
            ENGINE.build(engine_release, engine_version),
        )),
    );
    // 1.0 shipped the editor script without its exec bit; 1.1 fixed only that.
    files.insert(
        "tools/level-editor.sh".to_string(),
        BuildFile {
            bytes: b"#!/bin/sh\nexec \"$(dirname \"$0\")/../bin/lantern-engine\" --editor \"$@\"\n"
                .to_vec(),
            executable: version_idx >= 1,
        },
    );

    let levels = [
        LevelDef::new("01-meadow.lvl", "Meadow", &[2], 0..=3),
        LevelDef::new("02-forest.lvl", "Forest", &[1], 0..=3),
        LevelDef::new("03-swamp.lvl", "Swamp", &[], 0..=1),
        LevelDef::new("04-ruins.lvl", "Ruins", &[3], 0..=3),
        LevelDef::new("05-caverns.lvl", "Caverns", &[], 1..=2),
        LevelDef::new("06-summit.lvl", "Summit", &[], 3..=3),
    ];
    let mut level_names = Vec::new();
    for level in &levels {
        if !level.versions.contains(&version_idx) {
            continue;
        }
        let tweaks: Vec<usize> = level
            .tweaks
            .iter()
            .copied()
            .filter(|&round| round <= version_idx)
            .collect();
        let bytes = media::level(&level.key(), level.title, &tweaks);
        files.insert(format!("levels/{}", level.file_name), data(bytes));
        level_names.push(level.file_name);
    }
    if version_idx >= 3 {
        // After the Swamp was cut, 2.0 renumbers the Caverns: same bytes, new name.
        let caverns = media::level(&levels[4].key(), levels[4].title, &[]);
        files.insert("levels/03-caverns.lvl".to_string(), data(caverns));
        level_names.push("03-caverns.lvl");
        level_names.sort_unstable();
    }

    let music_dir = if version_idx < 2 {
        "music"
    } else {
        "audio/music"
    };
    for (name, len) in [("theme.ogg", 1_200_000), ("forest.ogg", 800_000)] {
        let bytes = media::music(&format!("lantern/music/{name}"), len);
        files.insert(format!("{music_dir}/{name}"), data(bytes));
    }
    let config = format!(
        "# Lantern {version}\nmusic_dir = {music_dir}\nlevels = {}\n",
        level_names.join(", ")
    );
    files.insert("game.cfg".to_string(), data(config.into_bytes()));
    Build {
        files,
        empty_dirs: vec!["saves".to_string()],
    }
}

/// A Lantern level and the versions that ship it.
struct LevelDef {
    file_name: &'static str,
    title: &'static str,
    /// Versions that repainted a few tiles; a level's bytes depend on its title, not its
    /// file name, so a renamed level is the same file.
    tweaks: &'static [usize],
    versions: std::ops::RangeInclusive<usize>,
}

impl LevelDef {
    const fn new(
        file_name: &'static str,
        title: &'static str,
        tweaks: &'static [usize],
        versions: std::ops::RangeInclusive<usize>,
    ) -> LevelDef {
        LevelDef {
            file_name,
            title,
            tweaks,
            versions,
        }
    }

    fn key(&self) -> String {
        format!("lantern/level/{}", self.title.to_lowercase())
    }
}

/// A text file of `n_lines` dialogue lines, of which each release changes a few and adds a
/// few more in the middle.
fn dialogue(key: &str, n_lines: usize, release: usize) -> Vec<u8> {
    let mut lines: Vec<String> = (0..n_lines)
        .map(|line_idx| dialogue_line(&format!("{key}/line/{line_idx}")))
        .collect();
    for round in 1..=release {
        let mut rng = Rng::new(&format!("{key}/round/{round}"));
        for edit_idx in 0..5 {
            let line_idx = rng.below(lines.len());
            lines[line_idx] = dialogue_line(&format!("{key}/round/{round}/edit/{edit_idx}"));
        }
        let at = rng.below(lines.len());
        for new_idx in 0..12 {
            let line = dialogue_line(&format!("{key}/round/{round}/new/{new_idx}"));
            lines.insert(at + new_idx, line);
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

fn dialogue_line(key: &str) -> String {
    let mut rng = Rng::new(key);
    let id = rng.next_u64() as u32;
    format!("DLG_{id:08X} = {}", text::sentence(&mut rng))
}

/// A demo program that really runs: a shell script that prints `title` and its arguments
/// and exits, followed by `code`, the synthetic machine code whose releases make realistic
/// deltas. The shell stops at `exit` and never reads the bytes after it.
fn runnable(title: &str, code: Vec<u8>) -> Vec<u8> {
    let mut bytes = format!(
        "#!/bin/sh\n\
         # A demo program made by `mistd demo`: it prints its version and its arguments.\n\
         # The bytes after `exit` stand in for a game's code; the shell never reads them.\n\
         echo '{title}'\n\
         echo \"arguments: $*\"\n\
         exit 0\n"
    )
    .into_bytes();
    bytes.extend(code);
    bytes
}

fn executable(bytes: Vec<u8>) -> BuildFile {
    BuildFile {
        bytes,
        executable: true,
    }
}

fn data(bytes: Vec<u8>) -> BuildFile {
    BuildFile {
        bytes,
        executable: false,
    }
}
