//! The update planner: how a client gets from the version it has to the one it wants with
//! the fewest bytes. Start at [`plan`].
//!
//! It is a pure function of a game's versions, their packs and the delta edges between
//! them, so every rule is tested by tables below. Three routes are priced by the bytes to
//! download:
//!
//! - [`Route::Chain`]: the direct deltas through every version in between, in order;
//! - [`Route::Skip`]: the cheapest path over the delta edges that takes at least one warmed
//!   skip delta (an edge between versions that are not neighbours, e.g. an older version
//!   straight to the latest), possibly with direct deltas before or after it;
//! - [`Route::Full`]: the target's pack, as for a fresh install.
//!
//! The cheapest wins; on equal bytes the one with fewer steps, then the order above reversed
//! (a pack is the simplest install). The others come back as [`Rejected`] with their cost,
//! or why they were not possible. Deltas only go forward; a downgrade is a full download.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use mist_wire::update::{Rejected, Route, StepKind};

/// A game's versions and delta edges, as the viewer may use them.
#[derive(Clone, Debug, Default)]
pub struct PlanInput {
    /// Every version in version order, oldest first.
    pub versions: Vec<PlanVersion>,
    /// Every delta edge.
    pub deltas: Vec<PlanDelta>,
}

/// One version.
#[derive(Clone, Debug)]
pub struct PlanVersion {
    /// The version's name.
    pub name: String,
    /// Its pack, if one exists.
    pub pack: Option<Blob>,
    /// Whether the viewer may install it, update to it or pass through it. A version that is
    /// not servable may still be where an update starts: it is what the client has.
    pub servable: bool,
}

/// One delta edge: the artifact that turns `from` into `to`.
#[derive(Clone, Debug)]
pub struct PlanDelta {
    /// The version it applies to.
    pub from: String,
    /// The version it produces.
    pub to: String,
    /// The delta artifact.
    pub blob: Blob,
}

/// An artifact: its content address and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// `blake3:<hex>` of the bytes.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}

/// One download and what it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Pack or delta.
    pub kind: StepKind,
    /// The version a delta applies to; `None` for a pack.
    pub from: Option<String>,
    /// The version the step produces.
    pub to: String,
    /// The artifact to download.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The chosen route and its steps, in the order to apply them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The version the client has; `None` for a fresh install.
    pub from: Option<String>,
    /// The version the plan ends at.
    pub to: String,
    /// The route taken.
    pub route: Route,
    /// The downloads, in order.
    pub steps: Vec<Step>,
    /// The sum of the steps' sizes.
    pub total_bytes: u64,
    /// The routes not taken.
    pub rejected: Vec<Rejected>,
}

/// Why no plan could be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `from` is not a version of the game.
    #[error("version '{0}' is not known")]
    UnknownFrom(String),
    /// `to` is not a version the viewer may install.
    #[error("version '{0}' is not available")]
    UnknownTo(String),
    /// No route reaches the target: no pack, and no deltas from `from`.
    #[error("no way to reach version '{to}': {reason}")]
    NoRoute {
        /// The target.
        to: String,
        /// Why each route failed.
        reason: String,
    },
}

/// Plans the update of a client that has `from` (`None`: nothing) to `to`.
pub fn plan(input: &PlanInput, from: Option<&str>, to: &str) -> Result<Plan, PlanError> {
    let index_of = |name: &str| input.versions.iter().position(|v| v.name == name);
    let to_idx = index_of(to)
        .filter(|&idx| input.versions[idx].servable)
        .ok_or_else(|| PlanError::UnknownTo(to.to_owned()))?;
    let from_idx = match from {
        None => None,
        Some(from) => Some(index_of(from).ok_or_else(|| PlanError::UnknownFrom(from.to_owned()))?),
    };
    if from_idx == Some(to_idx) {
        return Ok(Plan {
            from: from.map(str::to_owned),
            to: to.to_owned(),
            route: Route::UpToDate,
            steps: Vec::new(),
            total_bytes: 0,
            rejected: Vec::new(),
        });
    }

    let mut candidates: Vec<Candidate> = Vec::new();
    candidates.push(full(input, to_idx).ok_or((Route::Full, format!("version {to} has no pack"))));
    if let Some(from_idx) = from_idx {
        if from_idx > to_idx {
            let reason = "deltas only go forward; this is a downgrade".to_owned();
            candidates.push(Err((Route::Chain, reason.clone())));
            candidates.push(Err((Route::Skip, reason)));
        } else {
            let edges = Edges::new(input, index_of);
            candidates
                .push(chain(input, &edges, from_idx, to_idx).map(|steps| (Route::Chain, steps)));
            candidates.push(
                skip(input, &edges, from_idx, to_idx)
                    .map(|steps| (Route::Skip, steps))
                    .ok_or((Route::Skip, "no warmed skip delta leads there".to_owned())),
            );
        }
    }

    let cost = |steps: &[Step]| steps.iter().map(|step| step.size).sum::<u64>();
    let best = candidates
        .iter()
        .filter_map(|candidate| candidate.as_ref().ok())
        .min_by_key(|(route, steps)| (cost(steps), steps.len(), *route))
        .cloned();
    let Some((route, steps)) = best else {
        let reason = candidates
            .iter()
            .filter_map(|candidate| candidate.as_ref().err())
            .map(|(route, reason)| format!("{}: {reason}", route_name(*route)))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(PlanError::NoRoute {
            to: to.to_owned(),
            reason,
        });
    };
    let total_bytes = cost(&steps);
    let rejected = candidates
        .into_iter()
        .filter_map(|candidate| match candidate {
            Ok((other, other_steps)) if other != route => {
                let other_bytes = cost(&other_steps);
                Some(Rejected {
                    route: other,
                    total_bytes: Some(other_bytes),
                    reason: if other_bytes > total_bytes {
                        format!("{} bytes more", other_bytes - total_bytes)
                    } else {
                        "as many bytes, in more steps".to_owned()
                    },
                })
            }
            Ok(_) => None,
            Err((other, reason)) => Some(Rejected {
                route: other,
                total_bytes: None,
                reason,
            }),
        })
        .collect();
    Ok(Plan {
        from: from.map(str::to_owned),
        to: to.to_owned(),
        route,
        steps,
        total_bytes,
        rejected,
    })
}

