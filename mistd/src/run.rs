//! `mistd run`: the reconciler and the HTTP server in one process, and how it stops.
//!
//! [`serve`] connects the database, starts
//! [`mist_reconciler::reconciler::Reconciler::run`] (roles `all` and `reconciler`) and the
//! HTTP [`crate::server::app`], and returns when a [`Shutdown`] is
//! requested — by [`spawn_signal_handlers`] on `SIGTERM` or `SIGINT` — once both have
//! stopped, or after [`SHUTDOWN_GRACE`] if something does not stop in time. The reconciler is
//! crash-safe by design (durable queue, content-addressed outputs written through temp files
//! and renamed), so abandoning a step at the deadline loses only that step's progress.
//!
//! `SIGHUP` is not handled here: the reconciler's triggers already turn it into a pass
//! ([`mist_reconciler::triggers`]), and a second handler would only run a second one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mist_db::Db;
use mist_reconciler::reconciler::{Reconciler, ReconcilerConfig};
use tokio::sync::watch;

use crate::config::{Secrets, Settings};
use crate::server::{self, AppParts, Metrics, Readiness};

/// How long the reconciler and the HTTP server get to stop after a shutdown request. The
/// deployment contract is "stopped within 10 s"; the reconciler gives a running job 8 s of
/// it, and the last second is for closing the database and the runtime.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(9);

/// A last pass older than this many resync intervals (plus [`READY_SLACK`]) makes `/readyz`
/// fail: passes run at least once per interval, so missing several means the loop is stuck.
pub const READY_PASS_INTERVALS: u32 = 3;

/// Added to the allowed age of the last pass, for a slow pass on a busy machine.
pub const READY_SLACK: Duration = Duration::from_secs(30);

/// Requests a stop; every clone of the paired [`Shutdown`] sees it.
#[derive(Debug, Clone)]
pub struct ShutdownSender {
    sender: Arc<watch::Sender<bool>>,
}

/// A stop request to wait for. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// A new stop signal, not yet raised.
pub fn shutdown_channel() -> (ShutdownSender, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (
        ShutdownSender {
            sender: Arc::new(sender),
        },
        Shutdown { receiver },
    )
}

impl ShutdownSender {
    /// Requests the stop. Idempotent.
    pub fn request(&self) {
        self.sender.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once the stop is requested (at once if it already was). A dropped sender
    /// counts as never requesting it.
    pub async fn requested(mut self) {
        if self
            .receiver
            .wait_for(|requested| *requested)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }

    /// Whether the stop has been requested.
    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow()
    }
}

/// Requests a stop on the first `SIGTERM` or `SIGINT`; a second one ends the process at
/// once with status 130, for an operator who does not want to wait. Must be called inside a
/// tokio runtime.
pub fn spawn_signal_handlers(shutdown: ShutdownSender) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "stopping: finishing or abandoning the running steps"
        );
        shutdown.request();
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::warn!(signal = name, "second signal: exiting now");
        std::process::exit(130);
    });
    Ok(())
}

/// Logs and otherwise ignores `SIGHUP`, whose default action would end the process: for the
/// `api` role, which runs no reconciler.
pub fn ignore_sighup() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP received: the api role has nothing to reconcile");
        }
    });
    Ok(())
}

/// The reconciler's settings for `settings`; `None` when the role runs no reconciler. The
/// lease owner is the reconciler's default, derived from the data folder: stable across
/// restarts, so a restarted `mistd` takes back at once the jobs a killed one held.
pub fn reconciler_config(settings: &Settings) -> Option<ReconcilerConfig> {
    if !settings.role.runs_reconciler() {
        return None;
    }
    let mut config = ReconcilerConfig::new(
        settings.specs.clone()?,
        settings.nas.clone()?,
        settings.data.clone()?,
    );
    config.branch = settings.branch.clone();
    config.resync = settings.resync;
    config.skip_deltas = settings.skip_deltas;
    config.max_retire_percent = settings.max_retire_percent;
    config.concurrency = settings.concurrency;
    config.verify_interval = settings.verify_interval;
    config.metadata.steam_url = settings.steam_url.clone();
    Some(config)
}

