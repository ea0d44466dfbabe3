//! The work a diff asks for: jobs for the durable queue, and links the pass makes itself.

use serde::{Deserialize, Serialize};

/// Work to do. The variants that are jobs ([`Action::is_job`]) go to the durable queue; the
/// links are database writes the pass does itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    /// Scan a version's source build, check it and record its manifest.
    Ingest {
        /// Game.
        game: String,
        /// Version.
        version: String,
        /// The build folder relative to the NAS root.
        source: String,
        /// The digest the spec pins, if any.
        pinned: Option<String>,
    },
    /// Pack a version.
    Pack {
        /// Game.
        game: String,
        /// Version.
        version: String,
        /// Its tree digest.
        digest: String,
    },
    /// Make the tree delta from one version to another.
    Delta {
        /// Game.
        game: String,
        /// Old version.
        from: String,
        /// New version.
        to: String,
        /// The old version's tree digest.
        from_digest: String,
        /// The new version's tree digest.
        to_digest: String,
    },
    /// Point a version at a pack that exists for the same tree digest.
    LinkPack {
        /// Game.
        game: String,
        /// Version.
        version: String,
        /// The pack's address.
        address: String,
    },
    /// Record a delta edge whose artifact exists for the same pair of tree digests.
    LinkDelta {
        /// Game.
        game: String,
        /// Old version.
        from: String,
        /// New version.
        to: String,
        /// The delta's address.
        address: String,
    },
    /// Delete a version's artifacts (retention).
    Prune {
        /// Game.
        game: String,
        /// Version.
        version: String,
        /// Delete the version's row too: it is no longer in the specs.
        remove: bool,
    },
    /// Fetch a game's store metadata and header image from Steam.
    Metadata {
        /// Game.
        game: String,
        /// The Steam app.
        app_id: u32,
        /// When the fetch was due (epoch ms; 0 for "at once"): each refresh is new work.
        due: i64,
    },
    /// Put the spec repository's header image of a game in the store and record it
    /// (`Some`), or unrecord it (`None`).
    SpecImage {
        /// Game.
        game: String,
        /// The image's address.
        address: Option<String>,
    },
}

impl Action {
    /// Whether the action is work for the durable queue (rather than a write the pass does
    /// itself).
    pub fn is_job(&self) -> bool {
        matches!(
            self,
            Action::Ingest { .. }
                | Action::Pack { .. }
                | Action::Delta { .. }
                | Action::Prune { .. }
                | Action::Metadata { .. }
        )
    }
}