/// A priced route with its steps, or the route and why it is impossible.
type Candidate = Result<(Route, Vec<Step>), (Route, String)>;

fn route_name(route: Route) -> &'static str {
    match route {
        Route::UpToDate => "up to date",
        Route::Full => "full download",
        Route::Skip => "skip delta",
        Route::Chain => "delta chain",
    }
}

fn full(input: &PlanInput, to_idx: usize) -> Option<(Route, Vec<Step>)> {
    let version = &input.versions[to_idx];
    let pack = version.pack.as_ref()?;
    Some((
        Route::Full,
        vec![Step {
            kind: StepKind::Pack,
            from: None,
            to: version.name.clone(),
            digest: pack.digest.clone(),
            size: pack.size,
        }],
    ))
}

/// The usable delta edges by (from index, to index): forward, and into a servable version.
struct Edges<'a> {
    by_from: HashMap<usize, Vec<(usize, &'a Blob)>>,
}

impl<'a> Edges<'a> {
    fn new(input: &'a PlanInput, index_of: impl Fn(&str) -> Option<usize>) -> Edges<'a> {
        let mut by_from: HashMap<usize, Vec<(usize, &Blob)>> = HashMap::new();
        for delta in &input.deltas {
            let (Some(from_idx), Some(to_idx)) = (index_of(&delta.from), index_of(&delta.to))
            else {
                continue;
            };
            if to_idx > from_idx && input.versions[to_idx].servable {
                by_from
                    .entry(from_idx)
                    .or_default()
                    .push((to_idx, &delta.blob));
            }
        }
        for edges in by_from.values_mut() {
            edges.sort_by_key(|(to_idx, _)| *to_idx);
        }
        Edges { by_from }
    }

    fn get(&self, from_idx: usize, to_idx: usize) -> Option<&'a Blob> {
        self.by_from
            .get(&from_idx)?
            .iter()
            .find(|(idx, _)| *idx == to_idx)
            .map(|(_, blob)| *blob)
    }
}

fn delta_step(input: &PlanInput, from_idx: usize, to_idx: usize, blob: &Blob) -> Step {
    Step {
        kind: StepKind::Delta,
        from: Some(input.versions[from_idx].name.clone()),
        to: input.versions[to_idx].name.clone(),
        digest: blob.digest.clone(),
        size: blob.size,
    }
}

fn chain(
    input: &PlanInput,
    edges: &Edges<'_>,
    from_idx: usize,
    to_idx: usize,
) -> Result<Vec<Step>, (Route, String)> {
    let mut steps = Vec::new();
    for idx in from_idx..to_idx {
        let next = &input.versions[idx + 1];
        if !next.servable {
            return Err((
                Route::Chain,
                format!("version {} is not available", next.name),
            ));
        }
        let blob = edges.get(idx, idx + 1).ok_or_else(|| {
            (
                Route::Chain,
                format!(
                    "no delta from {} to {}",
                    input.versions[idx].name, next.name
                ),
            )
        })?;
        steps.push(delta_step(input, idx, idx + 1, blob));
    }
    Ok(steps)
}

/// The cheapest path from `from_idx` to `to_idx` that takes at least one skip edge
/// (Dijkstra over (version, skip taken yet)).
fn skip(input: &PlanInput, edges: &Edges<'_>, from_idx: usize, to_idx: usize) -> Option<Vec<Step>> {
    type State = (usize, bool);
    let mut best: HashMap<State, (u64, usize)> = HashMap::new();
    let mut previous: HashMap<State, (State, usize)> = HashMap::new();
    let mut heap = BinaryHeap::new();
    best.insert((from_idx, false), (0, 0));
    heap.push(Reverse((0u64, 0usize, from_idx, false)));
    while let Some(Reverse((cost, n_steps, idx, skipped))) = heap.pop() {
        if best.get(&(idx, skipped)) != Some(&(cost, n_steps)) {
            continue;
        }
        if idx == to_idx && skipped {
            break;
        }
        for &(next_idx, blob) in edges.by_from.get(&idx).into_iter().flatten() {
            if next_idx > to_idx {
                continue;
            }
            let next_state = (next_idx, skipped || next_idx > idx + 1);
            let next_cost = (cost.saturating_add(blob.size), n_steps + 1);
            if best.get(&next_state).is_none_or(|known| next_cost < *known) {
                best.insert(next_state, next_cost);
                previous.insert(next_state, ((idx, skipped), next_idx));
                heap.push(Reverse((next_cost.0, next_cost.1, next_idx, next_state.1)));
            }
        }
    }
    let mut state = (to_idx, true);
    best.get(&state)?;
    let mut steps = Vec::new();
    while state != (from_idx, false) {
        let (prev, idx) = previous[&state];
        let blob = edges.get(prev.0, idx)?;
        steps.push(delta_step(input, prev.0, idx, blob));
        state = prev;
    }
    steps.reverse();
    Some(steps)
}

#[cfg(test)]
mod tests;
