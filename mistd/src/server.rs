//! The HTTP side of `mistd`: the operations routes every role serves, the seam where the read
//! API will be mounted, and the webhook.
//!
//! [`app`] builds the whole [`Router`] from an [`AppParts`], so tests call it without a
//! server. The routes:
//!
//! - `GET /healthz`: `200 ok` as soon as the process serves HTTP.
//! - `GET /readyz`: `200 ready` when the database answers and, for the reconciler roles, the
//!   last reconcile pass finished recently (within [`Readiness::max_pass_age`]); otherwise
//!   `503` with one line per reason. The reasons are fixed phrases: a database error is
//!   logged, never sent.
//! - `GET /metrics`: the Prometheus text format, rendered from the recorder installed by
//!   [`install_metrics`]. The database-backed gauges (queue depth by state) are sampled on
//!   each scrape, so an idle server does no work between scrapes.
//! - [`mist_reconciler::webhook::WEBHOOK_PATH`]: only when a webhook secret is configured.
//! - [`api_router`]: the read API under `/v1` ([`mist_api::router`]), for the roles that
//!   serve it; [`api_config`] builds its configuration from the settings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use mist_api::config::{ApiConfig, StatusSource, StatusSourceError};
use mist_api::secret::JwtSecret;
use mist_db::Db;
use mist_db::queue::{QueueConfig, QueueCounts};
use mist_reconciler::triggers::Trigger;
use mist_reconciler::webhook::{WebhookSecret, webhook_router};

use crate::config::Settings;

/// How long `/readyz` and `/metrics` wait for the database before calling it unreachable.
pub const DB_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The metric names `mistd` exports itself (the reconciler may add its own through the same
/// recorder).
pub mod metric {
    /// Gauge, label `state`: jobs in each queue state (`queued`, `running`, `failed`,
    /// `terminal`, `done`).
    pub const QUEUE_JOBS: &str = "mist_queue_jobs";
    /// Gauge: jobs waiting or running (queued + running + failed awaiting a retry).
    pub const QUEUE_DEPTH: &str = "mist_queue_depth";
    /// Gauge: jobs that failed and wait for a retry or a spec change (failed + terminal).
    pub const QUEUE_FAILURES: &str = "mist_queue_failed_jobs";
    /// Gauge: Unix time of the end of the last successful reconcile pass.
    pub const LAST_SUCCESSFUL_RECONCILE: &str = "mist_last_successful_reconcile_timestamp_seconds";
    /// Gauge: 1 when the database answered the last scrape, 0 otherwise.
    pub const DB_UP: &str = "mist_database_up";
}

/// Everything [`app`] needs.
#[derive(Clone)]
pub struct AppParts {
    /// The database (read-write for the reconciler roles; the API only reads).
    pub db: Db,
    /// The installed recorder.
    pub metrics: Metrics,
    /// What `/readyz` checks.
    pub readiness: Readiness,
    /// The webhook secret and the trigger it raises; `None` serves no webhook.
    pub webhook: Option<(WebhookSecret, Trigger)>,
    /// The read API's configuration; `None` serves no API (the `reconciler` role).
    pub api: Option<ApiConfig>,
}

/// What `/readyz` checks besides the database.
#[derive(Clone)]
pub struct Readiness {
    /// When the last reconcile pass finished, for the reconciler roles; `None` for the `api`
    /// role, which only needs the database.
    pub last_pass: Option<Arc<dyn Fn() -> Option<SystemTime> + Send + Sync>>,
    /// The oldest a last pass may be for the process to be ready. Passes run at least once
    /// per resync interval, so a few intervals without one means the loop is stuck.
    pub max_pass_age: Duration,
}

/// The whole HTTP application.
pub fn app(parts: AppParts) -> Router {
    let mut router = ops_router(OpsState {
        db: parts.db.clone(),
        metrics: parts.metrics,
        readiness: parts.readiness,
    });
    if let Some((secret, trigger)) = parts.webhook {
        router = router.merge(webhook_router(secret, trigger));
    }
    if let Some(api_config) = parts.api {
        router = router.merge(api_router(parts.db, api_config));
    }
    router
}

/// The read API under `/v1` (login, games, versions, update plans, artifacts, repair,
/// status, events, OpenAPI): [`mist_api::router`]. It only ever reads `db`, which is a
/// read-only handle for the `api` role.
pub fn api_router(db: Db, config: ApiConfig) -> Router {
    mist_api::router(db, config)
}

/// The read API's configuration for `settings`: the artifact store below the NAS (read
/// only), the JWT secret from its file or generated into the data folder, the token
/// lifetime, the trusted proxies, and the reconciler's status report as the status source.
pub fn api_config(settings: &Settings) -> anyhow::Result<ApiConfig> {
    let jwt_secret = JwtSecret::load_or_generate(
        settings.jwt_secret_file.as_deref(),
        settings.data.as_deref(),
    )?;
    let mut config = ApiConfig::new(jwt_secret);
    if settings.nas.is_none() {
        tracing::warn!(
            "no NAS root (--nas): the API answers downloads and repairs with 503 Service \
             Unavailable"
        );
    }
    config.artifacts_dir = settings
        .nas
        .as_deref()
        .map(mist_reconciler::store::artifacts_dir);
    config.nas_root = settings.nas.clone();
    config.token_lifetime = settings.token_lifetime;
    config.trusted_proxies = settings.trusted_proxies.clone();
    config.status = Some(status_source());
    Ok(config)
}

/// [`mist_reconciler::status()`], for `/v1/status` and `/v1/events`.
pub fn status_source() -> StatusSource {
    Arc::new(|db: Db| {
        Box::pin(async move {
            mist_reconciler::status(&db)
                .await
                .map_err(|error| Box::new(error) as StatusSourceError)
        })
    })
}

/// The installed metrics recorder: renders the Prometheus text, and remembers what the
/// reconciler last published as [`metric::LAST_SUCCESSFUL_RECONCILE`], which `/readyz` needs.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    /// The gauge's last value as `f64` bits; 0 until it is first set.
    last_pass_bits: Arc<AtomicU64>,
}

