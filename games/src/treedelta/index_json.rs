//! The JSON shapes of the index: what is derivable is left out (file delta offsets, a
//! `patch` base equal to its path, a false executable bit).

use serde::{Deserialize, Serialize};

use crate::manifest::FileHash;
use crate::treedelta::index;

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Index {
    removed: Vec<String>,
    dirs: Vec<String>,
    symlinks: Vec<index::Symlink>,
    ops: Vec<Op>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
enum Op {
    Copy {
        path: String,
        from: String,
        #[serde(default, skip_serializing_if = "is_false")]
        executable: bool,
    },
    Patch {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<String>,
        size: u64,
        #[serde(default, skip_serializing_if = "is_false")]
        executable: bool,
        blake3: FileHash,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        len: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blob: Option<u64>,
    },
    Add {
        path: String,
        size: u64,
        #[serde(default, skip_serializing_if = "is_false")]
        executable: bool,
        blake3: FileHash,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        len: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        blob: Option<u64>,
    },
    Mode {
        path: String,
    },
}

/// Where a payload operation's file delta is: `len` starts the next blob of the body;
/// `blob` names an earlier one (counting blobs from 0 in body order) that this file
/// shares with the files before it. Exactly one of the two is given.
struct Blob {
    len: Option<u64>,
    blob: Option<u64>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Numbers the blobs of an index in body order, for writing.
#[derive(Default)]
struct Numbering {
    starts: std::collections::HashMap<u64, u64>,
}

impl Numbering {
    fn blob(&mut self, offset: u64, len: u64) -> Blob {
        let next = self.starts.len() as u64;
        match self.starts.entry(offset) {
            std::collections::hash_map::Entry::Occupied(number) => Blob {
                len: None,
                blob: Some(*number.get()),
            },
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(next);
                Blob {
                    len: Some(len),
                    blob: None,
                }
            }
        }
    }
}

/// Places the blobs of an index while reading it: each `len` starts a blob where the
/// one before ends. A reference to a blob that does not exist, or both or neither of
/// `len` and `blob`, gives an impossible range that validation refuses.
#[derive(Default)]
struct Layout {
    blobs: Vec<(u64, u64)>,
    end: u64,
}

impl Layout {
    fn place(&mut self, blob: Blob) -> (u64, u64) {
        match (blob.len, blob.blob) {
            (Some(len), None) => {
                let at = self.end;
                self.end = self.end.saturating_add(len);
                self.blobs.push((at, len));
                (at, len)
            }
            (None, Some(number)) => usize::try_from(number)
                .ok()
                .and_then(|number| self.blobs.get(number).copied())
                .unwrap_or((u64::MAX, 0)),
            _ => (u64::MAX, 0),
        }
    }
}

impl From<index::Index> for Index {
    fn from(index: index::Index) -> Index {
        let mut numbering = Numbering::default();
        let ops = index
            .ops
            .into_iter()
            .map(|op| match op {
                index::Op::Copy {
                    path,
                    from,
                    executable,
                } => Op::Copy {
                    path,
                    from,
                    executable,
                },
                index::Op::Patch {
                    path,
                    base,
                    size,
                    executable,
                    blake3,
                    offset,
                    len,
                } => {
                    let Blob { len, blob } = numbering.blob(offset, len);
                    Op::Patch {
                        base: (base != path).then_some(base),
                        path,
                        size,
                        executable,
                        blake3,
                        len,
                        blob,
                    }
                }
                index::Op::Add {
                    path,
                    size,
                    executable,
                    blake3,
                    offset,
                    len,
                } => {
                    let Blob { len, blob } = numbering.blob(offset, len);
                    Op::Add {
                        path,
                        size,
                        executable,
                        blake3,
                        len,
                        blob,
                    }
                }
                index::Op::Mode { path } => Op::Mode { path },
            })
            .collect();
        Index {
            removed: index.removed,
            dirs: index.dirs,
            symlinks: index.symlinks,
            ops,
        }
    }
}

/// Fills in what the JSON leaves out; offsets that overflow saturate, and validation
/// refuses them.
impl From<Index> for index::Index {
    fn from(index: Index) -> index::Index {
        let mut layout = Layout::default();
        let ops = index
            .ops
            .into_iter()
            .map(|op| match op {
                Op::Copy {
                    path,
                    from,
                    executable,
                } => index::Op::Copy {
                    path,
                    from,
                    executable,
                },
                Op::Patch {
                    path,
                    base,
                    size,
                    executable,
                    blake3,
                    len,
                    blob,
                } => {
                    let (offset, len) = layout.place(Blob { len, blob });
                    index::Op::Patch {
                        base: base.unwrap_or_else(|| path.clone()),
                        path,
                        size,
                        executable,
                        blake3,
                        offset,
                        len,
                    }
                }
                Op::Add {
                    path,
                    size,
                    executable,
                    blake3,
                    len,
                    blob,
                } => {
                    let (offset, len) = layout.place(Blob { len, blob });
                    index::Op::Add {
                        path,
                        size,
                        executable,
                        blake3,
                        offset,
                        len,
                    }
                }
                Op::Mode { path } => index::Op::Mode { path },
            })
            .collect();
        index::Index {
            removed: index.removed,
            dirs: index.dirs,
            symlinks: index.symlinks,
            ops,
        }
    }
}

/// An index is written in its JSON shape, as `#[serde(into = "index_json::Index")]` would.
impl Serialize for index::Index {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Index::from(self.clone()).serialize(serializer)
    }
}

/// An index is read through its JSON shape, as `#[serde(from = "index_json::Index")]` would.
impl<'de> Deserialize<'de> for index::Index {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Index::deserialize(deserializer).map(index::Index::from)
    }
}
