//! A converged no-op pass over 1,000 games × 10 versions: how long it takes (target ≤ 200 ms)
//! and proof that it writes nothing (database and NAS).
//!
//! The state is populated directly — spec repository, version rows, tiny artifact files with
//! real content addresses, delta rows — bypassing real builds; one pass then writes the
//! conditions, and the passes after it are measured. They reuse the database snapshot (the
//! change counter has not moved); the same pass after a database write, which reads the
//! snapshot again, is measured too.
//!
//! `cargo bench -p mist-reconciler --bench noop` runs the full size; without `--bench` (as a
//! smoke test) it runs 20 games. SQLite always; Postgres too when `MIST_TEST_POSTGRES` is set.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use mist_db::Db;
use mist_db::state::{Artifact, ArtifactKind, Delta, VersionObserved, VersionSpec, VersionState};
use mist_db::testing::{self, TestDb, WriteProbe};
use mist_reconciler::desired::SpecsSource;
use mist_reconciler::reconciler::{Reconciler, ReconcilerConfig};

const N_VERSIONS: usize = 10;
/// Measured passes; `MIST_BENCH_PASSES` overrides (to profile the passes, say).
fn n_passes() -> usize {
    std::env::var("MIST_BENCH_PASSES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let n_games = if full { 1000 } else { 20 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let test_db = TestDb::sqlite().await;
        run("SQLite", &test_db, n_games).await;
        test_db.db.close().await;

        match testing::postgres_base_url() {
            Some(base_url) => {
                let test_db = TestDb::postgres(&base_url).await;
                run("Postgres", &test_db, n_games).await;
                test_db.db.close().await;
            }
            None => println!("skipping Postgres: MIST_TEST_POSTGRES unset"),
        }
    });
}

