//! The login limits behind a reverse proxy, through real HTTP: an attacker's 1,000 wrong
//! passwords from one address do not stop the real user logging in from another, nor does a
//! spread-out attack past the per-user ceiling; from an untrusted peer the forwarding headers
//! are ignored; and two API instances on one database share the counts. The test server's TCP
//! peer is always 127.0.0.1, which plays the border proxy when it is trusted.

use std::time::Duration;

use futures_util::StreamExt;

use mist_api::config::ApiConfig;
use mist_db::state::Role;
use serde_json::json;

use crate::common::{PASSWORD, TestApi, each_backend};
use crate::pages::post_login;

const ATTACKER: &str = "203.0.113.66";
const FRIEND: &str = "198.51.100.7";

/// 127.0.0.1 is the border proxy; small limits so the per-user ceiling is reached quickly.
/// The windows are long enough that none ends during a test.
fn behind_proxy(config: &mut ApiConfig) {
    no_proxy(config);
    config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
}

/// The same limits with no trusted proxy.
fn no_proxy(config: &mut ApiConfig) {
    config.limits.login_max_user_failures = 20;
    config.limits.login_window = Duration::from_secs(3600);
}

/// `POST /v1/auth/login` to `base` with `X-Forwarded-For: forwarded_for`; the status.
async fn attempt(api: &TestApi, base: &str, forwarded_for: &str, password: &str) -> u16 {
    api.client
        .post(format!("{base}/v1/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .body(json!({"user": "alice", "password": password}).to_string())
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_behind_the_proxy_cannot_lock_a_user_out() {
    each_backend(
        "login_attack_behind_proxy",
        behind_proxy,
        |api| async move {
            api.add_users(&[("alice", Role::User, false)]).await;
            let base = api.base.clone();
            // 1,000 wrong passwords from one address, 32 at a time; the part of the header left
            // of what the proxy appended is the attacker's own and changes every time.
            let statuses: Vec<u16> = futures_util::stream::iter(0..1000)
                .map(|n| {
                    let (api, base) = (&api, &base);
                    async move {
                        let forwarded_for = format!("10.{}.{}.1, {ATTACKER}", n / 256, n % 256);
                        attempt(api, base, &forwarded_for, "wrong").await
                    }
                })
                .buffer_unordered(32)
                .collect()
                .await;
            let checked = statuses.iter().filter(|&&status| status == 401).count();
            let refused = statuses.iter().filter(|&&status| status == 429).count();
            assert_eq!(checked + refused, 1000, "{statuses:?}");
            // Ten password checks, plus at most one per other concurrent check (two at once):
            // the rest were refused without one.
            assert!((10..=11).contains(&checked), "{checked} password checks");
            assert_eq!(attempt(&api, &base, ATTACKER, PASSWORD).await, 429);
            // Also from the page's form, which has the same limiter.
            let form = post_login(&api, "alice", PASSWORD, &[("x-forwarded-for", ATTACKER)]).await;
            assert_eq!(form.status, 429, "{}", form.body);

            assert_eq!(attempt(&api, &base, FRIEND, PASSWORD).await, 200);

            // A spread-out attack: one guess from each of 30 addresses passes the per-user
            // ceiling of 20. The addresses that failed are refused from then on; the friend's is
            // not.
            for n in 0..30 {
                let status = attempt(&api, &base, &format!("192.0.2.{n}"), "wrong").await;
                assert_eq!(status, 401, "guess {n}");
            }
            assert_eq!(attempt(&api, &base, "192.0.2.1", "wrong").await, 429);
            assert_eq!(attempt(&api, &base, "192.0.2.1", PASSWORD).await, 429);
            assert_eq!(attempt(&api, &base, FRIEND, PASSWORD).await, 200);
            let rows = api.db().login_failure_rows().await.unwrap();
            assert!(rows <= 2 + 2 * 31, "one row per key: {rows}");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_choose_its_address() {
    each_backend("login_untrusted_peer", no_proxy, |api| async move {
        api.add_users(&[("alice", Role::User, false)]).await;
        let base = api.base.clone();
        for n in 0..10 {
            let status = attempt(&api, &base, &format!("192.0.2.{n}"), "wrong").await;
            assert_eq!(status, 401);
        }
        // Every guess counted against the peer, 127.0.0.1, whatever the header said.
        assert_eq!(attempt(&api, &base, "192.0.2.200", "wrong").await, 429);
        assert_eq!(attempt(&api, &base, FRIEND, PASSWORD).await, 429);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_counts() {
    each_backend("login_replicas", behind_proxy, |api| async move {
        api.add_users(&[("alice", Role::User, false)]).await;
        let (other, _guard) = api.replica(behind_proxy).await;
        let bases = [api.base.clone(), other];
        for n in 0..10 {
            let status = attempt(&api, &bases[n % 2], ATTACKER, "wrong").await;
            assert_eq!(status, 401, "guess {n}");
        }
        for base in &bases {
            assert_eq!(attempt(&api, base, ATTACKER, "wrong").await, 429, "{base}");
            assert_eq!(attempt(&api, base, FRIEND, PASSWORD).await, 200, "{base}");
        }
    })
    .await;
}
