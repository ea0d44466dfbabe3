//! The one place that starts an API for a test: a real database (SQLite, and Postgres when
//! `MIST_TEST_POSTGRES` is set) populated through `mist-db`'s write methods, a real artifact
//! store in a temp NAS, and the router served over HTTP on 127.0.0.1 with a random port, read
//! through a read-only database handle like the `api` role's.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mist_api::config::{ApiConfig, Limits, StatusSource};
use mist_api::secret::JwtSecret;
use mist_db::Db;
use mist_db::state::{
    Artifact, ArtifactKind, Delta, Game, Role, User, VersionObserved, VersionSpec, VersionState,
};
use mist_db::testing::TestDb;
use serde_json::{Value, json};

/// A fixed "now" for database writes; the API never reads it.
pub const T0: i64 = 1_700_000_000_000;

/// The secret every test server signs with, so tests can forge tokens with it.
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

/// The password of every test user.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running API and what it reads.
pub struct TestApi {
    /// The read-write handle the test populates through.
    pub t: TestDb,
    /// The NAS root; the artifact store is `<nas>/.mist/artifacts`.
    pub nas: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// An HTTP client.
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Runs `test` against a fresh API on SQLite, then on Postgres when `MIST_TEST_POSTGRES` is
/// set.
pub async fn each_backend<F, Fut>(test_name: &str, configure: fn(&mut ApiConfig), test: F)
where
    F: Fn(TestApi) -> Fut,
    Fut: Future<Output = ()>,
{
    println!("{test_name}: SQLite");
    test(TestApi::start(TestDb::sqlite().await, configure).await).await;
    match mist_db::testing::postgres_base_url() {
        Some(base_url) => {
            println!("{test_name}: Postgres");
            test(TestApi::start(TestDb::postgres(&base_url).await, configure).await).await;
        }
        None => mist_db::testing::note_postgres_skipped(),
    }
}

/// No change to the default test configuration.
pub fn defaults(_: &mut ApiConfig) {}

impl TestApi {
    /// Serves the API over a read-only handle on `t`'s database, counting failed logins
    /// through the test's read-write handle.
    pub async fn start(t: TestDb, configure: fn(&mut ApiConfig)) -> TestApi {
        let nas = tempfile::tempdir().expect("temp NAS");
        std::fs::create_dir_all(artifacts_dir(nas.path())).expect("artifact store");
        let (base, server) = serve(&t.url, Some(t.db.clone()), nas.path(), configure).await;
        // In a workspace build reqwest has `rustls-no-provider` on (features are unified
        // across members), and building a client then needs a rustls provider installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        TestApi {
            t,
            nas,
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            server,
        }
    }

    /// Another API instance on the same database and NAS, as another replica would run:
    /// its own read-only handle, and its own read-write one for the failed logins. Returns its
    /// base URL and the server, which stops when dropped.
    pub async fn replica(&self, configure: fn(&mut ApiConfig)) -> (String, ServerGuard) {
        let login_store = Db::connect_unmigrated(&self.t.url)
            .await
            .expect("open the login store");
        let (base, server) =
            serve(&self.t.url, Some(login_store), self.nas.path(), configure).await;
        (base, ServerGuard(server))
    }

