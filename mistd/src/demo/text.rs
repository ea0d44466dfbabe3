//! Plausible text from a small vocabulary: log messages for string tables, dialogue for
//! games' string files.

use super::rng::Rng;

const SUBSYSTEMS: &[&str] = &[
    "renderer",
    "audio",
    "physics",
    "input",
    "net",
    "save",
    "ui",
    "ai",
    "script",
    "streaming",
    "shader",
    "particles",
    "camera",
    "fleet",
    "inventory",
    "quest",
];

const VERBS: &[&str] = &[
    "failed to load",
    "cannot open",
    "loaded",
    "unloading",
    "creating",
    "destroying",
    "skipping",
    "retrying",
    "compiling",
    "binding",
    "resolving",
    "spawning",
];

const NOUNS: &[&str] = &[
    "texture",
    "mesh",
    "shader",
    "sound bank",
    "save slot",
    "level",
    "material",
    "font",
    "animation",
    "navmesh",
    "controller",
    "socket",
    "config file",
    "ship",
    "cargo hold",
    "waypoint",
    "checkpoint",
    "lighthouse",
    "lantern",
    "tide table",
];

const DETAILS: &[&str] = &[
    "%s",
    "'%s' (error %d)",
    "%d of %d",
    "at %p",
    "in %.2f ms",
    "for player %u",
    "(%zu bytes)",
    "from '%s' line %d",
    "with flags 0x%08x",
    "",
];

const WORDS: &[&str] = &[
    "the", "tide", "is", "turning", "and", "we", "need", "more", "rope", "before", "dark",
    "harbour", "lamp", "keeper", "said", "storm", "coming", "from", "west", "boat", "fish",
    "market", "price", "island", "north", "cove", "old", "map", "shows", "a", "path", "to",
    "bring", "me", "three", "nets", "salt", "bell", "rings", "at", "dawn", "you", "should", "rest",
    "here", "tonight", "gulls", "know", "where", "treasure", "lies", "under", "rocks",
];

/// A log or error message as found in an executable's string table.
pub(crate) fn message(rng: &mut Rng) -> Vec<u8> {
    let detail = rng.pick(DETAILS);
    let line = format!(
        "{}: {} {} {}",
        rng.pick(SUBSYSTEMS),
        rng.pick(VERBS),
        rng.pick(NOUNS),
        detail
    );
    line.trim_end().as_bytes().to_vec()
}

/// A sentence of 4 to 15 words, capitalised, with a full stop.
pub(crate) fn sentence(rng: &mut Rng) -> String {
    let n_words = rng.range(4, 16);
    let mut out = String::new();
    for word_idx in 0..n_words {
        let word = rng.pick(WORDS);
        if word_idx == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push(' ');
            out.push_str(word);
        }
    }
    out.push('.');
    out
}

const NAMES: &[&str] = &[
    "harbour",
    "reef",
    "crab",
    "lighthouse",
    "boat",
    "sail",
    "rope",
    "gull",
    "storm",
    "wave",
    "dock",
    "market",
    "barrel",
    "net",
    "rock",
    "cove",
    "beacon",
    "anchor",
    "kelp",
    "shell",
];

/// A noun for naming assets.
pub(crate) fn name(rng: &mut Rng) -> &'static str {
    NAMES[rng.below(NAMES.len())]
}
