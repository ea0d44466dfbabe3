//! The catalog: `GET /v1/games` and `GET /v1/games/{game}`.
//!
//! Friends see public games, private games granted to them, and only Ready versions; admins
//! see every version with its [`VersionState`] and [`ConditionInfo`]s. Fields only admins
//! get are `Option`s that are absent for friends.
//!
//! A game's `description` is the spec's, else the one pulled from Steam; [`StoreMetadata`]
//! is the rest of what Steam says, and [`ImageLink`] the header image (the spec's, else
//! Steam's), served by this server so that friends never reach Steam.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /v1/games`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GameList {
    /// The games the viewer may see, by name.
    pub games: Vec<GameSummary>,
}

/// A game in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameSummary {
    /// The game's name.
    pub name: String,
    /// The title to show.
    pub title: String,
    /// A short description: the spec's, else Steam's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the store says of the game, when it has a Steam app id and a fetch succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreMetadata>,
    /// The header image, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_image: Option<ImageLink>,
    /// Whether the game is private (seen by admins and the users granted it).
    pub private: bool,
    /// The newest Ready version, the default target of an update.
    pub latest: Option<String>,
    /// The versions the viewer may see, oldest first.
    pub versions: Vec<VersionSummary>,
    /// Admins only: whether the reconciler leaves the game as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
}

/// A version in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionSummary {
    /// The version's name.
    pub name: String,
    /// Release notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The build's tree digest, `blake3:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_digest: Option<String>,
    /// Bytes of the full download (the pack), once it is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Admins only: the version's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<VersionState>,
}

/// `GET /v1/games/{game}`: one game in detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GameDetail {
    /// The game's name.
    pub name: String,
    /// The title to show.
    pub title: String,
    /// A short description: the spec's, else Steam's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the store says of the game, when it has a Steam app id and a fetch succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreMetadata>,
    /// The header image, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_image: Option<ImageLink>,
    /// Whether the game is private.
    pub private: bool,
    /// How the client starts the game.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchInfo>,
    /// The newest Ready version.
    pub latest: Option<String>,
    /// The versions the viewer may see, oldest first.
    pub versions: Vec<VersionDetail>,
    /// Admins only: whether the reconciler leaves the game as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
    /// Admins only: the game's conditions, e.g. `MetadataStale` while its store metadata
    /// cannot be fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ConditionInfo>>,
}

/// What the store (Steam) says of a game beyond its description: the last good fetch, kept
/// while later fetches fail (an admin sees the game's `MetadataStale` condition then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreMetadata {
    /// The Steam app the metadata is of.
    pub steam_app_id: u32,
    /// Genres, e.g. `Action`.
    pub genres: Vec<String>,
    /// Developers.
    pub developers: Vec<String>,
    /// The release date as the store writes it, e.g. `25 Jan, 2018`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<String>,
    /// When it was fetched, epoch milliseconds.
    pub fetched_at: i64,
}

/// A game's header image, served by this server with the same access as the game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageLink {
    /// Where to get it: `/v1/games/{game}/image/{digest}`; it never changes.
    pub url: String,
    /// `blake3:<hex>` of its bytes, also its entity tag.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// `image/png`, `image/jpeg` or `image/webp`.
    pub content_type: String,
}

/// How the client starts a game.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LaunchInfo {
    /// The program, relative to the install folder.
    pub executable: String,
    /// Arguments before any the friend adds.
    #[serde(default)]
    pub args: Vec<String>,
}

/// One version in detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionDetail {
    /// The version's name.
    pub name: String,
    /// Release notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The build's tree digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_digest: Option<String>,
    /// The manifest artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ArtifactLink>,
    /// The pack artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<ArtifactLink>,
    /// When its pack was made, epoch milliseconds: when the version became installable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<i64>,
    /// Admins only: the version's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<VersionState>,
    /// Admins only: the version's conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ConditionInfo>>,
}

/// An artifact to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactLink {
    /// `blake3:<hex>` of its bytes.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// Where to download it: `/v1/artifacts/{digest}`.
    pub url: String,
}

/// Where a version is in its life, as the reconciler recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// In the specs, not ingested yet.
    Pending,
    /// Its build is scanned; its pack or deltas are not made yet.
    Ingested,
    /// Served to friends.
    Ready,
    /// Cannot become Ready until an admin acts (see its conditions).
    Stalled,
    /// No longer in the specs, or beyond the retention policy.
    Retired,
}

/// A condition of a version or a game (admins only), like a Kubernetes condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConditionInfo {
    /// Which condition.
    pub r#type: ConditionType,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A stable reason, e.g. `DigestMismatch`.
    pub reason: String,
    /// A sentence for people.
    pub message: String,
    /// When the status last changed, epoch milliseconds.
    pub since: i64,
}

/// The kinds of condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ConditionType {
    /// Served to friends.
    Ready,
    /// Work is under way.
    Reconciling,
    /// Cannot progress without an admin.
    Stalled,
    /// A game's store metadata could not be fetched; the last good one is still served.
    MetadataStale,
}

/// Whether a condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not.
    False,
    /// Not known yet.
    Unknown,
}
