//! Resumable, verified downloads of content-addressed artifacts.
//!
//! [`Downloader::fetch`] writes `GET /v1/artifacts/{digest}` into
//! `<downloads>/<digest>.part`, appending: bytes on disk survive a kill, and the next run asks
//! for the rest with `Range` and `If-Range` (an artifact's ETag is its quoted digest, so a
//! changed artifact can never be glued onto an old prefix: the server answers with the whole
//! body instead). Network errors and 5xx answers are retried with exponential backoff while
//! the transfer makes progress. When the file is complete its BLAKE3 is compared with the
//! digest; a mismatch deletes it and downloads it once more, then fails. Only then is it
//! renamed to `<downloads>/<digest>`, so a file under that name is always the artifact.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, RANGE};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::api::{Api, ApiError, status_error};
use crate::progress::ArtifactProgress;
use mist_wire::digest::is_digest;

/// How downloads behave.
#[derive(Debug, Clone, Copy)]
pub struct DownloadOptions {
    /// Artifacts downloaded at once.
    pub jobs: usize,
    /// The most bytes per second over all downloads; `None` for no limit.
    pub limit_rate: Option<u64>,
    /// Failed attempts in a row (without a byte of progress) before giving up.
    pub retries: u32,
    /// The wait after the first failure; it doubles after each further one, up to 30 s.
    pub first_backoff: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            jobs: 2,
            limit_rate: None,
            retries: 6,
            first_backoff: Duration::from_millis(250),
        }
    }
}

/// Fetches artifacts into a downloads folder. Cheap to clone; clones share the parallelism
/// and rate limits and the byte counter.
#[derive(Clone)]
pub struct Downloader {
    api: Api,
    dir: PathBuf,
    options: DownloadOptions,
    slots: Arc<Semaphore>,
    limiter: Option<Arc<RateLimiter>>,
    received: Arc<AtomicU64>,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server refused or could not be asked.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The digest is not `blake3:<64 hex>`.
    #[error("refusing to download {0:?}: not a content digest")]
    BadDigest(String),
    /// The bytes never matched the digest.
    #[error(
        "digest mismatch: artifact {digest} arrived corrupt twice (the second time its digest \
         was {actual}); the server's copy may be damaged"
    )]
    Corrupt {
        /// The digest wanted.
        digest: String,
        /// The digest of the bytes received the second time.
        actual: String,
    },
    /// The server kept failing.
    #[error("downloading {digest} failed {attempts} times in a row, last: {last}")]
    GaveUp {
        /// The artifact.
        digest: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The server sent something that cannot be this artifact.
    #[error("the server sent nonsense for {digest}: {detail}")]
    Nonsense {
        /// The artifact.
        digest: String,
        /// What was wrong.
        detail: String,
    },
    /// The local disk failed.
    #[error("failed to {action} {}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause, already in the message.
        error: std::io::Error,
    },
}

/// The outcome of one request.
enum Attempt {
    /// The body ended; look at the file again.
    Done,
    /// A failure worth retrying; `progressed` if bytes were written first.
    Retry { reason: String, progressed: bool },
}