/// Opens the database the way the role needs it: read-write with migrations for the
/// reconciler roles, read-only (and checked to be migrated) for the `api` role, which never
/// writes. Makes the data folder first for SQLite.
pub async fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    if let Some(data) = &settings.data {
        std::fs::create_dir_all(data)
            .with_context(|| format!("cannot create the data folder {}", data.display()))?;
    }
    let db = if settings.role.runs_reconciler() {
        Db::connect(&settings.db_url).await?
    } else {
        Db::connect_read_only(&settings.db_url).await?
    };
    Ok(db)
}

/// Binds `address` for the HTTP server. Called before any other work, so that a port in use
/// fails at once and in words, before a database or a demo is made.
pub fn bind(address: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address).map_err(|error| {
        let hint = match error.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "; another program (another mistd or `mistd demo`?) listens on port {}: stop \
                 it, or choose another address with --listen",
                address.port()
            ),
            std::io::ErrorKind::PermissionDenied => {
                "; ports below 1024 need privileges: choose a port above 1024 with --listen"
                    .to_owned()
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "; this computer has no such address: use 127.0.0.1 or 0.0.0.0 in --listen"
                    .to_owned()
            }
            _ => String::new(),
        };
        anyhow::anyhow!("cannot listen on {address}: {error}{hint}")
    })?;
    listener
        .set_nonblocking(true)
        .context("cannot set up the listening socket")?;
    Ok(listener)
}

/// Runs `mistd run` until `shutdown`: see the module documentation. `settings.listen` is
/// bound first thing, so a port in use fails before any other work. `on_listening` is told
/// the bound address once the server accepts connections.
///
/// A start that fails leaves nothing behind: a data folder this call made is removed again.
pub async fn serve(
    settings: &Settings,
    secrets: Secrets,
    metrics: Metrics,
    shutdown: Shutdown,
    on_listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let listener = bind(settings.listen)?;
    serve_on(listener, settings, secrets, metrics, shutdown, on_listening).await
}

/// [`serve`] on `listener`, which [`bind`] returned earlier (the demo binds before it makes
/// anything).
pub async fn serve_on(
    listener: std::net::TcpListener,
    settings: &Settings,
    secrets: Secrets,
    metrics: Metrics,
    shutdown: Shutdown,
    on_listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    log_settings(settings);
    // The outermost folder of the data folder's path that does not exist yet.
    let new_data = settings.data.as_deref().and_then(|data| {
        data.ancestors()
            .take_while(|dir| !dir.as_os_str().is_empty() && !dir.exists())
            .last()
            .map(std::path::Path::to_path_buf)
    });
    let started = start(settings, secrets, metrics).await;
    let (db, reconciler, sender, app) = match started {
        Ok(parts) => parts,
        Err(error) => {
            if let Some(data) = new_data {
                // Only what this start made: the folder did not exist before it.
                let _ = std::fs::remove_dir_all(&data);
            }
            return Err(error);
        }
    };
    let listener =
        tokio::net::TcpListener::from_std(listener).context("cannot use the listening socket")?;
    let address = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(%address, role = %settings.role, "listening");
    on_listening(address);

    if let Some(sender) = sender {
        tokio::spawn(sender.run(shutdown.clone().requested()));
    }
    let mut running = Running::start(listener, app, reconciler, &shutdown);
    if let Some(error) = running.until_stop_or_failure(&shutdown).await {
        // Nothing asked the rest to stop: do so, so they release the database cleanly.
        running.server_task.abort();
        if let Some(task) = &running.reconciler_task {
            task.abort();
        }
        db.close().await;
        return Err(error);
    }

    let started = Instant::now();
    running.stop_within_grace().await;
    tokio::time::timeout(Duration::from_secs(1), db.close())
        .await
        .ok();
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
    Ok(())
}

/// What a running `mistd` is made of, before it runs.
type Parts = (
    Db,
    Option<Reconciler>,
    Option<mist_notify::sender::Sender>,
    axum::Router,
);

