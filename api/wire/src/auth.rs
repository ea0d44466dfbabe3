//! `POST /v1/auth/login` and `GET /v1/users`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A friend: sees public games, private games granted to them, and Ready versions.
    User,
    /// Sees everything, with states and conditions.
    Admin,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Role {
    /// The name on the wire and in specs: `user` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// A login request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

/// A token and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// The bearer token for `Authorization: Bearer …`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds since the Unix epoch at which the token expires.
    pub expires_at: u64,
    /// The user name.
    pub user: String,
    /// The user's role.
    pub role: Role,
}

/// A user as admins see it: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// The login name.
    pub name: String,
    /// The name shown to others.
    pub display_name: Option<String>,
    /// The user's role.
    pub role: Role,
    /// Whether the user is disabled (cannot log in).
    pub disabled: bool,
}

/// `GET /v1/users` (admins only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    /// Every user, by name.
    pub users: Vec<UserInfo>,
}
