//! The body of every error response.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What every `4xx` and `5xx` answer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people: a fixed phrase, or for a bad request what to fix.
    pub error: String,
}
