//! Catalog metadata against a real HTTP server on loopback that answers like Steam's store
//! (`/api/appdetails?appids=ID` in the recorded shape, 429, `success: false`) and serves the
//! header images it names: fetched and stored, cached, overridden by the spec, fetched again
//! when the id changes, and failures kept stale (the last good metadata stays) and visible.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mist_db::conditions::{ConditionStatus, ConditionType, ObjectRef};
use mist_db::metadata::GameMetadata;
use mist_db::testing::{TestDb, each_backend};
use mist_reconciler::store::artifacts_dir;

use crate::world::{GameOptions, World, db_rows, fs_snapshot, status};

/// A tiny valid PNG header (what the store and the spec check look at).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\xcc\0\0\0\xd7\x08\x02\0\0\0fake";
/// A JPEG's first bytes.
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01fake jpeg";

/// How the fake store answers for an app.
#[derive(Clone)]
enum Answer {
    /// `success: true` with details and a header image at `/images/<id>.jpg`.
    Ok { description: String },
    /// 429 with `Retry-After`.
    RateLimited,
    /// `success: false`.
    Unknown,
}

#[derive(Default)]
struct Store {
    answers: HashMap<u32, Answer>,
    /// Requests per path (`appdetails/<id>`, `image/<id>`).
    hits: HashMap<String, usize>,
}

/// A fake Steam store on loopback.
struct FakeSteam {
    url: String,
    state: Arc<Mutex<Store>>,
}