impl Metrics {
    /// When the last successful reconcile pass finished, as the reconciler published it.
    pub fn last_successful_pass(&self) -> Option<SystemTime> {
        let seconds = f64::from_bits(self.last_pass_bits.load(Ordering::Relaxed));
        (seconds > 0.0 && seconds.is_finite())
            .then(|| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds))
    }

    /// A reader for [`Readiness::last_pass`].
    pub fn last_pass_reader(&self) -> Arc<dyn Fn() -> Option<SystemTime> + Send + Sync> {
        let metrics = self.clone();
        Arc::new(move || metrics.last_successful_pass())
    }

    /// The Prometheus text of every metric.
    pub fn render(&self) -> String {
        // Upkeep drains histogram buckets; running it per scrape instead of on a timer keeps
        // an idle server idle.
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Installs the global Prometheus recorder and describes the metrics. Call once, at start-up,
/// before anything records a metric.
pub fn install_metrics() -> anyhow::Result<Metrics> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let last_pass_bits = Arc::new(AtomicU64::new(0));
    metrics::set_global_recorder(TapRecorder {
        inner: recorder,
        last_pass_bits: last_pass_bits.clone(),
    })
    .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    metrics::describe_gauge!(metric::QUEUE_JOBS, "Jobs in each queue state.");
    metrics::describe_gauge!(
        metric::QUEUE_DEPTH,
        "Jobs waiting or running: queued, running, and failed ones awaiting a retry."
    );
    metrics::describe_gauge!(
        metric::QUEUE_FAILURES,
        "Jobs whose last attempt failed: awaiting a retry or, if terminal, a spec change."
    );
    metrics::describe_gauge!(
        metric::LAST_SUCCESSFUL_RECONCILE,
        Unit::Seconds,
        "Unix time at which the last successful reconcile pass finished."
    );
    metrics::describe_gauge!(
        metric::DB_UP,
        "Whether the database answered the last scrape."
    );
    metrics::describe_histogram!(
        "mist_job_duration_seconds",
        Unit::Seconds,
        "How long jobs ran, by kind."
    );
    metrics::describe_counter!(
        "mist_job_failures_total",
        "Failed job attempts, by kind and whether the failure is terminal."
    );
    metrics::describe_histogram!(
        "mist_pass_duration_seconds",
        Unit::Seconds,
        "How long reconcile passes took."
    );
    Ok(Metrics {
        handle,
        last_pass_bits,
    })
}

