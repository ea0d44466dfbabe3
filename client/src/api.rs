//! The server's read API as the client sees it: one [`Api`] handle over the bodies of
//! `mist_wire`.
//!
//! Bodies are checked on arrival ([`UpdatePlan::check`]): a server that answers nonsense —
//! a malformed digest, steps that do not chain, a plan for another game — is refused before
//! anything is downloaded. Artifact URLs are rebuilt from digests, never followed as given.

use std::time::Duration;

use mist_wire::auth::{LoginRequest, LoginResponse};
use mist_wire::catalog::{GameDetail, GameList};
use mist_wire::error::ErrorBody;
use mist_wire::repair::{RepairRequest, RepairResponse};
use mist_wire::update::UpdatePlan;
use reqwest::{StatusCode, Url};

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
    #[error("cannot reach the server at {url}{hint}")]
    Network {
        /// The URL asked.
        url: String,
        /// What to try, in parentheses, from [`connection_hint`]; or empty.
        hint: &'static str,
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
            hint: "",
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
    if let Some(hint) = url_hint(server) {
        return Err(bad(&hint));
    }
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
    let body = LoginRequest {
        user: user.to_owned(),
        password: password.to_owned(),
    };
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
            .map_err(|invalid| ApiError::Nonsense {
                url: url.path().to_owned(),
                detail: invalid.to_string(),
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
        hint: connection_hint(&source),
        source: source.without_url(),
    }
}

/// What to try when a connection to a server failed, in parentheses with a leading space;
/// empty when there is nothing obvious (a connection that broke midway).
pub fn connection_hint(error: &reqwest::Error) -> &'static str {
    let mut causes = String::new();
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = cause {
        causes.push_str(&current.to_string().to_ascii_lowercase());
        causes.push(' ');
        cause = current.source();
    }
    if causes.contains("refused") {
        " (is the server running, and is the port right?)"
    } else if causes.contains("dns") || causes.contains("resolve") || causes.contains("lookup") {
        " (is the host name right?)"
    } else if causes.contains("certificate") || causes.contains("tls") || causes.contains("ssl") {
        " (does the server speak https? for a plain-HTTP server give the URL with http://)"
    } else if error.is_timeout() || causes.contains("timed out") {
        " (is the server running and reachable from here, past any firewall?)"
    } else if error.is_connect() {
        " (is the server running, and is the URL right?)"
    } else {
        ""
    }
}

/// What to try when `text` was meant as a server URL but is not one: the scheme it lacks.
pub fn url_hint(text: &str) -> Option<String> {
    if text.contains("://") {
        return None;
    }
    Some(format!(
        "add http:// or https:// in front, e.g. http://{}",
        text.trim_start_matches('/')
    ))
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
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|body| body.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
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
    use mist_wire::catalog::ArtifactLink;
    use mist_wire::digest::is_digest;
    use mist_wire::update::{PlanStep, Route, StepKind};

    use super::*;

    fn step(kind: StepKind, from: Option<&str>, to: &str) -> PlanStep {
        PlanStep {
            kind,
            from: from.map(str::to_owned),
            to: to.to_owned(),
            digest: format!("blake3:{}", "a".repeat(64)),
            size: 10,
            url: String::new(),
        }
    }

    fn plan(from: Option<&str>, to: &str, route: Route, steps: Vec<PlanStep>) -> UpdatePlan {
        UpdatePlan {
            game: "g".into(),
            from: from.map(str::to_owned),
            to: to.into(),
            route,
            total_bytes: steps.iter().map(|step| step.size).sum(),
            steps,
            manifest: Some(ArtifactLink {
                digest: format!("blake3:{}", "b".repeat(64)),
                size: 1,
                url: String::new(),
            }),
            rejected: vec![],
        }
    }

    #[test]
    fn plans_are_checked_before_use() {
        let chain = plan(
            Some("1"),
            "3",
            Route::Chain,
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
            Route::Chain,
            vec![
                step(StepKind::Delta, Some("1"), "2"),
                step(StepKind::Delta, Some("1"), "3"),
            ],
        );
        assert!(
            gap.check("g", Some("1"))
                .unwrap_err()
                .to_string()
                .contains("delta from")
        );
        let fresh = plan(
            None,
            "1",
            Route::Full,
            vec![step(StepKind::Pack, None, "1")],
        );
        assert_eq!(fresh.check("g", None), Ok(()));
        let delta_fresh = plan(
            None,
            "1",
            Route::Chain,
            vec![step(StepKind::Delta, None, "1")],
        );
        assert!(delta_fresh.check("g", None).is_err());
        let mut bad_digest = fresh.clone();
        bad_digest.steps[0].digest = "blake3:../../etc/passwd".into();
        assert!(
            bad_digest
                .check("g", None)
                .unwrap_err()
                .to_string()
                .contains("digest")
        );
        let mut bad_total = fresh.clone();
        bad_total.total_bytes = 1;
        assert!(bad_total.check("g", None).is_err());
        let up_to_date = plan(Some("1"), "1", Route::UpToDate, vec![]);
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
