//! Delta benchmark: Mist against the established tools on the same pair, in the same run.
//!
//! ```sh
//! cargo bench -p mist-games --bench delta -- OLD NEW
//! # or with the shared real pair:
//! cargo bench -p mist-games --bench delta -- $(../shared/bench/pairs.sh ruff-bin | cut -d' ' -f3,4)
//! ```
//!
//! OLD and NEW are two files, or two directories. For each tool present on the machine
//! (bsdiff, xdelta3 -9, `zstd -19 --long=31 --patch-from`, rdiff + zstd -19) and for Mist,
//! it prints patch bytes, diff seconds, diff peak memory, apply seconds, apply peak memory
//! and whether the round trip reproduced NEW exactly, then Mist's ratios to each tool. Each
//! diff and apply runs as its own process so peak memory (`ru_maxrss` from `wait4`) is that
//! command's alone. Directory pairs: the peers diff deterministic tars of the trees; Mist
//! makes a tree delta (applied with the old tree's manifest, scanned beforehand as a client
//! has it recorded) and prints its index size. Install the peers with `apt-get install bsdiff xdelta3 rdiff zstd`.
//!
//! The machine is shared and noisy: compare ratios from one run, not absolute seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use mist_delta::{decode, encode};
use mist_games::treedelta::{apply, create, package};
use mist_games::{manifest, scan};

const CHILD_ENV: &str = "MIST_DELTA_BENCH_CHILD";

fn main() -> ExitCode {
    // Child mode: this binary re-executed to run Mist's diff or apply as its own process.
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        let args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .collect();
        return match child(&mode, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mist {mode}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (old, new) = match args.as_slice() {
        [old, new] => (PathBuf::from(old), PathBuf::from(new)),
        _ => {
            eprintln!(
                "usage: cargo bench -p mist-games --bench delta -- OLD NEW   (two files or two directories)"
            );
            // `cargo bench` with no arguments runs every bench target; stay quiet then.
            return ExitCode::SUCCESS;
        }
    };
    match run(&old, &new) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn child(mode: &str, args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    match (mode, args) {
        ("diff", [old, new, patch]) if Path::new(old).is_dir() => {
            let mut out = std::io::BufWriter::new(std::fs::File::create(patch)?);
            create::create(
                Path::new(old),
                Path::new(new),
                &mut out,
                &create::CreateOptions::default(),
                &|_, _| {},
            )?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok(())
        }
        ("apply", [old, patch, out, source]) if Path::new(old).is_dir() => {
            // The source manifest a client has recorded; the parent scanned it beforehand.
            let source: manifest::Manifest = serde_json::from_slice(&std::fs::read(source)?)?;
            let package = package::Package::open(Path::new(patch))?;
            apply::apply_to_dir(
                Path::new(old),
                &source,
                &package,
                Path::new(out),
                &apply::ApplyOptions::default(),
            )?;
            Ok(())
        }
        ("diff", [old, new, patch]) => {
            let old = std::fs::read(old)?;
            let new = std::fs::read(new)?;
            let delta = encode::diff(&old, &new, &encode::DiffOptions::default())?;
            std::fs::write(patch, delta)?;
            Ok(())
        }
        ("apply", [old, patch, out]) => {
            let old = std::fs::read(old)?;
            let patch = std::fs::read(patch)?;
            std::fs::write(out, decode::apply(&old, &patch)?)?;
            Ok(())
        }
        _ => Err(format!("bad child invocation {mode} {args:?}").into()),
    }
}

/// What one command cost.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    seconds: f64,
    peak_mb: f64,
}

/// Runs a shell command line as a child process and measures wall time and peak RSS.
fn measure(shell: &str) -> Result<Cost, String> {
    let start = Instant::now();
    let mut command = Command::new("sh");
    command.arg("-c").arg(shell);
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run `{shell}`: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain old data; `wait4` fills it for the child we spawned and
    // reaps it (so `child` is not waited on again).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    if waited != pid {
        return Err(format!("wait4 failed for `{shell}`"));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!("`{shell}` failed (status {status})"));
    }
    // `sh -c` with a single command execs it, so this is the tool's own peak (kB on Linux);
    // for pipelines it is the largest process in the pipeline.
    Ok(Cost {
        seconds,
        peak_mb: usage.ru_maxrss as f64 / 1024.0,
    })
}

