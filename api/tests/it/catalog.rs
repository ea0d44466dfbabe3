//! The catalog: what friends and admins see of games and versions.

use mist_db::conditions::{ConditionStatus, ConditionType, ObjectRef};
use serde_json::{Value, json};

use crate::common::*;

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_see_public_and_granted_games_and_only_ready_versions() {
    each_backend(
        "friends_see_public_and_granted_games",
        defaults,
        |api| async move {
            let w = world(&api).await;
            let alice = api.login("alice").await;
            let bob = api.login("bob").await;

            let (status, list) = api.get_json("/v1/games", Some(&alice)).await;
            assert_eq!(status, 200);
            assert_eq!(names(&list, "games"), ["open"]);
            let open = &list["games"][0];
            assert_eq!(open["title"], "The open");
            assert_eq!(open["latest"], "1.2");
            assert_eq!(names(open, "versions"), ["1.0", "1.1", "1.2"]);
            assert!(open.get("suspended").is_none() && open["versions"][0].get("state").is_none());
            assert_eq!(open["versions"][1]["notes"], "Notes of 1.1.");

            let (_, list) = api.get_json("/v1/games", Some(&bob)).await;
            assert_eq!(names(&list, "games"), ["open", "secret"]);

            let (status, game) = api.get_json("/v1/games/open", Some(&alice)).await;
            assert_eq!(status, 200);
            assert_eq!(
                game["launch"],
                json!({"executable": "bin/run", "args": ["--fast"]})
            );
            assert_eq!(names(&game, "versions"), ["1.0", "1.1", "1.2"]);
            let pack = &game["versions"][0]["pack"];
            assert_eq!(pack["digest"], w.open_packs[0].as_str());
            assert_eq!(pack["size"], 10_000);
            assert_eq!(pack["url"], format!("/v1/artifacts/{}", w.open_packs[0]));
            assert!(game["versions"][0].get("conditions").is_none());
            assert!(!game.to_string().contains("grants"));

            // The pending version is hidden from friends like one that does not exist.
            let missing = api
                .get_json("/v1/games/open/versions/9.9/manifest", Some(&alice))
                .await;
            let pending = api
                .get_json("/v1/games/open/versions/1.3/manifest", Some(&alice))
                .await;
            assert_eq!(missing.0, 404);
            assert_eq!(pending, missing);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_everything_with_status_detail() {
    each_backend("admins_see_everything", defaults, |api| async move {
        world(&api).await;
        api.db()
            .set_condition(
                &ObjectRef::version("open", "1.3"),
                ConditionType::Reconciling,
                ConditionStatus::True,
                "Ingesting",
                "scanning the build",
                T0,
            )
            .await
            .unwrap();
        let root = api.login("root").await;
        let (_, list) = api.get_json("/v1/games", Some(&root)).await;
        assert_eq!(names(&list, "games"), ["open", "secret"]);
        let open = &list["games"][0];
        assert_eq!(names(open, "versions"), ["1.0", "1.1", "1.2", "1.3"]);
        assert_eq!(open["versions"][3]["state"], "pending");
        assert_eq!(open["suspended"], false);
        assert_eq!(open["latest"], "1.2", "latest is the newest Ready version");

        let (_, game) = api.get_json("/v1/games/open", Some(&root)).await;
        let conditions = &game["versions"][3]["conditions"];
        assert_eq!(conditions[0]["type"], "Reconciling");
        assert_eq!(conditions[0]["reason"], "Ingesting");
        assert_eq!(conditions[0]["message"], "scanning the build");
        assert_eq!(game["versions"][0]["conditions"], json!([]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_is_served_as_json_with_its_digest_as_etag() {
    each_backend("manifest_is_served", defaults, |api| async move {
        let w = world(&api).await;
        let alice = api.login("alice").await;
        let response = api
            .get("/v1/games/open/versions/1.1/manifest", Some(&alice), &[])
            .await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(
            response.headers()["etag"].to_str().unwrap(),
            format!("\"{}\"", w.open_manifests[1])
        );
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(body["version"], "1.1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_every_route() {
    each_backend("openapi_document", defaults, |api| async move {
        let (status, document) = api.get_json("/v1/openapi.json", None).await;
        assert_eq!(status, 200);
        assert!(document["openapi"].as_str().unwrap().starts_with("3."));
        let paths = document["paths"].as_object().unwrap();
        for path in [
            "/v1/auth/login",
            "/v1/users",
            "/v1/games",
            "/v1/games/{game}",
            "/v1/games/{game}/versions/{version}/manifest",
            "/v1/games/{game}/update",
            "/v1/games/{game}/versions/{version}/repair",
            "/v1/artifacts/{digest}",
            "/v1/status",
            "/v1/events",
        ] {
            assert!(
                paths.contains_key(path),
                "{path} missing from {:?}",
                paths.keys()
            );
        }
        assert_eq!(document, mist_api::openapi_json());
    })
    .await;
}
