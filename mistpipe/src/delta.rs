//! `mistpipe delta create|apply`: file deltas between two files and tree deltas between two
//! build folders, made and applied from the command line.
//!
//! Outputs are written beside their final path and renamed into place, so a delta or a
//! rebuilt tree appears complete or not at all. Damaged or mismatched input (a bad patch,
//! the wrong OLD) exits with 1; a missing path, an existing OUT or an I/O failure with 2.

use std::fs::{self, File};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mist_delta::decode;
use mist_delta::encode::{self, DiffOptions};
use mist_delta::format::{self as filedelta, DeltaError};
use mist_games::scan;
use mist_games::treedelta::apply::{ApplyOptions, apply_to_dir};
use mist_games::treedelta::create::{self, CreateOptions};
use mist_games::treedelta::format::{self as treedelta, TreeDeltaError};
use mist_games::treedelta::package::Package;
use mist_games::treedelta::stats::Stats;

use crate::failure::Failure;
use crate::output::{write_new, write_replacing};

#[derive(clap::Subcommand)]
pub(crate) enum DeltaCommand {
    /// Make a delta that turns OLD into NEW.
    ///
    /// Two files give a file delta (bsdiff-style, compressed); two folders give a tree delta:
    /// one package in which unchanged files cost nothing, renamed and copied files are found
    /// by content, changed files are patched against the best old file and new files are
    /// compressed. The same input always gives the same bytes.
    #[command(
        after_help = "Examples:\n  mistpipe delta create builds/1.4.0.0 builds/1.4.0.1 -o celeste-1.4.0.1.mtd --stats\n  \
        mistpipe delta create old/Celeste.exe new/Celeste.exe -o Celeste.exe.mfd\n\n\
        Exit codes: 0 success, 1 invalid input, 2 could not run."
    )]
    Create(CreateArgs),

    /// Rebuild NEW into OUT from OLD and a delta, verifying every file.
    ///
    /// The kind of delta (file or tree) is read from PATCH. OLD must be exactly what the
    /// delta was made from (a folder is scanned and must have the delta's source tree
    /// digest); OUT must not exist and is created whole or not at all.
    #[command(
        after_help = "Examples:\n  mistpipe delta apply builds/1.4.0.0 celeste-1.4.0.1.mtd -o rebuilt/1.4.0.1\n  \
        mistpipe delta apply old/Celeste.exe Celeste.exe.mfd -o Celeste.exe.new\n\n\
        Exit codes: 0 success, 1 invalid input (a damaged patch, the wrong OLD), 2 could not run."
    )]
    Apply(ApplyArgs),
}

#[derive(clap::Args)]
pub(crate) struct CreateArgs {
    /// The old file or build folder.
    old: PathBuf,
    /// The new file or build folder.
    new: PathBuf,
    /// Where to write the delta (replaced if it exists).
    #[arg(short, long, value_name = "PATCH")]
    output: PathBuf,
    /// Print what the delta holds: bytes per kind of operation.
    #[arg(long)]
    stats: bool,
}

#[derive(clap::Args)]
pub(crate) struct ApplyArgs {
    /// The old file or build folder the delta was made from.
    old: PathBuf,
    /// The delta.
    patch: PathBuf,
    /// Where to write the rebuilt file or folder; must not exist.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Print what the delta holds: bytes per kind of operation.
    #[arg(long)]
    stats: bool,
}

