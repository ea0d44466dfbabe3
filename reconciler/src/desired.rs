//! Desired state: the spec tree at the tip of one branch of a git repository.
//!
//! Two halves, kept apart so the rules can be tested without git:
//!
//! - [`DesiredState`] is the I/O shell. It fetches a remote into a bare mirror (or reads a
//!   local repository in place), resolves `refs/heads/<branch>` to a commit and loads that
//!   commit through the spec loader into a [`Snapshot`].
//! - [`Desired`] is the pure core: a small state machine fed with snapshots. It keeps the
//!   *last good* commit in force when a newer commit fails to load or validate, and records
//!   the failing commit with every one of its errors for the status.
//!
//! ```text
//! trigger ──> DesiredState::read() ──> Snapshot ──> Desired::observe() ──> Outcome (for logs)
//!                                                        │
//!                                   Desired::last_good() ┘ (what the diff works from)
//! ```
//!
//! ## Remotes and https
//!
//! The default build's libgit2 has no TLS (see STACK.md): it fetches local paths, `file://`,
//! `git://` and `http://` itself. For `https://` and ssh (`ssh://`, `user@host:path`) remotes,
//! [`FetchWith::Auto`] runs the `git` command instead (`git --git-dir <mirror> fetch …`), which
//! uses the system's TLS, credential helpers and ssh configuration. When `git` is not installed
//! such a remote fails with [`DesiredError::GitCommandMissing`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use mist_specs::load::{Diagnostic, LoadOptions, Loaded, load};
use mist_specs::source::GitSource;

/// The branch read when none is configured.
pub const DEFAULT_BRANCH: &str = "main";

/// The bare mirror of a remote spec repository, below the data directory.
pub const MIRROR_DIR: &str = "specs-mirror.git";

/// Where the specs come from: what `--specs` names.
#[derive(Clone, PartialEq, Eq)]
pub enum SpecsSource {
    /// A repository on this machine (a work tree or a bare repository), read in place: its
    /// refs are read directly and watched for changes, nothing is cloned.
    Local(PathBuf),
    /// A URL (`file://`, `git://`, `http://`, `https://`, `ssh://` or scp-like
    /// `user@host:path`), fetched into a bare mirror below the data directory.
    Remote(String),
}

/// How a remote is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FetchWith {
    /// libgit2 for `file://`, `git://` and `http://`; the `git` command for everything else
    /// (`https://` and ssh), because the default build's libgit2 has no TLS or ssh.
    #[default]
    Auto,
    /// Always libgit2.
    Libgit2,
    /// Always the `git` command.
    GitCommand,
}

/// How to read the desired state.
#[derive(Debug, Clone)]
pub struct DesiredConfig {
    /// The spec repository.
    pub source: SpecsSource,
    /// The branch whose tip is the desired state; [`DEFAULT_BRANCH`] by default.
    pub branch: String,
    /// The data directory; a remote is mirrored to `<data_dir>/`[`MIRROR_DIR`].
    pub data_dir: PathBuf,
    /// How a remote is fetched.
    pub fetch_with: FetchWith,
    /// Passed to the spec loader (for example the NAS root, to check versions' sources).
    pub load_options: LoadOptions,
}

impl DesiredConfig {
    /// A configuration with the default branch and fetch method.
    pub fn new(source: SpecsSource, data_dir: impl Into<PathBuf>) -> Self {
        DesiredConfig {
            source,
            branch: DEFAULT_BRANCH.to_string(),
            data_dir: data_dir.into(),
            fetch_with: FetchWith::Auto,
            load_options: LoadOptions::default(),
        }
    }
}

pub use mist_specs::CONFIRM_RETIRE_TRAILER;

/// The spec tree at one commit, as the spec loader saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The full commit id (40 hex digits for SHA-1 repositories).
    pub commit: String,
    /// Whether the commit's message confirms a mass retirement: it has a line
    /// [`CONFIRM_RETIRE_TRAILER`] (`mistpipe confirm-retire` makes such a commit).
    pub confirms_retire: bool,
    /// The loaded specs and every diagnostic. Shared: re-reading an unchanged commit costs
    /// nothing.
    pub loaded: Arc<Loaded>,
}

impl Snapshot {
    /// Whether the tree loaded without a single diagnostic, so it may be applied.
    pub fn is_valid(&self) -> bool {
        self.loaded.is_valid()
    }

    /// Whether the tree describes no game at all.
    ///
    /// An empty tree is valid and is applied like any other, but it is far more likely an
    /// accident (a wrong branch, a botched rewrite) than a wish to delete everything.
    ///
    /// ## Warning
    /// Callers must never prune on an empty tree. See [`Desired::may_prune`].
    pub fn is_empty(&self) -> bool {
        self.loaded.specs.games.is_empty()
    }
}

