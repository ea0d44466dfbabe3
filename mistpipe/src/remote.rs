//! Talking to a Mist server's read API (docs/api.md) for `status` and `plan`: where the
//! server is, the bearer token (from a file, `MIST_TOKEN`, a login with `--user`, or the
//! login `mist login` saved for the same server), and `GET`s that turn every way a request
//! can go wrong into a sentence an admin can act on.
//!
//! The token and the password are never printed, logged or put into an error: the
//! `Authorization` header is marked sensitive, and no message quotes a request body.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use mist_wire::auth::{LoginRequest, LoginResponse, Role};
use mist_wire::error::ErrorBody;
use reqwest::StatusCode;
use reqwest::Url;
use reqwest::blocking::{Client, Response};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::de::DeserializeOwned;

/// The environment variable that may hold the token.
pub(crate) const TOKEN_ENV: &str = "MIST_TOKEN";

/// How long to wait for a connection, then for a whole answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest answer read: the catalog of a circle of friends is far smaller.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Where the server is and how to sign in; shared by every command that asks a server.
#[derive(clap::Args)]
pub(crate) struct ServerArgs {
    /// The server's base URL, e.g. `https://mist.example.org` or `http://127.0.0.1:8080`
    /// (default: the server of `mist login`).
    #[arg(long, env = "MIST_SERVER", value_name = "URL")]
    server: Option<String>,
    /// A file holding a bearer token (from `POST /v1/auth/login`); surrounding whitespace is
    /// ignored. Without this or --user, the token comes from the MIST_TOKEN variable, else
    /// from the login `mist login` saved for the same server.
    #[arg(long, value_name = "PATH", conflicts_with = "user")]
    token_file: Option<PathBuf>,
    /// Log in as this user: the password is asked for without echo (or read with
    /// --password-stdin).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Read --user's password from the first line of standard input.
    #[arg(long, requires = "user")]
    password_stdin: bool,
}

/// A signed-in connection to one server.
pub(crate) struct Session {
    client: Client,
    base: Url,
    authorization: HeaderValue,
    /// Who the server says the caller is, when known (after a login).
    pub(crate) role: Option<Role>,
}

impl Session {
    /// Checks the URL, finds the token (logging in if asked) and returns the session. Nothing
    /// but the login is sent yet.
    pub(crate) fn open(args: &ServerArgs) -> anyhow::Result<Session> {
        // reqwest's rustls needs a process-wide crypto provider; only the first call installs
        // it, and a second (from another thread) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let saved = saved_login()?;
        let server = match (&args.server, &saved) {
            (Some(server), _) => server.clone(),
            (None, Some(saved)) => saved.server.clone(),
            (None, None) => bail!(
                "no server given: pass --server URL (e.g. --server http://127.0.0.1:8080), or log \
                 in once with `mist login --server URL`"
            ),
        };
        let base = parse_base_url(&server)?;
        let client = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // A redirect would carry the token somewhere else; say where instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mistpipe/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        let (token, role) = match (&args.token_file, &args.user) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the token file {}", path.display()))?;
                (
                    checked_token(text.trim(), &path.display().to_string())?,
                    None,
                )
            }
            (None, Some(user)) => {
                let (token, role) = login(&client, &base, user, args.password_stdin)?;
                (token, Some(role))
            }
            (None, None) => match std::env::var(TOKEN_ENV) {
                Ok(text) => (checked_token(text.trim(), TOKEN_ENV)?, None),
                Err(_) => (saved_token(saved.as_ref(), &base)?, None),
            },
        };
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow!("the token cannot be sent in an HTTP header"))?;
        authorization.set_sensitive(true);
        Ok(Session {
            client,
            base,
            authorization,
            role,
        })
    }

    /// The server's base URL, as given.
    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// `GET` the JSON document at `segments` below the base URL (each segment escaped), as
    /// the contract's type `T`.
    pub(crate) fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> anyhow::Result<T> {
        let url = endpoint(&self.base, segments);
        let response = self
            .client
            .get(url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .send()
            .map_err(|e| cannot_reach(&url, &e))?;
        let status = response.status();
        let body = read_body(response, &url)?;
        if status.is_success() {
            return json_body(&body, &url);
        }
        Err(refusal(&url, status, &body))
    }
}

