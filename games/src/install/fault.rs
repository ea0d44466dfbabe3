//! Fault injection for the crash tests, and the fsync that counts as a step.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::confined::Dir;
use crate::install::{FAULT_ENV, InstallError, io_error};

pub(crate) fn sync(dir: &Dir, shown: &Path) -> Result<(), InstallError> {
    dir.sync().map_err(io_error(shown, "sync"))?;
    fault_point();
    Ok(())
}

/// Counts a filesystem step and aborts the process at the `N`-th when
/// `MIST_FAULT_AFTER_OPS=N` is set (see the module docs).
pub(crate) fn fault_point() {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let limit = LIMIT.get_or_init(|| {
        std::env::var(FAULT_ENV)
            .ok()
            .and_then(|value| value.parse().ok())
    });
    if let Some(limit) = *limit
        && COUNT.fetch_add(1, Ordering::SeqCst) + 1 == limit
    {
        std::process::abort();
    }
}
