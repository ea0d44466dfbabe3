//! Actions as durable jobs: deterministic, content-derived keys and payloads.
//!
//! The key says what the work produces, not who asked for it, so identical work is queued
//! once and, once done, never done again ([`mist_db::queue::Queue::enqueue`] ignores a key
//! it has):
//!
//! | action | key |
//! |---|---|
//! | ingest | `ingest:<game>:<version>:<source>:<pinned digest or ->` — a new source or pin is new work |
//! | pack | `pack:<tree digest>` — two versions with the same content share one pack |
//! | delta | `delta:<from tree digest>:<to tree digest>` |
//! | prune | `prune:<game>:<version>`, and `…:row` when the row goes too |
//! | metadata | `metadata:<game>:<app id>:<due time>` — each refresh is new work |
//!
//! The payload is the [`Action`] as JSON; the worker reads everything else fresh when it runs.
//! A job queued again (its output vanished) keeps its first payload, so a pack or delta job
//! looks for the content by digest when the version it names no longer has it.

use mist_db::queue::NewJob;
use mist_wire::status::JobKind;

use crate::diff::action::Action;

/// The key of an action's job; `None` for actions the pass does itself (links).
pub fn key(action: &Action) -> Option<String> {
    match action {
        Action::Ingest {
            game,
            version,
            source,
            pinned,
        } => Some(format!(
            "ingest:{game}:{version}:{source}:{}",
            pinned.as_deref().unwrap_or("-")
        )),
        Action::Pack { digest, .. } => Some(format!("pack:{digest}")),
        Action::Delta {
            from_digest,
            to_digest,
            ..
        } => Some(format!("delta:{from_digest}:{to_digest}")),
        Action::Prune {
            game,
            version,
            remove,
        } => Some(format!(
            "prune:{game}:{version}{}",
            if *remove { ":row" } else { "" }
        )),
        Action::Metadata { game, app_id, due } => Some(format!("metadata:{game}:{app_id}:{due}")),
        Action::LinkPack { .. } | Action::LinkDelta { .. } | Action::SpecImage { .. } => None,
    }
}

/// The job kind of an action: `ingest`, `pack`, `delta`, `prune` or `metadata`.
pub fn kind(action: &Action) -> JobKind {
    match action {
        Action::Ingest { .. } => JobKind::Ingest,
        Action::Metadata { .. } | Action::SpecImage { .. } => JobKind::Metadata,
        Action::Pack { .. } | Action::LinkPack { .. } => JobKind::Pack,
        Action::Delta { .. } | Action::LinkDelta { .. } => JobKind::Delta,
        Action::Prune { .. } => JobKind::Prune,
    }
}

/// The job for an action; `None` for actions the pass does itself.
///
/// Priorities (lower runs first): ingests first, since everything else needs their
/// manifests; then packs and deltas; metadata after them (it never holds up a version);
/// pruning last.
pub fn new_job(action: &Action) -> Option<NewJob> {
    let key = key(action)?;
    let (game, version, priority) = match action {
        Action::Ingest { game, version, .. } => (game, Some(version), 0),
        Action::Pack { game, version, .. } => (game, Some(version), 1),
        Action::Delta { game, to, .. } => (game, Some(to), 1),
        Action::Metadata { game, .. } => (game, None, 2),
        Action::Prune { game, version, .. } => (game, Some(version), 3),
        Action::LinkPack { .. } | Action::LinkDelta { .. } | Action::SpecImage { .. } => {
            return None;
        }
    };
    Some(NewJob {
        key,
        kind: kind(action).as_str().to_owned(),
        game: Some(game.clone()),
        version: version.cloned(),
        payload_json: serde_json::to_string(action).expect("actions serialize"),
        priority,
    })
}

/// Reads a job's payload back.
pub fn parse_payload(payload_json: &str) -> Result<Action, serde_json::Error> {
    serde_json::from_str(payload_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_content_derived() {
        let d1 = format!("blake3:{}", "1".repeat(64));
        let d2 = format!("blake3:{}", "2".repeat(64));
        let cases = [
            (
                Action::Ingest {
                    game: "celeste".into(),
                    version: "1.0".into(),
                    source: "incoming/celeste/1.0".into(),
                    pinned: None,
                },
                Some("ingest:celeste:1.0:incoming/celeste/1.0:-".to_string()),
            ),
            (
                Action::Pack {
                    game: "celeste".into(),
                    version: "1.0".into(),
                    digest: d1.clone(),
                },
                Some(format!("pack:{d1}")),
            ),
            (
                // Another game with the same content: the same pack.
                Action::Pack {
                    game: "other".into(),
                    version: "9".into(),
                    digest: d1.clone(),
                },
                Some(format!("pack:{d1}")),
            ),
            (
                Action::Delta {
                    game: "celeste".into(),
                    from: "1.0".into(),
                    to: "1.1".into(),
                    from_digest: d1.clone(),
                    to_digest: d2.clone(),
                },
                Some(format!("delta:{d1}:{d2}")),
            ),
            (
                Action::LinkPack {
                    game: "celeste".into(),
                    version: "1.0".into(),
                    address: d1.clone(),
                },
                None,
            ),
        ];
        for (action, want) in cases {
            assert_eq!(key(&action), want, "{action:?}");
            if let Some(job) = new_job(&action) {
                assert_eq!(parse_payload(&job.payload_json).unwrap(), action);
                assert!(JobKind::parse(&job.kind).is_some());
            }
        }
    }
}
