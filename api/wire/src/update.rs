//! `GET /v1/games/{game}/update?from=V&to=W`: how a client gets from the version it has to
//! the one it wants with the fewest bytes.
//!
//! The server prices three [`Route`]s and answers with the cheapest as an [`UpdatePlan`];
//! the client checks the plan ([`UpdatePlan::check`]) before it downloads anything.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::ArtifactLink;
use crate::digest::is_digest;

/// An update plan with download links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdatePlan {
    /// The game.
    pub game: String,
    /// The version the client has; absent for a fresh install.
    pub from: Option<String>,
    /// The version the plan ends at.
    pub to: String,
    /// The route taken.
    pub route: Route,
    /// The downloads, in the order to apply them.
    pub steps: Vec<PlanStep>,
    /// The sum of the steps' sizes.
    pub total_bytes: u64,
    /// The target's manifest, to verify the result against.
    pub manifest: Option<ArtifactLink>,
    /// The routes not taken, with their cost or why they were impossible.
    #[serde(default)]
    pub rejected: Vec<Rejected>,
}

/// One download of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    /// A pack (unpack into an empty folder) or a delta (apply to `from`).
    pub kind: StepKind,
    /// The version a delta applies to.
    pub from: Option<String>,
    /// The version the step makes.
    pub to: String,
    /// The artifact's digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Where to download it: `/v1/artifacts/{digest}`.
    pub url: String,
}

/// How a plan gets to its target.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Route {
    /// Nothing to do: `from` is the target.
    UpToDate,
    /// The target's pack.
    Full,
    /// At least one warmed skip delta.
    Skip,
    /// The direct delta of every step, in order.
    Chain,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Route {
    /// The name on the wire: `upToDate`, `full`, `skip` or `chain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::UpToDate => "upToDate",
            Route::Full => "full",
            Route::Skip => "skip",
            Route::Chain => "chain",
        }
    }
}

/// What one step downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    /// A whole version (tar+zstd), unpacked into an empty folder.
    Pack,
    /// A tree delta, applied to the `from` version.
    Delta,
}

/// A route that was priced and not taken, or could not be taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    /// The route.
    pub route: Route,
    /// Its cost in bytes; `None` when it is not possible.
    pub total_bytes: Option<u64>,
    /// Why it was not taken.
    pub reason: String,
}

/// Why a client cannot follow a plan ([`UpdatePlan::check`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPlan {
    /// The plan is for another game.
    #[error("a plan for {got:?} instead of {wanted:?}")]
    OtherGame {
        /// The game of the plan.
        got: String,
        /// The game asked for.
        wanted: String,
    },
    /// The plan starts from another version than the one installed.
    #[error("a plan from {got:?} instead of {installed:?}")]
    OtherStart {
        /// Where the plan starts.
        got: Option<String>,
        /// What is installed.
        installed: Option<String>,
    },
    /// An up-to-date plan that has steps or names another version.
    #[error("an up-to-date plan with steps or another version")]
    UpToDateWithSteps,
    /// A plan that is not up to date has no steps.
    #[error("a {:?} plan without steps", .0.as_str())]
    NoSteps(Route),
    /// A digest is not `blake3:<64 lowercase hex>`.
    #[error("malformed digest {0:?}")]
    MalformedDigest(String),
    /// A pack must be the only step.
    #[error("a pack among other steps")]
    PackAmongSteps,
    /// A delta cannot start a fresh install.
    #[error("a delta for a fresh install")]
    DeltaForFreshInstall,
    /// The steps do not chain.
    #[error("a delta from {from:?} where the install would be at {at:?}")]
    Gap {
        /// Where the delta applies.
        from: Option<String>,
        /// Where the install would be.
        at: Option<String>,
    },
    /// The steps end elsewhere than the plan's target.
    #[error("steps ending at {at:?}, not at {to:?}")]
    WrongEnd {
        /// Where the steps end.
        at: Option<String>,
        /// The plan's target.
        to: String,
    },
    /// The total is not the sum of the steps.
    #[error("a total of {total} bytes for steps of {sum}")]
    WrongTotal {
        /// The plan's total.
        total: u64,
        /// The sum of its steps.
        sum: u64,
    },
    /// The manifest's digest is malformed.
    #[error("malformed manifest digest {0:?}")]
    MalformedManifestDigest(String),
    /// The plan has no manifest to verify against.
    #[error("no manifest for the target")]
    NoManifest,
}

impl UpdatePlan {
    /// Checks that the plan is one a client can follow from `installed` (`None` for a
    /// fresh install) for `game`: digests well formed, steps chained from `installed` to
    /// `to`, a pack only as the single step, and the total the sum of the sizes.
    pub fn check(&self, game: &str, installed: Option<&str>) -> Result<(), InvalidPlan> {
        if self.game != game {
            return Err(InvalidPlan::OtherGame {
                got: self.game.clone(),
                wanted: game.to_owned(),
            });
        }
        if self.from.as_deref() != installed {
            return Err(InvalidPlan::OtherStart {
                got: self.from.clone(),
                installed: installed.map(str::to_owned),
            });
        }
        if self.route == Route::UpToDate {
            return if self.steps.is_empty() && installed == Some(self.to.as_str()) {
                Ok(())
            } else {
                Err(InvalidPlan::UpToDateWithSteps)
            };
        }
        if self.steps.is_empty() {
            return Err(InvalidPlan::NoSteps(self.route));
        }
        let mut at = installed.map(str::to_owned);
        for step in &self.steps {
            if !is_digest(&step.digest) {
                return Err(InvalidPlan::MalformedDigest(step.digest.clone()));
            }
            match step.kind {
                StepKind::Pack if self.steps.len() != 1 => return Err(InvalidPlan::PackAmongSteps),
                StepKind::Pack => {}
                StepKind::Delta if installed.is_none() => {
                    return Err(InvalidPlan::DeltaForFreshInstall);
                }
                StepKind::Delta if step.from != at => {
                    return Err(InvalidPlan::Gap {
                        from: step.from.clone(),
                        at,
                    });
                }
                StepKind::Delta => {}
            }
            at = Some(step.to.clone());
        }
        if at.as_deref() != Some(self.to.as_str()) {
            return Err(InvalidPlan::WrongEnd {
                at,
                to: self.to.clone(),
            });
        }
        let sum: u64 = self.steps.iter().map(|step| step.size).sum();
        if sum != self.total_bytes {
            return Err(InvalidPlan::WrongTotal {
                total: self.total_bytes,
                sum,
            });
        }
        match &self.manifest {
            Some(link) if is_digest(&link.digest) => Ok(()),
            Some(link) => Err(InvalidPlan::MalformedManifestDigest(link.digest.clone())),
            None => Err(InvalidPlan::NoManifest),
        }
    }

    /// What a full download would cost, if the planner priced it.
    pub fn full_bytes(&self) -> Option<u64> {
        if self.route == Route::Full {
            return Some(self.total_bytes);
        }
        self.rejected
            .iter()
            .find(|rejected| rejected.route == Route::Full)
            .and_then(|rejected| rejected.total_bytes)
    }
}
