//! What makes the reconciler run: a coalescing "reconcile requested" signal, and the tasks
//! that raise it.
//!
//! Every trigger raises the same signal through a [`Trigger`]; the reconcile loop waits on
//! the one [`Requests`]. Requests coalesce: however many arrive while a pass runs, the loop
//! sees one [`Request`] afterwards. A request carries the reasons only for logging, through
//! `Display`: the reconciler is level-triggered and runs the same full diff whatever woke it,
//! which is what makes it idempotent (see DESIGN.md, "Reconciler semantics").
//!
//! [`spawn`] starts the triggers of a [`TriggersConfig`]:
//!
//! - **start-up**: one request at once;
//! - **git refs**: a notify (inotify) watcher on a local repository's `refs/` (recursively),
//!   `packed-refs` and `HEAD`, debounced by a short fixed window, so a commit is seen well
//!   within a second;
//! - **incoming builds**: a notify watcher on `<nas>/incoming/` (recursively), so a build
//!   copied after its spec was committed is ingested within about a second of the copy going
//!   quiet ([`INCOMING_QUIET`]). Where the folder cannot be watched (missing, a file system
//!   without notifications, the watch limit) a warning says so and the resync catches it;
//! - **resync**: a periodic request every interval ±10 % jitter (for a remote source this is
//!   the fetch interval, as a remote has no watcher; for a local one it catches what inotify
//!   misses, such as changes over NFS);
//! - **`SIGHUP`**.
//!
//! The webhook ([`crate::webhook`]) holds a [`Trigger`] clone too.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The default resync interval.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(60);

/// The default debounce window for ref changes.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);

/// A change under `incoming/` requests a run once no other change came for this long (a copy
/// writes many files; a run mid-copy would find the build still changing).
pub const INCOMING_QUIET: Duration = Duration::from_millis(500);

/// However busy `incoming/` stays, a run is requested at least this often while it changes.
pub const INCOMING_MAX_WAIT: Duration = Duration::from_secs(10);

/// The resync interval varies by this fraction either way, so that replicas and restarts do
/// not fetch in lockstep.
pub const RESYNC_JITTER: f64 = 0.1;

/// Why a run was requested. Shown in logs; never a reason to do anything differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The process started.
    Startup,
    /// A ref of the local spec repository changed.
    GitRefs,
    /// The periodic resync (and fetch, for a remote) came round.
    Resync,
    /// The process received `SIGHUP`.
    Sighup,
    /// A verified webhook delivery arrived.
    Webhook,
    /// Something changed under the NAS's `incoming/` folder.
    Incoming,
}

/// Raises the "reconcile requested" signal. Cheap to clone; one per trigger.
#[derive(Debug, Clone)]
pub struct Trigger {
    shared: Arc<Shared>,
}

/// The receiving end: the reconcile loop owns the one `Requests`.
#[derive(Debug)]
pub struct Requests {
    shared: Arc<Shared>,
}

/// One or more coalesced requests. Its `Display` lists the reasons, for a log line; there is
/// deliberately no other way to look at them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    reasons: Vec<Reason>,
}

/// Which triggers [`spawn`] starts.
#[derive(Debug, Clone)]
pub struct TriggersConfig {
    /// Request a run at once.
    pub startup: bool,
    /// The git directory of a local spec repository (its common dir, holding `refs/`), to
    /// watch; `None` for a remote source.
    pub watch_git_dir: Option<PathBuf>,
    /// The NAS's `incoming/` folder, to watch for builds being copied; `None` for none.
    /// Where it cannot be watched, a warning is logged and the resync catches changes.
    pub watch_incoming: Option<PathBuf>,
    /// How long to gather ref events after the first before requesting a run, so that a
    /// commit (lock file, rename, reflog) is one request. At most 100 ms keeps a commit
    /// well within the one-second target.
    pub debounce: Duration,
    /// The periodic resync interval, before jitter; `None` for none.
    pub resync: Option<Duration>,
    /// Request a run on `SIGHUP` (Unix only). Installing the handler means `SIGHUP` no
    /// longer ends the process.
    pub sighup: bool,
}

impl Default for TriggersConfig {
    /// Start-up, a 60 s resync and `SIGHUP`; no watcher (set `watch_git_dir`).
    fn default() -> Self {
        TriggersConfig {
            startup: true,
            watch_git_dir: None,
            watch_incoming: None,
            debounce: DEFAULT_DEBOUNCE,
            resync: Some(DEFAULT_RESYNC),
            sighup: true,
        }
    }
}

/// The running triggers. Dropping it stops them (the watcher and every task).
#[derive(Debug)]
pub struct TriggerTasks {
    tasks: Vec<JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
    _incoming_watcher: Option<notify::RecommendedWatcher>,
}

impl Drop for TriggerTasks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Why the triggers could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The file watcher could not be set up (for example, the inotify watch limit).
    #[error("cannot watch {path} for ref changes")]
    Watch {
        /// The path that could not be watched.
        path: PathBuf,
        /// The cause.
        #[source]
        source: notify::Error,
    },
    /// The `SIGHUP` handler could not be installed.
    #[error("cannot install the SIGHUP handler")]
    Signal(#[source] std::io::Error),
}

