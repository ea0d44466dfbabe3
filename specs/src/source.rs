//! Where a spec tree is read from: a directory on disk or a commit in a git repository.
//!
//! Both sources list their entries the same way (relative `/`-separated paths, sorted) and
//! read files with a size cap, so validation is identical whichever the admin runs it on.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most entries a spec tree may have; beyond this something is wrong with the tree.
pub const MAX_ENTRIES: usize = 200_000;

/// What a path in a spec tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of this many bytes.
    File {
        /// Size in bytes.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// Anything else: a device, socket, fifo or git submodule.
    Other,
}

/// One path in a spec tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path with `/` separators. Names that are not UTF-8 are shown lossily and
    /// flagged by `valid_utf8`.
    pub path: String,
    /// What the path is.
    pub kind: EntryKind,
    /// False when the name on disk is not valid UTF-8.
    pub valid_utf8: bool,
}

/// Why a spec tree could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A directory could not be listed or a file not read.
    #[error("cannot read {path}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The path to load is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// git refused an operation.
    #[error("git: {}", .0.message())]
    Git(git2::Error),
    /// The revision does not name a commit.
    #[error("`{rev}` does not name a commit in {repo}")]
    NoSuchCommit {
        /// The revision asked for.
        rev: String,
        /// The repository.
        repo: PathBuf,
    },
    /// The tree is far larger than any spec tree should be.
    #[error("the spec tree has more than {MAX_ENTRIES} entries")]
    TooManyEntries,
}

impl From<git2::Error> for SourceError {
    fn from(e: git2::Error) -> Self {
        // The message is in the Display; no `source`, so chains do not print it twice.
        SourceError::Git(e)
    }
}

/// A breadth-first walk of a tree whose folders are named by `Id`, with an explicit queue:
/// no recursion, so depth cannot overflow. It keeps at most [`MAX_ENTRIES`] entries.
struct Walk<Id> {
    entries: Vec<Entry>,
    queue: VecDeque<(Id, String)>,
}

impl<Id> Walk<Id> {
    fn new(root: Id) -> Self {
        Walk {
            entries: Vec::new(),
            queue: VecDeque::from([(root, String::new())]),
        }
    }

    /// The next folder to list, with its path (empty for the root).
    fn next_dir(&mut self) -> Option<(Id, String)> {
        self.queue.pop_front()
    }

    /// Lists the folder `dir` at `path` later.
    fn visit(&mut self, dir: Id, path: &str) {
        self.queue.push_back((dir, path.to_owned()));
    }

    fn push(&mut self, path: String, kind: EntryKind, valid_utf8: bool) -> Result<(), SourceError> {
        self.entries.push(Entry {
            path,
            kind,
            valid_utf8,
        });
        if self.entries.len() > MAX_ENTRIES {
            return Err(SourceError::TooManyEntries);
        }
        Ok(())
    }

    /// The entries, sorted by path.
    fn finish(mut self) -> Vec<Entry> {
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
        self.entries
    }
}

/// The path of `name` in the folder at `prefix` (empty for the root).
fn child_path(prefix: &str, name: String) -> String {
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// A readable spec tree.
pub trait SpecSource {
    /// A human description, e.g. the directory or `repo@commit`.
    fn describe(&self) -> String;
    /// Every entry below the root, sorted by path; `.git` is not listed.
    fn entries(&self) -> Result<Vec<Entry>, SourceError>;
    /// Reads a file's bytes; at most `limit` bytes are read (the caller checks the size).
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, SourceError>;
}

/// A spec tree in a directory.
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    /// A source rooted at `root`, which must be a directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, SourceError> {
        let root = root.into();
        let metadata = std::fs::metadata(&root).map_err(|source| SourceError::Io {
            path: root.clone(),
            source,
        })?;
        if !metadata.is_dir() {
            return Err(SourceError::NotADirectory(root));
        }
        Ok(DirSource { root })
    }
}

impl SpecSource for DirSource {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn entries(&self) -> Result<Vec<Entry>, SourceError> {
        let mut walk = Walk::new(self.root.clone());
        while let Some((dir, prefix)) = walk.next_dir() {
            let listing = std::fs::read_dir(&dir).map_err(|source| SourceError::Io {
                path: dir.clone(),
                source,
            })?;
            for item in listing {
                let item = item.map_err(|source| SourceError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let file_name = item.file_name();
                let (name, valid_utf8) = match file_name.to_str() {
                    Some(name) => (name.to_string(), true),
                    None => (file_name.to_string_lossy().into_owned(), false),
                };
                if prefix.is_empty() && name == ".git" {
                    continue;
                }
                let path = child_path(&prefix, name);
                let file_type = item.file_type().map_err(|source| SourceError::Io {
                    path: item.path(),
                    source,
                })?;
                let kind = if file_type.is_symlink() {
                    EntryKind::Symlink
                } else if file_type.is_dir() {
                    if valid_utf8 {
                        walk.visit(item.path(), &path);
                    }
                    EntryKind::Dir
                } else if file_type.is_file() {
                    let size = item
                        .metadata()
                        .map_err(|source| SourceError::Io {
                            path: item.path(),
                            source,
                        })?
                        .len();
                    EntryKind::File { size }
                } else {
                    EntryKind::Other
                };
                walk.push(path, kind, valid_utf8)?;
            }
        }
        Ok(walk.finish())
    }

    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
        let full = self.root.join(path);
        let file = std::fs::File::open(&full).map_err(|source| SourceError::Io {
            path: full.clone(),
            source,
        })?;
        let mut bytes = Vec::new();
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(|source| SourceError::Io { path: full, source })?;
        Ok(bytes)
    }
}

