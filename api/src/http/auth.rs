//! `POST /v1/auth/login` and `GET /v1/users`.
//!
//! A login checks the password against the argon2id hash the reconciler published in the
//! `users` table. An unknown, disabled or mistyped user gets the same `401` after the same
//! work: a name with no usable hash is checked against a dummy hash made with the same
//! parameters. Failures count in the database against the client's address (read through
//! trusted proxies: [`crate::clientaddr`]), the user and address, and the user
//! ([`crate::ratelimit`]); a refused attempt gets `429` until its window ends, without a
//! password check.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use argon2::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap};
use axum::routing::{get, post};
use axum::{Json, Router};
use mist_wire::auth::{LoginRequest, LoginResponse, Role, UserInfo, UserList};

use crate::clientaddr::client_address;
use crate::http::context::ApiContext;
use crate::http::error::{Error, InternalError};
use crate::http::extractor::AuthUser;
use crate::ratelimit::LoginKeys;
use crate::token::Claims;
use mist_wire::error::ErrorBody;

/// The longest user name or password a login reads; longer ones fail like wrong ones.
const MAX_CREDENTIAL_LEN: usize = 1024;

pub(crate) fn router() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/users", get(users))
}

/// Logs in with a user name and password.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A token", body = LoginResponse),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 429, description = "Too many failed logins", body = ErrorBody),
    )
)]
pub(crate) async fn login(
    State(ctx): State<Arc<ApiContext>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<LoginResponse>, Error> {
    let request: LoginRequest = serde_json::from_slice(&body).map_err(|_| {
        Error::BadRequest("expected a JSON object {\"user\": …, \"password\": …}".to_owned())
    })?;
    let (token, claims, role) =
        sign_in(&ctx, &extensions, &headers, &request.user, request.password).await?;
    Ok(Json(LoginResponse {
        token,
        token_type: "Bearer".to_owned(),
        expires_at: claims.exp,
        user: claims.sub,
        role: wire_role(role),
    }))
}

/// Checks a user name and password under the login limits and issues a token: the one way
/// in, for `POST /v1/auth/login` and the pages' sign-in form alike.
///
/// The client is the TCP peer from `extensions`, or, when that is a trusted proxy, the
/// address its forwarding `headers` name. A refused attempt gets [`Error::TooManyRequests`]
/// without a password check.
pub(crate) async fn sign_in(
    ctx: &Arc<ApiContext>,
    extensions: &Extensions,
    headers: &HeaderMap,
    user_name: &str,
    password: String,
) -> Result<(String, Claims, mist_db::state::Role), Error> {
    let client = match extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(info) => client_address(info.0.ip(), headers, &ctx.config.trusted_proxies),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let keys = LoginKeys::new(user_name, client);
    ctx.logins.check(&keys, SystemTime::now()).await?;

    let usable_name =
        user_name.len() <= MAX_CREDENTIAL_LEN && mist_specs::check::check_name(user_name).is_ok();
    let user = if usable_name {
        ctx.db.user(user_name).await?
    } else {
        None
    };
    let permit = ctx
        .login_permits
        .acquire()
        .await
        .map_err(|_| Error::Unavailable("shutting down"))?;
    // Again now that this attempt may hash: the attempts that waited for a permit were checked
    // before the failures of those ahead of them were counted.
    ctx.logins.check(&keys, SystemTime::now()).await?;
    let stored_hash = user
        .as_ref()
        .filter(|user| !user.disabled)
        .map(|user| user.password_hash.clone());
    let verify_ctx = ctx.clone();
    let verified = tokio::task::spawn_blocking(move || {
        let dummy = verify_ctx.dummy_hash.get_or_init(make_dummy_hash);
        let (hash, real) = match &stored_hash {
            Some(hash) => (hash.as_str(), true),
            None => (dummy.as_str(), false),
        };
        let matches = password.len() <= MAX_CREDENTIAL_LEN && verify_password(&password, hash);
        real && matches
    })
    .await
    .map_err(|error| InternalError::Other(format!("password check panicked: {error}")))?;

    let user = match user {
        Some(user) if verified => user,
        _ => {
            // Counted before the permit is given back, so the next attempt's check sees it.
            ctx.logins.record_failure(&keys, SystemTime::now()).await?;
            tracing::info!(user = %user_name.escape_debug(), %client, "login failed");
            return Err(Error::LoginFailed);
        }
    };
    ctx.logins.record_success(&keys).await?;
    drop(permit);
    let (token, claims) = ctx
        .tokens
        .issue(&user.name, user.role.as_str())
        .map_err(|error| InternalError::Other(error.to_string()))?;
    tracing::info!(user = %user.name, %client, "logged in");
    Ok((token, claims, user.role))
}

/// The wire's name of a role.
fn wire_role(role: mist_db::state::Role) -> Role {
    match role {
        mist_db::state::Role::User => Role::User,
        mist_db::state::Role::Admin => Role::Admin,
    }
}

/// Whether `password` matches the PHC string `hash`. A hash that does not parse matches
/// nothing.
fn verify_password(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// An argon2id hash of a random password, with the parameters real hashes are made with.
pub(crate) fn make_dummy_hash() -> String {
    let mut random = [0u8; 16];
    let _ = getrandom::fill(&mut random);
    let password: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
    mist_specs::scaffold::hash_password(&password).unwrap_or_else(|error| {
        tracing::error!(%error, "cannot make the dummy password hash");
        String::new()
    })
}

/// Lists the users. Admins only.
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every user", body = UserList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub(crate) async fn users(
    State(ctx): State<Arc<ApiContext>>,
    AuthUser(viewer, _): AuthUser,
) -> Result<Json<UserList>, Error> {
    if !viewer.is_admin() {
        return Err(Error::Forbidden);
    }
    let users = ctx
        .db
        .users()
        .await?
        .into_iter()
        .map(|user| UserInfo {
            name: user.name,
            display_name: user.display_name,
            role: wire_role(user.role),
            disabled: user.disabled,
        })
        .collect();
    Ok(Json(UserList { users }))
}
