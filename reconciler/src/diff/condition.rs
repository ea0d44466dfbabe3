//! A version's condition as the diff computes it: its status, a stable reason and a message,
//! with the state its row should have.

use mist_db::state::VersionState;

/// A version's condition and the state its row should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStatus {
    /// The condition.
    pub condition: Condition,
    /// The row's state.
    pub state: VersionState,
}

/// A version's condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Ready, reconciling, stalled or inactive.
    pub status: Status,
    /// A stable reason.
    pub reason: Reason,
    /// A sentence for people.
    pub message: String,
}

/// The kind of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Served to friends.
    Ready,
    /// Work is queued or running.
    Reconciling,
    /// No progress is possible without a change (to the specs or the NAS).
    Stalled,
    /// Retired or pruned: deliberately not served.
    Inactive,
}

/// Why a version is in its state: stable strings for the API and scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Manifest, pack and delta from the previous version exist.
    Ready,
    /// Waiting for the ingest.
    Ingesting,
    /// Waiting for its pack or delta.
    Building,
    /// The source build is not on the NAS (and is needed).
    SourceMissing,
    /// The build changed on the NAS after it was ingested.
    DigestMismatch,
    /// The build does not hash to the digest the spec pins.
    PinnedDigestMismatch,
    /// The build cannot be served (special files, escaping symlinks, …).
    InvalidBuild,
    /// The previous version cannot serve as the base of the delta.
    Blocked,
    /// A job failed in a way retrying cannot fix; see the message.
    Failed,
    /// Beyond the game's `keepVersions`.
    Pruned,
    /// No longer in the specs.
    Retired,
    /// The commit would retire more of what is Ready than an admin may do by accident; the
    /// version is still served until the admin confirms.
    NeedsConfirmation,
}

impl Reason {
    /// The stable text of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ready => "Ready",
            Reason::Ingesting => "Ingesting",
            Reason::Building => "Building",
            Reason::SourceMissing => "SourceMissing",
            Reason::DigestMismatch => "DigestMismatch",
            Reason::PinnedDigestMismatch => "PinnedDigestMismatch",
            Reason::InvalidBuild => "InvalidBuild",
            Reason::Blocked => "Blocked",
            Reason::Failed => "Failed",
            Reason::Pruned => "Pruned",
            Reason::Retired => "Retired",
            Reason::NeedsConfirmation => "NeedsConfirmation",
        }
    }

    /// The reason a terminal job error starts with (`"<Reason>: <message>"`), `Failed` when
    /// it names none.
    pub fn of_terminal_error(error: &str) -> (Reason, &str) {
        for reason in [
            Reason::PinnedDigestMismatch,
            Reason::DigestMismatch,
            Reason::InvalidBuild,
        ] {
            if let Some(rest) = error
                .strip_prefix(reason.as_str())
                .and_then(|rest| rest.strip_prefix(": "))
            {
                return (reason, rest);
            }
        }
        (Reason::Failed, error)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    /// `Ready`, `Reconciling`, `Stalled` or `Inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ready => "Ready",
            Status::Reconciling => "Reconciling",
            Status::Stalled => "Stalled",
            Status::Inactive => "Inactive",
        }
    }
}