pub(crate) fn run(command: DeltaCommand) -> anyhow::Result<()> {
    match command {
        DeltaCommand::Create(args) => create(&args),
        DeltaCommand::Apply(args) => apply(&args),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum InputKind {
    File,
    Dir,
}

fn input_kind(path: &Path, what: &str) -> anyhow::Result<InputKind> {
    let metadata =
        fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if metadata.is_dir() {
        Ok(InputKind::Dir)
    } else if metadata.is_file() {
        Ok(InputKind::File)
    } else {
        Err(Failure::invalid(format!(
            "{what} {} is neither a regular file nor a folder",
            path.display()
        )))
    }
}

fn create(args: &CreateArgs) -> anyhow::Result<()> {
    let old_kind = input_kind(&args.old, "OLD")?;
    let new_kind = input_kind(&args.new, "NEW")?;
    let progress = Progress::new("diffing");
    match (old_kind, new_kind) {
        (InputKind::File, InputKind::File) => {
            let old = read(&args.old)?;
            let new = read(&args.new)?;
            progress.message("making a file delta");
            let patch = encode::diff(&old, &new, &DiffOptions::default())
                .context("cannot make the file delta")?;
            progress.done();
            write_replacing(&args.output, |out| {
                out.write_all(&patch)?;
                Ok(())
            })?;
            if args.stats {
                print_file_stats(&patch)?;
            }
        }
        (InputKind::Dir, InputKind::Dir) => {
            let mut stats = None;
            write_replacing(&args.output, |out| {
                let made = create::create(
                    &args.old,
                    &args.new,
                    out,
                    &CreateOptions::default(),
                    &|done, total| progress.bytes(done, total),
                );
                stats = Some(made.map_err(tree_error)?);
                Ok(())
            })?;
            progress.done();
            if args.stats {
                print_tree_stats(&stats.expect("set on success"))?;
            }
        }
        _ => {
            return Err(Failure::invalid(
                "OLD and NEW must both be files or both be folders",
            ));
        }
    }
    Ok(())
}

fn apply(args: &ApplyArgs) -> anyhow::Result<()> {
    if fs::symlink_metadata(&args.output).is_ok() {
        bail!(
            "{} already exists; choose an output path that does not",
            args.output.display()
        );
    }
    let mut magic = [0u8; 8];
    let n_read = File::open(&args.patch)
        .and_then(|file| file.take(8).read(&mut magic))
        .with_context(|| format!("cannot read PATCH {}", args.patch.display()))?;
    let progress = Progress::new("applying");
    if n_read == 8 && &magic == filedelta::MAGIC {
        if input_kind(&args.old, "OLD")? != InputKind::File {
            return Err(Failure::invalid(
                "PATCH is a file delta, so OLD must be a file",
            ));
        }
        let patch = read(&args.patch)?;
        let old = read(&args.old)?;
        let new = decode::apply(&old, &patch).map_err(file_error)?;
        write_new(&args.output, &new, None)?;
        progress.done();
        if args.stats {
            print_file_stats(&patch)?;
        }
    } else if n_read == 8 && &magic == treedelta::MAGIC {
        if input_kind(&args.old, "OLD")? != InputKind::Dir {
            return Err(Failure::invalid(
                "PATCH is a tree delta, so OLD must be a folder",
            ));
        }
        let package = Package::open(&args.patch).map_err(tree_error)?;
        // The package holds the target manifest as a difference from the source manifest,
        // so applying needs OLD's manifest; a client has it recorded, here OLD is scanned.
        progress.message("scanning OLD");
        let source = scan::scan(&args.old).map_err(|error| tree_error(error.into()))?;
        let source_error = |error| match error {
            TreeDeltaError::WrongSource { expected, found } => Failure::invalid(format!(
                "OLD {} is not the version the delta was made from: OLD is {found}, the delta \
                 applies to {expected}",
                args.old.display()
            )),
            other => tree_error(other),
        };
        progress.message("rebuilding the tree");
        apply_to_dir(
            &args.old,
            &source,
            &package,
            &args.output,
            &ApplyOptions::default(),
        )
        .map_err(source_error)?;
        progress.done();
        if args.stats {
            print_tree_stats(&package.stats(&source).map_err(tree_error)?)?;
        }
    } else {
        return Err(Failure::invalid(format!(
            "{} is not a Mist file or tree delta",
            args.patch.display()
        )));
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Damage and mismatches are the input's fault (exit 1); I/O is not (exit 2).
fn file_error(error: DeltaError) -> anyhow::Error {
    match error {
        DeltaError::Io(_) => anyhow::Error::new(error),
        _ => Failure::invalid(error.to_string()),
    }
}

fn tree_error(error: TreeDeltaError) -> anyhow::Error {
    match error {
        TreeDeltaError::Io { .. }
        | TreeDeltaError::NoSpace { .. }
        | TreeDeltaError::OutputExists { .. }
        | TreeDeltaError::Changed { .. }
        | TreeDeltaError::Scan(_) => anyhow::Error::new(error),
        _ => Failure::invalid(error.to_string()),
    }
}

fn print_file_stats(patch: &[u8]) -> anyhow::Result<()> {
    let header = filedelta::read_header(patch).map_err(file_error)?;
    let streams = filedelta::streams(patch).map_err(file_error)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "file delta, method {:?}: {} -> {} bytes, patch {} bytes",
        header.method,
        header.source_size,
        header.target_size,
        patch.len()
    )?;
    writeln!(
        out,
        "{:<8} {:<6} {:>14} {:>14}",
        "stream", "codec", "raw", "stored"
    )?;
    for (stream_idx, stream) in streams.iter().enumerate() {
        writeln!(
            out,
            "{:<8} {:<6} {:>14} {:>14}",
            stream_idx,
            format!("{:?}", stream.codec).to_lowercase(),
            stream.raw_len,
            stream.stored_len
        )?;
    }
    Ok(())
}

fn print_tree_stats(stats: &Stats) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "tree delta: package {} bytes, index {} bytes ({} bytes of JSON uncompressed)",
        stats.package_bytes, stats.index_bytes, stats.index_raw_bytes
    )?;
    writeln!(
        out,
        "{:<16} {:>8} {:>16} {:>14}",
        "operation", "files", "bytes", "stored"
    )?;
    let rows = [
        ("unchanged", stats.unchanged),
        ("copied/renamed", stats.copied),
        ("patched", stats.patched),
        ("added", stats.added),
        ("deleted", stats.deleted),
        ("mode", stats.mode),
    ];
    for (name, kind) in rows {
        writeln!(
            out,
            "{name:<16} {:>8} {:>16} {:>14}",
            kind.files, kind.bytes, kind.stored
        )?;
    }
    Ok(())
}

/// Progress on stderr, only when stderr is a terminal, at most a few times a second.
struct Progress {
    verb: &'static str,
    enabled: bool,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    fn new(verb: &'static str) -> Progress {
        Progress {
            verb,
            enabled: std::io::stderr().is_terminal(),
            last: Mutex::new(None),
        }
    }

    fn bytes(&self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if last.is_some_and(|at| at.elapsed() < Duration::from_millis(200)) && done < total {
            return;
        }
        *last = Some(Instant::now());
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        eprint!(
            "\r{}: {percent:>3}% ({:.1} of {:.1} MB)   ",
            self.verb,
            done as f64 / 1e6,
            total as f64 / 1e6
        );
    }

    fn message(&self, message: &str) {
        if self.enabled {
            eprint!("\r{message}…   ");
        }
    }

    fn done(&self) {
        if self.enabled {
            eprintln!("\r{}: done{:30}", self.verb, "");
        }
    }
}
