//! The templates, the frame every page shares, and how pages and their errors become
//! responses (with the security headers every page carries).

use std::fmt::Write;
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;
use mist_platform::error::ErrorChain;
use serde::Serialize;

use crate::access::Viewer;
use crate::http::error::Error;
use crate::pages::assets::assets;

/// The policy of every page: scripts, styles and images from this origin only, nothing
/// inline, no frames, forms posted only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Every template, by name, as embedded at build time.
const TEMPLATES: [(&str, &str); 6] = [
    (
        "base.html",
        include_str!("../../../templates/pages/base.html"),
    ),
    (
        "login.html",
        include_str!("../../../templates/pages/login.html"),
    ),
    (
        "store.html",
        include_str!("../../../templates/pages/store.html"),
    ),
    (
        "game.html",
        include_str!("../../../templates/pages/game.html"),
    ),
    (
        "admin.html",
        include_str!("../../../templates/pages/admin.html"),
    ),
    (
        "error.html",
        include_str!("../../../templates/pages/error.html"),
    ),
];

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(environment);

/// The template environment: `.html` templates are HTML-escaped (minijinja's default).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        // The templates are part of the binary; a test renders every one of them.
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(template = name, error = %ErrorChain(&error), "a page template does not parse");
        }
    }
    env.set_formatter(html_formatter);
    env.add_filter("size", size_filter);
    env.add_filter("time", time_filter);
    env.add_filter("clock", clock_filter);
    env
}

/// Writes a value into a page. Strings are escaped for HTML text and quoted attributes
/// (`&`, `<`, `>`, `"`, `'`); unlike minijinja's default, `/` is left alone, so paths and
/// links read as they are.
fn html_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if !value.is_safe() => {
            for c in text.chars() {
                let escaped = match c {
                    '&' => "&amp;",
                    '<' => "&lt;",
                    '>' => "&gt;",
                    '"' => "&quot;",
                    '\'' => "&#39;",
                    _ => {
                        out.write_char(c)?;
                        continue;
                    }
                };
                out.write_str(escaped)?;
            }
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// What every page's frame (header, navigation, assets) needs.
#[derive(Serialize)]
struct Frame<'a, T: Serialize> {
    /// The signed-in user, if any.
    viewer: Option<FrameViewer<'a>>,
    css: String,
    js: String,
    /// The page's own data.
    page: T,
}

#[derive(Serialize)]
struct FrameViewer<'a> {
    name: &'a str,
    admin: bool,
}

/// A page rendered from `template` with `page` as its data, for `viewer`.
pub(crate) fn page<T: Serialize>(
    status: StatusCode,
    template: &str,
    viewer: Option<&Viewer>,
    page: T,
) -> Result<Response, PageError> {
    let assets = assets();
    let frame = Frame {
        viewer: viewer.map(|viewer| FrameViewer {
            name: &viewer.name,
            admin: viewer.is_admin(),
        }),
        css: assets.css.path(),
        js: assets.js.path(),
        page,
    };
    let html = ENVIRONMENT
        .get_template(template)?
        .render(minijinja::Value::from(minijinja::value::Serde(&frame)))?;
    let mut response = (status, Html(html)).into_response();
    security_headers(response.headers_mut());
    Ok(response)
}

/// The headers every page carries: the CSP, no sniffing, no framing, no caching (a page
/// shows what one user may see).
pub(crate) fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static("mist_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PageError {
    /// No session, or one that no longer lets its user in: to the sign-in form.
    #[error("sign-in needed")]
    SignIn,
    /// Does not exist, or the viewer may not see it.
    #[error("not found")]
    NotFound,
    /// Admins only.
    #[error("forbidden")]
    Forbidden,
    /// A template failed to render (a bug).
    #[error("cannot render the page")]
    Render(#[from] minijinja::Error),
    /// Anything else, answered as the API would.
    #[error("request failed")]
    Api(#[source] Error),
}

impl From<Error> for PageError {
    fn from(error: Error) -> PageError {
        match error {
            Error::Unauthorized => PageError::SignIn,
            Error::NotFound => PageError::NotFound,
            Error::Forbidden => PageError::Forbidden,
            other => PageError::Api(other),
        }
    }
}

/// The message of an error page.
#[derive(Serialize)]
struct ErrorPage {
    title: &'static str,
    message: &'static str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            PageError::SignIn => {
                let mut response = StatusCode::SEE_OTHER.into_response();
                let headers = response.headers_mut();
                headers.insert(header::LOCATION, HeaderValue::from_static("/login"));
                headers.insert(header::SET_COOKIE, clear_session_cookie());
                security_headers(headers);
                return response;
            }
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or nothing you may see.",
            ),
            PageError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Admins only",
                "This page is for the server's admins.",
            ),
            PageError::Api(Error::Unavailable(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The server cannot answer this now; try again later.",
            ),
            PageError::Render(_) | PageError::Api(_) => {
                tracing::error!(error = %ErrorChain(&self), "page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The server could not show this page (see its log).",
                )
            }
        };
        match page(status, "error.html", None, ErrorPage { title, message }) {
            Ok(response) => response,
            Err(error) => {
                tracing::error!(error = %ErrorChain(&error), "the error page failed");
                (status, message).into_response()
            }
        }
    }
}

/// `{{ bytes | size }}`: a byte count in decimal units, e.g. `1.5 GB`, as `mist` and the
/// notifications write it.
fn size_filter(bytes: u64) -> String {
    mist_platform::units::human_size(bytes)
}

/// `{{ epoch_ms | time }}`: a UTC date and time to the minute, e.g. `2026-12-07 19:40 UTC`.
fn time_filter(epoch_ms: i64) -> String {
    mist_platform::units::utc_minute(epoch_ms)
}

/// The time of day in UTC to the second, e.g. `22:13:20`: log lines are read in order, a
/// few seconds apart.
fn clock_filter(epoch_ms: i64) -> String {
    let seconds_of_day = epoch_ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = environment();
        for (name, _) in TEMPLATES {
            env.get_template(name)
                .unwrap_or_else(|error| panic!("{name}: {error:#}"));
        }
    }

    #[test]
    fn the_cleared_cookie_is_the_session_cookie() {
        let cleared = clear_session_cookie();
        let cleared = cleared.to_str().unwrap();
        assert!(cleared.starts_with(&format!("{}=;", crate::http::extractor::SESSION_COOKIE)));
    }

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(size_filter(0), "0 B");
        assert_eq!(size_filter(1536), "1.5 kB");
        assert_eq!(size_filter(3_000_000_000), "3.0 GB");
        assert_eq!(time_filter(0), "1970-01-01 00:00 UTC");
        assert_eq!(time_filter(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(time_filter(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(time_filter(-1000), "1969-12-31 23:59 UTC");
        assert_eq!(clock_filter(1_700_000_000_000), "22:13:20");
        assert_eq!(clock_filter(-1000), "23:59:59");
    }
}
