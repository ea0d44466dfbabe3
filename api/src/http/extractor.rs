//! The `AuthUser` extractor: the bearer token checked, then its user checked in the database.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use mist_db::state::Role;
use mist_platform::error::ErrorChain;

use crate::access::Viewer;
use crate::http::catalog::Catalog;
use crate::http::context::ApiContext;
use crate::http::error::Error;

/// The user a request acts for. Extracting it checks, on every request:
///
/// 1. an `Authorization: Bearer <token>` header;
/// 2. the token's HS256 signature, issuer and expiry;
/// 3. that the user still exists and is not disabled, and still has the role the token was
///    issued with — so a disabled, removed or demoted user stops at once.
///
/// Every failure is the same `401`; the reason is logged at `debug`. The second field is the
/// catalog the user was checked against, current as of this request.
pub(crate) struct AuthUser(pub(crate) Viewer, pub(crate) Arc<Catalog>);

impl FromRequestParts<Arc<ApiContext>> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &Arc<ApiContext>,
    ) -> Result<AuthUser, Error> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            tracing::debug!("unauthorized: no Authorization header");
            return Err(Error::Unauthorized);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                tracing::debug!("unauthorized: the Authorization header is not a bearer token");
                Error::Unauthorized
            })?;
        let claims = ctx.tokens.check(token).map_err(|error| {
            tracing::debug!(error = %ErrorChain(&error), "unauthorized");
            Error::Unauthorized
        })?;
        let catalog = ctx.catalog.get(&ctx.db).await?;
        let viewer = authorize(&catalog, &claims.sub, Some(&claims.role))?;
        Ok(AuthUser(viewer, catalog))
    }
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