/// The login `mist login` saved (in the folder `mist` keeps it in), if any.
fn saved_login() -> anyhow::Result<Option<mist_client::state::Credentials>> {
    let Ok(dirs) = mist_client::dirs::Dirs::from_env() else {
        return Ok(None);
    };
    Ok(mist_client::state::load_credentials(&dirs)?)
}

/// The token of `saved` when it is a login to the server at `base` that has not expired.
fn saved_token(
    saved: Option<&mist_client::state::Credentials>,
    base: &Url,
) -> anyhow::Result<String> {
    let no_credentials = "no credentials: pass --user NAME or --token-file PATH, set MIST_TOKEN, \
                          or log in to this server once with `mist login --server URL`";
    let Some(saved) = saved else {
        bail!("{no_credentials}");
    };
    let same_server = mist_client::api::parse_server(&saved.server)
        .ok()
        .zip(mist_client::api::parse_server(base.as_str()).ok())
        .is_some_and(|(saved, asked)| saved == asked);
    if !same_server {
        bail!(
            "{no_credentials} (`mist login` saved a login to {}, not to {base})",
            saved.server
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    if saved.expires_at.is_some_and(|expires_at| expires_at <= now) {
        bail!(
            "the login `mist login` saved for {base} has expired: run `mist login` again, or \
             pass --user NAME"
        );
    }
    eprintln!(
        "Signed in as {} with the login `mist login` saved.",
        saved.user
    );
    checked_token(&saved.token, "the login `mist login` saved")
}

/// The base URL: http or https, no credentials, query or fragment; a trailing `/` ignored.
fn parse_base_url(text: &str) -> anyhow::Result<Url> {
    if let Some(hint) = mist_client::api::url_hint(text) {
        bail!("--server {text:?} is not a URL: {hint}");
    }
    let url = Url::parse(text).with_context(|| {
        format!("--server {text:?} is not a URL; give one like http://127.0.0.1:8080")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--server {text:?} must be an http:// or https:// URL");
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        bail!("--server {text:?} has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("--server must not hold credentials; use --token-file, --user or {TOKEN_ENV}");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--server {text:?} must not have a query or a fragment");
    }
    Ok(url)
}

/// `base` with `segments` appended as escaped path segments.
fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("checked: the base URL can be a base")
        .pop_if_empty()
        .extend(segments);
    url
}

/// A token from `source` (a file name or the variable), checked without quoting it.
fn checked_token(token: &str, source: &str) -> anyhow::Result<String> {
    if token.is_empty() {
        bail!("{source} holds no token");
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("{source} does not hold a token: a token is one word of printable ASCII");
    }
    Ok(token.to_string())
}

/// Logs in as `user` with a password from the terminal or standard input; the token and
/// the role the server reports.
fn login(
    client: &Client,
    base: &Url,
    user: &str,
    from_stdin: bool,
) -> anyhow::Result<(String, Role)> {
    let password =
        mist_platform::password::read(&format!("Password for {user} at {base}: "), from_stdin)?;
    let url = endpoint(base, &["v1", "auth", "login"]);
    let body = serde_json::to_string(&LoginRequest {
        user: user.to_owned(),
        password,
    })?;
    let response = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .map_err(|e| cannot_reach(&url, &e))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let bytes = read_body(response, &url)?;
    match status {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED => bail!(
            "login as {user} refused: the user name or password is wrong, or the user is disabled"
        ),
        StatusCode::TOO_MANY_REQUESTS => bail!(
            "login as {user} refused: too many failed logins; try again in {} s",
            retry_after.as_deref().unwrap_or("a few")
        ),
        _ => return Err(refusal(&url, status, &bytes)),
    }
    let answer: LoginResponse = json_body(&bytes, &url)?;
    Ok((
        checked_token(&answer.token, "the login answer")?,
        answer.role,
    ))
}

fn read_body(response: Response, url: &Url) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    response
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow!("the connection to {url} broke while reading the answer: {e}"))?;
    if bytes.len() > MAX_BODY_BYTES {
        bail!(
            "the answer from {url} is larger than {MAX_BODY_BYTES} bytes; is --server a Mist server?"
        );
    }
    Ok(bytes)
}