async fn run(backend: &str, test_db: &TestDb, n_games: usize) {
    let db = &test_db.db;
    let root = tempfile::tempdir().expect("temp dir");
    let specs = root.path().join("specs");
    let nas = root.path().join("nas");
    let data = root.path().join("data");
    std::fs::create_dir_all(&nas).unwrap();
    std::fs::create_dir_all(&data).unwrap();

    let started = Instant::now();
    let repo = common::init(&specs);
    let mut files = Vec::new();
    for game_idx in 0..n_games {
        let game = format!("game-{game_idx:04}");
        files.push(common::game(&game));
        for version_idx in 0..N_VERSIONS {
            files.push(common::version(&game, &format!("1.{version_idx}")));
        }
    }
    common::commit(&repo, &files, "many games");
    populate(db, &nas, n_games).await;
    let populated = started.elapsed();

    let mut config = ReconcilerConfig::new(SpecsSource::Local(specs), &nas, &data);
    config.owner = "bench".to_string();
    let reconciler = Reconciler::new(config, db.clone()).expect("reconciler");
    let started = Instant::now();
    let first = reconciler.reconcile_once().await.expect("first pass");
    let first_pass = started.elapsed();
    assert!(
        first.actions.is_empty(),
        "populated state is converged: {:?}",
        &first.actions[..first.actions.len().min(5)]
    );
    assert_eq!(first.n_ready, n_games * N_VERSIONS, "{first}");
    // The first pass wrote the conditions; the next one reads them back and finds nothing
    // to do.
    let second = reconciler.reconcile_once().await.expect("second pass");
    assert!(second.is_converged() && !second.snapshot_reused, "{second}");

    let nas_before = fs_snapshot(&nas);
    let mut probe = WriteProbe::new(test_db).await;
    let marker_before = probe.marker().await;
    let mut times = Vec::new();
    let mut steps: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    let mut step_order = Vec::new();
    for _ in 0..n_passes() {
        let started = Instant::now();
        let report = reconciler.reconcile_once().await.expect("pass");
        times.push(started.elapsed());
        for (name, duration) in &report.timings {
            if !steps.contains_key(name) {
                step_order.push(*name);
            }
            steps.entry(name).or_default().push(*duration);
        }
        assert!(report.is_converged(), "{report}");
        assert_eq!(report.n_writes, 0);
        assert!(
            report.snapshot_reused,
            "nothing was committed since the last pass"
        );
    }
    assert_eq!(
        probe.marker().await,
        marker_before,
        "a converged pass wrote to the database"
    );
    assert_eq!(
        fs_snapshot(&nas),
        nas_before,
        "a converged pass wrote to the NAS"
    );
    // The same pass when something was committed since the last one (as while jobs run): the
    // change counter moves alone, so the pass reads the whole snapshot again.
    let mut reload_times = Vec::new();
    for _ in 0..n_passes().min(10) {
        sqlx::query("UPDATE change_seq SET seq = seq + 1")
            .execute(db.pool())
            .await
            .unwrap();
        let started = Instant::now();
        let report = reconciler.reconcile_once().await.expect("pass");
        reload_times.push(started.elapsed());
        assert!(report.is_converged() && !report.snapshot_reused, "{report}");
    }
    reload_times.sort();
    // The parts that are not the reconciler's own code, measured alone.
    let mut snapshot_times = Vec::new();
    let mut walk_times = Vec::new();
    let store = mist_reconciler::store::ArtifactStore::open(&nas).unwrap();
    for _ in 0..n_passes().min(10) {
        let started = Instant::now();
        db.load_snapshot().await.unwrap();
        snapshot_times.push(started.elapsed());
        let started = Instant::now();
        mist_reconciler::observe::artifacts_on_disk(&store);
        walk_times.push(started.elapsed());
    }
    snapshot_times.sort();
    walk_times.sort();
    times.sort();
    let n_versions = n_games * N_VERSIONS;
    println!(
        "{backend}: converged no-op pass over {n_games} games × {N_VERSIONS} versions ({n_versions} versions, {} paths on the NAS)",
        nas_before.len()
    );
    println!(
        "  populate (specs repository, rows, artifact files): {}",
        ms(populated)
    );
    println!(
        "  first pass (loads the specs, writes conditions):   {}",
        ms(first_pass)
    );
    println!(
        "  no-op pass ({} runs): min {}  median {}  max {}  (target ≤ 200 ms)",
        times.len(),
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
    let steps_line: Vec<String> = step_order
        .iter()
        .map(|name| {
            let mut durations = steps[name].clone();
            durations.sort();
            format!("{name} {}", ms(durations[durations.len() / 2]))
        })
        .collect();
    println!("  median by step: {}", steps_line.join(", "));
    println!(
        "  the same pass after a database write, snapshot read again ({} runs): min {}  median {}",
        reload_times.len(),
        ms(reload_times[0]),
        ms(reload_times[reload_times.len() / 2])
    );
    println!(
        "  alone: Db::load_snapshot median {}, walk of the artifact store median {}",
        ms(snapshot_times[snapshot_times.len() / 2]),
        ms(walk_times[walk_times.len() / 2])
    );
    println!("  writes during the no-op passes: 0 (database marker and NAS snapshot unchanged)");
}

/// Writes the rows and tiny artifact files of a converged state: every version ingested with
/// a manifest and a pack, direct deltas and two skip deltas per game.
async fn populate(db: &Db, nas: &Path, n_games: usize) {
    let store = nas.join(".mist/artifacts");
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut artifacts = Vec::new();
    let mut put = |kind: ArtifactKind, bytes: Vec<u8>| -> String {
        let hex = blake3::hash(&bytes).to_hex().to_string();
        let dir = store.join(&hex[..2]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&hex), &bytes).unwrap();
        let address = format!("blake3:{hex}");
        artifacts.push(Artifact {
            address: address.clone(),
            kind,
            size: bytes.len() as u64,
            path: format!("{}/{hex}", &hex[..2]),
            created_at: now,
            verified_at: (kind == ArtifactKind::Manifest).then_some(now),
        });
        address
    };
    let mut games = Vec::new();
    let mut specs = Vec::new();
    let mut observed = Vec::new();
    let mut deltas = Vec::new();
    for game_idx in 0..n_games {
        let game = format!("game-{game_idx:04}");
        games.push(mist_db::state::Game {
            name: game.clone(),
            spec_json: "{}".to_string(),
            suspended: false,
            private: false,
            grants: Vec::new(),
        });
        let digest = |version_idx: usize| {
            format!(
                "blake3:{}",
                blake3::hash(format!("{game}/{version_idx}").as_bytes()).to_hex()
            )
        };
        for version_idx in 0..N_VERSIONS {
            let name = format!("1.{version_idx}");
            specs.push(VersionSpec {
                game: game.clone(),
                name: name.clone(),
                order_index: version_idx as i64,
                source: format!("incoming/{game}/{name}"),
                pinned_digest: None,
                spec_json: "{}".to_string(),
            });
            let manifest = put(
                ArtifactKind::Manifest,
                format!("manifest {game} {name}").into_bytes(),
            );
            let pack = put(
                ArtifactKind::Pack,
                format!("pack {game} {name}").into_bytes(),
            );
            observed.push((
                game.clone(),
                name.clone(),
                VersionObserved {
                    tree_digest: Some(digest(version_idx)),
                    manifest_address: Some(manifest),
                    pack_address: Some(pack),
                    state: VersionState::Ready,
                },
            ));
        }
        let latest = N_VERSIONS - 1;
        let mut edges: Vec<(usize, usize)> = (1..N_VERSIONS).map(|to| (to - 1, to)).collect();
        edges.extend([(latest - 2, latest), (latest - 3, latest)]);
        for (from, to) in edges {
            let address = put(
                ArtifactKind::Delta,
                format!("delta {game} {from} {to}").into_bytes(),
            );
            deltas.push(Delta {
                game: game.clone(),
                from_version: format!("1.{from}"),
                to_version: format!("1.{to}"),
                address,
            });
        }
    }
    db.upsert_games(&games, now).await.unwrap();
    db.upsert_version_specs(&specs, now).await.unwrap();
    for artifact in &artifacts {
        db.record_artifact(artifact).await.unwrap();
    }
    for (game, name, observed) in &observed {
        db.set_version_observed(game, name, observed, now)
            .await
            .unwrap();
    }
    for delta in &deltas {
        db.upsert_delta(delta, now).await.unwrap();
    }
}

fn fs_snapshot(root: &Path) -> BTreeMap<String, (u64, i128)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            let modified = metadata
                .modified()
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i128);
            out.insert(
                entry.path().to_string_lossy().into_owned(),
                (metadata.len(), modified),
            );
            if metadata.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}
