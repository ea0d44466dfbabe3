//! The catalog and update plans: `GET /v1/games`, `/v1/games/{game}`,
//! `/v1/games/{game}/versions/{version}/manifest` and `/v1/games/{game}/update`.
//!
//! Friends see what [`Viewer::sees_game`] and [`Viewer::sees_version`] allow and nothing
//! else: a hidden game or version is a `404` with the same body as one that does not exist.
//! Admins see every version with its state and conditions.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use mist_db::conditions::{self, ObjectRef};
use mist_db::state::{Artifact, Game, Version, VersionState};
use mist_wire::catalog::{
    ArtifactLink, ConditionInfo, ConditionStatus, ConditionType, GameDetail, GameList, GameSummary,
    VersionDetail, VersionSummary,
};
use mist_wire::digest::artifact_path;
use mist_wire::error::ErrorBody;
use mist_wire::update::{PlanStep, UpdatePlan};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::access::Viewer;
use crate::http::artifacts::serve_artifact;
use crate::http::catalog::Catalog;
use crate::http::context::{ApiContext, game_name, version_name};
use crate::http::error::Error;
use crate::http::extractor::{AuthUser, Query};
use crate::http::gameview::GameView;
use crate::route::{self, Blob, PlanDelta, PlanError, PlanInput, PlanVersion};

pub(crate) fn router() -> Router<Arc<ApiContext>> {
    Router::new()
        .route("/v1/games", get(list_games))
        .route("/v1/games/{game}", get(get_game))
        .route(
            "/v1/games/{game}/versions/{version}/manifest",
            get(get_manifest),
        )
        .route("/v1/games/{game}/update", get(get_update))
}

/// The path of a game.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct GamePath {
    /// The game's name.
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    game: String,
}

/// The path of a version.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct VersionPath {
    /// The game's name.
    #[param(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub(crate) game: String,
    /// The version's name.
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
    pub(crate) version: String,
}

/// What an update starts from and goes to.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UpdateQuery {
    /// The version installed; absent for a fresh install.
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
    from: Option<String>,
    /// The version wanted; absent for the newest Ready one.
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
    to: Option<String>,
}

/// Lists the games the caller may see.
#[utoipa::path(
    get,
    path = "/v1/games",
    tag = "catalog",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The catalog", body = GameList),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
pub(crate) async fn list_games(
    AuthUser(viewer, catalog): AuthUser,
) -> Result<Json<GameList>, Error> {
    Ok(Json(game_list(&catalog, &viewer)))
}

/// The games `viewer` may see, as `GET /v1/games` answers them.
pub(crate) fn game_list(catalog: &Catalog, viewer: &Viewer) -> GameList {
    let games = catalog
        .games()
        .iter()
        .filter(|game| viewer.sees_game(game))
        .map(|game| {
            let versions = catalog.versions_of(&game.name);
            let view = GameView::of(game, catalog.metadata_of(&game.name));
            let latest = versions
                .iter()
                .rev()
                .find(|version| version.observed.state == VersionState::Ready)
                .map(|version| version.spec.name.clone());
            let versions: Vec<VersionSummary> = versions
                .iter()
                .filter(|version| viewer.sees_version(version.observed.state))
                .map(|version| VersionSummary {
                    name: version.spec.name.clone(),
                    notes: version_notes(version),
                    tree_digest: version.observed.tree_digest.clone(),
                    size: version
                        .observed
                        .pack_address
                        .as_deref()
                        .and_then(|address| catalog.pack_size(address)),
                    state: viewer
                        .is_admin()
                        .then(|| wire_state(version.observed.state)),
                })
                .collect();
            GameSummary {
                latest,
                name: game.name.clone(),
                title: view.title,
                description: view.description,
                store: view.store,
                header_image: view.header_image,
                private: game.private,
                versions,
                suspended: viewer.is_admin().then_some(game.suspended),
            }
        })
        .collect();
    GameList { games }
}

/// Shows one game.
#[utoipa::path(
    get,
    path = "/v1/games/{game}",
    tag = "catalog",
    params(GamePath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The game", body = GameDetail),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such game, or hidden", body = ErrorBody),
    )
)]
pub(crate) async fn get_game(
    State(ctx): State<Arc<ApiContext>>,
    AuthUser(viewer, catalog): AuthUser,
    Path(path): Path<GamePath>,
) -> Result<Json<GameDetail>, Error> {
    Ok(Json(
        game_detail(&ctx, &catalog, &viewer, &path.game).await?,
    ))
}

