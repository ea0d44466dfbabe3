//! The server's read API as the client sees it: typed bodies and one [`Api`] handle.
//!
//! Bodies are checked on arrival ([`UpdatePlan::check`]): a server that answers nonsense —
//! a malformed digest, steps that do not chain, a plan for another game — is refused before
//! anything is downloaded. Artifact URLs are rebuilt from digests, never followed as given.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

/// The `User-Agent` the client sends.
pub const USER_AGENT: &str = concat!("mist/", env!("CARGO_PKG_VERSION"));

/// A signed-in connection to a Mist server.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
    token: String,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server URL cannot be used.
    #[error("invalid server URL {url:?}: {detail}")]
    BadUrl {
        /// What was given.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// The connection failed or broke.
    #[error("cannot reach the server at {url}: {source}")]
    Network {
        /// The URL asked.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The token is missing, expired or revoked.
    #[error("the server refused the saved login (expired or revoked); run `mist login` again")]
    Unauthorized,
    /// Wrong user name or password.
    #[error("wrong user name or password")]
    LoginFailed,
    /// Too many attempts.
    #[error("too many attempts; try again in {0} s")]
    TooManyRequests(u64),
    /// The thing asked for does not exist (or is not visible to this user).
    #[error("{0} not found on the server (or not visible to you)")]
    NotFound(String),
    /// Any other error status.
    #[error("the server answered {status} to {url}: {message}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status.
        status: StatusCode,
        /// The server's `error` phrase, or the start of the body.
        message: String,
    },
    /// The answer does not make sense.
    #[error("the server answered nonsense to {url}: {detail}")]
    Nonsense {
        /// The URL asked.
        url: String,
        /// What is wrong.
        detail: String,
    },
}

/// `POST /v1/auth/login`'s answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// The bearer token.
    pub token: String,
    /// Epoch seconds.
    pub expires_at: i64,
    /// The user name.
    pub user: String,
    /// `user` or `admin`.
    pub role: String,
}

/// `GET /v1/games`.
#[derive(Debug, Clone, Deserialize)]
pub struct GameList {
    /// The games the user sees.
    pub games: Vec<GameSummary>,
}

/// A game in the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GameSummary {
    /// The game's name.
    pub name: String,
    /// The title to show.
    pub title: String,
    /// The newest Ready version.
    pub latest: Option<String>,
    /// The visible versions, oldest first.
    pub versions: Vec<VersionSummary>,
}

/// A version in the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionSummary {
    /// The version's name.
    pub name: String,
    /// `blake3:<hex>` of the build's tree.
    pub tree_digest: Option<String>,
}

/// `GET /v1/games/{game}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GameDetail {
    /// The game's name.
    pub name: String,
    /// The title to show.
    pub title: String,
    /// How to start it.
    pub launch: Option<LaunchInfo>,
    /// The newest Ready version.
    pub latest: Option<String>,
    /// The visible versions, oldest first.
    pub versions: Vec<VersionDetail>,
}

/// How the client starts a game.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchInfo {
    /// The program, relative to the install folder.
    pub executable: String,
    /// Arguments before the friend's own.
    #[serde(default)]
    pub args: Vec<String>,
}

/// One version in detail.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionDetail {
    /// The version's name.
    pub name: String,
    /// `blake3:<hex>` of the build's tree.
    pub tree_digest: Option<String>,
    /// The manifest artifact.
    pub manifest: Option<ArtifactLink>,
}

/// An artifact to download.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ArtifactLink {
    /// `blake3:<hex>` of its bytes.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// `GET /v1/games/{game}/update`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePlan {
    /// The game.
    pub game: String,
    /// The version the plan starts from.
    pub from: Option<String>,
    /// The version it ends at.
    pub to: String,
    /// `upToDate`, `full`, `skip` or `chain`.
    pub route: String,
    /// The downloads, in the order to apply them.
    pub steps: Vec<PlanStep>,
    /// The sum of the steps' sizes.
    pub total_bytes: u64,
    /// The target's manifest.
    pub manifest: Option<ArtifactLink>,
    /// The routes not taken.
    #[serde(default)]
    pub rejected: Vec<Rejected>,
}

/// A route the planner did not take.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    /// The route.
    pub route: String,
    /// Its cost, if it was possible.
    pub total_bytes: Option<u64>,
}

/// One download of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    /// A pack or a tree delta.
    pub kind: StepKind,
    /// The version a delta applies to.
    pub from: Option<String>,
    /// The version the step makes.
    pub to: String,
    /// The artifact's digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// What a step downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    /// A whole version.
    Pack,
    /// A tree delta from the previous version.
    Delta,
}