struct Row {
    tool: String,
    bytes: u64,
    diff: Cost,
    apply: Cost,
    ok: bool,
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null"))
        .status()
        .is_ok_and(|s| s.success())
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

fn files_equal(a: &Path, b: &Path) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn trees_equal(a: &Path, b: &Path) -> bool {
    match (scan::scan(a), scan::scan(b)) {
        (Ok(x), Ok(y)) => x.tree_digest() == y.tree_digest(),
        _ => false,
    }
}

fn run(old: &Path, new: &Path) -> Result<(), String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let w = work.path();
    let (old_file, new_file) = if old.is_dir() && new.is_dir() {
        let tar = |src: &Path, dst: &Path| {
            measure(&format!(
                "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C {} -cf {} .",
                quote(src),
                quote(dst)
            ))
        };
        tar(old, &w.join("old.tar"))?;
        tar(new, &w.join("new.tar"))?;
        (w.join("old.tar"), w.join("new.tar"))
    } else if old.is_file() && new.is_file() {
        (old.to_path_buf(), new.to_path_buf())
    } else {
        return Err("OLD and NEW must both be files or both be directories".into());
    };
    let new_size = std::fs::metadata(&new_file)
        .map_err(|e| e.to_string())?
        .len();
    println!(
        "pair: {} -> {} ({} -> {} bytes)",
        old.display(),
        new.display(),
        std::fs::metadata(&old_file).map_or(0, |m| m.len()),
        new_size
    );