/// One game as `GET /v1/games/{game}` answers it; `404` when it does not exist or `viewer`
/// may not see it.
pub(crate) async fn game_detail(
    ctx: &ApiContext,
    catalog: &Catalog,
    viewer: &Viewer,
    name: &str,
) -> Result<GameDetail, Error> {
    let game = visible_game(catalog, viewer, name)?;
    let versions = catalog.versions_of(&game.name);
    let artifacts = artifacts_by_address(ctx.db.artifacts_of_game(&game.name).await?);
    let view = GameView::of(game, catalog.metadata_of(&game.name));
    let mut details = Vec::new();
    let mut latest = None;
    for version in versions
        .iter()
        .filter(|version| viewer.sees_version(version.observed.state))
    {
        if version.observed.state == VersionState::Ready {
            latest = Some(version.spec.name.clone());
        }
        let conditions = if viewer.is_admin() {
            let object = ObjectRef::version(&game.name, &version.spec.name);
            Some(condition_infos(ctx, &object).await?)
        } else {
            None
        };
        details.push(VersionDetail {
            name: version.spec.name.clone(),
            notes: version_notes(version),
            tree_digest: version.observed.tree_digest.clone(),
            manifest: link(&artifacts, version.observed.manifest_address.as_deref()),
            pack: link(&artifacts, version.observed.pack_address.as_deref()),
            released_at: version
                .observed
                .pack_address
                .as_deref()
                .and_then(|address| artifacts.get(address))
                .map(|artifact| artifact.created_at),
            state: viewer
                .is_admin()
                .then(|| wire_state(version.observed.state)),
            conditions,
        });
    }
    let conditions = if viewer.is_admin() {
        Some(condition_infos(ctx, &ObjectRef::game(&game.name)).await?)
    } else {
        None
    };
    Ok(GameDetail {
        name: game.name.clone(),
        title: view.title,
        description: view.description,
        store: view.store,
        header_image: view.header_image,
        private: game.private,
        launch: view.launch,
        latest,
        versions: details,
        suspended: viewer.is_admin().then_some(game.suspended),
        conditions,
    })
}

/// An object's conditions as the API shows them.
async fn condition_infos(
    ctx: &ApiContext,
    object: &ObjectRef,
) -> Result<Vec<ConditionInfo>, Error> {
    Ok(ctx
        .db
        .conditions_of(object)
        .await?
        .into_iter()
        .map(|condition| ConditionInfo {
            r#type: wire_condition_type(condition.condition_type),
            status: wire_condition_status(condition.status),
            reason: condition.reason,
            message: condition.message,
            since: condition.since,
        })
        .collect())
}

/// Downloads a version's manifest (JSON: every file with its size and BLAKE3).
#[utoipa::path(
    get,
    path = "/v1/games/{game}/versions/{version}/manifest",
    tag = "catalog",
    params(VersionPath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The manifest", content_type = "application/json",
         body = Object),
        (status = 206, description = "Part of the manifest", content_type = "application/json",
         body = Object),
        (status = 304, description = "Not modified"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such version, or hidden", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
    )
)]
pub(crate) async fn get_manifest(
    State(ctx): State<Arc<ApiContext>>,
    AuthUser(viewer, catalog): AuthUser,
    Path(path): Path<VersionPath>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let (_, version) = visible_version(&catalog, &viewer, &path.game, &path.version)?;
    let address = version
        .observed
        .manifest_address
        .clone()
        .ok_or(Error::NotFound)?;
    let artifact = ctx.db.artifact(&address).await?.ok_or(Error::NotFound)?;
    serve_artifact(&ctx, (&artifact).into(), &headers, "application/json").await
}

