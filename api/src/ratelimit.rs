//! The login limits: failed logins counted in the database per client address, per user and
//! address, and per user, so that every API replica on the database enforces the same counts.
//!
//! [`LoginLimiter::check`] runs before the password check (and its argon2id hash), so a
//! refused attempt costs three small reads. The rules ([`decide`]), with each count taken in a
//! fixed window ([`Limits::login_window`]) that starts at its key's first failure:
//! - an address past [`Limits::login_max_client_failures`] (whatever the user names) is refused;
//! - a user and address past [`Limits::login_max_failures`] is refused;
//! - a user past [`Limits::login_max_user_failures`] from all addresses together is refused
//!   only from addresses that have failed for that user in the window. An address that has
//!   not failed for the user still gets its password checked, so an attacker cannot lock the
//!   user out; each of the attacker's addresses gets one guess per window instead of
//!   [`Limits::login_max_failures`].
//!
//! A success forgets the user and address's failures, never the address's or the user's: an
//! account of one's own must not reset the limit on guessing others'.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use mist_db::logins::LoginFailures;
use mist_db::{Db, EpochMs};

use crate::config::Limits;
use crate::http::error::Error;

/// Counts failed logins in a read-write handle on the database.
pub(crate) struct LoginLimiter {
    store: Db,
    limits: Limits,
}

/// The three keys one attempt counts against.
pub(crate) struct LoginKeys {
    client: String,
    pair: String,
    user: String,
}

/// Names longer than this are counted under their BLAKE3 digest, so that keys stay small.
const MAX_NAME_IN_KEY: usize = 128;

impl LoginKeys {
    /// The keys of an attempt by `client` to log in as `user_name`.
    pub(crate) fn new(user_name: &str, client: IpAddr) -> LoginKeys {
        let user = if user_name.len() <= MAX_NAME_IN_KEY {
            user_name.to_owned()
        } else {
            format!("#{}", blake3::hash(user_name.as_bytes()).to_hex())
        };
        LoginKeys {
            client: format!("client:{client}"),
            pair: format!("pair:{client} {user}"),
            user: format!("user:{user}"),
        }
    }
}

impl LoginLimiter {
    /// Counts in `store`, which must be writable, under `limits`.
    pub(crate) fn new(store: Db, limits: Limits) -> LoginLimiter {
        LoginLimiter { store, limits }
    }

    /// `Err(Error::TooManyRequests)` when the attempt is refused without a password check.
    pub(crate) async fn check(&self, keys: &LoginKeys, now: SystemTime) -> Result<(), Error> {
        let (now_ms, live_since) = self.times(now);
        let client = self.store.login_failures(&keys.client, live_since).await?;
        let pair = self.store.login_failures(&keys.pair, live_since).await?;
        let user = self.store.login_failures(&keys.user, live_since).await?;
        decide(&self.limits, Counts { client, pair, user }, now_ms)
            .map_err(|retry_after| Error::TooManyRequests { retry_after })
    }

    /// Counts a failed attempt against all three keys.
    pub(crate) async fn record_failure(
        &self,
        keys: &LoginKeys,
        now: SystemTime,
    ) -> Result<(), Error> {
        let (now_ms, live_since) = self.times(now);
        self.store
            .record_login_failure(&[&keys.client, &keys.pair, &keys.user], now_ms, live_since)
            .await?;
        Ok(())
    }

    /// Forgets the user and address's failures after a successful login.
    pub(crate) async fn record_success(&self, keys: &LoginKeys) -> Result<(), Error> {
        self.store.clear_login_failures(&keys.pair).await?;
        Ok(())
    }

    /// `now` in milliseconds, and the time at or before which a window has ended.
    fn times(&self, now: SystemTime) -> (EpochMs, EpochMs) {
        let now_ms = epoch_ms(now);
        let window_ms = i64::try_from(self.limits.login_window.as_millis()).unwrap_or(i64::MAX);
        (now_ms, now_ms.saturating_sub(window_ms))
    }
}

/// The live failures of an attempt's keys.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    client: Option<LoginFailures>,
    pair: Option<LoginFailures>,
    user: Option<LoginFailures>,
}

/// The rules of the module documentation: `Err(retry_after)` when the attempt is refused.
fn decide(limits: &Limits, counts: Counts, now_ms: EpochMs) -> Result<(), Duration> {
    let over = |count: Option<LoginFailures>, max: u32| {
        count.filter(|count| count.failures >= u64::from(max))
    };
    let refused_by = over(counts.client, limits.login_max_client_failures)
        .or(over(counts.pair, limits.login_max_failures))
        .or(over(counts.user, limits.login_max_user_failures).filter(|_| counts.pair.is_some()));
    match refused_by {
        None => Ok(()),
        Some(count) => {
            let window_ms = u64::try_from(limits.login_window.as_millis()).unwrap_or(u64::MAX);
            let ends = u64::try_from(count.window_start)
                .unwrap_or(0)
                .saturating_add(window_ms);
            let now_ms = u64::try_from(now_ms).unwrap_or(0);
            Err(Duration::from_millis(ends.saturating_sub(now_ms)).max(Duration::from_secs(1)))
        }
    }
}

/// Milliseconds since the Unix epoch.
fn epoch_ms(time: SystemTime) -> EpochMs {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: EpochMs = 1_700_000_000_000;

    fn limits() -> Limits {
        Limits {
            login_max_failures: 3,
            login_max_client_failures: 5,
            login_max_user_failures: 10,
            login_window: Duration::from_secs(60),
            ..Limits::default()
        }
    }

    fn failures(n: u64) -> Option<LoginFailures> {
        Some(LoginFailures {
            failures: n,
            window_start: T0,
        })
    }

    #[test]
    fn each_limit_refuses_until_its_window_ends() {
        let limits = limits();
        let later = T0 + 10_000;
        assert_eq!(decide(&limits, Counts::default(), later), Ok(()));
        let pair = Counts {
            pair: failures(3),
            client: failures(3),
            user: failures(3),
        };
        assert_eq!(decide(&limits, pair, later), Err(Duration::from_secs(50)));
        let client = Counts {
            client: failures(5),
            ..Counts::default()
        };
        assert_eq!(decide(&limits, client, later), Err(Duration::from_secs(50)));
        let below = Counts {
            pair: failures(2),
            client: failures(4),
            user: failures(9),
        };
        assert_eq!(decide(&limits, below, later), Ok(()));
        assert_eq!(
            decide(&limits, pair, T0 + 59_999),
            Err(Duration::from_secs(1)),
            "never a Retry-After of 0"
        );
    }

    #[test]
    fn the_user_ceiling_spares_addresses_that_have_not_failed() {
        let limits = limits();
        let from_a_failed_address = Counts {
            pair: failures(1),
            user: failures(10),
            client: failures(1),
        };
        assert!(decide(&limits, from_a_failed_address, T0).is_err());
        let from_a_clean_address = Counts {
            pair: None,
            user: failures(1000),
            client: None,
        };
        assert_eq!(decide(&limits, from_a_clean_address, T0), Ok(()));
    }

    #[test]
    fn long_names_make_short_keys() {
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let keys = LoginKeys::new(&"x".repeat(5000), client);
        assert!(keys.user.len() < 80 && keys.pair.len() < 100);
        assert_eq!(LoginKeys::new("alice", client).pair, "pair:192.0.2.1 alice");
    }
}
