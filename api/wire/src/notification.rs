//! The notifications' facts, and the generic webhook's body.
//!
//! The reconciler writes a notification's facts ([`VersionFacts`] or [`DigestFacts`]) into
//! the outbox as JSON; the Discord templates render them and a generic webhook receives them
//! inside a [`WebhookBody`]. `docs/notifications.md` shows the JSON.

use serde::{Deserialize, Serialize};

/// What a notification is about, the generic webhook's `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// A version is Ready for the first time (facts: [`VersionFacts`]).
    Ready,
    /// A version went Stalled ([`VersionFacts`] with `reason` and `message`).
    Stalled,
    /// A version is no longer Stalled ([`VersionFacts`]).
    Recovered,
    /// The versions Ready when the first sync ended ([`DigestFacts`]).
    Digest,
}

/// The facts of one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionFacts {
    /// The game's name.
    pub game: String,
    /// The game's title.
    pub title: String,
    /// The version's name.
    pub version: String,
    /// Its release notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// Bytes of its full download (the pack), once made.
    #[serde(default)]
    pub full_size: Option<u64>,
    /// The version before it, when a delta from that one exists.
    #[serde(default)]
    pub update_from: Option<String>,
    /// Bytes of that delta.
    #[serde(default)]
    pub update_size: Option<u64>,
    /// `stalled` only: the condition's reason, e.g. `SourceMissing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `stalled` only: the condition's message, what the admin should know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The first sync's digest: how many versions of how many games are Ready, and the first of
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestFacts {
    /// How many versions are Ready.
    pub count: u64,
    /// Of how many games.
    pub game_count: u64,
    /// The first of them (at most 50), by game and version.
    pub versions: Vec<VersionFacts>,
}

/// A generic webhook's body: the notification and its facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody<Facts> {
    /// The notification's id: a receiver that sees one twice (delivery is at least once)
    /// can drop the second.
    pub id: i64,
    /// What it is about.
    pub event: Event,
    /// Who it is for: `friends` or `admins`.
    pub audience: String,
    /// When it was written, epoch milliseconds.
    pub created_at: i64,
    /// The facts: [`VersionFacts`] or [`DigestFacts`], by `event`.
    pub data: Facts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_body_reads_back() {
        let text = r#"{"id": 42, "event": "ready", "audience": "friends", "createdAt": 1796675444049,
            "data": {"game": "celeste", "title": "Celeste", "version": "1.4", "notes": "New chapter.",
                     "fullSize": 1500000000, "updateFrom": "1.3", "updateSize": 12000000}}"#;
        let body: WebhookBody<VersionFacts> = serde_json::from_str(text).unwrap();
        assert_eq!(body.event, Event::Ready);
        assert_eq!(body.data.update_size, Some(12_000_000));
        let again: WebhookBody<VersionFacts> =
            serde_json::from_str(&serde_json::to_string(&body).unwrap()).unwrap();
        assert_eq!(again, body);
    }
}
