//! A world for end-to-end reconciler tests: a real git spec repository, a real NAS folder
//! with synthetic builds, a real database (`mist_db::testing`: SQLite in a temp dir, or
//! Postgres in a fresh schema), and helpers to snapshot and check all of it.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use mist_db::Db;
use mist_db::testing::{TABLES, TestDb};
use mist_reconciler::desired::SpecsSource;
use mist_reconciler::reconciler::{Reconciler, ReconcilerConfig};
use mist_wire::status::StatusReport;
use sqlx::{AnyConnection, Column, Connection, Row};

use crate::common;

/// A password hash the spec loader accepts.
pub const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bWlzdC1jb3JwdXMtYWxpY2U$xZ9Q0yluP2M98vTWGk7lMx89nYFFIIMvRDlQyeUwOxY";

/// A spec repository, a NAS and a database.
pub struct World {
    pub test_db: TestDb,
    pub root: tempfile::TempDir,
    pub repo: git2::Repository,
    /// The spec tree as the next commit will have it.
    pub files: BTreeMap<String, String>,
    /// Files of the spec tree that are not text (header images).
    pub binary_files: BTreeMap<String, Vec<u8>>,
    /// Where the store's metadata comes from.
    pub metadata: mist_reconciler::steam::MetadataConfig,
    pub verify_interval: Duration,
    pub skip_deltas: usize,
}

/// How a game is declared.
#[derive(Debug, Clone, Default)]
pub struct GameOptions {
    pub suspend: bool,
    pub keep_versions: u32,
    pub prune: bool,
}

impl World {
    pub fn new(test_db: TestDb) -> World {
        let root = tempfile::tempdir().expect("temp dir");
        for dir in ["specs", "nas/incoming", "data"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("mkdir");
        }
        let repo = common::init(&root.path().join("specs"));
        World {
            test_db,
            root,
            repo,
            files: BTreeMap::new(),
            binary_files: BTreeMap::new(),
            metadata: Default::default(),
            verify_interval: Duration::from_secs(6 * 3600),
            skip_deltas: 2,
        }
    }

    pub fn db(&self) -> &Db {
        &self.test_db.db
    }

    pub fn nas(&self) -> PathBuf {
        self.root.path().join("nas")
    }

    pub fn config(&self) -> ReconcilerConfig {
        let mut config = ReconcilerConfig::new(
            SpecsSource::Local(self.root.path().join("specs")),
            self.nas(),
            self.root.path().join("data"),
        );
        config.concurrency = 2;
        config.verify_interval = self.verify_interval;
        config.skip_deltas = self.skip_deltas;
        config.owner = "test-owner".to_string();
        config.metadata = self.metadata.clone();
        config
    }

    pub fn reconciler(&self) -> Reconciler {
        Reconciler::new(self.config(), self.db().clone()).expect("reconciler")
    }

    /// Declares a game (replacing its `game.yaml`).
    pub fn game(&mut self, name: &str, options: &GameOptions) {
        let yaml = format!(
            "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: {name}\nspec:\n  title: {name}\n  \
             retention: {{ keepVersions: {}, prune: {} }}\n  suspend: {}\n",
            options.keep_versions, options.prune, options.suspend
        );
        self.files.insert(format!("games/{name}/game.yaml"), yaml);
    }

    /// Writes build `n` of a game to `incoming/<game>/<version>` and declares the version.
    pub fn version(&mut self, game: &str, version: &str, n: u32) {
        self.version_with(game, version, n, game, None);
    }

    /// Like [`World::version`], with the build's content seeded by `seed` instead of the game
    /// (so two games can hold identical builds) and an optional pinned digest.
    pub fn version_with(
        &mut self,
        game: &str,
        version: &str,
        n: u32,
        seed: &str,
        pin: Option<&str>,
    ) {
        let root = self.build_path(game, version);
        write_build(&root, seed, n);
        self.declare_version(game, version, pin);
    }

    /// Declares a version (its build is wherever `incoming/<game>/<version>` says).
    pub fn declare_version(&mut self, game: &str, version: &str, pin: Option<&str>) {
        let pin_line = pin.map_or(String::new(), |pin| format!("  digest: {pin}\n"));
        self.files.insert(
            format!("games/{game}/versions/{version}.yaml"),
            format!(
                "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"{version}\"\n  game: {game}\n\
                 spec:\n  source: incoming/{game}/{version}\n{pin_line}"
            ),
        );
    }

    pub fn user(&mut self, name: &str) {
        self.files.insert(
            format!("users/{name}.yaml"),
            format!(
                "apiVersion: mist/v1\nkind: User\nmetadata:\n  name: {name}\nspec:\n  \
                 displayName: {name}\n  role: user\n  passwordHash: \"{HASH}\"\n"
            ),
        );
    }

    pub fn build_path(&self, game: &str, version: &str) -> PathBuf {
        self.nas().join("incoming").join(game).join(version)
    }