/// Why the desired state could not be read. None of these names a bad commit: a commit that
/// fails to load is a [`Snapshot`] with diagnostics, so that [`Desired`] records it.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// The branch name is not a valid git ref name.
    #[error("`{0}` is not a valid branch name")]
    InvalidBranch(String),
    /// The local repository could not be opened.
    #[error("cannot open the spec repository {path}: {message}")]
    Open {
        /// The repository.
        path: PathBuf,
        /// libgit2's message.
        message: String,
    },
    /// The mirror of a remote could not be created or opened.
    #[error("cannot prepare the spec mirror {path}: {message}")]
    Mirror {
        /// The mirror.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The branch does not exist.
    #[error("branch `{branch}` not found in {repo}")]
    NoBranch {
        /// The branch.
        branch: String,
        /// The repository (a path, or a URL without credentials).
        repo: String,
    },
    /// Fetching the remote failed.
    #[error("cannot fetch {url}: {message}")]
    Fetch {
        /// The remote, without credentials.
        url: String,
        /// What went wrong, without credentials.
        message: String,
    },
    /// The remote needs the `git` command, and it is not installed.
    #[error(
        "cannot fetch {url}: the `git` command was not found; it is needed for https and ssh \
         remotes because this build's libgit2 has no TLS or ssh (install git, or use a local \
         path, file://, git:// or http://)"
    )]
    GitCommandMissing {
        /// The remote, without credentials.
        url: String,
    },
    /// Any other git failure while resolving the branch.
    #[error("git: {0}")]
    Git(String),
}

/// Reads the desired state: the source's branch tip, loaded through the spec loader.
///
/// The methods block (git, the file system, maybe the network); async callers run them with
/// `tokio::task::spawn_blocking`.
pub struct DesiredState {
    config: DesiredConfig,
    /// The repository read: the local repository, or the mirror of a remote.
    repo_path: PathBuf,
    /// The last valid snapshot read. Invalid ones are not kept: when the loader checks the
    /// NAS (`LoadOptions::nas_root`), the same commit can become valid once the admin copies
    /// the missing build, so an invalid commit is loaded again on every read.
    cached: Option<Snapshot>,
}

impl std::fmt::Debug for DesiredState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredState")
            .field("source", &self.config.source)
            .field("branch", &self.config.branch)
            .field("repo_path", &self.repo_path)
            .field("cached", &self.cached.as_ref().map(|s| &s.commit))
            .finish()
    }
}

