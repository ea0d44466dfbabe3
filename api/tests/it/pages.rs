//! The pages through real HTTP, as a browser without JavaScript sees them: sign-in with the
//! session cookie, the same auth matrix as the API, the store and the game page, and the
//! assets.

use mist_api::config::ApiConfig;
use mist_db::state::{Game, Role, User};
use serde_json::json;

use crate::common::*;

/// A page as a browser receives it, without following redirects.
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `GET path` with the session cookie `session`, if any.
pub(crate) async fn get_page(api: &TestApi, path: &str, session: Option<&str>) -> Page {
    let mut request = browser().get(api.url(path));
    if let Some(session) = session {
        request = request.header("cookie", format!("theme=dark; mist_session={session}"));
    }
    let response = request.send().await.expect("send");
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

/// Posts the sign-in form.
pub(crate) async fn post_login(
    api: &TestApi,
    user: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> Page {
    let body = format!(
        "user={}&password={}",
        form_escape(user),
        form_escape(password)
    );
    let mut request = browser()
        .post(api.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("send");
    Page {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

fn form_escape(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                (byte as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Signs in through the form and returns the session cookie's value.
pub(crate) async fn sign_in(api: &TestApi, user: &str) -> String {
    let page = post_login(api, user, PASSWORD, &[]).await;
    assert_eq!(page.status, 303, "sign-in of {user}: {}", page.body);
    let cookie = page.header("set-cookie").expect("Set-Cookie");
    let value = cookie
        .strip_prefix("mist_session=")
        .and_then(|rest| rest.split(';').next())
        .expect("the session cookie");
    value.to_owned()
}

fn assert_sends_to_sign_in(page: &Page, what: &str) {
    assert_eq!(page.status, 303, "{what}: {}", page.body);
    assert_eq!(page.header("location"), Some("/login"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_cookie_and_sign_out_clears_it() {
    each_backend("sign_in_sets_a_strict_cookie", defaults, |api| async move {
        world(&api).await;
        let form = get_page(&api, "/login", None).await;
        assert_eq!(form.status, 200);
        assert!(form.body.contains(r#"action="/login""#), "{}", form.body);

        let page = post_login(&api, "alice", PASSWORD, &[]).await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.header("location"), Some("/"));
        let cookie = page.header("set-cookie").expect("Set-Cookie");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=86400"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
        let over_tls = post_login(&api, "alice", PASSWORD, &[("x-forwarded-proto", "https")]).await;
        assert!(
            over_tls.header("set-cookie").unwrap().ends_with("; Secure"),
            "{:?}",
            over_tls.header("set-cookie")
        );

        // The cookie's token is the API's: it opens the store and reads the API's catalog.
        let session = sign_in(&api, "alice").await;
        let store = get_page(&api, "/", Some(&session)).await;
        assert_eq!(store.status, 200, "{}", store.body);
        assert!(store.body.contains("The open"), "{}", store.body);
        let (status, _) = api.get_json("/v1/games", Some(&session)).await;
        assert_eq!(status, 200);

        // Wrong passwords, unknown and disabled users: the same page, no cookie.
        let mut bodies = Vec::new();
        for (user, password) in [
            ("alice", "wrong"),
            ("nobody", PASSWORD),
            ("carol", PASSWORD),
        ] {
            let page = post_login(&api, user, password, &[]).await;
            assert_eq!(page.status, 401, "{user}");
            assert!(page.header("set-cookie").is_none(), "{user}");
            assert!(
                page.body.contains("Wrong user name or password."),
                "{}",
                page.body
            );
            bodies.push(page.body.replace(user, ""));
        }
        assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]));
        let page = browser()
            .post(api.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("user=alice")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 400);

        let logout = browser().post(api.url("/logout")).send().await.unwrap();
        assert_eq!(logout.status().as_u16(), 303);
        assert_eq!(logout.headers()["location"], "/login");
        let cleared = logout.headers()["set-cookie"].to_str().unwrap();
        assert!(
            cleared.starts_with("mist_session=;") && cleared.contains("Max-Age=0"),
            "{cleared}"
        );
    })
    .await;
}

fn strict_logins(config: &mut ApiConfig) {
    config.limits.login_max_failures = 3;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_sign_ins_are_limited_with_the_api_logins() {
    each_backend(
        "page_sign_ins_are_limited",
        strict_logins,
        |api| async move {
            world(&api).await;
            for _ in 0..2 {
                assert_eq!(post_login(&api, "alice", "wrong", &[]).await.status, 401);
            }
            let (status, _) = api
                .post_json(
                    "/v1/auth/login",
                    None,
                    &json!({"user": "alice", "password": "wrong"}),
                )
                .await;
            assert_eq!(status, 401);
            // Three failures between the form and the API: both are closed, even to the right
            // password, and say for how long.
            let page = post_login(&api, "alice", PASSWORD, &[]).await;
            assert_eq!(page.status, 429, "{}", page.body);
            let seconds: u64 = page
                .header("retry-after")
                .expect("Retry-After")
                .parse()
                .unwrap();
            assert!((1..=60).contains(&seconds), "{seconds}");
            assert!(page.header("set-cookie").is_none());
            let (status, _) = api
                .post_json(
                    "/v1/auth/login",
                    None,
                    &json!({"user": "alice", "password": PASSWORD}),
                )
                .await;
            assert_eq!(status, 429);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_auth_matrix() {
    each_backend("pages_auth_matrix", defaults, |api| async move {
        world(&api).await;
        let alice = sign_in(&api, "alice").await;
        let bob = sign_in(&api, "bob").await;
        let root = sign_in(&api, "root").await;
        let now = unix_now();
        let claims = |sub: &str, role: &str, exp: u64| {
            json!({"sub": sub, "role": role, "iat": now - 10, "exp": exp, "iss": "mist"})
        };
        let refused = [
            ("anonymous", None),
            ("not a jwt", Some("abc".to_owned())),
            ("forged", Some(forge_token(b"another-secret-that-is-long-enough!!", &claims("root", "admin", now + 60)))),
            ("expired", Some(forge_token(SECRET, &claims("alice", "user", now - 1)))),
            ("wrong role claimed", Some(forge_token(SECRET, &claims("alice", "admin", now + 60)))),
            ("unknown user", Some(forge_token(SECRET, &claims("mallory", "admin", now + 60)))),
            ("disabled user", Some(forge_token(SECRET, &claims("carol", "user", now + 60)))),
        ];
        for path in ["/", "/games/open", "/games/secret", "/games/no-such-game"] {
            for (what, session) in &refused {
                let page = get_page(&api, path, session.as_deref()).await;
                assert_sends_to_sign_in(&page, &format!("{what} {path}"));
                assert!(!page.body.contains("open"), "{what} {path}: {}", page.body);
            }
        }
        for (who, session) in [("friend", &alice), ("admin", &root)] {
            let page = get_page(&api, "/", Some(session)).await;
            assert_eq!(page.status, 200, "{who}");
            let csp = page.header("content-security-policy").expect("CSP");
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
            assert_eq!(page.header("cache-control"), Some("no-store"));
        }

        // A private game without a grant is hidden exactly like a missing one.
        let missing = get_page(&api, "/games/no-such-game", Some(&alice)).await;
        assert_eq!(missing.status, 404);
        let hidden = get_page(&api, "/games/secret", Some(&alice)).await;
        assert_eq!((hidden.status, &hidden.body), (404, &missing.body));
        assert!(!get_page(&api, "/", Some(&alice)).await.body.contains("secret"));
        for session in [&bob, &root] {
            assert_eq!(get_page(&api, "/games/secret", Some(session)).await.status, 200);
            assert!(get_page(&api, "/", Some(session)).await.body.contains("The secret"));
        }
        for path in ["/games/..%2F..%2Fetc", "/games/UPPER", "/games/a%00b"] {
            assert_eq!(get_page(&api, path, Some(&root)).await.status, 404, "{path}");
        }

        // The cookie reads the API (GET only); it never authorises a POST.
        assert_eq!(api.get_json("/v1/games/secret", Some(&bob)).await.0, 200);
        let repair = browser()
            .post(api.url("/v1/games/open/versions/1.0/repair"))
            .header("cookie", format!("mist_session={root}"))
            .header("content-type", "application/json")
            .body(r#"{"files": []}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(repair.status().as_u16(), 401);

        // Disabled and demoted users stop at once, with the cookies they hold.
        let hash = password_hash();
        let user = |name: &str, role: Role, disabled: bool| User {
            name: name.to_owned(),
            display_name: None,
            role,
            password_hash: hash.clone(),
            disabled,
        };
        api.db().upsert_users(&[user("alice", Role::User, true)], T0).await.unwrap();
        assert_sends_to_sign_in(&get_page(&api, "/", Some(&alice)).await, "disabled");
        api.db().upsert_users(&[user("root", Role::User, false)], T0).await.unwrap();
        assert_sends_to_sign_in(&get_page(&api, "/", Some(&root)).await, "demoted");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_game_page_shows_versions_sizes_dates_and_how_to_install() {
    each_backend("the_game_page", defaults, |api| async move {
        world(&api).await;
        let alice = sign_in(&api, "alice").await;
        let page = get_page(&api, "/games/open", Some(&alice)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let body = &page.body;
        for expected in [
            "The open",
            "About open.",
            "mist install open",
            r#"href="mist://games/open""#,
            "Notes of 1.2.",
            "Released 2023-11-14 22:13 UTC",
            "10.2 kB download",
        ] {
            assert!(body.contains(expected), "{expected} in {body}");
        }
        let newest = body.find("Notes of 1.2.").unwrap();
        let oldest = body.find("Notes of 1.0.").unwrap();
        assert!(newest < oldest, "newest first");
        assert!(
            !body.contains("1.3"),
            "a pending version is not shown to friends"
        );
        let root = sign_in(&api, "root").await;
        let admin_page = get_page(&api, "/games/open", Some(&root)).await;
        assert!(admin_page.body.contains("1.3") && admin_page.body.contains("pending"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_escape_what_the_specs_say() {
    each_backend("pages_escape", defaults, |api| async move {
        world(&api).await;
        let spec = json!({"title": "<script>alert(1)</script>", "description": "\"><img src=x>"});
        api.db()
            .upsert_game(
                &Game {
                    name: "hostile".to_owned(),
                    spec_json: spec.to_string(),
                    suspended: false,
                    private: false,
                    grants: Vec::new(),
                },
                T0,
            )
            .await
            .unwrap();
        let alice = sign_in(&api, "alice").await;
        for path in ["/", "/games/hostile"] {
            let page = get_page(&api, path, Some(&alice)).await;
            assert_eq!(page.status, 200, "{path}");
            assert!(
                !page.body.contains("<script>alert") && !page.body.contains("<img src=x>"),
                "{}",
                page.body
            );
            assert!(page.body.contains("&lt;script&gt;"), "{}", page.body);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_have_hashed_names_and_are_cached_for_ever() {
    each_backend("assets", defaults, |api| async move {
        let form = get_page(&api, "/login", None).await;
        let css = form
            .body
            .split("href=\"")
            .find_map(|rest| rest.split('"').next().filter(|href| href.ends_with(".css")))
            .expect("a style sheet link")
            .to_owned();
        assert!(
            css.starts_with("/assets/mist.") && css.len() == "/assets/mist.".len() + 16 + 4,
            "{css}"
        );
        let response = browser().get(api.url(&css)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            response.headers()["content-type"],
            "text/css; charset=utf-8"
        );
        let bytes = response.bytes().await.unwrap();
        let hash = blake3::hash(&bytes).to_hex();
        assert!(
            css.contains(&hash.as_str()[..16]),
            "the name is the content's hash"
        );
        for path in [
            "/assets/mist.css",
            "/assets/mist.0000000000000000.css",
            "/assets/..%2Fsecret",
        ] {
            assert_eq!(
                browser()
                    .get(api.url(path))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
                404,
                "{path}"
            );
        }
    })
    .await;
}