impl Downloader {
    /// A downloader into `dir` (created when needed).
    pub fn new(api: Api, dir: PathBuf, options: DownloadOptions) -> Downloader {
        Downloader {
            api,
            dir,
            slots: Arc::new(Semaphore::new(options.jobs.max(1))),
            limiter: options
                .limit_rate
                .filter(|rate| *rate > 0)
                .map(|rate| Arc::new(RateLimiter::new(rate))),
            options,
            received: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes received over the network so far, by every clone.
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Where a verified artifact is kept.
    pub fn path_of(&self, digest: &str) -> PathBuf {
        self.dir.join(digest)
    }

    /// Where an artifact's partial download is kept.
    pub fn part_path_of(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.part"))
    }

    /// Removes an artifact that is no longer needed, complete or partial.
    pub fn discard(&self, digest: &str) -> Result<(), DownloadError> {
        for path in [self.path_of(digest), self.part_path_of(digest)] {
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(&path, "remove")(error));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Downloads the artifact `digest` of `size` bytes (or finds it downloaded) and returns
    /// the path of the verified file.
    pub async fn fetch(
        &self,
        digest: &str,
        size: u64,
        progress: &ArtifactProgress,
    ) -> Result<PathBuf, DownloadError> {
        if !is_digest(digest) {
            return Err(DownloadError::BadDigest(digest.to_owned()));
        }
        let _slot = self.slots.acquire().await.expect("never closed");
        let done = self.path_of(digest);
        if std::fs::metadata(&done).is_ok_and(|metadata| metadata.len() == size) {
            progress.verified();
            return Ok(done);
        }
        crate::platform::create_private_dir(&self.dir).map_err(io_error(&self.dir, "create"))?;
        let part = self.part_path_of(digest);
        let mut actual = String::new();
        for _ in 0..2 {
            self.download_part(digest, size, &part, progress).await?;
            let path = part.clone();
            actual = tokio::task::spawn_blocking(move || hash_file(&path))
                .await
                .expect("hashing does not panic")
                .map_err(io_error(&part, "hash"))?;
            if actual == digest {
                std::fs::rename(&part, &done).map_err(io_error(&part, "rename"))?;
                mist_platform::fs::sync_dir(&self.dir).map_err(io_error(&self.dir, "sync"))?;
                progress.verified();
                return Ok(done);
            }
            std::fs::remove_file(&part).map_err(io_error(&part, "remove"))?;
        }
        Err(DownloadError::Corrupt {
            digest: digest.to_owned(),
            actual,
        })
    }

    /// Brings `part` to `size` bytes, resuming from what is on disk.
    async fn download_part(
        &self,
        digest: &str,
        size: u64,
        part: &Path,
        progress: &ArtifactProgress,
    ) -> Result<(), DownloadError> {
        let mut failures = 0;
        loop {
            let have = match std::fs::metadata(part) {
                Ok(metadata) => metadata.len(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
                Err(error) => return Err(io_error(part, "inspect")(error)),
            };
            if have > size {
                // Not a prefix of this artifact: start over.
                truncate(part)?;
                continue;
            }
            progress.at(have);
            if have == size {
                return Ok(());
            }
            match self.attempt(digest, size, part, have, progress).await? {
                Attempt::Done => {}
                Attempt::Retry { reason, progressed } => {
                    if progressed {
                        failures = 0;
                    }
                    failures += 1;
                    if failures > self.options.retries {
                        return Err(DownloadError::GaveUp {
                            digest: digest.to_owned(),
                            attempts: failures,
                            last: reason,
                        });
                    }
                    tokio::time::sleep(backoff(self.options.first_backoff, failures)).await;
                }
            }
        }
    }

    /// One request for the bytes from `have` on, appended to `part`.
    async fn attempt(
        &self,
        digest: &str,
        size: u64,
        part: &Path,
        have: u64,
        progress: &ArtifactProgress,
    ) -> Result<Attempt, DownloadError> {
        let etag = format!("\"{digest}\"");
        let headers = if have > 0 {
            vec![(RANGE, format!("bytes={have}-")), (IF_RANGE, etag.clone())]
        } else {
            Vec::new()
        };
        let response = match self.api.artifact(digest, &headers).await {
            Ok(response) => response,
            Err(ApiError::Network { source, .. }) => {
                return Ok(Attempt::Retry {
                    reason: error_chain(&source),
                    progressed: false,
                });
            }
            Err(error) => return Err(error.into()),
        };
        let start = match body_start(digest, size, part, have, &response)? {
            BodyStart::At(start) => start,
            BodyStart::Retry(attempt) => return Ok(attempt),
            BodyStart::Refused => {
                let url = reqwest::Url::parse("http://server/v1/artifacts/")
                    .and_then(|base| base.join(digest))
                    .expect("a valid path");
                let what = format!("artifact {digest}");
                return Err(status_error(&url, response, &what).await.into());
            }
        };
        if let Some(tag) = response.headers().get(ETAG)
            && tag.as_bytes() != etag.as_bytes()
        {
            return Err(nonsense(digest, format!("ETag {tag:?}, expected {etag}")));
        }
        if let Some(length) = response.content_length()
            && start + length != size
        {
            return Err(nonsense(
                digest,
                format!("{length} bytes from byte {start} for an artifact of {size}"),
            ));
        }
        self.append_body(digest, size, part, start, response, progress)
            .await
    }

    /// Writes the body of `response`, which starts at byte `start` of the artifact, into
    /// `part` from that byte on.
    async fn append_body(
        &self,
        digest: &str,
        size: u64,
        part: &Path,
        start: u64,
        response: reqwest::Response,
        progress: &ArtifactProgress,
    ) -> Result<Attempt, DownloadError> {
        let mut file = if start == 0 {
            tokio::fs::File::create(part).await
        } else {
            tokio::fs::OpenOptions::new().append(true).open(part).await
        }
        .map_err(io_error(part, "open"))?;
        let mut written = start;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) => {
                    file.flush().await.map_err(io_error(part, "write"))?;
                    return Ok(Attempt::Retry {
                        reason: error_chain(&error),
                        progressed: written > start,
                    });
                }
            };
            let n_bytes = chunk.len() as u64;
            if written + n_bytes > size {
                return Err(nonsense(digest, format!("more than {size} bytes")));
            }
            if let Some(limiter) = &self.limiter {
                limiter.take(n_bytes).await;
            }
            file.write_all(&chunk)
                .await
                .map_err(io_error(part, "write"))?;
            written += n_bytes;
            self.received.fetch_add(n_bytes, Ordering::Relaxed);
            progress.at(written);
        }
        file.flush().await.map_err(io_error(part, "write"))?;
        if written < size {
            return Ok(Attempt::Retry {
                reason: format!("the body ended at byte {written} of {size}"),
                progressed: written > start,
            });
        }
        Ok(Attempt::Done)
    }
}

/// What an answer's status says about its body.
enum BodyStart {
    /// The body is the artifact from this byte on.
    At(u64),
    /// No body to keep; try again.
    Retry(Attempt),
    /// The server refused for good; its answer says why.
    Refused,
}

/// Where the body of `response` starts in the artifact, for a request from byte `have` of
/// `size` bytes already in `part`.
fn body_start(
    digest: &str,
    size: u64,
    part: &Path,
    have: u64,
    response: &reqwest::Response,
) -> Result<BodyStart, DownloadError> {
    match response.status() {
        StatusCode::OK => Ok(BodyStart::At(0)),
        StatusCode::PARTIAL_CONTENT => {
            let content_range = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            match parse_content_range(content_range) {
                Some((start, total)) if start == have && total == size => Ok(BodyStart::At(have)),
                _ => Err(nonsense(
                    digest,
                    format!(
                        "Content-Range {content_range:?} for a request from byte {have} of {size}"
                    ),
                )),
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // The server's copy is shorter than ours: ours is not a prefix of it.
            truncate(part)?;
            Ok(BodyStart::Retry(Attempt::Retry {
                reason: "416 Range Not Satisfiable".into(),
                progressed: false,
            }))
        }
        status if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
            Ok(BodyStart::Retry(Attempt::Retry {
                reason: format!("the server answered {status}"),
                progressed: false,
            }))
        }
        _ => Ok(BodyStart::Refused),
    }
}

/// The error for an answer that cannot be the artifact `digest`.
fn nonsense(digest: &str, detail: String) -> DownloadError {
    DownloadError::Nonsense {
        digest: digest.to_owned(),
        detail,
    }
}

/// Spreads bytes over time: every caller waits its turn at `bytes_per_second`.
struct RateLimiter {
    bytes_per_second: u64,
    next_free: std::sync::Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    fn new(bytes_per_second: u64) -> RateLimiter {
        RateLimiter {
            bytes_per_second,
            next_free: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    async fn take(&self, n_bytes: u64) {
        let until = {
            let mut next_free = self.next_free.lock().expect("limiter lock");
            let start = (*next_free).max(tokio::time::Instant::now());
            *next_free =
                start + Duration::from_secs_f64(n_bytes as f64 / self.bytes_per_second as f64);
            *next_free
        };
        tokio::time::sleep_until(until).await;
    }
}

/// The wait before retry number `failures` (1-based).
fn backoff(first: Duration, failures: u32) -> Duration {
    first
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(Duration::from_secs(30))
}

/// `bytes a-b/total` → `(a, total)`.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.parse().ok()?, total.parse().ok()?))
}

/// `blake3:<hex>` of a file.
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap_rayon(path)?;
    Ok(format!("blake3:{}", hasher.finalize().to_hex()))
}

/// Why a text is not a rate for `--limit-rate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// The number ends with a letter that is not a unit.
    #[error("unknown unit {unit:?} in {text:?} (use K, M or G)")]
    UnknownUnit {
        /// The letter.
        unit: char,
        /// The whole text.
        text: String,
    },
    /// The text is not a number with an optional unit.
    #[error("{0:?} is not a rate like 500K, 2M or 1G")]
    NotARate(String),
    /// The rate is below one byte per second, or not finite.
    #[error("{0:?} is not a positive rate")]
    NotPositive(String),
}