/// Whether `digest` is `blake3:` and 64 lowercase hex digits, the only form the server uses.
pub fn is_digest(digest: &str) -> bool {
    digest.strip_prefix("blake3:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl UpdatePlan {
    /// Checks that the plan is one the client can follow from `installed` (`None` for a
    /// fresh install) for `game`: digests well formed, steps chained from `installed` to
    /// `to`, a pack only as the single step, and the total the sum of the sizes.
    pub fn check(&self, game: &str, installed: Option<&str>) -> Result<(), String> {
        if self.game != game {
            return Err(format!("a plan for {:?} instead of {game:?}", self.game));
        }
        if self.from.as_deref() != installed {
            return Err(format!(
                "a plan from {:?} instead of {:?}",
                self.from, installed
            ));
        }
        if self.route == "upToDate" {
            return if self.steps.is_empty() && installed == Some(self.to.as_str()) {
                Ok(())
            } else {
                Err("an up-to-date plan with steps or another version".into())
            };
        }
        if self.steps.is_empty() {
            return Err(format!("a {:?} plan without steps", self.route));
        }
        let mut at = installed.map(str::to_owned);
        for step in &self.steps {
            if !is_digest(&step.digest) {
                return Err(format!("malformed digest {:?}", step.digest));
            }
            match step.kind {
                StepKind::Pack if self.steps.len() != 1 => {
                    return Err("a pack among other steps".into());
                }
                StepKind::Pack => {}
                StepKind::Delta if installed.is_none() => {
                    return Err("a delta for a fresh install".into());
                }
                StepKind::Delta if step.from != at => {
                    return Err(format!(
                        "a delta from {:?} where the install would be at {at:?}",
                        step.from
                    ));
                }
                StepKind::Delta => {}
            }
            at = Some(step.to.clone());
        }
        if at.as_deref() != Some(self.to.as_str()) {
            return Err(format!("steps ending at {at:?}, not at {:?}", self.to));
        }
        let sum: u64 = self.steps.iter().map(|step| step.size).sum();
        if sum != self.total_bytes {
            return Err(format!(
                "a total of {} bytes for steps of {sum}",
                self.total_bytes
            ));
        }
        match &self.manifest {
            Some(link) if is_digest(&link.digest) => Ok(()),
            Some(link) => Err(format!("malformed manifest digest {:?}", link.digest)),
            None => Err("no manifest for the target".into()),
        }
    }

    /// What a full download would cost, if the planner priced it.
    pub fn full_bytes(&self) -> Option<u64> {
        if self.route == "full" {
            return Some(self.total_bytes);
        }
        self.rejected
            .iter()
            .find(|rejected| rejected.route == "full")
            .and_then(|rejected| rejected.total_bytes)
    }
}

/// `POST /v1/games/{game}/versions/{version}/repair`'s body: damaged files with the
/// signatures of the local bytes.
#[derive(Debug, Clone, Serialize)]
pub struct RepairRequest {
    /// One entry per damaged file.
    pub files: Vec<RepairFileRequest>,
}

/// One damaged file of a [`RepairRequest`].
#[derive(Debug, Clone, Serialize)]
pub struct RepairFileRequest {
    /// The manifest path.
    pub path: String,
    /// `mist_games::repair::signature` of the local bytes, base64 (standard, padded).
    pub signature: String,
}

/// The repair endpoint's answer: one entry per requested file, in the request's order.
#[derive(Debug, Clone, Deserialize)]
pub struct RepairResponse {
    /// The repairs.
    pub files: Vec<RepairFile>,
}

/// The repair of one file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepairFile {
    /// The manifest path.
    pub path: String,
    /// `rsync` or `whole`.
    pub method: String,
    /// The true file's size.
    pub size: u64,
    /// The true file's BLAKE3 (hex).
    pub blake3: String,
    /// The repair delta, base64, for `mist_games::repair::apply_repair`.
    pub delta: String,
}

/// A reqwest client with the client's settings.
pub fn http_client() -> Result<reqwest::Client, ApiError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(15))
        // A stalled transfer fails and is retried instead of hanging forever.
        .read_timeout(Duration::from_secs(60))
        .build()
        .map_err(|source| ApiError::Network {
            url: String::new(),
            source,
        })
}

