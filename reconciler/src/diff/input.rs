//! Where a version's tree comes from when work needs it. The diff and the job that does the
//! work both ask [`input_for`] (the job with facts fresh at run time), so the two agree.

/// Where a version's tree comes from when work needs it; see [`input_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The source build on the NAS.
    Source,
    /// A replay of the direct deltas from version `base` (by index), whose source build is
    /// present, up to this version.
    Replay {
        /// The index of the version replayed from.
        base: usize,
    },
    /// Unpacking the version's pack.
    Pack,
}

/// What [`input_for`] needs to know about each version of a game.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputFacts {
    /// The source build is on the NAS and not known to have drifted.
    pub source_ok: bool,
    /// The manifest is recorded and present.
    pub manifest: bool,
    /// The pack is present.
    pub pack: bool,
    /// The delta from the previous version is present.
    pub delta_from_previous: bool,
}

/// Where version `idx`'s tree can come from: its source; else a replay from the nearest
/// earlier version whose source is there, through present direct deltas; else its pack.
/// `None` when it cannot be had. Shared by the diff and by the job that does the work (with
/// facts fresh at run time), so the two agree.
pub fn input_for(facts: &[InputFacts], idx: usize) -> Option<Input> {
    let version = &facts[idx];
    if !version.manifest {
        return None;
    }
    if version.source_ok {
        return Some(Input::Source);
    }
    let mut base = idx;
    while base > 0 && facts[base].delta_from_previous {
        base -= 1;
        if !facts[base].manifest {
            break;
        }
        if facts[base].source_ok {
            return Some(Input::Replay { base });
        }
    }
    version.pack.then_some(Input::Pack)
}
