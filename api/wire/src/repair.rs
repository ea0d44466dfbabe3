//! `POST /v1/games/{game}/versions/{version}/repair`: rsync repair deltas for a client's
//! damaged files.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The files a client could not verify, with signatures of what it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairRequest {
    /// One entry per damaged file.
    pub files: Vec<RepairFileRequest>,
}

/// One damaged file of a [`RepairRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepairFileRequest {
    /// The file's path in the manifest.
    pub path: String,
    /// The fast_rsync signature of the client's bytes
    /// (`mist_games::repair::signature`), base64 (standard alphabet, padded).
    pub signature: String,
}

/// The repair deltas: one entry per requested file, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RepairResponse {
    /// The repairs.
    pub files: Vec<RepairFile>,
}

/// The repair of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepairFile {
    /// The manifest path.
    pub path: String,
    /// How the delta is made.
    pub method: RepairMethod,
    /// The true file's size.
    pub size: u64,
    /// The true file's BLAKE3 (64 hex digits).
    pub blake3: String,
    /// The repair delta, base64, for `mist_games::repair::apply_repair`.
    pub delta: String,
}

/// How a repair delta is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RepairMethod {
    /// An rsync delta against the client's bytes.
    Rsync,
    /// The whole file, compressed (smaller than the delta).
    Whole,
}

impl std::fmt::Display for RepairMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RepairMethod {
    /// The name on the wire: `rsync` or `whole`.
    pub fn as_str(self) -> &'static str {
        match self {
            RepairMethod::Rsync => "rsync",
            RepairMethod::Whole => "whole",
        }
    }
}
