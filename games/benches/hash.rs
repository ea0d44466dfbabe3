//! How fast `scan` hashes a build, next to `b3sum` on the same files in the same run.
//!
//! ```text
//! cargo bench -p mist-games --bench hash [-- DIR]
//! ```
//!
//! The directory comes from the argument, else `MIST_BENCH_DIR`, else a deterministic
//! corpus is written to a temp dir: `MIST_BENCH_MIB` MiB in total (default 1024), three
//! quarters in three large files and the rest in `MIST_BENCH_SMALL_FILES` small ones
//! (default 1000, 1 KiB to 1 MiB). Both tools run once to warm the page cache and are then
//! timed `MIST_BENCH_RUNS` times (default 3); the best run counts. `b3sum` is looked up on
//! `PATH` unless `MIST_B3SUM` names the binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mist_games::manifest::{EntryKind, Manifest};
use mist_games::scan::scan;

fn main() {
    // `cargo bench` passes `--bench`; anything else that is not a flag is the directory.
    let dir_arg = std::env::args().skip(1).find(|arg| !arg.starts_with("--"));
    let dir_env = std::env::var_os("MIST_BENCH_DIR").map(PathBuf::from);
    let runs = env_number("MIST_BENCH_RUNS", 3).max(1);
    let _corpus_guard;
    let dir = match dir_arg.map(PathBuf::from).or(dir_env) {
        Some(dir) => dir,
        None => {
            let tmp = tempfile::tempdir().expect("create a temp dir");
            let mib = env_number("MIST_BENCH_MIB", 1024);
            let n_small = env_number("MIST_BENCH_SMALL_FILES", 1000);
            let started = Instant::now();
            write_corpus(tmp.path(), mib << 20, n_small as usize);
            eprintln!(
                "wrote a {mib} MiB corpus to {} in {:.1} s",
                tmp.path().display(),
                started.elapsed().as_secs_f64()
            );
            let dir = tmp.path().to_owned();
            _corpus_guard = tmp;
            dir
        }
    };

    // The warm-up run also reads every file into the page cache.
    let manifest = scan(&dir).expect("scan the bench directory");
    let bytes = manifest.total_size();
    let n_files = manifest.n_files();
    let files = file_paths(&dir, &manifest);
    println!(
        "corpus: {} ({n_files} files, {})",
        dir.display(),
        human(bytes)
    );

    let b3sum =
        std::env::var_os("MIST_B3SUM").map_or_else(|| PathBuf::from("b3sum"), PathBuf::from);
    let b3sum_version = b3sum_version(&b3sum);
    match &b3sum_version {
        // Also b3sum's warm-up run.
        Some(_) => check_b3sum_agrees(&b3sum, &dir, &manifest, &files),
        None => println!(
            "b3sum: skipped, {} not found; install it with `apt-get install -y b3sum` (Debian) \
             or `cargo install b3sum`, or set MIST_B3SUM to its path",
            b3sum.display()
        ),
    }

    // Alternate the two so that a burst of load from elsewhere hits both alike; the best
    // run of each is the one least disturbed.
    let mut mist = Duration::MAX;
    let mut reference = Duration::MAX;
    for _ in 0..runs {
        let started = Instant::now();
        let rescanned = scan(&dir).expect("scan the bench directory");
        mist = mist.min(started.elapsed());
        assert_eq!(rescanned.tree_digest(), manifest.tree_digest());
        if b3sum_version.is_some() {
            reference = reference.min(run_b3sum(&b3sum, &files));
        }
    }
    println!("{}", rate_line("mist scan", bytes, mist));
    if let Some(version) = b3sum_version {
        println!("{}", rate_line(&version, bytes, reference));
        println!(
            "ratio mist/b3sum: {:.2} (throughput; above 1 means mist is faster)",
            reference.as_secs_f64() / mist.as_secs_f64()
        );
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {value:?}")),
        Err(_) => default,
    }
}