/// Plans an update: the cheapest of the delta chain, a warmed skip delta and the full pack.
#[utoipa::path(
    get,
    path = "/v1/games/{game}/update",
    tag = "catalog",
    params(GamePath, UpdateQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The plan", body = UpdatePlan),
        (status = 400, description = "A malformed version name", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such game or version, or hidden", body = ErrorBody),
        (status = 409, description = "No route reaches the target yet", body = ErrorBody),
    )
)]
pub(crate) async fn get_update(
    State(ctx): State<Arc<ApiContext>>,
    AuthUser(viewer, catalog): AuthUser,
    Path(path): Path<GamePath>,
    Query(query): Query<UpdateQuery>,
) -> Result<Json<UpdatePlan>, Error> {
    for name in [&query.from, &query.to].into_iter().flatten() {
        mist_specs::check::check_version_name(name)
            .map_err(|_| Error::BadRequest("invalid version name in the query".to_owned()))?;
    }
    let game = visible_game(&catalog, &viewer, &path.game)?;
    let versions = catalog.versions_of(&game.name);
    let deltas = ctx.db.deltas_of(&game.name).await?;
    let artifacts = artifacts_by_address(ctx.db.artifacts_of_game(&game.name).await?);
    let blob = |address: Option<&str>| {
        address
            .and_then(|address| artifacts.get(address))
            .map(|artifact| Blob {
                digest: artifact.address.clone(),
                size: artifact.size,
            })
    };
    let input = PlanInput {
        versions: versions
            .iter()
            .map(|version| PlanVersion {
                name: version.spec.name.clone(),
                pack: blob(version.observed.pack_address.as_deref()),
                servable: viewer.sees_version(version.observed.state),
            })
            .collect(),
        deltas: deltas
            .iter()
            .filter_map(|delta| {
                Some(PlanDelta {
                    from: delta.from_version.clone(),
                    to: delta.to_version.clone(),
                    blob: blob(Some(&delta.address))?,
                })
            })
            .collect(),
    };
    // A friend's update may start from a version they could once install (one that is
    // Ready, or was and has since stalled or retired), never from one that was never served.
    if let Some(from) = &query.from {
        let known = versions.iter().any(|version| {
            version.spec.name == *from
                && (viewer.is_admin()
                    || matches!(
                        version.observed.state,
                        VersionState::Ready | VersionState::Stalled | VersionState::Retired
                    ))
        });
        if !known {
            return Err(Error::NotFound);
        }
    }
    let to = match &query.to {
        Some(to) => to.clone(),
        None => versions
            .iter()
            .rev()
            .find(|version| version.observed.state == VersionState::Ready)
            .map(|version| version.spec.name.clone())
            .ok_or(Error::NotFound)?,
    };
    let plan = route::plan(&input, query.from.as_deref(), &to).map_err(|error| match error {
        PlanError::UnknownFrom(_) | PlanError::UnknownTo(_) => Error::NotFound,
        PlanError::NoRoute { .. } => Error::Conflict(error.to_string()),
    })?;
    let manifest = versions
        .iter()
        .find(|version| version.spec.name == plan.to)
        .and_then(|version| link(&artifacts, version.observed.manifest_address.as_deref()));
    Ok(Json(UpdatePlan {
        game: game.name.clone(),
        from: plan.from,
        to: plan.to,
        route: plan.route,
        steps: plan
            .steps
            .into_iter()
            .map(|step| PlanStep {
                url: artifact_path(&step.digest),
                kind: step.kind,
                from: step.from,
                to: step.to,
                digest: step.digest,
                size: step.size,
            })
            .collect(),
        total_bytes: plan.total_bytes,
        manifest,
        rejected: plan.rejected,
    }))
}

/// The game, if it exists and the viewer may see it; otherwise `404` either way.
pub(crate) fn visible_game<'a>(
    catalog: &'a Catalog,
    viewer: &Viewer,
    name: &str,
) -> Result<&'a Game, Error> {
    let name = game_name(name)?;
    match catalog.game(name) {
        Some(game) if viewer.sees_game(game) => Ok(game),
        _ => Err(Error::NotFound),
    }
}

/// The game and version, if both exist and the viewer may see them; otherwise `404`.
pub(crate) fn visible_version<'a>(
    catalog: &'a Catalog,
    viewer: &Viewer,
    game: &str,
    version: &str,
) -> Result<(&'a Game, &'a Version), Error> {
    let version = version_name(version)?;
    let game = visible_game(catalog, viewer, game)?;
    match catalog
        .versions_of(&game.name)
        .iter()
        .find(|candidate| candidate.spec.name == version)
    {
        Some(version) if viewer.sees_version(version.observed.state) => Ok((game, version)),
        _ => Err(Error::NotFound),
    }
}

/// The wire's name of a version's state.
fn wire_state(state: VersionState) -> mist_wire::catalog::VersionState {
    use mist_wire::catalog::VersionState as Wire;
    match state {
        VersionState::Pending => Wire::Pending,
        VersionState::Ingested => Wire::Ingested,
        VersionState::Ready => Wire::Ready,
        VersionState::Stalled => Wire::Stalled,
        VersionState::Retired => Wire::Retired,
    }
}

fn wire_condition_type(condition_type: conditions::ConditionType) -> ConditionType {
    match condition_type {
        conditions::ConditionType::Ready => ConditionType::Ready,
        conditions::ConditionType::Reconciling => ConditionType::Reconciling,
        conditions::ConditionType::Stalled => ConditionType::Stalled,
        conditions::ConditionType::MetadataStale => ConditionType::MetadataStale,
    }
}

fn wire_condition_status(status: conditions::ConditionStatus) -> ConditionStatus {
    match status {
        conditions::ConditionStatus::True => ConditionStatus::True,
        conditions::ConditionStatus::False => ConditionStatus::False,
        conditions::ConditionStatus::Unknown => ConditionStatus::Unknown,
    }
}

fn artifacts_by_address(artifacts: Vec<Artifact>) -> HashMap<String, Artifact> {
    artifacts
        .into_iter()
        .map(|artifact| (artifact.address.clone(), artifact))
        .collect()
}

fn link(artifacts: &HashMap<String, Artifact>, address: Option<&str>) -> Option<ArtifactLink> {
    let artifact = artifacts.get(address?)?;
    Some(ArtifactLink {
        digest: artifact.address.clone(),
        size: artifact.size,
        url: artifact_path(&artifact.address),
    })
}

fn version_notes(version: &Version) -> Option<String> {
    serde_json::from_str::<mist_specs::model::VersionSpec>(&version.spec.spec_json)
        .ok()
        .and_then(|spec| spec.notes)
}