/// A connected [`Trigger`] and [`Requests`], with nothing pending.
pub fn channel() -> (Trigger, Requests) {
    let shared = Arc::new(Shared::default());
    (
        Trigger {
            shared: shared.clone(),
        },
        Requests { shared },
    )
}

/// Starts the configured triggers, raising `trigger`. Must be called inside a tokio runtime.
/// Every handler and watch is in place when this returns.
pub fn spawn(config: &TriggersConfig, trigger: &Trigger) -> Result<TriggerTasks, TriggerError> {
    let mut tasks = Vec::new();
    let mut watcher = None;

    if let Some(git_dir) = &config.watch_git_dir {
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let watch_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TriggerError::Watch { path, source }
        };
        let mut ref_watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // The receiver is gone only when the triggers are stopping.
                let _ = events_tx.send(event);
            })
            .map_err(watch_error(git_dir))?;
        // One inotify watch per directory: `refs/` and below for loose refs, and the git dir
        // itself (not recursively) for `packed-refs` and `HEAD`, which git replaces by rename,
        // so a watch on the files themselves would be lost after the first change.
        let refs_dir = git_dir.join("refs");
        ref_watcher
            .watch(&refs_dir, RecursiveMode::Recursive)
            .map_err(watch_error(&refs_dir))?;
        ref_watcher
            .watch(git_dir, RecursiveMode::NonRecursive)
            .map_err(watch_error(git_dir))?;
        tasks.push(tokio::spawn(watch_refs(
            events_rx,
            git_dir.clone(),
            config.debounce,
            trigger.clone(),
        )));
        watcher = Some(ref_watcher);
    }

    let incoming_watcher = config.watch_incoming.as_ref().and_then(|incoming| {
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        match watch_incoming(incoming, events_tx) {
            Ok(watcher) => {
                tracing::info!(folder = %incoming.display(), "watching for new builds");
                tasks.push(tokio::spawn(incoming_changes(events_rx, trigger.clone())));
                Some(watcher)
            }
            Err(error) => {
                let every = config
                    .resync
                    .map_or("never: no resync".to_owned(), |interval| {
                        format!("every {} s", interval.as_secs())
                    });
                tracing::warn!(
                    folder = %incoming.display(),
                    error = %error,
                    "cannot watch for new builds; they are found by the periodic resync ({every})"
                );
                None
            }
        }
    });

    if let Some(interval) = config.resync {
        // The first deadline is taken now, not when the task first runs, so the interval
        // counts from `spawn`.
        let first_deadline = tokio::time::Instant::now() + jittered(interval, random_unit());
        tasks.push(tokio::spawn(resync(
            first_deadline,
            interval,
            trigger.clone(),
        )));
    }

    #[cfg(unix)]
    if config.sighup {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).map_err(TriggerError::Signal)?;
        let trigger = trigger.clone();
        tasks.push(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP received");
                trigger.request(Reason::Sighup);
            }
        }));
    }

    if config.startup {
        trigger.request(Reason::Startup);
    }

    Ok(TriggerTasks {
        tasks,
        _watcher: watcher,
        _incoming_watcher: incoming_watcher,
    })
}

/// A watcher on `incoming` and below, sending its events.
fn watch_incoming(
    incoming: &Path,
    events: tokio::sync::mpsc::UnboundedSender<notify::Result<notify::Event>>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // The receiver is gone only when the triggers are stopping.
        let _ = events.send(event);
    })?;
    watcher.watch(incoming, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// Requests a run once `incoming/` has been quiet for [`INCOMING_QUIET`] after a change (at
/// the latest [`INCOMING_MAX_WAIT`] after the first).
async fn incoming_changes(
    mut events: tokio::sync::mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    trigger: Trigger,
) {
    while let Some(event) = events.recv().await {
        if !is_content_change(&event) {
            continue;
        }
        let latest = tokio::time::Instant::now() + INCOMING_MAX_WAIT;
        loop {
            let quiet_until = (tokio::time::Instant::now() + INCOMING_QUIET).min(latest);
            match tokio::time::timeout_at(quiet_until, events.recv()).await {
                Ok(Some(_)) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        trigger.request(Reason::Incoming);
    }
}

/// Whether a watcher event may mean content changed: reads and metadata changes do not
/// (every scan reads the builds); errors and overflows do.
fn is_content_change(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Err(_) => true,
        Ok(event) => {
            event.need_rescan()
                || !matches!(
                    event.kind,
                    EventKind::Access(_)
                        | EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                )
        }
    }
}

/// `interval` scaled by a factor in `[1 - RESYNC_JITTER, 1 + RESYNC_JITTER)`, chosen by
/// `unit` in `[0, 1)`.
pub fn jittered(interval: Duration, unit: f64) -> Duration {
    let unit = unit.clamp(0.0, 1.0);
    interval.mul_f64(1.0 - RESYNC_JITTER + 2.0 * RESYNC_JITTER * unit)
}

impl Trigger {
    /// Requests a run. Returns at once; coalesces with any request not yet taken.
    pub fn request(&self, reason: Reason) {
        {
            let mut pending = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !pending.contains(&reason) {
                pending.push(reason);
            }
        }
        // Stores a permit when nobody waits, so a request made before `wait` is not lost.
        self.shared.notify.notify_one();
    }
}

impl Requests {
    /// Waits for a request and takes it, with every request coalesced into it.
    pub async fn wait(&mut self) -> Request {
        loop {
            if let Some(request) = self.try_take() {
                return request;
            }
            self.shared.notify.notified().await;
        }
    }

    /// Takes the pending request, if there is one.
    pub fn try_take(&mut self) -> Option<Request> {
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if pending.is_empty() {
            return None;
        }
        let mut reasons = std::mem::take(&mut *pending);
        reasons.sort();
        Some(Request { reasons })
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Startup => "startup",
            Reason::GitRefs => "git refs changed",
            Reason::Resync => "periodic resync",
            Reason::Sighup => "SIGHUP",
            Reason::Webhook => "webhook",
            Reason::Incoming => "incoming/ changed",
        })
    }
}

