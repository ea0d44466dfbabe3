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
    Patch(Payload<Option<String>>),
    Add(Payload<NoBase>),
    Mode {
        path: String,
    },
}

/// A file whose delta is in the body: `base` is the old file a `patch` applies to (left out
/// when it is the file's own path); an `add` has none.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Payload<Base: MaybeBase> {
    path: String,
    #[serde(default, skip_serializing_if = "MaybeBase::is_absent")]
    base: Base,
    size: u64,
    #[serde(default, skip_serializing_if = "is_false")]
    executable: bool,
    blake3: FileHash,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    len: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blob: Option<u64>,
}

/// The `base` of a [`Payload`]: an optional path for a `patch`, nothing for an `add`.
trait MaybeBase: Default {
    fn is_absent(&self) -> bool;
}

impl MaybeBase for Option<String> {
    fn is_absent(&self) -> bool {
        self.is_none()
    }
}

/// An `add` has no `base`: the key is refused as unknown, like any other.
#[derive(Clone, Copy, Default, Serialize)]
struct NoBase;

impl MaybeBase for NoBase {
    fn is_absent(&self) -> bool {
        true
    }
}

impl<'de> Deserialize<'de> for NoBase {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<NoBase, D::Error> {
        Err(serde::de::Error::unknown_field(
            "base",
            &["path", "size", "executable", "blake3", "len", "blob"],
        ))
    }
}

impl<Base: MaybeBase> Payload<Base> {
    /// The JSON shape of a file delta's file, numbering its blob.
    fn new(
        path: String,
        base: Base,
        (size, executable, blake3): (u64, bool, FileHash),
        (offset, len, numbering): (u64, u64, &mut Numbering),
    ) -> Payload<Base> {
        let Blob { len, blob } = numbering.blob(offset, len);
        Payload {
            path,
            base,
            size,
            executable,
            blake3,
            len,
            blob,
        }
    }

    /// The blob's place in the body: `(offset, len)`.
    fn place(&self, layout: &mut Layout) -> (u64, u64) {
        layout.place(Blob {
            len: self.len,
            blob: self.blob,
        })
    }
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
                    let base = (base != path).then_some(base);
                    let file = (size, executable, blake3);
                    Op::Patch(Payload::new(
                        path,
                        base,
                        file,
                        (offset, len, &mut numbering),
                    ))
                }
                index::Op::Add {
                    path,
                    size,
                    executable,
                    blake3,
                    offset,
                    len,
                } => Op::Add(Payload::new(
                    path,
                    NoBase,
                    (size, executable, blake3),
                    (offset, len, &mut numbering),
                )),
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
                Op::Patch(payload) => {
                    let (offset, len) = payload.place(&mut layout);
                    index::Op::Patch {
                        base: payload.base.unwrap_or_else(|| payload.path.clone()),
                        offset,
                        len,
                        path: payload.path,
                        size: payload.size,
                        executable: payload.executable,
                        blake3: payload.blake3,
                    }
                }
                Op::Add(payload) => {
                    let (offset, len) = payload.place(&mut layout);
                    index::Op::Add {
                        path: payload.path,
                        size: payload.size,
                        executable: payload.executable,
                        blake3: payload.blake3,
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
