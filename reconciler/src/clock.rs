//! The reconciler's clock.

use std::time::{SystemTime, UNIX_EPOCH};

use mist_db::EpochMs;

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> EpochMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
