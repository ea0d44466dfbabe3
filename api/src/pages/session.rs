//! Sign-in for browsers: `GET /login` (the form), `POST /login` (sets the session cookie),
//! `POST /logout` (clears it), and [`PageUser`], the session checked on every page.
//!
//! The cookie carries the same login token `POST /v1/auth/login` answers, made by the same
//! [`sign_in`] under the same failure limits, and is checked by the same rules as a bearer
//! token: signature, issuer, expiry, and the user's existence, role and `disabled` flag in
//! the database on every request. It is `HttpOnly`, `SameSite=Strict` (no other site can
//! make a browser send it, so the forms need no CSRF token) and `Secure` when the request
//! came over TLS (`X-Forwarded-Proto: https` from the border proxy).

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::access::Viewer;
use crate::http::auth::sign_in;
use crate::http::catalog::Catalog;
use crate::http::context::ApiContext;
use crate::http::error::Error;
use crate::http::extractor::{SESSION_COOKIE, session_cookie, user_of_token};
use crate::pages::render::{PageError, clear_session_cookie, page, security_headers};
use crate::token::unix_now;

/// The signed-in user of a page: the session cookie's token checked as the API checks a
/// bearer token. Without a usable session the page answers with the way to the sign-in form.
pub(crate) struct PageUser {
    /// Who, with the role the database holds now.
    pub(crate) viewer: Viewer,
    /// The catalog the user was checked against.
    pub(crate) catalog: Arc<Catalog>,
}

impl FromRequestParts<Arc<ApiContext>> for PageUser {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &Arc<ApiContext>,
    ) -> Result<PageUser, PageError> {
        let token = session_cookie(&parts.headers).ok_or(PageError::SignIn)?;
        let (viewer, catalog) = user_of_token(ctx, token).await?;
        Ok(PageUser { viewer, catalog })
    }
}

/// The fields of the sign-in form.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    user: String,
    password: String,
}

/// What the sign-in page shows besides the form.
#[derive(Serialize, Default)]
struct LoginPage {
    /// Why the last attempt failed.
    error: Option<&'static str>,
    /// The user name to fill in again.
    user: String,
}

/// `GET /login`: the sign-in form.
pub(crate) async fn login_form() -> Result<Response, PageError> {
    page(StatusCode::OK, "login.html", None, LoginPage::default())
}

/// `POST /login`: checks the form like `POST /v1/auth/login` checks its body; on success
/// sets the session cookie and goes to the store.
pub(crate) async fn login(
    State(ctx): State<Arc<ApiContext>>,
    extensions: Extensions,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Ok(Form(form)) = form else {
        let error = Some("Fill in your user name and password.");
        return page(
            StatusCode::BAD_REQUEST,
            "login.html",
            None,
            LoginPage {
                error,
                user: String::new(),
            },
        );
    };
    let (status, error) =
        match sign_in(&ctx, &extensions, &headers, &form.user, form.password).await {
            Ok((token, claims, _)) => {
                let max_age = claims.exp.saturating_sub(unix_now());
                let mut cookie = format!(
                    "{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
                );
                if over_tls(&headers) {
                    cookie.push_str("; Secure");
                }
                let cookie = HeaderValue::from_str(&cookie).map_err(|_| {
                    PageError::Api(Error::Internal(crate::http::error::InternalError::Other(
                        "the session cookie is not a valid header value".to_owned(),
                    )))
                })?;
                let mut response = StatusCode::SEE_OTHER.into_response();
                let response_headers = response.headers_mut();
                response_headers.insert(header::LOCATION, HeaderValue::from_static("/"));
                response_headers.insert(header::SET_COOKIE, cookie);
                security_headers(response_headers);
                return Ok(response);
            }
            Err(Error::LoginFailed) => (StatusCode::UNAUTHORIZED, "Wrong user name or password."),
            Err(Error::TooManyRequests { retry_after }) => {
                let mut response = page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "login.html",
                    None,
                    LoginPage {
                        error: Some("Too many failed sign-ins. Wait a minute and try again."),
                        user: form.user,
                    },
                )?;
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
                return Ok(response);
            }
            Err(other) => return Err(other.into()),
        };
    page(
        status,
        "login.html",
        None,
        LoginPage {
            error: Some(error),
            user: form.user,
        },
    )
}

/// `POST /logout`: clears the session cookie and goes to the sign-in form.
pub(crate) async fn logout() -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/login"));
    headers.insert(header::SET_COOKIE, clear_session_cookie());
    security_headers(headers);
    response
}

/// Whether the browser reached the server over TLS, as the border proxy says.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}