/// Opens the database and makes the reconciler, the notification sender and the HTTP app;
/// closes the database again when a later part fails.
async fn start(settings: &Settings, secrets: Secrets, metrics: Metrics) -> anyhow::Result<Parts> {
    let db = open_db(settings).await?;
    let parts = async {
        if !settings.role.runs_reconciler() {
            ignore_sighup()?;
        }
        let reconciler = match reconciler_config(settings) {
            Some(config) => {
                Some(Reconciler::new(config, db.clone()).context("cannot start the reconciler")?)
            }
            None => None,
        };
        let sender = notification_sender(settings, &secrets, &db).await?;
        let login_store = login_store(settings, &db).await?;
        let app = build_app(
            settings,
            secrets,
            metrics,
            &db,
            login_store,
            reconciler.as_ref(),
        )?;
        anyhow::Ok((reconciler, sender, app))
    }
    .await;
    match parts {
        Ok((reconciler, sender, app)) => Ok((db, reconciler, sender, app)),
        Err(error) => {
            db.close().await;
            Err(error)
        }
    }
}

/// Where the API counts failed logins when its database handle is read-only (the `api`
/// role): a second, read-write handle, which writes only the `login_failures` table. `None`
/// for the other roles, whose handle is writable, and for those that serve no API.
async fn login_store(settings: &Settings, db: &Db) -> anyhow::Result<Option<Db>> {
    if !settings.role.serves_api() || !db.is_read_only() {
        return Ok(None);
    }
    let store = Db::connect_unmigrated(&settings.db_url)
        .await
        .context("cannot open the database for counting failed logins")?;
    Ok(Some(store))
}

/// The sender of the notification outbox, for the roles that run the reconciler (the
/// writers) when a sink is configured; it stops on the shutdown request.
async fn notification_sender(
    settings: &Settings,
    secrets: &Secrets,
    db: &Db,
) -> anyhow::Result<Option<mist_notify::sender::Sender>> {
    if !settings.role.runs_reconciler() || secrets.notify_sinks.is_empty() {
        return Ok(None);
    }
    let templates =
        mist_notify::templates::Templates::load(settings.notify.notify_templates.as_deref())
            .context("cannot load the notification templates")?;
    let sender = mist_notify::sender::Sender::new(
        db.clone(),
        secrets.notify_sinks.clone(),
        templates,
        mist_notify::sender::SenderConfig::default(),
    )
    .await
    .context("cannot start the notification sender")?;
    let names: Vec<&str> = secrets
        .notify_sinks
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    tracing::info!(sinks = names.join(","), "notifications on");
    Ok(Some(sender))
}

/// The HTTP app for the role: the ops routes, the webhook when it has a secret and a
/// reconciler to trigger, and the read API for the roles that serve it.
fn build_app(
    settings: &Settings,
    secrets: Secrets,
    metrics: Metrics,
    db: &Db,
    login_store: Option<Db>,
    reconciler: Option<&Reconciler>,
) -> anyhow::Result<axum::Router> {
    let trigger = reconciler.map(Reconciler::trigger);
    let webhook = match (secrets.webhook, &trigger) {
        (Some(secret), Some(trigger)) => Some((secret, trigger.clone())),
        (Some(_), None) => {
            tracing::warn!(
                "a webhook secret is configured, but the api role runs no reconciler: the \
                 webhook is served by the reconciler role"
            );
            None
        }
        (None, _) => None,
    };
    let readiness = Readiness {
        last_pass: reconciler.map(|_| metrics.last_pass_reader()),
        max_pass_age: settings.resync * READY_PASS_INTERVALS + READY_SLACK,
    };
    let api = if settings.role.serves_api() {
        let mut config = server::api_config(settings)?;
        config.login_store = login_store;
        Some(config)
    } else {
        None
    };
    Ok(server::app(AppParts {
        db: db.clone(),
        metrics,
        readiness,
        webhook,
        api,
    }))
}

/// The HTTP server and the reconciler, running, and which of them has already ended.
struct Running {
    server_task: tokio::task::JoinHandle<std::io::Result<()>>,
    reconciler_task: Option<tokio::task::JoinHandle<mist_reconciler::error::Result<()>>>,
    server_done: bool,
    reconciler_done: bool,
}

