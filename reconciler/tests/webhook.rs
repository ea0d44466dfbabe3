//! The webhook: known-answer HMAC vectors, every way a delivery can be wrong, and the router
//! end to end without a port.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use mist_reconciler::triggers::{self, Requests};
use mist_reconciler::webhook::{
    self, GITEA_HEADER, GITHUB_HEADER, MAX_BODY, SignatureError, WEBHOOK_PATH, WebhookSecret,
};
use tower::ServiceExt;

/// GitHub's documented example ("Validating webhook deliveries").
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &str = "Hello, World!";
const GITHUB_SIGNATURE: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

fn secret(secret: &str) -> WebhookSecret {
    WebhookSecret::new(secret).unwrap()
}

#[test]
fn known_answer_vectors() {
    let cases = [
        (GITHUB_SECRET, GITHUB_BODY, GITHUB_SIGNATURE),
        // RFC 4231, test case 2.
        (
            "Jefe",
            "what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
    ];
    for (key, body, want) in cases {
        assert_eq!(webhook::signature_hex(&secret(key), body.as_bytes()), want);
        let github = format!("sha256={want}");
        webhook::verify_github(&secret(key), body.as_bytes(), github.as_bytes()).unwrap();
        webhook::verify_gitea(&secret(key), body.as_bytes(), want.as_bytes()).unwrap();
        // Hex case does not matter.
        let upper = want.to_ascii_uppercase();
        webhook::verify_gitea(&secret(key), body.as_bytes(), upper.as_bytes()).unwrap();
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_str(value).unwrap());
    }
    headers
}

/// (name, secret, body, headers, expected result).
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Vec<(&'static str, &'a str)>,
    Result<(), SignatureError>,
);