/// The answer as the contract's type `T`: an answer that is not JSON, or JSON of another
/// shape, is not what a Mist server of this version says.
fn json_body<T: DeserializeOwned>(bytes: &[u8], url: &Url) -> anyhow::Result<T> {
    serde_json::from_slice(bytes).map_err(|error| match error.classify() {
        serde_json::error::Category::Data => nonsense(
            url,
            &format!("the answer does not have the expected form ({error})"),
        ),
        _ => nonsense(url, "the answer is not JSON"),
    })
}

/// An answer that is not what a Mist server says.
pub(crate) fn nonsense(url: &Url, what: &str) -> anyhow::Error {
    anyhow!("unexpected answer from {url}: {what}; is --server a Mist server of this version?")
}

fn cannot_reach(url: &Url, error: &reqwest::Error) -> anyhow::Error {
    let reason = if error.is_timeout() {
        "it did not answer in time"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    // The innermost cause names what went wrong (refused, DNS, TLS); it never holds the
    // token, which is only in a sensitive header.
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let causes = if std::ptr::addr_eq(cause, error as &dyn std::error::Error) {
        String::new()
    } else {
        format!(": {cause}")
    };
    let hint = mist_client::api::connection_hint(error);
    anyhow!("cannot reach the server at {url}: {reason}{causes}{hint}")
}

/// A non-success answer as a sentence: what it means for the admin, and the server's own
/// fixed phrase (`{"error": …}`) when it sent one.
fn refusal(url: &Url, status: StatusCode, body: &[u8]) -> anyhow::Error {
    let phrase = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|body| body.error);
    let meaning = match status {
        StatusCode::UNAUTHORIZED => {
            "the server refused the token: it is invalid or expired, or its user was disabled or \
             removed; log in again (--user NAME)"
                .to_string()
        }
        StatusCode::FORBIDDEN => "this needs an admin's token".to_string(),
        StatusCode::NOT_FOUND => {
            "not found; is --server the base URL of a Mist server?".to_string()
        }
        status if status.is_redirection() => {
            "the server redirects; give the URL it points to as --server".to_string()
        }
        status => format!("the server answered {status}"),
    };
    match phrase {
        Some(phrase) => anyhow!("{url}: {meaning} (server says: {phrase})"),
        None => anyhow!("{url}: {meaning} ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_joined() {
        let url = parse_base_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            endpoint(&url, &["v1", "status"]).as_str(),
            "http://127.0.0.1:8080/v1/status"
        );
        let url = parse_base_url("https://example.org/mist/").unwrap();
        assert_eq!(
            endpoint(&url, &["v1", "games", "a b/../c"]).as_str(),
            "https://example.org/mist/v1/games/a%20b%2F..%2Fc"
        );
        for bad in [
            "127.0.0.1:8080",
            "ftp://example.org",
            "http://user:pw@example.org",
            "http://example.org/?x=1",
            "not a url",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_checked_without_being_quoted() {
        assert_eq!(checked_token("abc.def", "f").unwrap(), "abc.def");
        for bad in ["", "two words", "tab\there", "é"] {
            let message = checked_token(bad, "the file").unwrap_err().to_string();
            assert!(
                bad.is_empty() || !message.contains(bad),
                "{message} quotes the token"
            );
        }
    }
}