impl FakeSteam {
    async fn start() -> FakeSteam {
        let state = Arc::new(Mutex::new(Store::default()));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/api/appdetails", get(appdetails))
            .route("/images/{file}", get(image))
            .with_state((state.clone(), url.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSteam { url, state }
    }

    fn answer(&self, app_id: u32, answer: Answer) {
        self.state.lock().unwrap().answers.insert(app_id, answer);
    }

    fn hits(&self, what: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(what)
            .copied()
            .unwrap_or(0)
    }
}

type Shared = (Arc<Mutex<Store>>, String);

async fn appdetails(
    State((state, url)): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let id: u32 = query["appids"].parse().unwrap();
    let answer = {
        let mut store = state.lock().unwrap();
        *store.hits.entry(format!("appdetails/{id}")).or_default() += 1;
        store.answers.get(&id).cloned().unwrap_or(Answer::Unknown)
    };
    match answer {
        Answer::Ok { description } => {
            // The recorded shape of a real answer, trimmed.
            let body = serde_json::json!({ id.to_string(): { "success": true, "data": {
                "type": "game", "name": "A game", "steam_appid": id,
                "short_description": description,
                "header_image": format!("{url}/images/{id}.jpg?t=1714089525"),
                "developers": ["Maddy Makes Games Inc."],
                "publishers": ["Maddy Makes Games Inc."],
                "genres": [{"id": "1", "description": "Action"}, {"id": "23", "description": "Indie"}],
                "release_date": {"coming_soon": false, "date": "25 Jan, 2018"}
            }}});
            axum::Json(body).into_response()
        }
        Answer::RateLimited => {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", HeaderValue::from_static("120"));
            (StatusCode::TOO_MANY_REQUESTS, headers, "").into_response()
        }
        Answer::Unknown => {
            axum::Json(serde_json::json!({ id.to_string(): { "success": false } })).into_response()
        }
    }
}

async fn image(
    State((state, _)): State<Shared>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Response {
    let id = file.trim_end_matches(".jpg").to_string();
    *state
        .lock()
        .unwrap()
        .hits
        .entry(format!("image/{id}"))
        .or_default() += 1;
    ([("content-type", "image/jpeg")], JPEG).into_response()
}

/// A game declared with extra `spec:` lines.
fn game_with(world: &mut World, name: &str, extra: &str) {
    world.game(name, &GameOptions::default());
    let yaml = world
        .files
        .get_mut(&format!("games/{name}/game.yaml"))
        .unwrap();
    yaml.push_str(extra);
}

async fn metadata(world: &World, game: &str) -> GameMetadata {
    world
        .db()
        .game_metadata(game)
        .await
        .unwrap()
        .expect("a metadata row")
}

async fn stale_condition(world: &World, game: &str) -> Option<(ConditionStatus, String, String)> {
    world
        .db()
        .conditions_of(&ObjectRef::game(game))
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.condition_type == ConditionType::MetadataStale)
        .map(|c| (c.status, c.reason, c.message))
}

/// The bytes of a stored artifact.
fn stored(world: &World, address: &str) -> Vec<u8> {
    let hex = address.strip_prefix("blake3:").unwrap();
    std::fs::read(artifacts_dir(&world.nas()).join(&hex[..2]).join(hex)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_metadata_is_fetched_cached_and_fetched_again_when_the_id_changes() {
    each_backend("store_metadata_fetched", |test_db: TestDb| async move {
        let steam = FakeSteam::start().await;
        steam.answer(
            620,
            Answer::Ok {
                description: "Tom &amp; Jerry&#39;s <b>day</b>".into(),
            },
        );
        steam.answer(
            730,
            Answer::Ok {
                description: "Another one.".into(),
            },
        );
        let mut world = World::new(test_db);
        world.metadata.steam_url = steam.url.clone();
        game_with(&mut world, "alpha", "  steamAppId: 620\n");
        world.version("alpha", "1.0", 0);
        world.commit("alpha");
        let reconciler = world.reconciler();
        reconciler.run_until_idle().await.unwrap();

        // Fetched once, the image downloaded once and kept in the artifact store.
        assert_eq!(steam.hits("appdetails/620"), 1);
        assert_eq!(steam.hits("image/620"), 1);
        let row = metadata(&world, "alpha").await;
        let fetched = row.fetched.as_ref().expect("fetched");
        assert_eq!(fetched.app_id, 620);
        assert_eq!(
            fetched.details.description.as_deref(),
            Some("Tom & Jerry's day")
        );
        assert_eq!(fetched.details.genres, ["Action", "Indie"]);
        assert_eq!(fetched.details.developers, ["Maddy Makes Games Inc."]);
        assert_eq!(
            fetched.details.release_date.as_deref(),
            Some("25 Jan, 2018")
        );
        let image = row.steam_image.as_ref().expect("steam image");
        assert_eq!(image.media_type, "image/jpeg");
        assert_eq!(stored(&world, &image.address), JPEG);
        assert_eq!(stale_condition(&world, "alpha").await, None);
        assert!(status(&world).await.games[0].metadata_stale.is_none());

        // Cached: the next passes ask nothing and write nothing.
        let rows = db_rows(&world.test_db).await;
        let nas = fs_snapshot(&world.nas());
        for _ in 0..2 {
            let report = reconciler.reconcile_once().await.unwrap();
            assert!(report.is_converged(), "{report:?}");
        }
        assert_eq!(steam.hits("appdetails/620"), 1);
        assert_eq!(db_rows(&world.test_db).await, rows);
        assert_eq!(fs_snapshot(&world.nas()), nas);

        // The image gone from the NAS: fetched again.
        std::fs::remove_file(
            artifacts_dir(&world.nas())
                .join(&image.address["blake3:".len().."blake3:".len() + 2])
                .join(&image.address["blake3:".len()..]),
        )
        .unwrap();
        reconciler.run_until_idle().await.unwrap();
        assert_eq!(steam.hits("appdetails/620"), 2);
        assert_eq!(steam.hits("image/620"), 2);
        assert_eq!(stored(&world, &image.address), JPEG);

        // A new id: fetched at once.
        game_with(&mut world, "alpha", "  steamAppId: 730\n");
        world.commit("alpha is app 730");
        reconciler.run_until_idle().await.unwrap();
        assert_eq!(steam.hits("appdetails/730"), 1);
        let row = metadata(&world, "alpha").await;
        assert_eq!(row.fetched.as_ref().unwrap().app_id, 730);
        assert_eq!(
            row.fetched.unwrap().details.description.as_deref(),
            Some("Another one.")
        );
        // The version was never held up.
        assert_eq!(
            status(&world).await.games[0].versions[0].status.as_str(),
            "Ready"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_keep_the_last_good_metadata_and_show_metadata_stale() {
    each_backend("store_metadata_failures", |test_db: TestDb| async move {
        let steam = FakeSteam::start().await;
        steam.answer(
            620,
            Answer::Ok {
                description: "Good.".into(),
            },
        );
        let mut world = World::new(test_db);
        world.metadata.steam_url = steam.url.clone();
        game_with(&mut world, "alpha", "  steamAppId: 620\n");
        world.version("alpha", "1.0", 0);
        world.commit("alpha");
        let reconciler = world.reconciler();
        reconciler.run_until_idle().await.unwrap();
        let good = metadata(&world, "alpha").await;

        // An id the store does not know (`success: false`): stale, the last good one kept.
        game_with(&mut world, "alpha", "  steamAppId: 999\n");
        world.commit("a wrong id");
        reconciler.run_until_idle().await.unwrap();
        assert_eq!(steam.hits("appdetails/999"), 1);
        let row = metadata(&world, "alpha").await;
        assert_eq!(row.fetched, good.fetched);
        assert_eq!(row.steam_image, good.steam_image);
        let (condition, reason, message) = stale_condition(&world, "alpha").await.unwrap();
        assert_eq!(
            (condition, reason.as_str()),
            (ConditionStatus::True, "UnknownApp")
        );
        assert!(message.contains("metadata of app 620"), "{message}");
        let report = status(&world).await;
        assert_eq!(
            report.games[0].metadata_stale.as_ref().unwrap().reason,
            "UnknownApp"
        );
        assert_eq!(report.games[0].versions[0].status.as_str(), "Ready");

        // Not asked again before its backoff ends.
        reconciler.run_until_idle().await.unwrap();
        assert_eq!(steam.hits("appdetails/999"), 1);

        // Back to 620, which the store now refuses with 429 and Retry-After: 120.
        steam.answer(620, Answer::RateLimited);
        game_with(&mut world, "alpha", "  steamAppId: 620\n");
        world.commit("the right id");
        reconciler.run_until_idle().await.unwrap();
        assert_eq!(steam.hits("appdetails/620"), 2);
        let row = metadata(&world, "alpha").await;
        assert_eq!(row.fetched, good.fetched);
        let attempt = row.attempt.unwrap();
        assert!(
            attempt.retry_at.unwrap() >= attempt.at + 120_000,
            "{attempt:?}"
        );
        let (_, reason, message) = stale_condition(&world, "alpha").await.unwrap();
        assert_eq!(reason, "RateLimited");
        assert!(message.contains("429"), "{message}");

        // The store answers again, and the backoff is over: fresh.
        steam.answer(
            620,
            Answer::Ok {
                description: "Better.".into(),
            },
        );
        sqlx::query("UPDATE game_metadata SET retry_at = 0")
            .execute(world.db().pool())
            .await
            .unwrap();
        reconciler.run_until_idle().await.unwrap();
        let row = metadata(&world, "alpha").await;
        assert_eq!(
            row.fetched.unwrap().details.description.as_deref(),
            Some("Better.")
        );
        let (condition, reason, _) = stale_condition(&world, "alpha").await.unwrap();
        assert_eq!(
            (condition, reason.as_str()),
            (ConditionStatus::False, "Fresh")
        );
        assert!(status(&world).await.games[0].metadata_stale.is_none());

        // Nobody listening: a network error, stale again.
        let mut offline = world.config();
        offline.metadata.steam_url = "http://127.0.0.1:1".to_owned();
        game_with(&mut world, "alpha", "  steamAppId: 730\n");
        world.commit("another id, store offline");
        mist_reconciler::reconciler::Reconciler::new(offline, world.db().clone())
            .unwrap()
            .run_until_idle()
            .await
            .unwrap();
        let (_, reason, _) = stale_condition(&world, "alpha").await.unwrap();
        assert_eq!(reason, "NetworkError");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_overrides_the_stores_header_image() {
    each_backend("store_metadata_spec_image", |test_db: TestDb| async move {
        let steam = FakeSteam::start().await;
        steam.answer(
            620,
            Answer::Ok {
                description: "Steam's.".into(),
            },
        );
        let mut world = World::new(test_db);
        world.metadata.steam_url = steam.url.clone();
        game_with(
            &mut world,
            "alpha",
            "  steamAppId: 620\n  description: Ours.\n  headerImage: art/header.png\n",
        );
        world
            .binary_files
            .insert("games/alpha/art/header.png".into(), PNG.to_vec());
        world.version("alpha", "1.0", 0);
        world.commit("alpha with its own image");
        let reconciler = world.reconciler();
        reconciler.run_until_idle().await.unwrap();

        let row = metadata(&world, "alpha").await;
        let spec_image = row.spec_image.as_ref().expect("the spec's image");
        assert_eq!(spec_image.media_type, "image/png");
        assert_eq!(
            spec_image.address,
            format!("blake3:{}", blake3::hash(PNG).to_hex())
        );
        assert_eq!(stored(&world, &spec_image.address), PNG);
        // Steam's is kept too, for when the spec drops its own.
        assert!(row.steam_image.is_some());
        let report = reconciler.reconcile_once().await.unwrap();
        assert!(report.is_converged(), "{report:?}");

        // The spec drops its image: unrecorded (the file stays, content-addressed).
        game_with(&mut world, "alpha", "  steamAppId: 620\n");
        world.binary_files.clear();
        world.commit("no image of our own");
        reconciler.run_until_idle().await.unwrap();
        assert!(metadata(&world, "alpha").await.spec_image.is_none());
    })
    .await;
}
