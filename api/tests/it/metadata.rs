//! Catalog metadata in the API: the store metadata and the header image in the game bodies
//! (the spec's description and image win over Steam's), the image route with a strong entity
//! tag, `304` and immutable caching, obeying the game's grants, and the pages showing it.

use mist_db::metadata::{FetchedDetails, SteamDetails, StoredImage};
use serde_json::json;

use crate::common::*;
use crate::pages::{get_page, sign_in};

const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01 a header image from Steam";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR the spec's own header image";

/// Writes `bytes` into the artifact store, as the reconciler does for images.
fn put_image(api: &TestApi, bytes: &[u8], media_type: &str) -> StoredImage {
    let hex = blake3::hash(bytes).to_hex().to_string();
    let path = artifacts_dir(api.nas.path()).join(&hex[..2]).join(&hex);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    StoredImage {
        address: format!("blake3:{hex}"),
        size: bytes.len() as u64,
        media_type: media_type.to_owned(),
    }
}

/// The store's metadata of `app_id`, fetched at T0, with `image`.
async fn fetched(api: &TestApi, game: &str, app_id: i64, image: &StoredImage) {
    let details = FetchedDetails {
        app_id,
        details: SteamDetails {
            description: Some("Steam's description.".to_owned()),
            genres: vec!["Action".to_owned(), "Indie".to_owned()],
            developers: vec!["Maddy Makes Games Inc.".to_owned()],
            release_date: Some("25 Jan, 2018".to_owned()),
        },
        fetched_at: T0,
    };
    api.db()
        .record_metadata_fetched(
            game,
            &details,
            Some((image, "https://steam.example/h.jpg")),
            T0,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn games_carry_store_metadata_and_their_header_image_obeys_grants() {
    each_backend("metadata_in_the_api", defaults, |api| async move {
        world(&api).await;
        // `open`: Steam's description and image. `secret` (bob only): its own of both.
        api.put_game("open", false, &[], json!({"steamAppId": 504230})).await;
        api.put_game(
            "secret",
            true,
            &["bob"],
            json!({"steamAppId": 620, "description": "Ours.", "headerImage": "header.png"}),
        )
        .await;
        let steam_image = put_image(&api, JPEG, "image/jpeg");
        fetched(&api, "open", 504230, &steam_image).await;
        fetched(&api, "secret", 620, &steam_image).await;
        let spec_image = put_image(&api, PNG, "image/png");
        assert!(api.db().set_spec_image("secret", Some(&spec_image), T0).await.unwrap());

        let alice = api.login("alice").await;
        let (status, list) = api.get_json("/v1/games", Some(&alice)).await;
        assert_eq!(status, 200);
        let open = &list["games"][0];
        assert_eq!(open["name"], "open");
        assert_eq!(open["description"], "Steam's description.");
        assert_eq!(open["store"]["genres"], json!(["Action", "Indie"]));
        assert_eq!(open["store"]["steamAppId"], 504230);
        assert_eq!(open["store"]["releaseDate"], "25 Jan, 2018");
        let image_url = format!("/v1/games/open/image/{}", steam_image.address);
        assert_eq!(open["headerImage"]["url"], image_url.as_str());
        assert_eq!(open["headerImage"]["contentType"], "image/jpeg");
        // Sizes: each version's full download.
        assert_eq!(open["versions"][0]["size"], 10_000);
        assert_eq!(list["games"].as_array().unwrap().len(), 1, "alice sees no secret");

        // The image: a strong entity tag, cached for a year, and 304 when the client has it.
        let response = api.get(&image_url, Some(&alice), &[]).await;
        assert_eq!(response.status(), 200);
        let etag = format!("\"{}\"", steam_image.address);
        assert_eq!(response.headers()["etag"], etag.as_str());
        assert_eq!(response.headers()["content-type"], "image/jpeg");
        let cache = response.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(cache.contains("immutable") && cache.contains("max-age=31536000"), "{cache}");
        assert_eq!(response.bytes().await.unwrap(), JPEG);
        let again = api
            .get(&image_url, Some(&alice), &[("if-none-match", &etag)])
            .await;
        assert_eq!(again.status(), 304);
        assert!(again.bytes().await.unwrap().is_empty());

        // Without a token, or for a hidden game, or another digest: the same 404 as nothing.
        assert_eq!(api.get(&image_url, None, &[]).await.status(), 401);
        let secret_url = format!("/v1/games/secret/image/{}", spec_image.address);
        let (hidden, hidden_body) = api.get_json(&secret_url, Some(&alice)).await;
        let (missing, missing_body) = api
            .get_json("/v1/games/nothing/image/blake3:0000000000000000000000000000000000000000000000000000000000000000", Some(&alice))
            .await;
        assert_eq!((hidden, missing), (404, 404));
        assert_eq!(hidden_body, missing_body);
        let stale_url = format!("/v1/games/secret/image/{}", steam_image.address);
        let bob = api.login("bob").await;
        assert_eq!(api.get(&stale_url, Some(&bob), &[]).await.status(), 404);

        // Bob is granted `secret`: the spec's description and image win over Steam's.
        let (_, secret) = api.get_json("/v1/games/secret", Some(&bob)).await;
        assert_eq!(secret["description"], "Ours.");
        assert_eq!(secret["headerImage"]["url"], secret_url.as_str());
        assert_eq!(secret["store"]["genres"], json!(["Action", "Indie"]));
        assert!(secret.get("conditions").is_none(), "friends see no conditions");
        let response = api.get(&secret_url, Some(&bob), &[]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/png");
        assert_eq!(response.bytes().await.unwrap(), PNG);

        // Without a Steam app id in the spec, nothing of Steam's shows.
        api.put_game("open", false, &[], json!({})).await;
        let (_, open) = api.get_json("/v1/games/open", Some(&alice)).await;
        assert!(open.get("store").is_none() && open.get("headerImage").is_none(), "{open}");
        assert_eq!(api.get(&image_url, Some(&alice), &[]).await.status(), 404);

        // Admins see the game's conditions.
        let root = api.login("root").await;
        let (_, detail) = api.get_json("/v1/games/secret", Some(&root)).await;
        assert_eq!(detail["conditions"], json!([]));

        // The pages show the image (from this server) and the description.
        let session = sign_in(&api, "bob").await;
        let page = get_page(&api, "/", Some(&session)).await;
        assert!(
            page.body.contains(&format!(r#"<img class="cover" src="{secret_url}""#)),
            "{}",
            page.body
        );
        let page = get_page(&api, "/games/secret", Some(&session)).await;
        assert!(page.body.contains(&secret_url) && page.body.contains("Ours."));
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("img-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        // A game without an image keeps its generated cover.
        let page = get_page(&api, "/games/open", Some(&session)).await;
        assert!(page.body.contains("cover cover-"), "{}", page.body);
    })
    .await;
}