/// Writes `total` bytes of pseudo-random data: three quarters in three large files and the
/// rest in `n_small` files whose sizes spread from 1 KiB to 1 MiB. Random bytes because a
/// file system may store zeros sparsely, which would flatter every hasher.
fn write_corpus(root: &Path, total: u64, n_small: usize) {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let large_total = if n_small == 0 { total } else { total / 4 * 3 };
    let mut sizes: Vec<(String, u64)> = (0..3)
        .map(|idx| (format!("data/pack{idx}.pak"), large_total / 3))
        .collect();
    let weights: Vec<u64> = (0..n_small).map(|_| 1 << (next() % 11)).collect();
    let weight_sum: u64 = weights.iter().sum::<u64>().max(1);
    let small_total = total - large_total;
    for (idx, weight) in weights.iter().enumerate() {
        let size = (u128::from(small_total) * u128::from(*weight) / u128::from(weight_sum)) as u64;
        sizes.push((format!("assets/{:02}/file{idx:04}.bin", idx % 16), size));
    }
    let mut block = vec![0u8; 1 << 20];
    for (rel, size) in sizes {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut left = size;
        while left > 0 {
            for word in block.chunks_exact_mut(8) {
                word.copy_from_slice(&next().to_le_bytes());
            }
            let n = left.min(block.len() as u64) as usize;
            file.write_all(&block[..n]).unwrap();
            left -= n as u64;
        }
        file.flush().unwrap();
    }
}

fn file_paths(dir: &Path, manifest: &Manifest) -> Vec<PathBuf> {
    manifest
        .entries
        .iter()
        .filter(|entry| matches!(entry.kind, EntryKind::File { .. }))
        .map(|entry| dir.join(&entry.path))
        .collect()
}

fn b3sum_version(b3sum: &Path) -> Option<String> {
    let output = Command::new(b3sum).arg("--version").output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs `b3sum` over all files the way `xargs` would: as few invocations as the argument
/// length limit allows, so that process start-up does not count against it. Within one
/// invocation b3sum hashes files one after another, each memory-mapped and multithreaded.
fn run_b3sum(b3sum: &Path, files: &[PathBuf]) -> Duration {
    let started = Instant::now();
    for batch in argument_batches(files) {
        let status = Command::new(b3sum)
            .arg("--no-names")
            .args(batch)
            .stdout(Stdio::null())
            .status()
            .expect("run b3sum");
        assert!(status.success(), "b3sum failed: {status}");
    }
    started.elapsed()
}

/// Splits the paths into batches of at most 128 KiB of arguments, well under Linux's
/// limits.
fn argument_batches(files: &[PathBuf]) -> Vec<&[PathBuf]> {
    let mut batches = Vec::new();
    let (mut start, mut len) = (0, 0);
    for (idx, file) in files.iter().enumerate() {
        let arg_len = file.as_os_str().len() + 1;
        if idx > start && len + arg_len > 128 * 1024 {
            batches.push(&files[start..idx]);
            (start, len) = (idx, 0);
        }
        len += arg_len;
    }
    if start < files.len() {
        batches.push(&files[start..]);
    }
    batches
}

/// Also the warm-up run of b3sum: every file's hash must match the manifest's.
fn check_b3sum_agrees(b3sum: &Path, dir: &Path, manifest: &Manifest, files: &[PathBuf]) {
    let mut lines = Vec::new();
    for batch in argument_batches(files) {
        let output = Command::new(b3sum).args(batch).output().expect("run b3sum");
        assert!(output.status.success(), "b3sum failed: {}", output.status);
        let stdout = String::from_utf8(output.stdout).expect("b3sum prints UTF-8 here");
        lines.extend(stdout.lines().map(str::to_owned));
    }
    let expected: Vec<String> = manifest
        .entries
        .iter()
        .filter_map(|entry| match &entry.kind {
            EntryKind::File { blake3, .. } => {
                Some(format!("{blake3}  {}", dir.join(&entry.path).display()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(lines, expected, "b3sum and mist disagree on a file hash");
}

fn rate_line(what: &str, bytes: u64, elapsed: Duration) -> String {
    format!(
        "{what:<14} {bytes} bytes in {:.3} s = {:.2} GB/s",
        elapsed.as_secs_f64(),
        bytes as f64 / elapsed.as_secs_f64() / 1e9
    )
}

fn human(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}