#[test]
fn verification_table() {
    let good_github = format!("sha256={GITHUB_SIGNATURE}");
    let mut flipped = GITHUB_SIGNATURE.to_string();
    flipped.replace_range(0..1, "8");
    let flipped_github = format!("sha256={flipped}");
    let short = &GITHUB_SIGNATURE[..62];
    let not_hex = "zz".repeat(32);
    use SignatureError::{Malformed, Mismatch, Missing};
    let github = "X-Hub-Signature-256";
    let gitea = "X-Gitea-Signature";
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("github ok", GITHUB_SECRET, GITHUB_BODY, vec![(GITHUB_HEADER, &good_github)], Ok(())),
        ("gitea ok", GITHUB_SECRET, GITHUB_BODY, vec![(GITEA_HEADER, GITHUB_SIGNATURE)], Ok(())),
        ("both ok", GITHUB_SECRET, GITHUB_BODY, vec![(GITHUB_HEADER, &good_github), (GITEA_HEADER, GITHUB_SIGNATURE)], Ok(())),
        ("tampered body", GITHUB_SECRET, "Hello, World?", vec![(GITHUB_HEADER, &good_github)], Err(Mismatch(github))),
        ("empty body", GITHUB_SECRET, "", vec![(GITEA_HEADER, GITHUB_SIGNATURE)], Err(Mismatch(gitea))),
        ("tampered signature", GITHUB_SECRET, GITHUB_BODY, vec![(GITHUB_HEADER, &flipped_github)], Err(Mismatch(github))),
        ("wrong secret", "It's a Secret to Nobody", GITHUB_BODY, vec![(GITHUB_HEADER, &good_github)], Err(Mismatch(github))),
        ("wrong secret, gitea", "x", GITHUB_BODY, vec![(GITEA_HEADER, GITHUB_SIGNATURE)], Err(Mismatch(gitea))),
        ("missing header", GITHUB_SECRET, GITHUB_BODY, vec![], Err(Missing)),
        ("only the old sha1 header", GITHUB_SECRET, GITHUB_BODY, vec![("x-hub-signature", "sha1=0000")], Err(Missing)),
        ("no sha256= prefix", GITHUB_SECRET, GITHUB_BODY, vec![(GITHUB_HEADER, GITHUB_SIGNATURE)], Err(Malformed(github))),
        ("sha1= prefix", GITHUB_SECRET, GITHUB_BODY, vec![(GITHUB_HEADER, "sha1=0123")], Err(Malformed(github))),
        ("short signature", GITHUB_SECRET, GITHUB_BODY, vec![(GITEA_HEADER, short)], Err(Malformed(gitea))),
        ("not hex", GITHUB_SECRET, GITHUB_BODY, vec![(GITEA_HEADER, &not_hex)], Err(Malformed(gitea))),
        ("empty header", GITHUB_SECRET, GITHUB_BODY, vec![(GITEA_HEADER, "")], Err(Malformed(gitea))),
        ("one good, one bad", GITHUB_SECRET, GITHUB_BODY, vec![(GITHUB_HEADER, &good_github), (GITEA_HEADER, &flipped)], Err(Mismatch(gitea))),
        ("one bad, one good", GITHUB_SECRET, GITHUB_BODY, vec![(GITHUB_HEADER, &flipped_github), (GITEA_HEADER, GITHUB_SIGNATURE)], Err(Mismatch(github))),
        ("header twice", GITHUB_SECRET, GITHUB_BODY, vec![(GITHUB_HEADER, &good_github), (GITHUB_HEADER, &good_github)], Err(Malformed(github))),
    ];
    for (name, key, body, pairs, want) in cases {
        let got = webhook::verify(&secret(key), &headers(&pairs), body.as_bytes());
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn secret_is_never_shown_and_never_empty() {
    let shown = format!("{:?}", secret("hunter2-secret"));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(WebhookSecret::new("").is_err());
}

#[test]
fn handle_triggers_only_when_verified() {
    let key = secret(GITHUB_SECRET);
    let (trigger, mut requests) = triggers::channel();
    let good = headers(&[(GITHUB_HEADER, &format!("sha256={GITHUB_SIGNATURE}"))]);
    assert_eq!(
        webhook::handle(&key, &trigger, &good, b"Hello, World?"),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(requests.try_take(), None);
    assert_eq!(
        webhook::handle(&key, &trigger, &HeaderMap::new(), GITHUB_BODY.as_bytes()),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(requests.try_take(), None);
    assert_eq!(
        webhook::handle(&key, &trigger, &good, GITHUB_BODY.as_bytes()),
        StatusCode::ACCEPTED
    );
    assert_eq!(requests.try_take().unwrap().to_string(), "webhook");
}

async fn post(router: &axum::Router, pairs: &[(&'static str, &str)], body: Vec<u8>) -> StatusCode {
    let mut request = Request::post(WEBHOOK_PATH);
    for (name, value) in pairs {
        request = request.header(*name, *value);
    }
    router
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap()
        .status()
}

fn taken(requests: &mut Requests) -> Option<String> {
    requests.try_take().map(|r| r.to_string())
}

#[tokio::test]
async fn router_end_to_end() {
    let key = secret("router secret");
    let (trigger, mut requests) = triggers::channel();
    let router = webhook::webhook_router(key.clone(), trigger);

    // A realistic push payload: the router does not look inside it.
    let body = br#"{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"}"#;
    let github = format!("sha256={}", webhook::signature_hex(&key, body));
    let gitea = webhook::signature_hex(&key, body);
    let status = post(&router, &[(GITHUB_HEADER, &github)], body.to_vec()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(taken(&mut requests).as_deref(), Some("webhook"));
    let status = post(&router, &[(GITEA_HEADER, &gitea)], body.to_vec()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(taken(&mut requests).as_deref(), Some("webhook"));

    // Bad or missing signatures: 401 and no run.
    let status = post(&router, &[(GITHUB_HEADER, &github)], b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let status = post(&router, &[], body.to_vec()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(taken(&mut requests), None);

    // Only POST.
    let response = router
        .clone()
        .oneshot(Request::get(WEBHOOK_PATH).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // The body limit, even for a correctly signed body.
    let at_limit = vec![b'x'; MAX_BODY];
    let signed = webhook::signature_hex(&key, &at_limit);
    let status = post(&router, &[(GITEA_HEADER, &signed)], at_limit).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(taken(&mut requests).as_deref(), Some("webhook"));
    let over = vec![b'x'; MAX_BODY + 1];
    let signed = webhook::signature_hex(&key, &over);
    let status = post(&router, &[(GITEA_HEADER, &signed)], over).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(taken(&mut requests), None);
}
