//! `POST /v1/games/{game}/versions/{version}/repair`: rsync repair deltas for a client's
//! damaged files.
//!
//! The client sends, for each file that failed verification, its manifest path and the
//! fast_rsync signature of what it has (`mist_games::repair::signature`, base64). The
//! answer holds, per file, a repair delta (`mist_games::repair::repair_delta`: an rsync delta
//! against the client's bytes, or the whole file compressed, whichever is smaller), which the
//! client applies with `apply_repair` and checks against the manifest.
//!
//! The true bytes come from the version's build on the NAS (read, never written) when it
//! still matches the manifest, else from the version's pack. Either way a file is used only
//! when its size and BLAKE3 match the manifest, so a changed build or a symlink swapped into
//! it can never serve anything but the released file. Bodies are capped
//! ([`crate::config::Limits::max_repair_body_bytes`]), files too
//! ([`crate::config::Limits::max_repair_file_bytes`], in total per request), and at most
//! [`crate::config::Limits::max_concurrent_repairs`] repairs are computed at once.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mist_games::manifest::{EntryKind, FileHash, Manifest};
use mist_games::repair::{self, Method};
use mist_wire::repair::{RepairFile, RepairMethod, RepairRequest, RepairResponse};

use crate::http::context::ApiContext;
use crate::http::error::{Error, InternalError, io_error};
use crate::http::extractor::AuthUser;
use crate::http::games::{VersionPath, visible_version};
use mist_wire::error::ErrorBody;

/// The most files one repair request may name.
const MAX_FILES: usize = 4096;
/// The largest manifest read for a repair.
const MAX_MANIFEST_BYTES: u64 = 256 * 1024 * 1024;
/// The zstd window packs may use (`docs/pack.md`: `--long=27`).
const PACK_WINDOW_LOG_MAX: u32 = 27;

pub(crate) fn router() -> Router<Arc<ApiContext>> {
    Router::new().route(
        "/v1/games/{game}/versions/{version}/repair",
        post(post_repair),
    )
}

/// Computes repair deltas for damaged files of a version.
#[utoipa::path(
    post,
    path = "/v1/games/{game}/versions/{version}/repair",
    tag = "catalog",
    params(VersionPath),
    request_body = RepairRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A repair delta per file", body = RepairResponse),
        (status = 400, description = "Malformed request, unknown path or bad signature",
         body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such version, or hidden", body = ErrorBody),
        (status = 413, description = "Body or files too large", body = ErrorBody),
        (status = 503, description = "The NAS is not available", body = ErrorBody),
    )
)]
pub(crate) async fn post_repair(
    State(ctx): State<Arc<ApiContext>>,
    AuthUser(viewer, catalog): AuthUser,
    Path(path): Path<VersionPath>,
    body: axum::body::Bytes,
) -> Result<Json<RepairResponse>, Error> {
    let (_, version) = visible_version(&catalog, &viewer, &path.game, &path.version)?;
    let version = version.clone();
    let request: RepairRequest = serde_json::from_slice(&body).map_err(|_| {
        Error::BadRequest(
            "expected a JSON object {\"files\": [{\"path\": …, \"signature\": …}]}".to_owned(),
        )
    })?;
    if request.files.is_empty() || request.files.len() > MAX_FILES {
        return Err(Error::BadRequest(format!(
            "name between 1 and {MAX_FILES} files"
        )));
    }
    let nas_root = ctx
        .config
        .nas_root
        .clone()
        .ok_or(Error::Unavailable("this server has no NAS configured"))?;
    let artifacts_dir = ctx.config.artifacts_dir.clone().ok_or(Error::Unavailable(
        "this server has no artifact store configured",
    ))?;
    let manifest_address = version
        .observed
        .manifest_address
        .clone()
        .ok_or(Error::NotFound)?;
    let manifest_artifact = ctx
        .db
        .artifact(&manifest_address)
        .await?
        .ok_or(Error::NotFound)?;
    let pack_artifact = match &version.observed.pack_address {
        Some(address) => ctx.db.artifact(address).await?,
        None => None,
    };

    let mut wanted = Vec::new();
    for file in request.files {
        let signature = BASE64.decode(file.signature.as_bytes()).map_err(|_| {
            Error::BadRequest(format!("the signature of {:?} is not base64", file.path))
        })?;
        wanted.push((file.path, signature));
    }
    let _permit = ctx
        .repair_permits
        .acquire()
        .await
        .map_err(|_| Error::Unavailable("shutting down"))?;
    let max_file_bytes = ctx.config.limits.max_repair_file_bytes;
    let job = RepairJob {
        nas_root,
        source: version.spec.source.clone(),
        manifest_path: artifacts_dir.join(&manifest_artifact.path),
        pack_path: pack_artifact.map(|artifact| artifacts_dir.join(artifact.path)),
        wanted,
        max_file_bytes,
    };
    let files = tokio::task::spawn_blocking(move || job.run())
        .await
        .map_err(|error| InternalError::Other(format!("repair panicked: {error}")))??;
    Ok(Json(RepairResponse { files }))
}

/// Everything a repair needs, to run on a blocking thread.
struct RepairJob {
    nas_root: PathBuf,
    source: String,
    manifest_path: PathBuf,
    pack_path: Option<PathBuf>,
    wanted: Vec<(String, Vec<u8>)>,
    max_file_bytes: u64,
}