impl Running {
    /// Spawns the server on `listener` and the reconciler, both stopping on `shutdown`.
    fn start(
        listener: tokio::net::TcpListener,
        app: axum::Router,
        reconciler: Option<Reconciler>,
        shutdown: &Shutdown,
    ) -> Running {
        let server_task = tokio::spawn(
            // The client address is the login rate limit's key.
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown.clone().requested())
            .into_future(),
        );
        let reconciler_task = reconciler.map(|reconciler| {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { reconciler.run(shutdown.requested()).await })
        });
        Running {
            server_task,
            reconciler_done: reconciler_task.is_none(),
            reconciler_task,
            server_done: false,
        }
    }

    /// Waits until asked to stop, or until a part stops on its own (an error, returned). The
    /// parts stop on the same signal, so a part that ended after the request is not an error.
    async fn until_stop_or_failure(&mut self, shutdown: &Shutdown) -> Option<anyhow::Error> {
        tokio::select! {
            biased;
            _ = shutdown.clone().requested() => None,
            result = &mut self.server_task => {
                self.server_done = true;
                match result {
                    Ok(Ok(())) if shutdown.is_requested() => None,
                    Ok(Ok(())) => Some(anyhow::anyhow!("the HTTP server stopped unexpectedly")),
                    Ok(Err(e)) => Some(anyhow::Error::from(e).context("the HTTP server failed")),
                    Err(e) => Some(anyhow::Error::from(e).context("the HTTP server panicked")),
                }
            },
            result = join_optional(&mut self.reconciler_task) => {
                self.reconciler_done = true;
                match result {
                    Ok(Ok(())) if shutdown.is_requested() => None,
                    Ok(Ok(())) => Some(anyhow::anyhow!("the reconciler stopped unexpectedly")),
                    Ok(Err(e)) => Some(anyhow::Error::from(e).context("the reconciler failed")),
                    Err(e) => Some(anyhow::Error::from(e).context("the reconciler panicked")),
                }
            },
        }
    }

    /// Gives the parts still running [`SHUTDOWN_GRACE`] to stop, then abandons them.
    async fn stop_within_grace(mut self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        if let Some(task) = self.reconciler_task.filter(|_| !self.reconciler_done) {
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(Ok(()))) => tracing::info!("reconciler stopped"),
                Ok(Ok(Err(e))) => {
                    tracing::error!(error = format!("{e:#}"), "reconciler failed while stopping")
                }
                Ok(Err(e)) => tracing::error!(error = %e, "reconciler panicked while stopping"),
                Err(_) => tracing::warn!(
                    "the reconciler did not stop within {} s; abandoning its running steps",
                    SHUTDOWN_GRACE.as_secs()
                ),
            }
        }
        if !self.server_done {
            match tokio::time::timeout_at(deadline, &mut self.server_task).await {
                Ok(_) => tracing::info!("HTTP server stopped"),
                Err(_) => {
                    self.server_task.abort();
                    tracing::warn!("open HTTP connections did not close in time; dropped them");
                }
            }
        }
    }
}

/// Logs the effective settings. Secrets are files: only their paths appear.
fn log_settings(settings: &Settings) {
    let path = |path: &Option<std::path::PathBuf>| {
        path.as_deref()
            .map_or_else(|| "-".to_string(), |p| p.display().to_string())
    };
    tracing::info!(
        role = %settings.role,
        specs = settings.specs.as_ref().map_or_else(|| "-".to_string(), ToString::to_string),
        branch = %settings.branch,
        nas = path(&settings.nas),
        data = path(&settings.data),
        db = %mist_db::redact_url(&settings.db_url),
        listen = %settings.listen,
        resync_s = settings.resync.as_secs(),
        skip_deltas = settings.skip_deltas,
        concurrency = settings.concurrency,
        verify_interval_s = settings.verify_interval.as_secs(),
        webhook_secret_file = path(&settings.webhook_secret_file),
        steam_url = %settings.steam_url,
        trusted_proxies = settings
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        discord_webhook_file = path(&settings.notify.discord_webhook_file),
        discord_admin_webhook_file = path(&settings.notify.discord_admin_webhook_file),
        notify_webhook_file = path(&settings.notify.notify_webhook_file),
        "starting mistd {}",
        env!("CARGO_PKG_VERSION"),
    );
}

async fn join_optional<T>(
    task: &mut Option<tokio::task::JoinHandle<T>>,
) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