    pub fn db(&self) -> &Db {
        &self.t.db
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A `GET` with an optional bearer token and extra headers.
    pub async fn get(
        &self,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("send")
    }

    /// A `GET` answered with JSON: the status and the parsed body.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let response = self.get(path, token, &[]).await;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A `POST` of a JSON body.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Logs in and returns the token.
    pub async fn login(&self, user: &str) -> String {
        let (status, body) = self
            .post_json(
                "/v1/auth/login",
                None,
                &json!({"user": user, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "login of {user}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Writes `bytes` into the artifact store and records them; returns the address.
    pub async fn put_artifact(&self, kind: ArtifactKind, bytes: &[u8]) -> String {
        let hex = blake3::hash(bytes).to_hex().to_string();
        let relative = format!("{}/{hex}", &hex[..2]);
        let path = artifacts_dir(self.nas.path()).join(&relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write artifact");
        let address = format!("blake3:{hex}");
        self.db()
            .record_artifact(&Artifact {
                address: address.clone(),
                kind,
                size: bytes.len() as u64,
                path: relative,
                created_at: T0,
                verified_at: None,
            })
            .await
            .expect("record artifact");
        address
    }

    /// Records users with [`PASSWORD`].
    pub async fn add_users(&self, users: &[(&str, Role, bool)]) {
        let hash = password_hash();
        let users: Vec<User> = users
            .iter()
            .map(|(name, role, disabled)| User {
                name: (*name).to_owned(),
                display_name: Some(name.to_uppercase()),
                role: *role,
                password_hash: hash.clone(),
                disabled: *disabled,
            })
            .collect();
        self.db().upsert_users(&users, T0).await.expect("users");
    }

    /// Records a game.
    pub async fn add_game(&self, name: &str, private: bool, grants: &[&str]) {
        let fields = json!({
            "description": format!("About {name}."),
            "launch": {"executable": "bin/run", "args": ["--fast"]},
        });
        self.put_game(name, private, grants, fields).await;
    }

    /// Records a game (again) whose spec is its title, `private`, `grants` and `fields`.
    pub async fn put_game(
        &self,
        name: &str,
        private: bool,
        grants: &[&str],
        fields: serde_json::Value,
    ) {
        let mut spec =
            json!({"title": format!("The {name}"), "private": private, "grants": grants});
        spec.as_object_mut()
            .expect("a spec is an object")
            .extend(fields.as_object().expect("fields are an object").clone());
        self.db()
            .upsert_game(
                &Game {
                    name: name.to_owned(),
                    spec_json: spec.to_string(),
                    suspended: false,
                    private,
                    grants: grants.iter().map(|s| (*s).to_owned()).collect(),
                },
                T0,
            )
            .await
            .expect("game");
    }

    /// Records a version with its observed state and artifacts.
    pub async fn add_version(
        &self,
        game: &str,
        name: &str,
        order_index: i64,
        state: VersionState,
        manifest: Option<&str>,
        pack: Option<&str>,
    ) {
        self.db()
            .upsert_version_specs(
                &[VersionSpec {
                    game: game.to_owned(),
                    name: name.to_owned(),
                    order_index,
                    source: format!("incoming/{game}/{name}"),
                    pinned_digest: None,
                    spec_json: json!({"source": format!("incoming/{game}/{name}"),
                                      "notes": format!("Notes of {name}.")})
                    .to_string(),
                }],
                T0,
            )
            .await
            .expect("version");
        self.set_state(game, name, state, manifest, pack).await;
    }

    /// Changes a version's observed part.
    pub async fn set_state(
        &self,
        game: &str,
        name: &str,
        state: VersionState,
        manifest: Option<&str>,
        pack: Option<&str>,
    ) {
        self.db()
            .set_version_observed(
                game,
                name,
                &VersionObserved {
                    tree_digest: manifest.map(|_| format!("blake3:{}", "0".repeat(64))),
                    manifest_address: manifest.map(str::to_owned),
                    pack_address: pack.map(str::to_owned),
                    state,
                },
                T0,
            )
            .await
            .expect("observed")
            .expect("version exists");
    }

    /// Records a delta edge.
    pub async fn add_delta(&self, game: &str, from: &str, to: &str, address: &str) {
        self.db()
            .upsert_delta(
                &Delta {
                    game: game.to_owned(),
                    from_version: from.to_owned(),
                    to_version: to.to_owned(),
                    address: address.to_owned(),
                },
                T0,
            )
            .await
            .expect("delta");
    }
}

/// Queues a job `key` of `kind` for `open` 1.3 and claims it as worker `w`, so that a test can
/// write its log; returns the queue.
pub async fn running_job(api: &TestApi, key: &str, kind: &str) -> mist_db::queue::Queue {
    let queue = api.db().queue(mist_db::queue::QueueConfig {
        max_running: 4,
        ..mist_db::queue::QueueConfig::default()
    });
    let new_job = mist_db::queue::NewJob {
        key: key.to_owned(),
        kind: kind.to_owned(),
        game: Some("open".to_owned()),
        version: Some("1.3".to_owned()),
        payload_json: "{}".to_owned(),
        priority: 0,
    };
    queue.enqueue(&new_job, T0).await.unwrap();
    let claimed = queue
        .claim("w", T0, std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a job to claim");
    assert_eq!(claimed.key, key, "the job claimed");
    queue
}

/// Aborts a server task when dropped.
pub struct ServerGuard(tokio::task::JoinHandle<()>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves the API over a read-only handle on `url` on 127.0.0.1 with a random port; returns
/// the base URL and the server task.
async fn serve(
    url: &str,
    login_store: Option<Db>,
    nas: &Path,
    configure: fn(&mut ApiConfig),
) -> (String, tokio::task::JoinHandle<()>) {
    let read_only = Db::connect_read_only(url)
        .await
        .expect("open the database read-only");
    let mut config = ApiConfig::new(JwtSecret::from_bytes(SECRET).expect("secret"));
    config.nas_root = Some(nas.to_path_buf());
    config.artifacts_dir = Some(artifacts_dir(nas));
    config.status = Some(test_status_source());
    config.login_store = login_store;
    config.limits = Limits {
        events_poll_interval: Duration::from_millis(20),
        ..Limits::default()
    };
    configure(&mut config);
    let app = mist_api::router(read_only, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    (format!("http://{address}"), server)
}

/// `<nas>/.mist/artifacts`, as the reconciler's store lays it out.
pub fn artifacts_dir(nas: &Path) -> PathBuf {
    nas.join(".mist").join("artifacts")
}

/// One argon2id hash of [`PASSWORD`], made once per test binary (it is slow on purpose).
pub fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| mist_specs::scaffold::hash_password(PASSWORD).expect("hash"))
        .clone()
}

/// A status source for tests: the shape of `mistd status --json`, built from the versions
/// table, with a marker a friend must never see.
pub fn test_status_source() -> StatusSource {
    use mist_wire::status::{
        GameStatus, JobKind, JobProgress, JobState, Phase, QueueEntry, StatusReport, VersionStatus,
    };
    Arc::new(|db: Db| {
        Box::pin(async move {
            let versions = db.all_versions().await?;
            let mut games = Vec::new();
            for game in db.games().await? {
                let versions = versions
                    .iter()
                    .filter(|version| version.spec.game == game.name)
                    .map(|version| {
                        let ready = version.observed.state == VersionState::Ready;
                        VersionStatus {
                            name: version.spec.name.clone(),
                            ready,
                            status: if ready {
                                Phase::Ready
                            } else {
                                Phase::Reconciling
                            },
                            reason: "Test".to_owned(),
                            message: "admin-only detail".to_owned(),
                            progress: None,
                        }
                    })
                    .collect();
                games.push(GameStatus {
                    name: game.name,
                    suspended: game.suspended,
                    metadata_stale: None,
                    versions,
                });
            }
            let progress = JobProgress {
                kind: JobKind::Pack,
                stage: String::new(),
                stage_index: 0,
                done: 0,
                total: 0,
            };
            Ok(StatusReport {
                commit: Some("c0ffee".to_owned()),
                last_applied_revision: Some("c0ffee".to_owned()),
                last_attempted_revision: Some("c0ffee".to_owned()),
                errors: Vec::new(),
                games,
                queue: vec![QueueEntry {
                    key: "admin-only-job".to_owned(),
                    kind: JobKind::Pack,
                    game: None,
                    version: None,
                    state: JobState::Queued,
                    attempts: 0,
                    last_error: None,
                    next_attempt_at: 0,
                    progress,
                    log_lines: 0,
                }],
            })
        })
    })
}

/// The standard world most tests use:
///
/// - users `alice` and `bob` (friends), `root` (admin), `carol` (disabled);
/// - game `open` (public): 1.0, 1.1, 1.2 Ready with packs and direct deltas, 1.3 pending;
/// - game `secret` (private, granted to `bob`): 1.0 Ready.
pub struct World {
    pub open_packs: Vec<String>,
    pub open_manifests: Vec<String>,
    pub open_deltas: Vec<String>,
    pub secret_pack: String,
    pub secret_manifest: String,
}

pub async fn world(api: &TestApi) -> World {
    api.add_users(&[
        ("alice", Role::User, false),
        ("bob", Role::User, false),
        ("root", Role::Admin, false),
        ("carol", Role::User, true),
    ])
    .await;
    api.add_game("open", false, &[]).await;
    api.add_game("secret", true, &["bob"]).await;
    let mut open_packs = Vec::new();
    let mut open_manifests = Vec::new();
    for (idx, name) in ["1.0", "1.1", "1.2"].iter().enumerate() {
        let pack = api
            .put_artifact(ArtifactKind::Pack, &pattern(10_000 + idx * 100, idx as u8))
            .await;
        let manifest = api
            .put_artifact(
                ArtifactKind::Manifest,
                json!({"entries": [], "version": name})
                    .to_string()
                    .as_bytes(),
            )
            .await;
        api.add_version(
            "open",
            name,
            idx as i64,
            VersionState::Ready,
            Some(&manifest),
            Some(&pack),
        )
        .await;
        open_packs.push(pack);
        open_manifests.push(manifest);
    }
    api.add_version("open", "1.3", 3, VersionState::Pending, None, None)
        .await;
    let mut open_deltas = Vec::new();
    for (from, to, size) in [("1.0", "1.1", 300), ("1.1", "1.2", 400)] {
        let delta = api
            .put_artifact(ArtifactKind::Delta, &pattern(size, size as u8))
            .await;
        api.add_delta("open", from, to, &delta).await;
        open_deltas.push(delta);
    }
    let secret_pack = api
        .put_artifact(ArtifactKind::Pack, b"the secret game's pack")
        .await;
    let secret_manifest = api
        .put_artifact(ArtifactKind::Manifest, br#"{"entries":[],"secret":true}"#)
        .await;
    api.add_version(
        "secret",
        "1.0",
        0,
        VersionState::Ready,
        Some(&secret_manifest),
        Some(&secret_pack),
    )
    .await;
    World {
        open_packs,
        open_manifests,
        open_deltas,
        secret_pack,
        secret_manifest,
    }
}

/// `len` deterministic bytes that differ by `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A token signed with `secret` for any claims, as an attacker (or a test) would make one.
pub fn forge_token(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("encode")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}