/// reqwest's builder panics unless a rustls crypto provider is installed (STACK.md).
fn install_crypto_provider() {
    // Err means one is installed already, which is all that matters.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Parses a server URL: `http` or `https`, with a host.
pub fn parse_server(server: &str) -> Result<Url, ApiError> {
    let bad = |detail: &str| ApiError::BadUrl {
        url: server.to_owned(),
        detail: detail.to_owned(),
    };
    let mut url = Url::parse(server).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad("expected http://host[:port] or https://host[:port]"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Logs in and returns the server's answer.
pub async fn login(server: &Url, user: &str, password: &str) -> Result<LoginResponse, ApiError> {
    let http = http_client()?;
    let url = join(server, "v1/auth/login")?;
    let body = serde_json::json!({ "user": user, "password": password });
    let response = http
        .post(url.clone())
        .json(&body)
        .send()
        .await
        .map_err(|source| network(&url, source))?;
    match response.status() {
        StatusCode::UNAUTHORIZED => return Err(ApiError::LoginFailed),
        StatusCode::TOO_MANY_REQUESTS => {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse().ok())
                .unwrap_or(60);
            return Err(ApiError::TooManyRequests(wait));
        }
        _ => {}
    }
    read_json(&url, response, "the login").await
}

impl Api {
    /// A handle for `server` with `token`.
    pub fn new(server: &str, token: String) -> Result<Api, ApiError> {
        Ok(Api {
            http: http_client()?,
            base: parse_server(server)?,
            token,
        })
    }

    /// The catalog.
    pub async fn games(&self) -> Result<GameList, ApiError> {
        self.get_json("v1/games", "the catalog").await
    }

    /// One game.
    pub async fn game(&self, game: &str) -> Result<GameDetail, ApiError> {
        let detail: GameDetail = self
            .get_json(&format!("v1/games/{game}"), &format!("game {game:?}"))
            .await?;
        if detail.name != game {
            return Err(ApiError::Nonsense {
                url: format!("/v1/games/{game}"),
                detail: format!("the details of {:?}", detail.name),
            });
        }
        Ok(detail)
    }

    /// The plan to go from `from` (`None`: nothing installed) to `to` (`None`: the newest).
    pub async fn plan(
        &self,
        game: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<UpdatePlan, ApiError> {
        let mut url = self.url(&format!("v1/games/{game}/update"))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(from) = from {
                query.append_pair("from", from);
            }
            if let Some(to) = to {
                query.append_pair("to", to);
            }
        }
        let what = match to {
            Some(to) => format!("version {to:?} of {game:?}"),
            None => format!("game {game:?}"),
        };
        let plan: UpdatePlan = self.send_json(url.clone(), &what).await?;
        plan.check(game, from)
            .map_err(|detail| ApiError::Nonsense {
                url: url.path().to_owned(),
                detail,
            })?;
        Ok(plan)
    }

    /// Asks for repair deltas of `request`'s files of `game` at `version`; returns the
    /// answer (checked to name the requested files in order) and the bytes of its body.
    pub async fn repair(
        &self,
        game: &str,
        version: &str,
        request: &RepairRequest,
    ) -> Result<(RepairResponse, u64), ApiError> {
        let url = self.url(&format!("v1/games/{game}/versions/{version}/repair"))?;
        let response = self
            .http
            .post(url.clone())
            .bearer_auth(&self.token)
            .json(request)
            .send()
            .await
            .map_err(|source| network(&url, source))?;
        let what = format!("version {version:?} of {game:?}");
        if !response.status().is_success() {
            return Err(status_error(&url, response, &what).await);
        }
        let body = response
            .bytes()
            .await
            .map_err(|source| network(&url, source))?;
        let nonsense = |detail: String| ApiError::Nonsense {
            url: url.path().to_owned(),
            detail,
        };
        let answer: RepairResponse =
            serde_json::from_slice(&body).map_err(|e| nonsense(e.to_string()))?;
        if answer.files.len() != request.files.len()
            || answer
                .files
                .iter()
                .zip(&request.files)
                .any(|(got, asked)| got.path != asked.path)
        {
            return Err(nonsense("repairs for other files than asked".to_owned()));
        }
        if let Some(file) = answer
            .files
            .iter()
            .find(|file| !matches!(file.method.as_str(), "rsync" | "whole"))
        {
            return Err(nonsense(format!(
                "unknown repair method {:?} for {:?}",
                file.method, file.path
            )));
        }
        Ok((answer, body.len() as u64))
    }

    /// A `GET` of an artifact, with extra headers; the caller reads the body.
    pub async fn artifact(
        &self,
        digest: &str,
        headers: &[(reqwest::header::HeaderName, String)],
    ) -> Result<reqwest::Response, ApiError> {
        let url = self.url(&format!("v1/artifacts/{digest}"))?;
        let mut request = self.http.get(url.clone()).bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await.map_err(|source| network(&url, source))
    }

    fn url(&self, path: &str) -> Result<Url, ApiError> {
        join(&self.base, path)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, ApiError> {
        self.send_json(self.url(path)?, what).await
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        url: Url,
        what: &str,
    ) -> Result<T, ApiError> {
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| network(&url, source))?;
        read_json(&url, response, what).await
    }
}

fn join(base: &Url, path: &str) -> Result<Url, ApiError> {
    base.join(path).map_err(|e| ApiError::BadUrl {
        url: base.to_string(),
        detail: e.to_string(),
    })
}

fn network(url: &Url, source: reqwest::Error) -> ApiError {
    ApiError::Network {
        url: url.to_string(),
        source: source.without_url(),
    }
}

/// Maps an error status to an [`ApiError`] (`what` names the thing asked for).
pub async fn status_error(url: &Url, response: reqwest::Response, what: &str) -> ApiError {
    let status = response.status();
    match status {
        StatusCode::UNAUTHORIZED => return ApiError::Unauthorized,
        StatusCode::NOT_FOUND => return ApiError::NotFound(what.to_owned()),
        _ => {}
    }
    let body = response.bytes().await.unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| value["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    ApiError::Status {
        url: url.path().to_owned(),
        status,
        message,
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    url: &Url,
    response: reqwest::Response,
    what: &str,
) -> Result<T, ApiError> {
    if !response.status().is_success() {
        return Err(status_error(url, response, what).await);
    }
    let body = response
        .bytes()
        .await
        .map_err(|source| network(url, source))?;
    serde_json::from_slice(&body).map_err(|e| ApiError::Nonsense {
        url: url.path().to_owned(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: StepKind, from: Option<&str>, to: &str) -> PlanStep {
        PlanStep {
            kind,
            from: from.map(str::to_owned),
            to: to.to_owned(),
            digest: format!("blake3:{}", "a".repeat(64)),
            size: 10,
        }
    }

    fn plan(from: Option<&str>, to: &str, route: &str, steps: Vec<PlanStep>) -> UpdatePlan {
        UpdatePlan {
            game: "g".into(),
            from: from.map(str::to_owned),
            to: to.into(),
            route: route.into(),
            total_bytes: steps.iter().map(|step| step.size).sum(),
            steps,
            manifest: Some(ArtifactLink {
                digest: format!("blake3:{}", "b".repeat(64)),
                size: 1,
            }),
            rejected: vec![],
        }
    }

    #[test]
    fn plans_are_checked_before_use() {
        let chain = plan(
            Some("1"),
            "3",
            "chain",
            vec![
                step(StepKind::Delta, Some("1"), "2"),
                step(StepKind::Delta, Some("2"), "3"),
            ],
        );
        assert_eq!(chain.check("g", Some("1")), Ok(()));
        assert!(chain.check("h", Some("1")).is_err(), "another game");
        assert!(chain.check("g", Some("2")).is_err(), "another start");
        let gap = plan(
            Some("1"),
            "3",
            "chain",
            vec![
                step(StepKind::Delta, Some("1"), "2"),
                step(StepKind::Delta, Some("1"), "3"),
            ],
        );
        assert!(
            gap.check("g", Some("1"))
                .unwrap_err()
                .contains("delta from")
        );
        let fresh = plan(None, "1", "full", vec![step(StepKind::Pack, None, "1")]);
        assert_eq!(fresh.check("g", None), Ok(()));
        let delta_fresh = plan(None, "1", "chain", vec![step(StepKind::Delta, None, "1")]);
        assert!(delta_fresh.check("g", None).is_err());
        let mut bad_digest = fresh.clone();
        bad_digest.steps[0].digest = "blake3:../../etc/passwd".into();
        assert!(bad_digest.check("g", None).unwrap_err().contains("digest"));
        let mut bad_total = fresh.clone();
        bad_total.total_bytes = 1;
        assert!(bad_total.check("g", None).is_err());
        let up_to_date = plan(Some("1"), "1", "upToDate", vec![]);
        assert_eq!(up_to_date.check("g", Some("1")), Ok(()));
    }

    #[test]
    fn digests_and_servers_are_validated() {
        assert!(is_digest(&format!("blake3:{}", "0f".repeat(32))));
        assert!(!is_digest(&format!("blake3:{}", "0F".repeat(32))));
        assert!(!is_digest("sha256:00"));
        assert_eq!(
            parse_server("http://127.0.0.1:8080").unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
        assert!(parse_server("ftp://host").is_err());
        assert!(parse_server("not a url").is_err());
    }
}
