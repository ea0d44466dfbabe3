//! Every error of mist-games and mist-delta that has a cause returns it from `source()` and
//! leaves it out of its own message, so `ErrorChain` prints each cause exactly once.

use std::error::Error;
use std::io;
use std::path::PathBuf;

use mist_delta::format::DeltaError;
use mist_games::install::InstallError;
use mist_games::manifest::{ManifestError, SymlinkProblem};
use mist_games::pack::PackError;
use mist_games::repair::RepairError;
use mist_games::replay::ReplayError;
use mist_games::scan::ScanError;
use mist_games::treedelta::format::TreeDeltaError;
use mist_platform::error::ErrorChain;

fn io_cause() -> io::Error {
    io::Error::other("the disk is on fire")
}

fn tree_io() -> TreeDeltaError {
    TreeDeltaError::Io {
        path: PathBuf::from("/nas/old/game.bin"),
        action: "read",
        source: io_cause(),
    }
}

/// Each error with a cause, and the whole chain `ErrorChain` must print for it.
fn cases() -> Vec<(Box<dyn Error>, &'static str)> {
    vec![
        (
            Box::new(DeltaError::Io(io_cause())),
            "i/o error: the disk is on fire",
        ),
        (
            Box::new(RepairError::Io(io_cause())),
            "i/o error: the disk is on fire",
        ),
        (
            Box::new(ScanError::Io {
                path: PathBuf::from("/nas/build"),
                action: "read directory",
                source: io_cause(),
            }),
            "failed to read directory /nas/build: the disk is on fire",
        ),
        (
            Box::new(tree_io()),
            "failed to read /nas/old/game.bin: the disk is on fire",
        ),
        (
            Box::new(TreeDeltaError::FileDelta {
                path: "bin/game".to_owned(),
                source: DeltaError::Io(io_cause()),
            }),
            "file delta for \"bin/game\": i/o error: the disk is on fire",
        ),
        (
            Box::new(ReplayError::Step {
                step: 2,
                source: tree_io(),
            }),
            "step 2 of the delta chain: failed to read /nas/old/game.bin: the disk is on fire",
        ),
        (
            Box::new(PackError::InvalidManifest(ManifestError::InvalidSymlink {
                path: "lib".to_owned(),
                target: "/etc".to_owned(),
                problem: SymlinkProblem::Absolute,
            })),
            "invalid manifest: symlink \"lib\" -> \"/etc\": the target is absolute; make it \
             relative to the link",
        ),
        (
            Box::new(PackError::Io {
                path: PathBuf::from("/tmp/unpack/a"),
                action: "create file",
                source: io_cause(),
            }),
            "failed to create file /tmp/unpack/a: the disk is on fire",
        ),
        (
            Box::new(PackError::Write(io_cause())),
            "failed to write the pack: the disk is on fire",
        ),
        (
            Box::new(PackError::Read(io_cause())),
            "failed to read the pack (damaged, truncated or not a Mist pack): the disk is on fire",
        ),
        (
            Box::new(InstallError::Io {
                path: PathBuf::from("/games/doom"),
                action: "open",
                source: io_cause(),
            }),
            "failed to open /games/doom: the disk is on fire",
        ),
        (
            Box::new(InstallError::Unpack(Box::new(PackError::Write(io_cause())))),
            "unpacking failed: failed to write the pack: the disk is on fire",
        ),
        (
            Box::new(InstallError::RolledBack {
                install: PathBuf::from("/games/doom"),
                cause: Box::new(InstallError::Delta(tree_io())),
            }),
            "the update of /games/doom failed while committing and was rolled back: failed to \
             read /nas/old/game.bin: the disk is on fire",
        ),
    ]
}

#[test]
fn every_cause_is_printed_once() {
    for (error, chain) in cases() {
        assert_eq!(ErrorChain(error.as_ref()).to_string(), chain);
        let mut innermost = error.source().expect("these errors have a cause");
        while let Some(deeper) = innermost.source() {
            innermost = deeper;
        }
        assert_eq!(chain.matches(&innermost.to_string()).count(), 1, "{chain}");
        let source = error.source().expect("these errors have a cause");
        assert!(
            !error.to_string().contains(&source.to_string()),
            "{error} repeats its cause {source}"
        );
    }
}
