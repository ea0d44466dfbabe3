//! Login tokens: HS256 JWTs with `sub`, `role`, `exp`, `iat` and `iss`.
//!
//! A token only says who logged in and when; it grants nothing by itself. Every request
//! checks the user again in the database (see `http/extractor.rs`), so a disabled, removed or
//! demoted user stops at once, whatever tokens they hold.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::secret::JwtSecret;

/// The claims of a login token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The user name.
    pub(crate) sub: String,
    /// `user` or `admin`, as it was at login.
    pub(crate) role: String,
    /// Expiry, seconds since the Unix epoch.
    pub(crate) exp: u64,
    /// Issued at, seconds since the Unix epoch.
    pub(crate) iat: u64,
    /// The issuer.
    pub(crate) iss: String,
}

/// Signs and checks tokens with one secret.
pub(crate) struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    lifetime: Duration,
}

/// Why a token was refused; only ever logged at `debug`, never sent.
#[derive(Debug, thiserror::Error)]
#[error("invalid token")]
pub(crate) struct TokenError(#[from] jsonwebtoken::errors::Error);

impl TokenKeys {
    pub(crate) fn new(secret: &JwtSecret, issuer: &str, lifetime: Duration) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        // Expiry is exact: the clocks that matter are this server's own.
        validation.leeway = 0;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.bytes()),
            decoding: DecodingKey::from_secret(secret.bytes()),
            validation,
            issuer: issuer.to_owned(),
            lifetime,
        }
    }

    /// A token for `user` with `role`, issued now.
    pub(crate) fn issue(&self, user: &str, role: &str) -> Result<(String, Claims), TokenError> {
        let now = unix_now();
        let claims = Claims {
            sub: user.to_owned(),
            role: role.to_owned(),
            exp: now + self.lifetime.as_secs(),
            iat: now,
            iss: self.issuer.clone(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// The claims of a token signed with this secret by this issuer, not expired.
    pub(crate) fn check(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> TokenKeys {
        TokenKeys::new(
            &JwtSecret::from_bytes(secret).unwrap(),
            "mist",
            Duration::from_secs(60),
        )
    }

    #[test]
    fn round_trip() {
        let keys = keys(&[7; 32]);
        let (token, claims) = keys.issue("alice", "user").unwrap();
        assert_eq!(keys.check(&token).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 60);
    }

    #[test]
    fn refused_tokens() {
        let keys_a = keys(&[7; 32]);
        let keys_b = keys(&[8; 32]);
        let (token, _) = keys_b.issue("alice", "user").unwrap();
        assert!(keys_a.check(&token).is_err(), "another secret");
        assert!(keys_a.check("not.a.token").is_err());
        assert!(keys_a.check("").is_err());
        let other_issuer = TokenKeys::new(
            &JwtSecret::from_bytes(&[7; 32]).unwrap(),
            "elsewhere",
            Duration::from_secs(60),
        );
        let (token, _) = other_issuer.issue("alice", "user").unwrap();
        assert!(keys_a.check(&token).is_err(), "another issuer");
        let expired = Claims {
            sub: "alice".into(),
            role: "user".into(),
            exp: unix_now() - 1,
            iat: unix_now() - 100,
            iss: "mist".into(),
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &expired,
            &EncodingKey::from_secret(&[7; 32]),
        )
        .unwrap();
        assert!(keys_a.check(&token).is_err(), "expired");
        let none_alg = format!(
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
            token.split('.').nth(1).unwrap()
        );
        assert!(keys_a.check(&none_alg).is_err(), "alg none");
    }
}
