//! What a package holds, per kind of operation, for `--stats`.

use std::collections::HashMap;

use crate::manifest::{Manifest, files_by_path};
use crate::treedelta::format::Header;
use crate::treedelta::index::{Index, Op};

/// Sizes per kind of operation, for `--stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Target files taken as they are.
    pub unchanged: KindStats,
    /// Target files whose content is another old file (renamed, moved, copied).
    pub copied: KindStats,
    /// Target files made by a file delta against an old file.
    pub patched: KindStats,
    /// Target files stored compressed on their own.
    pub added: KindStats,
    /// Source files whose path holds no file in the target; `bytes` counts source bytes.
    pub deleted: KindStats,
    /// Target files whose executable bit changed and nothing else.
    pub mode: KindStats,
    /// Bytes of the stored (compressed) index.
    pub index_bytes: u64,
    /// Bytes of the index JSON once decompressed.
    pub index_raw_bytes: u64,
    /// Bytes of the whole package.
    pub package_bytes: u64,
}

/// One line of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindStats {
    /// How many files.
    pub files: u64,
    /// Their size in the target (in the source, for deleted files).
    pub bytes: u64,
    /// Bytes the package stores for them.
    pub stored: u64,
}

impl Index {
    /// What the package holds, per kind of operation, given both manifests.
    pub(crate) fn stats(&self, header: &Header, source: &Manifest, target: &Manifest) -> Stats {
        let source_files = files_by_path(source);
        let target_files = files_by_path(target);
        let ops: HashMap<&str, &Op> = self.ops.iter().map(|op| (op.path(), op)).collect();
        // A shared file delta's bytes are split among its files by their target sizes.
        let mut shared: HashMap<u64, (u64, u64)> = HashMap::new();
        for op in &self.ops {
            if let Op::Patch { offset, size, .. } | Op::Add { offset, size, .. } = op {
                shared.entry(*offset).or_default().0 += size;
            }
        }
        let mut stored_of = |offset: u64, len: u64, size: u64| {
            let (total, given) = shared.get_mut(&offset).expect("every blob was counted");
            let part = if *total == 0 {
                0
            } else {
                (u128::from(len - *given) * u128::from(size) / u128::from(*total)) as u64
            };
            *total -= size;
            // The last member takes the rounding remainder.
            let part = if *total == 0 { len - *given } else { part };
            *given += part;
            part
        };
        let mut stats = Stats {
            index_bytes: header.index_len,
            index_raw_bytes: header.index_raw_len,
            package_bytes: header.package_len(),
            ..Stats::default()
        };
        for entry in &target.entries {
            let Some(file) = target_files.get(entry.path.as_str()) else {
                continue;
            };
            let (kind, stored) = match ops.get(entry.path.as_str()) {
                None => (&mut stats.unchanged, 0),
                Some(Op::Copy { .. }) => (&mut stats.copied, 0),
                Some(Op::Patch {
                    offset, len, size, ..
                }) => (&mut stats.patched, stored_of(*offset, *len, *size)),
                Some(Op::Add {
                    offset, len, size, ..
                }) => (&mut stats.added, stored_of(*offset, *len, *size)),
                Some(Op::Mode { .. }) => (&mut stats.mode, 0),
            };
            kind.files += 1;
            kind.bytes += file.size;
            kind.stored += stored;
        }
        for entry in &source.entries {
            if let Some(file) = source_files.get(entry.path.as_str())
                && !target_files.contains_key(entry.path.as_str())
            {
                stats.deleted.files += 1;
                stats.deleted.bytes += file.size;
            }
        }
        stats
    }
}