/// The reasons, comma-separated, e.g. `startup, SIGHUP`.
impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (reason_idx, reason) in self.reasons.iter().enumerate() {
            if reason_idx > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{reason}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Vec<Reason>>,
    notify: Notify,
}

async fn watch_refs(
    mut events: tokio::sync::mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    git_dir: PathBuf,
    debounce: Duration,
    trigger: Trigger,
) {
    while let Some(event) = events.recv().await {
        if !is_ref_change(&git_dir, &event) {
            continue;
        }
        // A fixed window from the first event (not extended by later ones), so the delay
        // is bounded even while refs keep changing.
        let deadline = tokio::time::Instant::now() + debounce;
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, events.recv()).await {}
        trigger.request(Reason::GitRefs);
    }
}

/// Whether a watcher event may mean a ref changed. Errors and overflows count: a spurious
/// run costs little, a missed commit waits for the resync.
fn is_ref_change(git_dir: &Path, event: &notify::Result<notify::Event>) -> bool {
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(error = %e, "ref watcher error; requesting a run");
            return true;
        }
    };
    if event.need_rescan() {
        return true;
    }
    // Reading refs (as every run does) opens them, and may touch their access time: acting
    // on those would make each run trigger the next.
    is_content_change(&Ok(event.clone()))
        && event.paths.iter().any(|path| is_ref_path(git_dir, path))
}

fn is_ref_path(git_dir: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(git_dir) else {
        return false;
    };
    // Lock files come before the rename that makes the change; the rename itself counts.
    if path
        .extension()
        .is_some_and(|extension| extension == "lock")
    {
        return false;
    }
    relative.starts_with("refs")
        || relative == Path::new("packed-refs")
        || relative == Path::new("HEAD")
}

async fn resync(mut deadline: tokio::time::Instant, interval: Duration, trigger: Trigger) {
    loop {
        tokio::time::sleep_until(deadline).await;
        trigger.request(Reason::Resync);
        deadline = tokio::time::Instant::now() + jittered(interval, random_unit());
    }
}

/// A number in `[0, 1)` that differs from call to call; jitter needs no better randomness.
fn random_unit() -> f64 {
    // Each `RandomState` has fresh keys, so hashing nothing gives a fresh value.
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        let interval = Duration::from_secs(60);
        let cases = [
            (0.0, Duration::from_secs(54)),
            (0.5, Duration::from_secs(60)),
            (1.0, Duration::from_secs(66)),
            (-3.0, Duration::from_secs(54)),
        ];
        for (unit, want) in cases {
            let got = jittered(interval, unit);
            let error = got.abs_diff(want);
            assert!(error < Duration::from_millis(1), "{unit}: {got:?}");
        }
        for _ in 0..1000 {
            let unit = random_unit();
            assert!((0.0..1.0).contains(&unit), "{unit}");
        }
    }

    #[test]
    fn ref_paths() {
        let git_dir = Path::new("/r/.git");
        let cases = [
            ("/r/.git/refs/heads/main", true),
            ("/r/.git/refs/heads/team/x", true),
            ("/r/.git/refs/heads/main.lock", false),
            ("/r/.git/packed-refs", true),
            ("/r/.git/packed-refs.lock", false),
            ("/r/.git/HEAD", true),
            ("/r/.git/index", false),
            ("/r/.git/FETCH_HEAD", false),
            ("/r/.git/logs/refs/heads/main", false),
            ("/elsewhere/refs/heads/main", false),
        ];
        for (path, want) in cases {
            assert_eq!(is_ref_path(git_dir, Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn requests_coalesce_and_keep_every_reason_once() {
        let (trigger, mut requests) = channel();
        assert_eq!(requests.try_take(), None);
        trigger.request(Reason::Sighup);
        trigger.request(Reason::Startup);
        trigger.request(Reason::Sighup);
        let request = requests.try_take().expect("a request");
        assert_eq!(request.to_string(), "startup, SIGHUP");
        assert_eq!(requests.try_take(), None);
    }
}