/// A spec tree as it is in one commit of a git repository, read from the object database
/// without a checkout.
pub struct GitSource {
    repo: git2::Repository,
    repo_path: PathBuf,
    commit: git2::Oid,
    tree: git2::Oid,
    /// Blob ids by path, recorded by `entries`: looking a path up from the root tree on
    /// every read costs time linear in the size of its folders, quadratic over a tree.
    blobs: std::cell::RefCell<std::collections::HashMap<String, git2::Oid>>,
}

impl GitSource {
    /// Opens `repo` (a work tree or a bare repository) at `rev` (a branch, tag or commit id).
    pub fn open(repo: &Path, rev: &str) -> Result<Self, SourceError> {
        let repository = git2::Repository::open(repo)?;
        let no_such_commit = |_| SourceError::NoSuchCommit {
            rev: rev.to_string(),
            repo: repo.to_path_buf(),
        };
        let (commit, tree) = {
            let commit = repository
                .revparse_single(rev)
                .and_then(|o| o.peel_to_commit())
                .map_err(no_such_commit)?;
            (commit.id(), commit.tree_id())
        };
        Ok(GitSource {
            repo: repository,
            repo_path: repo.to_path_buf(),
            commit,
            tree,
            blobs: Default::default(),
        })
    }

    /// Opens the staged content of `repo`'s index: exactly what `git commit` would record.
    ///
    /// The index is written as tree objects into the object database (as `git write-tree`
    /// does); no ref, file or the index itself is changed.
    pub fn open_index(repo: &Path, index_file: Option<&Path>) -> Result<Self, SourceError> {
        let repository = git2::Repository::open(repo)?;
        let tree = match index_file {
            // git runs hooks with `GIT_INDEX_FILE` naming the index it is about to commit,
            // which for `git commit -a` or `git commit <paths>` is not `.git/index`.
            Some(path) => git2::Index::open(path)?.write_tree_to(&repository)?,
            None => repository.index()?.write_tree()?,
        };
        Ok(GitSource {
            repo: repository,
            repo_path: repo.to_path_buf(),
            commit: git2::Oid::ZERO_SHA1,
            tree,
            blobs: Default::default(),
        })
    }

    /// The full id of the commit being read.
    pub fn commit_id(&self) -> String {
        self.commit.to_string()
    }
}

impl SpecSource for GitSource {
    fn describe(&self) -> String {
        if self.commit.is_zero() {
            format!("{} (staged)", self.repo_path.display())
        } else {
            format!("{}@{}", self.repo_path.display(), self.commit)
        }
    }

    fn entries(&self) -> Result<Vec<Entry>, SourceError> {
        let odb = self.repo.odb()?;
        let mut walk = Walk::new(self.tree);
        while let Some((tree_id, prefix)) = walk.next_dir() {
            let tree = self.repo.find_tree(tree_id)?;
            for item in tree.iter() {
                let (name, valid_utf8) = match item.name() {
                    Ok(name) => (name.to_string(), true),
                    Err(_) => (
                        String::from_utf8_lossy(item.name_bytes()).into_owned(),
                        false,
                    ),
                };
                let path = child_path(&prefix, name);
                let kind = match (item.kind(), item.filemode()) {
                    (_, 0o120000) => EntryKind::Symlink,
                    (Some(git2::ObjectType::Tree), _) => {
                        if valid_utf8 {
                            walk.visit(item.id(), &path);
                        }
                        EntryKind::Dir
                    }
                    (Some(git2::ObjectType::Blob), _) => {
                        self.blobs.borrow_mut().insert(path.clone(), item.id());
                        let (size, _) = odb.read_header(item.id())?;
                        EntryKind::File { size: size as u64 }
                    }
                    _ => EntryKind::Other,
                };
                walk.push(path, kind, valid_utf8)?;
            }
        }
        Ok(walk.finish())
    }

    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
        let known = self.blobs.borrow().get(path).copied();
        let id = match known {
            Some(id) => id,
            None => self
                .repo
                .find_tree(self.tree)?
                .get_path(Path::new(path))?
                .id(),
        };
        let blob = self.repo.find_blob(id)?;
        let content = blob.content();
        let n = content
            .len()
            .min(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(content[..n].to_vec())
    }
}
