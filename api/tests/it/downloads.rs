//! Downloads: whole, ranges, conditional requests, resuming.

use crate::common::*;

/// Request headers, then the expected status, `Content-Range` and bytes of the body.
type Case<'a> = (
    Vec<(&'a str, &'a str)>,
    u16,
    Option<&'a str>,
    std::ops::Range<usize>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_download_with_cache_headers() {
    each_backend(
        "whole_download_with_cache_headers",
        defaults,
        |api| async move {
            let w = world(&api).await;
            let alice = api.login("alice").await;
            let path = format!("/v1/artifacts/{}", w.open_packs[1]);
            let response = api.get(&path, Some(&alice), &[]).await;
            assert_eq!(response.status().as_u16(), 200);
            let headers = response.headers().clone();
            assert_eq!(
                headers["etag"].to_str().unwrap(),
                format!("\"{}\"", w.open_packs[1])
            );
            assert_eq!(
                headers["cache-control"],
                "private, max-age=31536000, immutable"
            );
            assert_eq!(headers["accept-ranges"], "bytes");
            assert_eq!(headers["content-length"], "10100");
            assert_eq!(headers["content-type"], "application/octet-stream");
            let body = response.bytes().await.unwrap();
            assert_eq!(body.as_ref(), pattern(10_100, 1).as_slice());
            assert_eq!(
                format!("blake3:{}", blake3::hash(&body).to_hex()),
                w.open_packs[1]
            );

            let head = api
                .client
                .head(api.url(&path))
                .bearer_auth(&alice)
                .send()
                .await
                .unwrap();
            assert_eq!(head.status().as_u16(), 200);
            assert_eq!(head.headers()["content-length"], "10100");
            assert!(head.bytes().await.unwrap().is_empty());
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_conditional_requests() {
    each_backend(
        "ranges_and_conditional_requests",
        defaults,
        |api| async move {
            let w = world(&api).await;
            let alice = api.login("alice").await;
            let digest = &w.open_packs[0];
            let path = format!("/v1/artifacts/{digest}");
            let etag = format!("\"{digest}\"");
            let full = pattern(10_000, 0);
            let cases: Vec<Case<'_>> = vec![
                (
                    vec![("range", "bytes=0-9")],
                    206,
                    Some("bytes 0-9/10000"),
                    0..10,
                ),
                (
                    vec![("range", "bytes=9990-")],
                    206,
                    Some("bytes 9990-9999/10000"),
                    9990..10_000,
                ),
                (
                    vec![("range", "bytes=-5")],
                    206,
                    Some("bytes 9995-9999/10000"),
                    9995..10_000,
                ),
                (
                    vec![("range", "bytes=5000-999999")],
                    206,
                    Some("bytes 5000-9999/10000"),
                    5000..10_000,
                ),
                (
                    vec![("range", "bytes=10000-")],
                    416,
                    Some("bytes */10000"),
                    0..0,
                ),
                (
                    vec![("range", "bytes=5-1")],
                    416,
                    Some("bytes */10000"),
                    0..0,
                ),
                (
                    vec![("range", "bytes=0-1,4-5")],
                    416,
                    Some("bytes */10000"),
                    0..0,
                ),
                (
                    vec![("range", "bytes=x-y")],
                    416,
                    Some("bytes */10000"),
                    0..0,
                ),
                (vec![("range", "pages=1-2")], 200, None, 0..10_000),
                (vec![("if-none-match", &etag)], 304, None, 0..0),
                (
                    vec![("if-none-match", "\"blake3:other\"")],
                    200,
                    None,
                    0..10_000,
                ),
                (
                    vec![("range", "bytes=100-199"), ("if-range", &etag)],
                    206,
                    Some("bytes 100-199/10000"),
                    100..200,
                ),
                (
                    vec![("range", "bytes=100-199"), ("if-range", "\"blake3:other\"")],
                    200,
                    None,
                    0..10_000,
                ),
                (
                    vec![
                        ("range", "bytes=100-199"),
                        ("if-range", "Wed, 21 Oct 2015 07:28:00 GMT"),
                    ],
                    200,
                    None,
                    0..10_000,
                ),
            ];
            for (headers, status, content_range, expected) in cases {
                let response = api.get(&path, Some(&alice), &headers).await;
                assert_eq!(response.status().as_u16(), status, "{headers:?}");
                assert_eq!(
                    response
                        .headers()
                        .get("content-range")
                        .map(|v| v.to_str().unwrap()),
                    content_range,
                    "{headers:?}"
                );
                if status != 416 {
                    assert_eq!(
                        response.headers()["etag"].to_str().unwrap(),
                        etag,
                        "{headers:?}"
                    );
                    assert!(response.headers().contains_key("cache-control"));
                }
                let body = response.bytes().await.unwrap();
                if status != 416 {
                    assert_eq!(body.as_ref(), &full[expected], "{headers:?}");
                }
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_download_resumes_with_if_range() {
    each_backend("interrupted_download_resumes", defaults, |api| async move {
        let w = world(&api).await;
        let alice = api.login("alice").await;
        let digest = &w.open_packs[2];
        let path = format!("/v1/artifacts/{digest}");
        // The first connection dies after some bytes: read one chunk and drop it.
        let mut response = api.get(&path, Some(&alice), &[]).await;
        let mut have = response.chunk().await.unwrap().unwrap().to_vec();
        have.truncate(4321.min(have.len()));
        drop(response);
        let range = format!("bytes={}-", have.len());
        let etag = format!("\"{digest}\"");
        let rest = api
            .get(
                &path,
                Some(&alice),
                &[("range", &range), ("if-range", &etag)],
            )
            .await;
        assert_eq!(rest.status().as_u16(), 206);
        have.extend_from_slice(&rest.bytes().await.unwrap());
        assert_eq!(format!("blake3:{}", blake3::hash(&have).to_hex()), *digest);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_artifact_missing_from_the_store_is_unavailable() {
    each_backend(
        "missing_artifact_is_unavailable",
        defaults,
        |api| async move {
            let w = world(&api).await;
            let alice = api.login("alice").await;
            let hex = w.open_packs[0].strip_prefix("blake3:").unwrap();
            std::fs::remove_file(artifacts_dir(api.nas.path()).join(&hex[..2]).join(hex)).unwrap();
            let (status, _) = api
                .get_json(&format!("/v1/artifacts/{}", w.open_packs[0]), Some(&alice))
                .await;
            assert_eq!(status, 503);
            // An unrecorded, well-formed address is simply not found.
            let (status, _) = api
                .get_json(
                    &format!("/v1/artifacts/blake3:{}", "a".repeat(64)),
                    Some(&alice),
                )
                .await;
            assert_eq!(status, 404);
        },
    )
    .await;
}