    let (o, n) = (quote(&old_file), quote(&new_file));
    // Mist diffs the trees themselves (a tree delta); the peers diff the tars.
    let dirs = old.is_dir();
    let (mist_old, mist_new) = if dirs {
        (quote(old), quote(new))
    } else {
        (o.clone(), n.clone())
    };
    // A tree delta is applied with the source manifest, which a client has recorded: scan
    // it here, outside the measured apply.
    let source_json = w.join("source.json");
    let mist_apply_extra = if dirs {
        let source = scan::scan(old).map_err(|e| e.to_string())?;
        std::fs::write(
            &source_json,
            serde_json::to_vec(&source).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        format!(" {}", quote(&source_json))
    } else {
        String::new()
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let exe = quote(&exe);
    let mut rows = Vec::new();
    let mut tool = |name: &str, diff: String, apply: String, patch: &Path, out: &Path| {
        eprintln!("running {name} …");
        let result = (|| -> Result<Row, String> {
            let diff_cost = measure(&diff)?;
            let apply_cost = measure(&apply)?;
            let bytes = std::fs::metadata(patch).map_err(|e| e.to_string())?.len();
            let ok = if name == "mist" && dirs {
                trees_equal(out, new)
            } else {
                files_equal(out, &new_file)
            };
            Ok(Row {
                tool: name.to_string(),
                bytes,
                diff: diff_cost,
                apply: apply_cost,
                ok,
            })
        })();
        match result {
            Ok(row) => rows.push(row),
            Err(e) => eprintln!("  {name} failed: {e}"),
        }
    };
    let p = |name: &str| w.join(name);
    tool(
        "mist",
        format!(
            "{CHILD_ENV}=diff {exe} {mist_old} {mist_new} {}",
            quote(&p("mist.patch"))
        ),
        format!(
            "{CHILD_ENV}=apply {exe} {mist_old} {} {}{mist_apply_extra}",
            quote(&p("mist.patch")),
            quote(&p("mist.out"))
        ),
        &p("mist.patch"),
        &p("mist.out"),
    );
    if dirs && let Ok(package) = package::Package::open(&p("mist.patch")) {
        let header = package.header();
        println!(
            "mist tree delta: index {} bytes ({} bytes of JSON), file deltas {} bytes",
            header.index_len, header.index_raw_len, header.body_len
        );
    }
    if have("bsdiff") && have("bspatch") {
        tool(
            "bsdiff",
            format!("bsdiff {o} {n} {}", quote(&p("bsdiff.patch"))),
            format!(
                "bspatch {o} {} {}",
                quote(&p("bsdiff.out")),
                quote(&p("bsdiff.patch"))
            ),
            &p("bsdiff.patch"),
            &p("bsdiff.out"),
        );
    }
    if have("xdelta3") {
        tool(
            "xdelta3 -9",
            format!(
                "xdelta3 -e -9 -S lzma -f -s {o} {n} {}",
                quote(&p("xdelta.patch"))
            ),
            format!(
                "xdelta3 -d -f -s {o} {} {}",
                quote(&p("xdelta.patch")),
                quote(&p("xdelta.out"))
            ),
            &p("xdelta.patch"),
            &p("xdelta.out"),
        );
    }
    if have("zstd") {
        tool(
            "zstd -19 --patch-from",
            format!(
                "zstd -q -f -19 --long=31 -T2 --patch-from={o} {n} -o {}",
                quote(&p("zstd.patch"))
            ),
            format!(
                "zstd -q -f -d --long=31 --patch-from={o} {} -o {}",
                quote(&p("zstd.patch")),
                quote(&p("zstd.out"))
            ),
            &p("zstd.patch"),
            &p("zstd.out"),
        );
    }
    if have("rdiff") && have("zstd") {
        let sig = quote(&p("rdiff.sig"));
        tool(
            "rdiff + zstd -19",
            format!(
                "rdiff signature {o} {sig} && rdiff delta {sig} {n} {d} && zstd -q -f -19 {d} -o {}",
                quote(&p("rdiff.patch")),
                d = quote(&p("rdiff.delta"))
            ),
            format!(
                "zstd -q -f -d {} -o {d} && rdiff patch {o} {d} {}",
                quote(&p("rdiff.patch")),
                quote(&p("rdiff.out")),
                d = quote(&p("rdiff.delta2"))
            ),
            &p("rdiff.patch"),
            &p("rdiff.out"),
        );
    }
    print_table(&rows, new_size);
    if !dirs {
        // The engine alone: the old file and the patch in memory, `decode::apply` timed,
        // best of five (it verifies both hashes, as always).
        let old = std::fs::read(&old_file).expect("read old");
        let patch = std::fs::read(p("mist.patch")).expect("read patch");
        let best = (0..5)
            .map(|_| {
                let start = std::time::Instant::now();
                let out = decode::apply(&old, &patch).expect("apply");
                let seconds = start.elapsed().as_secs_f64();
                assert_eq!(out.len() as u64, new_size);
                seconds
            })
            .fold(f64::INFINITY, f64::min);
        println!(
            "mist apply in process: {:.0} MB/s of output ({:.3} s, best of 5)",
            new_size as f64 / best / 1e6,
            best
        );
    }
    Ok(())
}

fn print_table(rows: &[Row], new_size: u64) {
    println!(
        "| tool | patch bytes | of new | diff s | diff peak MB | apply s | apply peak MB | round trip |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.4} | {:.2} | {:.0} | {:.3} | {:.0} | {} |",
            r.tool,
            r.bytes,
            r.bytes as f64 / new_size.max(1) as f64,
            r.diff.seconds,
            r.diff.peak_mb,
            r.apply.seconds,
            r.apply.peak_mb,
            if r.ok { "ok" } else { "FAILED" }
        );
    }
    let Some(mist) = rows.iter().find(|r| r.tool == "mist") else {
        return;
    };
    println!();
    println!("| mist vs | patch size | diff time | diff peak memory | apply time |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows.iter().filter(|r| r.tool != "mist") {
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            r.tool,
            mist.bytes as f64 / r.bytes.max(1) as f64,
            mist.diff.seconds / r.diff.seconds.max(1e-9),
            mist.diff.peak_mb / r.diff.peak_mb.max(1e-9),
            mist.apply.seconds / r.apply.seconds.max(1e-9),
        );
    }
    let best_peer = rows
        .iter()
        .filter(|r| ["bsdiff", "xdelta3 -9", "zstd -19 --patch-from"].contains(&r.tool.as_str()))
        .map(|r| r.bytes)
        .min();
    if let Some(best) = best_peer {
        println!(
            "\nmist / smallest of bsdiff, xdelta3, zstd --patch-from: {:.3}",
            mist.bytes as f64 / best as f64
        );
    }
    println!(
        "mist apply throughput: {:.0} MB/s of output (whole process: reading, writing, checks)",
        new_size as f64 / mist.apply.seconds.max(1e-9) / 1e6
    );
}
