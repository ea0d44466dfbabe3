//! Logins and the auth matrix: every way a request can fail to be authorised answers the
//! right status and tells nothing more.

use std::time::Duration;

use base64::Engine;
use mist_api::config::ApiConfig;
use mist_db::state::{Role, User};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_a_token_with_the_claims() {
    each_backend(
        "login_returns_a_token_with_the_claims",
        defaults,
        |api| async move {
            world(&api).await;
            let (status, body) = api
                .post_json(
                    "/v1/auth/login",
                    None,
                    &json!({"user": "alice", "password": PASSWORD}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["tokenType"], "Bearer");
            assert_eq!(body["user"], "alice");
            assert_eq!(body["role"], "user");
            let token = body["token"].as_str().unwrap();
            let payload = token.split('.').nth(1).unwrap();
            let claims: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(claims["sub"], "alice");
            assert_eq!(claims["role"], "user");
            assert_eq!(claims["iss"], "mist");
            let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
            assert_eq!(lifetime, 24 * 60 * 60);
            assert_eq!(body["expiresAt"], claims["exp"]);
            let (status, _) = api.get_json("/v1/games", Some(token)).await;
            assert_eq!(status, 200);
        },
    )
    .await;
}

fn short_tokens(config: &mut ApiConfig) {
    config.token_lifetime = Duration::from_secs(90);
    config.issuer = "mist-test".to_owned();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lifetime_and_issuer_are_configurable() {
    each_backend("token_lifetime_and_issuer_are_configurable", short_tokens, |api| async move {
        world(&api).await;
        let (_, body) = api
            .post_json("/v1/auth/login", None, &json!({"user": "root", "password": PASSWORD}))
            .await;
        let now = unix_now();
        let expires_at = body["expiresAt"].as_u64().unwrap();
        assert!((now + 85..=now + 95).contains(&expires_at), "{expires_at} vs {now}");
        // A token of the default issuer is not accepted by this server.
        let other = forge_token(
            SECRET,
            &json!({"sub": "root", "role": "admin", "iat": now, "exp": now + 60, "iss": "mist"}),
        );
        assert_eq!(api.get_json("/v1/games", Some(&other)).await.0, 401);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_all_look_the_same() {
    each_backend(
        "failed_logins_all_look_the_same",
        defaults,
        |api| async move {
            world(&api).await;
            let mut bodies = Vec::new();
            for (user, password) in [
                ("alice", "wrong"),
                ("nobody", PASSWORD),
                ("carol", PASSWORD), // disabled, right password
                ("ALICE", PASSWORD),
                ("../../etc/passwd", PASSWORD),
                ("", ""),
            ] {
                let (status, body) = api
                    .post_json(
                        "/v1/auth/login",
                        None,
                        &json!({"user": user, "password": password}),
                    )
                    .await;
                assert_eq!(status, 401, "{user}: {body}");
                bodies.push(body);
            }
            assert!(
                bodies.windows(2).all(|pair| pair[0] == pair[1]),
                "{bodies:?}"
            );
            for body in [
                json!({"user": "alice"}),
                json!("alice"),
                json!({"user": 1, "password": 2}),
            ] {
                let (status, _) = api.post_json("/v1/auth/login", None, &body).await;
                assert_eq!(status, 400, "{body}");
            }
            let response = api
                .client
                .post(api.url("/v1/auth/login"))
                .body("not json")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 400);
        },
    )
    .await;
}

fn strict_logins(config: &mut ApiConfig) {
    config.limits.login_max_failures = 3;
    config.limits.login_max_client_failures = 5;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited_per_user_and_per_client() {
    each_backend(
        "failed_logins_are_rate_limited",
        strict_logins,
        |api| async move {
            world(&api).await;
            let attempt = |user: &'static str, password: &'static str| {
                let api = &api;
                async move {
                    let response = api
                        .client
                        .post(api.url("/v1/auth/login"))
                        .body(json!({"user": user, "password": password}).to_string())
                        .send()
                        .await
                        .unwrap();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .map(|value| value.to_str().unwrap().to_owned());
                    (response.status().as_u16(), retry_after)
                }
            };
            for _ in 0..3 {
                assert_eq!(attempt("alice", "wrong").await.0, 401);
            }
            // Locked, even with the right password, and says for how long.
            let (status, retry_after) = attempt("alice", PASSWORD).await;
            assert_eq!(status, 429);
            let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
            assert!((1..=60).contains(&seconds), "{seconds}");
            // Another user from the same address still gets checked, until the address used
            // up its own failures: then every user is refused from here.
            assert_eq!(attempt("bob", "wrong").await.0, 401);
            assert_eq!(attempt("bob", "wrong").await.0, 401);
            assert_eq!(attempt("bob", PASSWORD).await.0, 429);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix() {
    each_backend("auth_matrix", defaults, |api| async move {
        let w = world(&api).await;
        let alice = api.login("alice").await;
        let bob = api.login("bob").await;
        let root = api.login("root").await;
        let now = unix_now();
        let claims = |sub: &str, role: &str, exp: u64| {
            json!({"sub": sub, "role": role, "iat": now - 10, "exp": exp, "iss": "mist"})
        };

        // Who may list games at all.
        let not_found_body = api.get_json("/v1/games/no-such-game", Some(&alice)).await.1;
        let cases: Vec<(&str, Option<String>, u16)> = vec![
            ("no token", None, 401),
            ("not a jwt", Some("abc".to_owned()), 401),
            ("three dots", Some("a.b.c".to_owned()), 401),
            (
                "bad signature",
                Some(forge_token(b"another-secret-that-is-long-enough!!", &claims("alice", "user", now + 60))),
                401,
            ),
            ("expired", Some(forge_token(SECRET, &claims("alice", "user", now - 1))), 401),
            ("wrong role claimed", Some(forge_token(SECRET, &claims("alice", "admin", now + 60))), 401),
            ("unknown user", Some(forge_token(SECRET, &claims("mallory", "admin", now + 60))), 401),
            ("disabled user", Some(forge_token(SECRET, &claims("carol", "user", now + 60))), 401),
            ("no iss", Some(forge_token(SECRET, &json!({"sub": "alice", "role": "user", "iat": now, "exp": now + 60}))), 401),
            ("friend", Some(alice.clone()), 200),
            ("admin", Some(root.clone()), 200),
        ];
        for (what, token, expected) in &cases {
            let response = api.get("/v1/games", token.as_deref(), &[]).await;
            assert_eq!(response.status().as_u16(), *expected, "{what}");
            if *expected == 401 {
                assert_eq!(
                    response.headers().get("www-authenticate").map(|v| v.to_str().unwrap()),
                    Some("Bearer"),
                    "{what}"
                );
                let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
                assert_eq!(body, json!({"error": "missing or invalid token"}), "{what}");
            }
        }
        // Other schemes and shapes of the header.
        for header in ["Basic YWxpY2U6eA==", "Bearer", "Bearer  ", "bearer", "Token x"] {
            let response = api.get("/v1/games", None, &[("authorization", header)]).await;
            assert_eq!(response.status().as_u16(), 401, "{header}");
        }
        let lower = api
            .get("/v1/games", None, &[("authorization", &format!("bearer {alice}"))])
            .await;
        assert_eq!(lower.status().as_u16(), 200, "the scheme is case-insensitive");

        // Wrong role: a friend on an admin route.
        assert_eq!(api.get_json("/v1/users", Some(&alice)).await.0, 403);
        let (status, users) = api.get_json("/v1/users", Some(&root)).await;
        assert_eq!(status, 200);
        assert!(!users.to_string().contains("argon2"), "no hashes: {users}");

        // A private game without and with a grant: hidden exactly like a missing game.
        let secret_paths = [
            "/v1/games/secret".to_owned(),
            "/v1/games/secret/versions/1.0/manifest".to_owned(),
            "/v1/games/secret/update".to_owned(),
            format!("/v1/artifacts/{}", w.secret_pack),
            format!("/v1/artifacts/{}", w.secret_manifest),
        ];
        for path in &secret_paths {
            let (status, body) = api.get_json(path, Some(&alice)).await;
            assert_eq!((status, &body), (404, &not_found_body), "alice {path}");
            let (status, _) = api.get_json(path, Some(&bob)).await;
            assert_eq!(status, 200, "bob {path}");
            let (status, _) = api.get_json(path, Some(&root)).await;
            assert_eq!(status, 200, "root {path}");
        }
        let (_, games) = api.get_json("/v1/games", Some(&alice)).await;
        assert!(!games.to_string().contains("secret"), "{games}");
        let (_, games) = api.get_json("/v1/games", Some(&bob)).await;
        assert!(games.to_string().contains("secret"), "{games}");
        let (status, _) = api
            .post_json(
                "/v1/games/secret/versions/1.0/repair",
                Some(&alice),
                &json!({"files": [{"path": "x", "signature": ""}]}),
            )
            .await;
        assert_eq!(status, 404);

        // Disabled and removed users stop at once, with tokens they already hold.
        let mut users = vec![User {
            name: "alice".into(),
            display_name: Some("ALICE".into()),
            role: Role::User,
            password_hash: password_hash(),
            disabled: true,
        }];
        api.db().upsert_users(&users, T0).await.unwrap();
        assert_eq!(api.get_json("/v1/games", Some(&alice)).await.0, 401, "disabled");
        users[0].disabled = false;
        api.db().upsert_users(&users, T0).await.unwrap();
        assert_eq!(api.get_json("/v1/games", Some(&alice)).await.0, 200, "enabled again");
        api.db().delete_user("bob").await.unwrap();
        assert_eq!(api.get_json("/v1/games", Some(&bob)).await.0, 401, "removed");
        // A demoted admin's token stops too.
        users[0] = User {
            name: "root".into(),
            display_name: None,
            role: Role::User,
            password_hash: password_hash(),
            disabled: false,
        };
        api.db().upsert_users(&users, T0).await.unwrap();
        assert_eq!(api.get_json("/v1/users", Some(&root)).await.0, 401, "demoted");
    })
    .await;
}