impl DesiredState {
    /// Checks the configuration, opens a local repository or creates the mirror of a remote.
    /// Nothing is fetched yet.
    pub fn open(config: DesiredConfig) -> Result<Self, DesiredError> {
        if !git2::Reference::is_valid_name(&branch_ref(&config.branch)) {
            return Err(DesiredError::InvalidBranch(config.branch.clone()));
        }
        let repo_path = match &config.source {
            SpecsSource::Local(path) => {
                git2::Repository::open(path).map_err(|e| DesiredError::Open {
                    path: path.clone(),
                    message: e.message().to_string(),
                })?;
                path.clone()
            }
            SpecsSource::Remote(_) => {
                let mirror = config.data_dir.join(MIRROR_DIR);
                open_or_init_mirror(&mirror)?;
                mirror
            }
        };
        Ok(DesiredState {
            config,
            repo_path,
            cached: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DesiredConfig {
        &self.config
    }

    /// The repository that is read: the local repository, or the mirror of a remote.
    pub fn repo_path(&self) -> &Path {
        &self.repo_path
    }

    /// The git directory whose refs a file watcher should follow, for a local source; `None`
    /// for a remote, which is polled by fetching.
    pub fn watch_dir(&self) -> Result<Option<PathBuf>, DesiredError> {
        match &self.config.source {
            SpecsSource::Local(path) => {
                let repo = git2::Repository::open(path).map_err(|e| DesiredError::Open {
                    path: path.clone(),
                    message: e.message().to_string(),
                })?;
                // The common dir holds `refs/` and `packed-refs`, also for a linked worktree.
                Ok(Some(repo.commondir().to_path_buf()))
            }
            SpecsSource::Remote(_) => Ok(None),
        }
    }

    /// Fetches the branch of a remote into the mirror; does nothing for a local source.
    pub fn fetch(&self) -> Result<(), DesiredError> {
        let SpecsSource::Remote(url) = &self.config.source else {
            return Ok(());
        };
        let use_command = match self.config.fetch_with {
            FetchWith::Auto => needs_git_command(url),
            FetchWith::Libgit2 => false,
            FetchWith::GitCommand => true,
        };
        if use_command {
            fetch_with_command(&self.repo_path, url, &self.config.branch)
        } else {
            fetch_with_libgit2(&self.repo_path, url, &self.config.branch)
        }
    }

    /// The full id of the commit at the tip of the branch, as the repository (or mirror) has
    /// it now. Does not fetch.
    pub fn resolve(&self) -> Result<String, DesiredError> {
        let repo = git2::Repository::open(&self.repo_path).map_err(|e| DesiredError::Open {
            path: self.repo_path.clone(),
            message: e.message().to_string(),
        })?;
        let reference = match repo.find_reference(&branch_ref(&self.config.branch)) {
            Ok(reference) => reference,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Err(DesiredError::NoBranch {
                    branch: self.config.branch.clone(),
                    repo: self.config.source.to_string(),
                });
            }
            Err(e) => return Err(DesiredError::Git(e.message().to_string())),
        };
        let commit = reference
            .peel_to_commit()
            .map_err(|e| DesiredError::Git(e.message().to_string()))?;
        Ok(commit.id().to_string())
    }

    /// Fetches (for a remote), resolves the branch and loads its commit.
    ///
    /// A commit equal to the last valid one read is not loaded again. A commit that cannot
    /// be loaded at all (its tree is unreadable) comes back as a snapshot whose one
    /// diagnostic says why, so that it is recorded like any other invalid commit. An `Err`
    /// means no commit could be determined; the last good commit stays in force either way.
    pub fn read(&mut self) -> Result<Snapshot, DesiredError> {
        self.fetch()?;
        let commit = self.resolve()?;
        if let Some(cached) = &self.cached
            && cached.commit == commit
        {
            return Ok(cached.clone());
        }
        let loaded = GitSource::open(&self.repo_path, &commit)
            .and_then(|source| load(&source, &self.config.load_options))
            .unwrap_or_else(|e| Loaded {
                specs: Default::default(),
                diagnostics: vec![Diagnostic {
                    file: ".".to_string(),
                    line: None,
                    column: None,
                    message: format!("cannot read the spec tree: {e}"),
                    hint: None,
                }],
            });
        let confirms_retire = git2::Repository::open(&self.repo_path)
            .ok()
            .and_then(|repo| {
                let id = git2::Oid::from_str(&commit).ok()?;
                let found = repo.find_commit(id).ok()?;
                Some(
                    found
                        .message()
                        .unwrap_or_default()
                        .lines()
                        .any(|line| line.trim() == CONFIRM_RETIRE_TRAILER),
                )
            })
            .unwrap_or(false);
        let snapshot = Snapshot {
            commit,
            confirms_retire,
            loaded: Arc::new(loaded),
        };
        self.cached = snapshot.is_valid().then(|| snapshot.clone());
        Ok(snapshot)
    }
}

/// One attempt to apply a commit: the commit, and every error it had (none if it was good).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The full commit id.
    pub commit: String,
    /// Every diagnostic of the commit; empty when it was applied.
    pub diagnostics: Vec<Diagnostic>,
}

/// What [`Desired::observe`] made of a snapshot. For logs and events only: the reconciler
/// runs the same full diff against [`Desired::last_good`] whatever the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The commit is valid and is now in force.
    Accepted {
        /// The commit now in force.
        commit: String,
        /// The commit that was in force before, if any (may equal `commit` when a commit
        /// became valid again, e.g. after a revert or a build appearing on the NAS).
        previous: Option<String>,
    },
    /// The commit is invalid; nothing changed.
    Rejected {
        /// The failing commit.
        commit: String,
        /// How many diagnostics it has.
        n_errors: usize,
        /// The commit that stays in force, if any.
        in_force: Option<String>,
    },
    /// The same commit with the same result as the last attempt.
    Unchanged {
        /// The commit.
        commit: String,
    },
}

/// The desired-state state machine: the last good snapshot, and what the latest attempt
/// gave. Pure: no I/O, fed by [`DesiredState::read`].
///
/// **Invariant:** `last_good` only ever holds a valid snapshot. An invalid commit changes
/// nothing but `last_attempted`.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    last_good: Option<Snapshot>,
    last_attempted: Option<Attempt>,
    read_error: Option<String>,
}

