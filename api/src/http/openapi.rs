//! `GET /v1/openapi.json`: the OpenAPI document, derived with utoipa from the handlers'
//! annotations and the response types, so it cannot drift from the code.

use std::sync::{Arc, OnceLock};

use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::context::ApiContext;
use crate::http::{artifacts, auth, games, images, jobs, repair, status};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mist API",
        description = "The read API of Mist, a private game library for friends: catalog, \
                       update plans, resumable downloads, repair, status and live events.",
    ),
    paths(
        auth::login,
        auth::users,
        games::list_games,
        games::get_game,
        games::get_manifest,
        games::get_update,
        images::get_image,
        artifacts::get_artifact,
        repair::post_repair,
        status::get_status,
        status::get_events,
        jobs::get_job_log,
    ),
    components(schemas(
        mist_wire::error::ErrorBody,
        mist_wire::update::Route,
        mist_wire::update::StepKind,
        mist_wire::update::Rejected,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Logging in"),
        (name = "catalog", description = "Games, versions, manifests, update plans and repairs"),
        (name = "artifacts", description = "Content-addressed downloads"),
        (name = "status", description = "The reconciler's status, live events and job logs"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` scheme the paths refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub(crate) fn router() -> Router<Arc<ApiContext>> {
    Router::new().route("/v1/openapi.json", get(openapi_json))
}

/// The document, built once.
pub(crate) fn document() -> Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null))
        .clone()
}

async fn openapi_json() -> Json<Value> {
    Json(document())
}