    /// Commits the spec tree; returns the full commit id.
    pub fn commit(&self, message: &str) -> String {
        let files: Vec<(String, Vec<u8>)> = self
            .files
            .iter()
            .map(|(path, contents)| (path.clone(), contents.clone().into_bytes()))
            .chain(self.binary_files.clone())
            .collect();
        common::commit(&self.repo, &files, message)
    }
}

/// Writes a small synthetic build whose successive versions change like real ones: an
/// executable with small edits, an asset pack with data inserted, a file added, one removed
/// and one renamed.
pub fn write_build(root: &Path, seed: &str, n: u32) {
    if root.exists() {
        std::fs::remove_dir_all(root).expect("remove old build");
    }
    let mut rng = Rng::new(seed);
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("data/levels")).unwrap();
    let mut executable = rng.bytes(6000);
    for edit in 0..n {
        let at = (edit as usize * 977) % executable.len();
        executable[at] ^= 0x5a;
    }
    let exe_path = root.join(format!("bin/{seed}"));
    std::fs::write(&exe_path, &executable).unwrap();
    set_executable(&exe_path);
    let mut pak = rng.bytes(8000);
    for insert in 0..n {
        let at = 1000 + insert as usize * 1500;
        let chunk = Rng::new(&format!("{seed}-{insert}")).bytes(300);
        pak.splice(at..at, chunk);
    }
    std::fs::write(root.join("data/assets.pak"), &pak).unwrap();
    std::fs::write(root.join("readme.txt"), format!("{seed} build {n}\n")).unwrap();
    if n < 2 {
        std::fs::write(root.join("data/old.txt"), b"dropped in build 2\n").unwrap();
    }
    for extra in 1..=n {
        std::fs::write(
            root.join(format!("data/new-{extra}.txt")),
            format!("added in build {extra}\n"),
        )
        .unwrap();
    }
    let level = rng.bytes(2000);
    let level_name = if n >= 2 { "b.lvl" } else { "a.lvl" };
    std::fs::write(root.join("data/levels").join(level_name), level).unwrap();
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(path, permissions).unwrap();
}

/// splitmix64, seeded by FNV-1a of a string.
struct Rng(u64);

impl Rng {
    fn new(seed: &str) -> Rng {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in seed.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(hash)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        // Text-like bytes, so compression and deltas behave as on real data.
        (0..len)
            .map(|_| b"abcdefgh ijkl\n"[(self.next() % 14) as usize])
            .collect()
    }
}

/// Every row of every table, as text, for comparing before and after.
pub async fn db_rows(test_db: &TestDb) -> BTreeMap<String, Vec<String>> {
    let mut connection = AnyConnection::connect(&test_db.url).await.expect("connect");
    let mut out = BTreeMap::new();
    // With the change counter (`change_seq`): it moves with any write at all.
    for table in TABLES {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
            .fetch_all(&mut connection)
            .await
            .expect("select");
        let mut texts: Vec<String> = rows
            .iter()
            .map(|row| {
                (0..row.columns().len())
                    .map(|idx| {
                        let name = row.columns()[idx].name().to_string();
                        let value = row
                            .try_get::<Option<String>, _>(idx)
                            .map(|v| format!("{v:?}"))
                            .or_else(|_| {
                                row.try_get::<Option<i64>, _>(idx).map(|v| format!("{v:?}"))
                            })
                            .or_else(|_| {
                                row.try_get::<Option<bool>, _>(idx)
                                    .map(|v| format!("{v:?}"))
                            })
                            .or_else(|_| {
                                row.try_get::<Option<f64>, _>(idx).map(|v| format!("{v:?}"))
                            })
                            .unwrap_or_else(|e| format!("<{e}>"));
                        format!("{name}={value}")
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        texts.sort();
        out.insert(table.to_string(), texts);
    }
    connection.close().await.expect("close");
    out
}

/// Every path below `root` with its size and modification time.
pub fn fs_snapshot(root: &Path) -> BTreeMap<String, (u64, i128)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("entry");
            let metadata = entry.metadata().expect("metadata");
            let modified = metadata
                .modified()
                .expect("mtime")
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i128);
            let relative = entry
                .path()
                .strip_prefix(root)
                .expect("below root")
                .to_string_lossy()
                .into_owned();
            out.insert(relative, (metadata.len(), modified));
            if metadata.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out
}

/// The status, as `game/version status reason` lines.
pub fn summary(report: &StatusReport) -> Vec<String> {
    let mut out = Vec::new();
    for game in &report.games {
        for version in &game.versions {
            out.push(format!(
                "{}/{} {} {}",
                game.name, version.name, version.status, version.reason
            ));
        }
    }
    out
}

pub async fn status(world: &World) -> StatusReport {
    mist_reconciler::status(world.db()).await.expect("status")
}

/// Runs `reconciler` (its triggers, passes and workers) in a task until the sender is used.
pub fn spawn_run(
    reconciler: &std::sync::Arc<Reconciler>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<mist_reconciler::error::Result<()>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let reconciler = reconciler.clone();
    let running = tokio::spawn(async move {
        reconciler
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    (stop, running)
}

/// Polls `check` until it returns `Some`, failing after `deadline`.
pub async fn poll<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "test timeout expired waiting for {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
