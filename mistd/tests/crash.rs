//! `mistd run` killed with SIGKILL at random moments during the initial reconcile of a
//! multi-version demo must, after a restart, converge to exactly the state of an
//! uninterrupted run: the same Ready versions, the same artifact set (addresses and files),
//! every artifact file's BLAKE3 equal to its address, nothing left in `<nas>/.mist/tmp/`,
//! and nothing under `incoming/` changed.
//!
//! The moments are seeded (`MIST_CRASH_SEED` replays a failure) and measured by progress:
//! a kill waits until a random number of artifacts is in the store, then a random extra
//! delay up to the uninterrupted run's mean time per artifact, so kills land before the first
//! artifact, between artifacts and inside jobs. Each round starts from a fresh copy of the
//! NAS and stops 2–3 processes before letting a last one converge. About one stop in four is
//! a SIGTERM instead, which must end the process with status 0 within 10 s.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Mistd, SplitMix64, run_args, wait_converged, wait_for};

/// At least this many SIGKILLs in all.
const MIN_KILLS: usize = 20;
/// How long one convergence may take in a debug build.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(300);

/// What must be identical between an interrupted and an uninterrupted run.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// (game, version) → (Ready, status, reason).
    versions: BTreeMap<(String, String), (bool, String, String)>,
    /// Jobs not done (failed, terminal): none after a clean convergence.
    unfinished_jobs: Vec<String>,
    /// The commit in force.
    commit: Option<String>,
    /// Content address → size, every file checked against its address.
    artifacts: BTreeMap<String, u64>,
}

fn outcome(nas: &Path, report: &serde_json::Value) -> Outcome {
    let mut versions = BTreeMap::new();
    for game in report["games"].as_array().into_iter().flatten() {
        for version in game["versions"].as_array().into_iter().flatten() {
            let text = |key: &str| version[key].as_str().unwrap_or("-").to_string();
            versions.insert(
                (
                    game["name"].as_str().unwrap_or("-").to_string(),
                    text("name"),
                ),
                (
                    version["ready"].as_bool() == Some(true),
                    text("status"),
                    text("reason"),
                ),
            );
        }
    }
    let unfinished_jobs = report["queue"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|job| format!("{} {}", job["key"], job["state"]))
        .collect();
    Outcome {
        versions,
        unfinished_jobs,
        commit: report["lastAppliedRevision"].as_str().map(str::to_string),
        artifacts: common::verified_artifacts(nas),
    }
}

fn n_artifacts(nas: &Path) -> usize {
    common::file_facts(&nas.join(".mist").join("artifacts")).len()
}

/// Converges with one uninterrupted process and stops it with SIGTERM.
fn converge(specs: &Path, nas: &Path, data: &Path, n_versions: usize, log: PathBuf) -> Outcome {
    let mut mistd = Mistd::run(&run_args(specs, nas, data), &log);
    // Serving first: the state may be converged already (a SIGTERM lets running jobs end),
    // and a SIGTERM before mistd has installed its handler would kill it outright.
    mistd.wait_healthy(CONVERGE_TIMEOUT);
    let report = wait_converged(data, n_versions, CONVERGE_TIMEOUT);
    mistd.signal(libc::SIGTERM);
    let (status, _) = mistd.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}:\n{}", mistd.log_text());
    outcome(nas, &report)
}