impl Desired {
    /// A state machine that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in a freshly read snapshot.
    pub fn observe(&mut self, snapshot: Snapshot) -> Outcome {
        self.read_error = None;
        let attempt = Attempt {
            commit: snapshot.commit.clone(),
            diagnostics: snapshot.loaded.diagnostics.clone(),
        };
        // A valid last attempt is always the one in force, so an equal attempt changes
        // nothing whether it is valid or not.
        if self.last_attempted.as_ref() == Some(&attempt) {
            return Outcome::Unchanged {
                commit: snapshot.commit,
            };
        }
        self.last_attempted = Some(attempt);
        let previous = self.last_good.as_ref().map(|s| s.commit.clone());
        if snapshot.is_valid() {
            let commit = snapshot.commit.clone();
            self.last_good = Some(snapshot);
            Outcome::Accepted { commit, previous }
        } else {
            Outcome::Rejected {
                n_errors: snapshot.loaded.diagnostics.len(),
                commit: snapshot.commit,
                in_force: previous,
            }
        }
    }

    /// Records that the desired state could not be read at all (fetch failed, branch gone).
    /// Nothing else changes: the last good commit stays in force.
    pub fn read_failed(&mut self, error: &DesiredError) {
        self.read_error = Some(error.to_string());
    }

    /// The snapshot in force: the last valid commit seen, if any.
    pub fn last_good(&self) -> Option<&Snapshot> {
        self.last_good.as_ref()
    }

    /// The latest commit tried, with its errors (for the status's `lastAttemptedRevision`
    /// and `errors`).
    pub fn last_attempted(&self) -> Option<&Attempt> {
        self.last_attempted.as_ref()
    }

    /// Why the latest read failed, if it did; cleared by the next successful read.
    pub fn read_error(&self) -> Option<&str> {
        self.read_error.as_deref()
    }

    /// Whether the latest commit tried failed (so the one in force is older, or absent).
    pub fn is_failing(&self) -> bool {
        self.last_attempted
            .as_ref()
            .is_some_and(|a| !a.diagnostics.is_empty())
    }

    /// Whether pruning by retention policy is allowed now: only when the latest read
    /// succeeded, the latest commit tried is the one in force (it loaded and validated) and
    /// it is not empty. A stale desired state (the fetch failed) may no longer want what it
    /// says to prune, so it prunes nothing either.
    pub fn may_prune(&self) -> bool {
        if self.read_error.is_some() {
            return false;
        }
        match (&self.last_good, &self.last_attempted) {
            (Some(good), Some(attempt)) => {
                good.commit == attempt.commit && attempt.diagnostics.is_empty() && !good.is_empty()
            }
            _ => false,
        }
    }
}

impl SpecsSource {
    /// Interprets a `--specs` argument: anything with `://`, or git's scp-like
    /// `[user@]host:path` (a `:` before the first `/`), is a remote; the rest is a local path.
    pub fn parse(arg: &str) -> SpecsSource {
        let scp_like = match (arg.find(':'), arg.find('/')) {
            (Some(colon), Some(slash)) => colon < slash && colon > 1,
            (Some(colon), None) => colon > 1,
            _ => false,
        };
        if arg.contains("://") || scp_like {
            SpecsSource::Remote(arg.to_string())
        } else {
            SpecsSource::Local(PathBuf::from(arg))
        }
    }
}

/// Shows a local path as is and a remote URL without its credentials, so that the source can
/// be logged.
impl std::fmt::Display for SpecsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecsSource::Local(path) => write!(f, "{}", path.display()),
            SpecsSource::Remote(url) => write!(f, "{}", redact_url(url)),
        }
    }
}

impl std::fmt::Debug for SpecsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecsSource::Local(path) => f.debug_tuple("Local").field(path).finish(),
            SpecsSource::Remote(url) => f.debug_tuple("Remote").field(&redact_url(url)).finish(),
        }
    }
}

/// A URL with any `user:password@` replaced by `***@`, so that a token in the URL never
/// reaches a log or an error.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |i| authority_start + i);
    match url[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}***@{}",
            &url[..authority_start],
            &url[authority_start + at + 1..]
        ),
        None => url.to_string(),
    }
}