/// Parses a rate like `500K`, `2M`, `1.5G` or `1000` (bytes per second, binary multiples).
pub fn parse_rate(text: &str) -> Result<u64, RateError> {
    let text = text.trim();
    let (number, multiplier) = match text.char_indices().last() {
        Some((idx, unit)) if unit.is_ascii_alphabetic() => {
            let multiplier: u64 = match unit.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'B' => 1,
                _ => {
                    return Err(RateError::UnknownUnit {
                        unit,
                        text: text.to_owned(),
                    });
                }
            };
            (&text[..idx], multiplier)
        }
        _ => (text, 1),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| RateError::NotARate(text.to_owned()))?;
    let rate = number * multiplier as f64;
    if !rate.is_finite() || rate < 1.0 {
        return Err(RateError::NotPositive(text.to_owned()));
    }
    Ok(rate as u64)
}

fn truncate(part: &Path) -> Result<(), DownloadError> {
    std::fs::File::create(part)
        .map(drop)
        .map_err(io_error(part, "truncate"))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> DownloadError {
    let path = path.to_owned();
    move |error| DownloadError::Io {
        path,
        action,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_like_curl() {
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("500K"), Ok(500 << 10));
        assert_eq!(parse_rate("2m"), Ok(2 << 20));
        assert_eq!(parse_rate("1.5G"), Ok(3 << 29));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5T").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let first = Duration::from_millis(250);
        assert_eq!(backoff(first, 1), first);
        assert_eq!(backoff(first, 3), Duration::from_secs(1));
        assert_eq!(backoff(first, 40), Duration::from_secs(30));
    }

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 10-99/100"), Some((10, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