impl RepairJob {
    fn run(self) -> Result<Vec<RepairFile>, Error> {
        let manifest = read_manifest(&self.manifest_path)?;
        let files: HashMap<&str, (u64, FileHash)> = manifest
            .entries
            .iter()
            .filter_map(|entry| match &entry.kind {
                EntryKind::File { size, blake3, .. } => {
                    Some((entry.path.as_str(), (*size, *blake3)))
                }
                _ => None,
            })
            .collect();
        let mut needed: BTreeMap<&str, (u64, FileHash)> = BTreeMap::new();
        let mut total: u64 = 0;
        for (path, _) in &self.wanted {
            let &(size, hash) = files.get(path.as_str()).ok_or_else(|| {
                Error::BadRequest(format!("{path:?} is not a file of this version"))
            })?;
            if needed.insert(path.as_str(), (size, hash)).is_none() {
                total = total.saturating_add(size);
            }
        }
        if total > self.max_file_bytes {
            return Err(Error::TooLarge(format!(
                "the files add up to {total} bytes, more than the {} a repair may send; \
                 download the version's pack instead",
                self.max_file_bytes
            )));
        }

        let mut true_bytes: HashMap<&str, Vec<u8>> = HashMap::new();
        let build = check_source(&self.nas_root, &self.source);
        for (&path, &(size, hash)) in &needed {
            if let Some(build) = &build
                && let Some(bytes) = read_build_file(build, path, size, &hash)
            {
                true_bytes.insert(path, bytes);
            }
        }
        let missing: HashMap<&str, (u64, FileHash)> = needed
            .iter()
            .filter(|(path, _)| !true_bytes.contains_key(*path))
            .map(|(path, facts)| (*path, *facts))
            .collect();
        if !missing.is_empty() {
            let pack_path = self.pack_path.as_deref().ok_or(Error::Unavailable(
                "the version's build and pack are not available right now",
            ))?;
            let from_pack = files_from_pack(pack_path, &missing)?;
            if from_pack.len() != missing.len() {
                tracing::warn!(
                    pack = %pack_path.display(),
                    "the pack does not hold every file of its manifest"
                );
                return Err(Error::Unavailable(
                    "the version's build and pack are not available right now",
                ));
            }
            for (path, bytes) in from_pack {
                if let Some((path, _)) = missing.get_key_value(path.as_str()) {
                    true_bytes.insert(path, bytes);
                }
            }
        }

        let mut repaired = Vec::new();
        for (path, signature) in &self.wanted {
            let (size, hash) = needed[path.as_str()];
            let data = &true_bytes[path.as_str()];
            let delta = repair::repair_delta(signature, data).map_err(|error| match error {
                repair::RepairError::InvalidSignature(_) => {
                    Error::BadRequest(format!("the signature of {path:?} is invalid: {error}"))
                }
                error => InternalError::Other(format!("repair of {path:?}: {error}")).into(),
            })?;
            let method = match repair::delta_method(&delta) {
                Ok(Method::Rsync) => RepairMethod::Rsync,
                Ok(Method::Whole) => RepairMethod::Whole,
                Err(error) => {
                    return Err(InternalError::Other(format!("repair of {path:?}: {error}")).into());
                }
            };
            repaired.push(RepairFile {
                path: path.clone(),
                method,
                size,
                blake3: hash.to_string(),
                delta: BASE64.encode(&delta),
            });
        }
        Ok(repaired)
    }
}

fn read_manifest(path: &FsPath) -> Result<Manifest, Error> {
    let file = mist_platform::fs::open_regular_nofollow(path)
        .map_err(|error| io_error(path.display().to_string(), error))?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|error| io_error(path.display().to_string(), error))?;
    serde_json::from_slice(&bytes).map_err(|error| {
        InternalError::Other(format!(
            "the manifest {} does not parse: {error}",
            path.display()
        ))
        .into()
    })
}

/// The build folder, when the recorded source is a safe relative path.
fn check_source(nas_root: &FsPath, source: &str) -> Option<PathBuf> {
    mist_specs::check::check_relative_path(source, "source").ok()?;
    Some(nas_root.join(source))
}

/// A file of the build, when it is a regular file with the manifest's size and hash.
fn read_build_file(build: &FsPath, path: &str, size: u64, hash: &FileHash) -> Option<Vec<u8>> {
    let file = mist_platform::fs::open_regular_nofollow(&build.join(path)).ok()?;
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() || metadata.len() != size {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).ok()?);
    file.take(size + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 == size && blake3::hash(&bytes).as_bytes() == &hash.0).then_some(bytes)
}

/// The wanted files found in a pack whose size and hash match, by path.
fn files_from_pack(
    pack_path: &FsPath,
    wanted: &HashMap<&str, (u64, FileHash)>,
) -> Result<HashMap<String, Vec<u8>>, Error> {
    let describe = |error: std::io::Error| io_error(pack_path.display().to_string(), error);
    let file = mist_platform::fs::open_regular_nofollow(pack_path).map_err(describe)?;
    let mut decoder = zstd::stream::read::Decoder::new(file).map_err(describe)?;
    decoder
        .window_log_max(PACK_WINDOW_LOG_MAX)
        .map_err(describe)?;
    let mut archive = tar::Archive::new(decoder);
    let mut found = HashMap::new();
    for entry in archive.entries().map_err(describe)? {
        let entry = entry.map_err(describe)?;
        let Ok(entry_path) = entry.path() else {
            continue;
        };
        let entry_path = entry_path.to_string_lossy().into_owned();
        let Some(&(size, hash)) = wanted.get(entry_path.as_str()) else {
            continue;
        };
        if entry.header().entry_type() != tar::EntryType::Regular || entry.size() != size {
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .take(size + 1)
            .read_to_end(&mut bytes)
            .map_err(describe)?;
        if bytes.len() as u64 == size && blake3::hash(&bytes).as_bytes() == &hash.0 {
            found.insert(entry_path, bytes);
            if found.len() == wanted.len() {
                break;
            }
        }
    }
    Ok(found)
}
