//! Choosing, per target file, how a package makes it: unchanged, a mode change, a copy of an
//! old file, a patch against the most similar old file, or the file on its own.

use std::collections::HashMap;

use crate::manifest::{FileHash, FileInfo, Manifest, files_by_path};

/// One target file as planned, before its file delta exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedOp {
    pub(crate) path: String,
    pub(crate) kind: Planned,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Planned {
    Copy { from: String },
    Patch { base: String },
    Add,
    Mode,
}

/// Decides, per target file in path order, how to make it. Pure and deterministic: ties
/// are broken by path.
pub(crate) fn plan(old: &Manifest, new: &Manifest) -> Vec<PlannedOp> {
    let old_files = files_by_path(old);
    let mut by_hash: HashMap<FileHash, &str> = HashMap::new();
    // Candidates for a base, each list sorted by (size, path).
    let mut by_name: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
    let mut by_extension: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
    for entry in &old.entries {
        let Some(file) = old_files.get(entry.path.as_str()) else {
            continue;
        };
        // Entries are in path order, so the first path with a hash is the smallest.
        by_hash.entry(file.hash).or_insert(&entry.path);
        if file.size == 0 {
            continue;
        }
        let name = file_name(&entry.path);
        by_name
            .entry(name)
            .or_default()
            .push((file.size, &entry.path));
        if let Some(extension) = extension(name) {
            by_extension
                .entry(extension)
                .or_default()
                .push((file.size, &entry.path));
        }
    }
    for list in by_name.values_mut().chain(by_extension.values_mut()) {
        list.sort_unstable();
    }
    let mut planned = Vec::new();
    for (entry, file) in new.files() {
        let FileInfo {
            size,
            executable,
            hash: blake3,
        } = file;
        let same_path = old_files.get(entry.path.as_str());
        let kind = match same_path {
            Some(old) if old.hash == blake3 && old.executable == executable => continue,
            Some(old) if old.hash == blake3 => Planned::Mode,
            _ => {
                if let Some(from) = by_hash.get(&blake3) {
                    Planned::Copy {
                        from: (*from).to_owned(),
                    }
                } else if size == 0 {
                    Planned::Add
                } else if same_path.is_some_and(|old| old.size > 0) {
                    Planned::Patch {
                        base: entry.path.clone(),
                    }
                } else {
                    let name = file_name(&entry.path);
                    let similar = by_name
                        .get(name)
                        .and_then(|list| closest(list, size, |_| true))
                        .or_else(|| {
                            let list = by_extension.get(extension(name)?)?;
                            // Files of the same type but very different sizes rarely share
                            // much, and the diff would cost memory for the larger one.
                            closest(list, size, |old_size| {
                                old_size <= size.saturating_mul(4)
                                    && size <= old_size.saturating_mul(4)
                            })
                        });
                    match similar {
                        Some(base) => Planned::Patch {
                            base: base.to_owned(),
                        },
                        None => Planned::Add,
                    }
                }
            }
        };
        planned.push(PlannedOp {
            path: entry.path.clone(),
            kind,
        });
    }
    planned
}

/// The candidate whose size is closest to `size` (the smaller size, then the smaller path,
/// on a tie) among those `accept` allows.
fn closest<'a>(
    list: &[(u64, &'a str)],
    size: u64,
    accept: impl Fn(u64) -> bool,
) -> Option<&'a str> {
    let at = list.partition_point(|(candidate, _)| *candidate < size);
    // The closest sizes are the first one at or above `size` and the last one below; take the
    // smallest path among equal sizes.
    let above = list.get(at).map(|(s, _)| *s);
    let below = at.checked_sub(1).map(|idx| list[idx].0);
    let best_size = match (below, above) {
        (Some(b), Some(a)) => {
            if size - b <= a - size {
                b
            } else {
                a
            }
        }
        (Some(b), None) => b,
        (None, Some(a)) => a,
        (None, None) => return None,
    };
    if !accept(best_size) {
        return None;
    }
    let first = list.partition_point(|(candidate, _)| *candidate < best_size);
    Some(list[first].1)
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// The extension of a file name, without the dot; none for `name`, `.hidden` or `name.`.
fn extension(name: &str) -> Option<&str> {
    let (stem, extension) = name.rsplit_once('.')?;
    (!stem.is_empty() && !extension.is_empty()).then_some(extension)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Entry;
    use crate::manifest::tests::{dir, file};

    fn planned(old: Vec<Entry>, new: Vec<Entry>) -> Vec<(String, Planned)> {
        plan(&Manifest { entries: old }, &Manifest { entries: new })
            .into_iter()
            .map(|op| (op.path, op.kind))
            .collect()
    }

    fn patch(base: &str) -> Planned {
        Planned::Patch {
            base: base.to_owned(),
        }
    }

    #[test]
    fn operations_are_chosen_by_content_then_path_then_similarity() {
        let old = vec![
            dir("a"),
            file("a/data.pak", 1000, false, 1),
            file("a/level.bin", 500, false, 2),
            file("a/same.txt", 10, false, 3),
            file("a/tool", 50, true, 4),
            file("b.bin", 2100, false, 5),
            file("c.bin", 1900, false, 6),
        ];
        let new = vec![
            dir("a"),
            file("a/data.pak", 1200, false, 11),
            file("a/same.txt", 10, false, 3),
            file("a/tool", 50, false, 4),
            dir("x"),
            file("x/copy.txt", 10, false, 3),
            file("x/level.bin", 600, false, 12),
            file("x/new.bin", 2000, false, 13),
            file("x/far.bin", 100_000, false, 14),
            file("x/empty", 0, false, 15),
            file("x/plain", 7, false, 16),
        ];
        assert_eq!(
            planned(old, new),
            vec![
                ("a/data.pak".to_owned(), patch("a/data.pak")),
                ("a/tool".to_owned(), Planned::Mode),
                (
                    "x/copy.txt".to_owned(),
                    Planned::Copy {
                        from: "a/same.txt".to_owned()
                    }
                ),
                ("x/level.bin".to_owned(), patch("a/level.bin")),
                ("x/new.bin".to_owned(), patch("c.bin")),
                ("x/far.bin".to_owned(), Planned::Add),
                ("x/empty".to_owned(), Planned::Add),
                ("x/plain".to_owned(), Planned::Add),
            ]
        );
    }

    #[test]
    fn closest_prefers_the_smaller_size_then_the_first_path() {
        let list = [(10, "a"), (20, "b"), (20, "c"), (30, "d")];
        assert_eq!(closest(&list, 15, |_| true), Some("a"));
        assert_eq!(closest(&list, 16, |_| true), Some("b"));
        assert_eq!(closest(&list, 25, |_| true), Some("b"));
        assert_eq!(closest(&list, 99, |_| true), Some("d"));
        assert_eq!(closest(&list, 1, |_| true), Some("a"));
        assert_eq!(closest(&list, 1, |size| size > 100), None);
        assert_eq!(closest(&[], 1, |_| true), None);
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("a.txt"), Some("txt"));
        assert_eq!(extension("a.tar.gz"), Some("gz"));
        assert_eq!(extension(".hidden"), None);
        assert_eq!(extension("name."), None);
        assert_eq!(extension("plain"), None);
    }
}