fn branch_ref(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

/// Whether the default build's libgit2 cannot fetch this URL itself.
fn needs_git_command(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    !["file://", "git://", "http://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

fn open_or_init_mirror(mirror: &Path) -> Result<(), DesiredError> {
    let error = |message: String| DesiredError::Mirror {
        path: mirror.to_path_buf(),
        message,
    };
    if mirror.exists() {
        git2::Repository::open_bare(mirror).map_err(|e| error(e.message().to_string()))?;
    } else {
        if let Some(parent) = mirror.parent() {
            std::fs::create_dir_all(parent).map_err(|e| error(e.to_string()))?;
        }
        git2::Repository::init_bare(mirror).map_err(|e| error(e.message().to_string()))?;
    }
    Ok(())
}

fn fetch_with_libgit2(mirror: &Path, url: &str, branch: &str) -> Result<(), DesiredError> {
    let fetch_error = |e: git2::Error| DesiredError::Fetch {
        url: redact_url(url),
        message: e.message().replace(url, &redact_url(url)),
    };
    let repo = git2::Repository::open_bare(mirror).map_err(|e| DesiredError::Mirror {
        path: mirror.to_path_buf(),
        message: e.message().to_string(),
    })?;
    let mut remote = repo.remote_anonymous(url).map_err(fetch_error)?;
    let refspec = format!("+{0}:{0}", branch_ref(branch));
    let mut options = git2::FetchOptions::new();
    options.download_tags(git2::AutotagOption::None);
    remote
        .fetch(&[refspec.as_str()], Some(&mut options), None)
        .map_err(fetch_error)?;
    // libgit2 fetches nothing, silently, for a refspec that matches no remote ref; without
    // this check a branch deleted upstream would leave its stale tip in the mirror.
    let wanted = branch_ref(branch);
    let advertised = remote
        .list()
        .map_err(fetch_error)?
        .iter()
        .any(|head| head.name() == wanted);
    if !advertised {
        return Err(DesiredError::NoBranch {
            branch: branch.to_string(),
            repo: redact_url(url),
        });
    }
    Ok(())
}

fn fetch_with_command(mirror: &Path, url: &str, branch: &str) -> Result<(), DesiredError> {
    let refspec = format!("+{0}:{0}", branch_ref(branch));
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(mirror)
        // Give up on a stalled transfer instead of blocking the reconciler forever.
        .args([
            "-c",
            "http.lowSpeedLimit=1000",
            "-c",
            "http.lowSpeedTime=60",
        ])
        .args(["fetch", "--quiet", "--no-tags", "--"])
        .arg(url)
        .arg(&refspec)
        // Never wait for a password on a terminal nobody watches.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_SSH_COMMAND", ssh_command())
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DesiredError::GitCommandMissing {
                url: redact_url(url),
            });
        }
        Err(e) => {
            return Err(DesiredError::Fetch {
                url: redact_url(url),
                message: format!("cannot run git: {e}"),
            });
        }
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(DesiredError::Fetch {
        url: redact_url(url),
        message: format!(
            "git fetch failed ({}): {}",
            output.status,
            stderr.trim().replace(url, &redact_url(url))
        ),
    })
}

/// The ssh command for `git fetch`: the configured one, or ssh in batch mode so that a
/// missing key fails instead of prompting.
fn ssh_command() -> String {
    std::env::var("GIT_SSH_COMMAND").unwrap_or_else(|_| "ssh -o BatchMode=yes".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_specs_argument() {
        let cases = [
            ("/srv/specs", SpecsSource::Local("/srv/specs".into())),
            ("specs", SpecsSource::Local("specs".into())),
            ("./a:b", SpecsSource::Local("./a:b".into())),
            ("C:/specs", SpecsSource::Local("C:/specs".into())),
            (
                "file:///srv/specs.git",
                SpecsSource::Remote("file:///srv/specs.git".into()),
            ),
            (
                "https://h/specs.git",
                SpecsSource::Remote("https://h/specs.git".into()),
            ),
            (
                "git@host:specs.git",
                SpecsSource::Remote("git@host:specs.git".into()),
            ),
        ];
        for (arg, want) in cases {
            assert_eq!(SpecsSource::parse(arg), want, "{arg}");
        }
    }

    #[test]
    fn redacts_credentials() {
        let cases = [
            ("https://h/a.git", "https://h/a.git"),
            ("https://tok@h/a.git", "https://***@h/a.git"),
            ("https://u:p@ss@h:443/a@b.git", "https://***@h:443/a@b.git"),
            ("http://u:p@h", "http://***@h"),
            ("git@host:specs.git", "git@host:specs.git"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
            assert_eq!(SpecsSource::Remote(url.into()).to_string(), want);
        }
    }

    #[test]
    fn fetch_method_by_scheme() {
        let cases = [
            ("file:///srv/specs.git", false),
            ("git://h/specs.git", false),
            ("http://h/specs.git", false),
            ("HTTP://h/specs.git", false),
            ("https://h/specs.git", true),
            ("ssh://git@h/specs.git", true),
            ("git@h:specs.git", true),
        ];
        for (url, want) in cases {
            assert_eq!(needs_git_command(url), want, "{url}");
        }
    }
}