/// The Prometheus recorder, with the last-successful-reconcile gauge also copied into an
/// atomic that `/readyz` reads: the reconciler publishes its passes through the metrics
/// facade only, so this is where `mistd` learns of them.
struct TapRecorder {
    inner: PrometheusRecorder,
    last_pass_bits: Arc<AtomicU64>,
}

/// A gauge that records into the Prometheus gauge and keeps the last value set.
struct TapGauge {
    inner: Gauge,
    last_bits: Arc<AtomicU64>,
}

impl GaugeFn for TapGauge {
    fn increment(&self, value: f64) {
        self.inner.increment(value);
    }

    fn decrement(&self, value: f64) {
        self.inner.decrement(value);
    }

    fn set(&self, value: f64) {
        self.last_bits.store(value.to_bits(), Ordering::Relaxed);
        self.inner.set(value);
    }
}

impl metrics::Recorder for TapRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.inner.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let gauge = self.inner.register_gauge(key, metadata);
        if key.name() == metric::LAST_SUCCESSFUL_RECONCILE {
            Gauge::from_arc(Arc::new(TapGauge {
                inner: gauge,
                last_bits: self.last_pass_bits.clone(),
            }))
        } else {
            gauge
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.inner.register_histogram(key, metadata)
    }
}

#[derive(Clone)]
struct OpsState {
    db: Db,
    metrics: Metrics,
    readiness: Readiness,
}

fn ops_router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Arc::new(state))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<OpsState>>) -> Response {
    let mut problems = Vec::new();
    if let Err(reason) = probe_db(&state.db).await {
        problems.push(reason.to_string());
    }
    if let Some(last_pass) = &state.readiness.last_pass {
        match last_pass() {
            None => problems.push("no reconcile pass has finished yet".to_string()),
            Some(finished) => {
                let age = SystemTime::now()
                    .duration_since(finished)
                    .unwrap_or_default();
                if age > state.readiness.max_pass_age {
                    problems.push(format!(
                        "the last reconcile pass finished {} s ago (limit {} s)",
                        age.as_secs(),
                        state.readiness.max_pass_age.as_secs()
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let body: String = problems
            .iter()
            .map(|p| format!("not ready: {p}\n"))
            .collect();
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn metrics_text(State(state): State<Arc<OpsState>>) -> Response {
    match queue_counts(&state.db).await {
        Ok(counts) => {
            metrics::gauge!(metric::DB_UP).set(1.0);
            record_queue_counts(&counts);
        }
        Err(_) => metrics::gauge!(metric::DB_UP).set(0.0),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

fn record_queue_counts(counts: &QueueCounts) {
    let states = [
        ("queued", counts.queued),
        ("running", counts.running),
        ("failed", counts.failed),
        ("terminal", counts.terminal),
        ("done", counts.done),
    ];
    for (state, n_jobs) in states {
        metrics::gauge!(metric::QUEUE_JOBS, "state" => state).set(n_jobs as f64);
    }
    metrics::gauge!(metric::QUEUE_DEPTH)
        .set((counts.queued + counts.running + counts.failed) as f64);
    metrics::gauge!(metric::QUEUE_FAILURES).set((counts.failed + counts.terminal) as f64);
}

/// Why the database probe failed, as a phrase safe to send to any client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum DbProbeError {
    #[error("the database did not answer within {} s", DB_PROBE_TIMEOUT.as_secs())]
    Timeout,
    #[error("the database is unreachable or not migrated (see the log)")]
    Failed,
}

async fn probe_db(db: &Db) -> Result<(), DbProbeError> {
    // The sync state is one row that exists once the migrations ran: reading it proves both
    // the connection and the schema.
    match tokio::time::timeout(DB_PROBE_TIMEOUT, db.sync_state()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(
                error = format!("{:#}", anyhow::Error::from(e)),
                "readiness: database probe failed"
            );
            Err(DbProbeError::Failed)
        }
        Err(_) => {
            tracing::warn!("readiness: database probe timed out");
            Err(DbProbeError::Timeout)
        }
    }
}

async fn queue_counts(db: &Db) -> anyhow::Result<QueueCounts> {
    let counts =
        tokio::time::timeout(DB_PROBE_TIMEOUT, db.queue(QueueConfig::default()).counts()).await??;
    Ok(counts)
}
