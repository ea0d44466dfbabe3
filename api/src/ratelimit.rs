//! Counting failed logins per key (a client address, a user name) in fixed windows.
//!
//! Time is passed in, so the tests move it instead of sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures per key within a window that starts at the key's first failure.
pub(crate) struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    max_keys: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    window_start: Instant,
}

impl FailureLimiter {
    /// At most `max_failures` failures per key in `window`; at most `max_keys` keys tracked.
    pub(crate) fn new(max_failures: u32, window: Duration, max_keys: usize) -> FailureLimiter {
        FailureLimiter {
            max_failures,
            window,
            max_keys,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when `key` used up its failures and its window has not ended.
    pub(crate) fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match entries.get(key) {
            Some(entry) if entry.failures >= self.max_failures => {
                let ends = entry.window_start + self.window;
                if now < ends { Err(ends - now) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure for `key`. When the table is full of live windows, the failure is
    /// counted against nothing new: the caller's other key (the client address) still limits.
    pub(crate) fn record_failure(&self, key: &str, now: Instant) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !entries.contains_key(key) && entries.len() >= self.max_keys {
            let window = self.window;
            entries.retain(|_, entry| now.saturating_duration_since(entry.window_start) < window);
            if entries.len() >= self.max_keys {
                return;
            }
        }
        let entry = entries.entry(key.to_owned()).or_insert(Entry {
            failures: 0,
            window_start: now,
        });
        if now.saturating_duration_since(entry.window_start) >= self.window {
            *entry = Entry {
                failures: 0,
                window_start: now,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// Forgets `key`'s failures (a successful login).
    pub(crate) fn reset(&self, key: &str) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_within_the_window_then_forgets() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("ip:1", t0).is_ok());
            limiter.record_failure("ip:1", t0);
        }
        assert_eq!(
            limiter.check("ip:1", t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        assert!(
            limiter.check("ip:2", t0).is_ok(),
            "other keys are not affected"
        );
        assert!(limiter.check("ip:1", t0 + Duration::from_secs(60)).is_ok());
        limiter.record_failure("ip:1", t0 + Duration::from_secs(61));
        assert!(
            limiter.check("ip:1", t0 + Duration::from_secs(61)).is_ok(),
            "a new window"
        );
    }

    #[test]
    fn reset_forgets() {
        let limiter = FailureLimiter::new(1, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        limiter.record_failure("user:a", t0);
        assert!(limiter.check("user:a", t0).is_err());
        limiter.reset("user:a");
        assert!(limiter.check("user:a", t0).is_ok());
    }

    #[test]
    fn bounded_table() {
        let limiter = FailureLimiter::new(1, Duration::from_secs(60), 2);
        let t0 = Instant::now();
        limiter.record_failure("a", t0);
        limiter.record_failure("b", t0);
        limiter.record_failure("c", t0);
        assert!(limiter.check("a", t0).is_err());
        assert!(limiter.check("c", t0).is_ok(), "not tracked while full");
        let later = t0 + Duration::from_secs(61);
        limiter.record_failure("c", later);
        assert!(
            limiter.check("c", later).is_err(),
            "expired windows make room"
        );
    }
}
