//! The `AuthUser` extractor: the bearer token checked, then its user checked in the database.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use mist_db::state::Role;
use mist_platform::error::ErrorChain;

use crate::access::Viewer;
use crate::http::catalog::Catalog;
use crate::http::context::ApiContext;
use crate::http::error::Error;

/// The user a request acts for. Extracting it checks, on every request:
///
/// 1. an `Authorization: Bearer <token>` header, or for `GET` and `HEAD` (which change
///    nothing) the pages' session cookie, which carries the same token — so the board's
///    `EventSource` can follow `/v1/events`;
/// 2. the token's HS256 signature, issuer and expiry;
/// 3. that the user still exists and is not disabled, and still has the role the token was
///    issued with — so a disabled, removed or demoted user stops at once.
///
/// Every failure is the same `401`; the reason is logged at `debug`. The second field is the
/// catalog the user was checked against, current as of this request.
pub(crate) struct AuthUser(pub(crate) Viewer, pub(crate) Arc<Catalog>);

/// The name of the session cookie the pages set at sign-in; its value is a login token.
pub(crate) const SESSION_COOKIE: &str = "mist_session";

impl FromRequestParts<Arc<ApiContext>> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &Arc<ApiContext>,
    ) -> Result<AuthUser, Error> {
        let token = match parts.headers.get(header::AUTHORIZATION) {
            Some(value) => bearer_token(value)?,
            None if matches!(parts.method, Method::GET | Method::HEAD) => {
                session_cookie(&parts.headers).ok_or_else(|| {
                    tracing::debug!("unauthorized: no Authorization header or session cookie");
                    Error::Unauthorized
                })?
            }
            None => {
                tracing::debug!("unauthorized: no Authorization header");
                return Err(Error::Unauthorized);
            }
        };
        let (viewer, catalog) = user_of_token(ctx, token).await?;
        Ok(AuthUser(viewer, catalog))
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer_token(value: &HeaderValue) -> Result<&str, Error> {
    value
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or_else(|| {
            tracing::debug!("unauthorized: the Authorization header is not a bearer token");
            Error::Unauthorized
        })
}

/// The value of the session cookie, if the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE && !value.is_empty()).then_some(value)
        })
}

/// Checks a login token and its user, as [`AuthUser`] describes; every failure is
/// [`Error::Unauthorized`].
pub(crate) async fn user_of_token(
    ctx: &ApiContext,
    token: &str,
) -> Result<(Viewer, Arc<Catalog>), Error> {
    let claims = ctx.tokens.check(token).map_err(|error| {
        tracing::debug!(error = %ErrorChain(&error), "unauthorized");
        Error::Unauthorized
    })?;
    let catalog = ctx.catalog.get(&ctx.db).await?;
    let viewer = authorize(&catalog, &claims.sub, Some(&claims.role))?;
    Ok((viewer, catalog))
}

/// Looks the user up and checks they may act: exists, not disabled, and (when `role` is
/// given) still has that role.
pub(crate) fn authorize(
    catalog: &Catalog,
    name: &str,
    role: Option<&str>,
) -> Result<Viewer, Error> {
    let Some(user) = catalog.user(name) else {
        tracing::debug!(user = name, "unauthorized: the user no longer exists");
        return Err(Error::Unauthorized);
    };
    if user.disabled {
        tracing::debug!(user = name, "unauthorized: the user is disabled");
        return Err(Error::Unauthorized);
    }
    if let Some(role) = role
        && Role::parse(role).ok() != Some(user.role)
    {
        tracing::debug!(
            user = name,
            "unauthorized: the user's role changed since login"
        );
        return Err(Error::Unauthorized);
    }
    Ok(Viewer {
        name: user.name.clone(),
        role: user.role,
    })
}

/// axum's `Query`, whose rejection (a duplicate or malformed parameter) answers like every
/// other bad request: `400` with the JSON [`Error`] body the OpenAPI document promises.
pub(crate) struct Query<T>(pub T);

impl<T> FromRequestParts<Arc<ApiContext>> for Query<T>
where
    T: serde::de::DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &Arc<ApiContext>,
    ) -> Result<Query<T>, Error> {
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, ctx)
            .await
            .map_err(|rejection| {
                Error::BadRequest(format!("a malformed query: {}", rejection.body_text()))
            })?;
        Ok(Query(value))
    }
}