#[test]
fn sigkill_at_random_moments_converges_to_the_uninterrupted_state() {
    let seed = std::env::var("MIST_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x00c0_ffee_u64);
    eprintln!("crash test seed {seed} (set MIST_CRASH_SEED to replay)");
    let mut rng = SplitMix64(seed);

    let tmp = tempfile::tempdir().unwrap();
    let pristine = common::small_demo(
        &tmp.path().join("pristine"),
        &[("comet", 4), ("harbor", 3)],
        1_500_000,
    );

    // The uninterrupted run.
    let reference_nas = tmp.path().join("reference/nas");
    common::copy_tree(&pristine.nas, &reference_nas);
    let started = Instant::now();
    let reference = converge(
        &pristine.specs,
        &reference_nas,
        &tmp.path().join("reference/data"),
        pristine.n_versions,
        tmp.path().join("reference.log"),
    );
    let reference_time = started.elapsed();
    assert!(
        reference.versions.values().all(|(ready, _, _)| *ready)
            && reference.unfinished_jobs.is_empty()
            && !reference.artifacts.is_empty(),
        "{reference:?}"
    );
    let n_reference_artifacts = reference.artifacts.len();
    let time_per_artifact = reference_time / u32::try_from(n_reference_artifacts).unwrap();
    eprintln!(
        "uninterrupted: {} versions, {n_reference_artifacts} artifacts in {:.2} s",
        pristine.n_versions,
        reference_time.as_secs_f64()
    );

    let mut n_kills = 0;
    let mut n_sigterms = 0;
    let mut round = 0;
    while n_kills < MIN_KILLS {
        round += 1;
        let round_dir = tmp.path().join(format!("round-{round}"));
        let nas = round_dir.join("nas");
        let data = round_dir.join("data");
        common::copy_tree(&pristine.nas, &nas);
        let incoming = common::file_facts(&nas.join("incoming"));

        let kills_this_round = 2 + rng.below(2);
        for kill_idx in 0..kills_this_round {
            let log = round_dir.join(format!("killed-{kill_idx}.log"));
            let mut mistd = Mistd::run(&run_args(&pristine.specs, &nas, &data), &log);
            let present = n_artifacts(&nas);
            // Somewhere before the last artifact, so the kill lands during the reconcile.
            let target = present + rng.below(n_reference_artifacts.saturating_sub(present).max(1));
            let extra_delay = time_per_artifact.mul_f64(rng.below(1000) as f64 / 1000.0);
            wait_for(
                "the artifact count at which to kill",
                CONVERGE_TIMEOUT,
                |last| {
                    let n_present = n_artifacts(&nas);
                    *last = format!("{n_present} of {target} artifacts");
                    (n_present >= target).then_some(())
                },
            );
            let kill_at = Instant::now() + extra_delay;
            wait_for(
                "the kill moment",
                extra_delay * 2 + Duration::from_secs(1),
                |_| (Instant::now() >= kill_at).then_some(()),
            );
            let still_running = mistd.child.try_wait().unwrap().is_none();
            if rng.below(4) == 0 {
                // Now and then a graceful stop instead, mid-reconcile: it must end within
                // the 10 s of the deployment contract, with status 0 (once it serves: before
                // its handler is installed, a SIGTERM ends any process outright).
                mistd.wait_healthy(CONVERGE_TIMEOUT);
                mistd.signal(libc::SIGTERM);
                let (status, took) = mistd.wait_exit(Duration::from_secs(10));
                assert!(status.success(), "{status}:\n{}", mistd.log_text());
                n_sigterms += 1;
                eprintln!(
                    "round {round}: SIGTERM at {target} artifacts + {} ms: stopped in {} ms",
                    extra_delay.as_millis(),
                    took.as_millis()
                );
                common::verified_artifacts(&nas);
                continue;
            }
            mistd.kill();
            n_kills += 1;
            eprintln!(
                "round {round}: SIGKILL {} at {target} artifacts + {} ms (running: {still_running})",
                n_kills,
                extra_delay.as_millis()
            );
            // Whatever the moment, an artifact in place is whole: it hashes to its name.
            common::verified_artifacts(&nas);
        }

        let after = converge(
            &pristine.specs,
            &nas,
            &data,
            pristine.n_versions,
            round_dir.join("converge.log"),
        );
        assert_eq!(after, reference, "round {round} (seed {seed})");
        assert_eq!(
            common::tmp_leftovers(&nas),
            Vec::<String>::new(),
            "round {round}: temporary files left behind"
        );
        assert_eq!(
            common::file_facts(&nas.join("incoming")),
            incoming,
            "round {round}: a build under incoming/ changed"
        );
        // Keep the disk use flat.
        std::fs::remove_dir_all(&round_dir).unwrap();
    }
    eprintln!(
        "{n_kills} SIGKILLs and {n_sigterms} SIGTERMs in {round} rounds, every round converged \
         to the reference"
    );
}
