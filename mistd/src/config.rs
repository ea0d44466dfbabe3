//! `mistd run`'s settings: flags, `MIST_*` environment variables, a TOML file, defaults.
//!
//! The principal type is [`Settings`], what the server runs with. [`RunArgs`] is the command
//! line (clap fills each field from its flag or, failing that, its `MIST_*` variable), and
//! [`FileConfig`] the `--config` file. [`Settings::resolve`] merges them, field by field:
//!
//! ```text
//! flag  >  MIST_* variable  >  --config file  >  default
//! ```
//!
//! which is the contract in `deploy/README.md`. Secrets are never settings: only the paths
//! of the files holding them are ([`Secrets::load`] reads them), so no secret can reach a
//! command line, the environment, the config file or a log line.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod notify;

use mist_api::clientaddr::{TrustedProxy, TrustedProxyError};
use mist_notify::sink::Sink;
use mist_reconciler::desired::SpecsSource;
use mist_reconciler::webhook::WebhookSecret;
use serde::Deserialize;

/// The address served when none is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The seconds between full resyncs (and fetches of a remote) when none is configured.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(60);
/// How many warm skip deltas (each of the N versions before the previous one → the latest)
/// are made when none is configured: the reconciler's default.
pub const DEFAULT_SKIP_DELTAS: usize = mist_reconciler::reconciler::DEFAULT_SKIP_DELTAS;
/// How often an ingested build is re-scanned for drift when nothing is configured: the
/// reconciler's default, a slow schedule because it reads everything.
pub const DEFAULT_VERIFY_INTERVAL: Duration = mist_reconciler::reconciler::DEFAULT_VERIFY_INTERVAL;
/// The branch followed when none is configured.
pub const DEFAULT_BRANCH: &str = mist_reconciler::desired::DEFAULT_BRANCH;

/// Which parts of Mist this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The reconciler and the API.
    All,
    /// The read API only (and the ops routes); several may share one database.
    Api,
    /// The reconciler only (and the ops routes).
    Reconciler,
}

impl Role {
    /// Whether this role runs the reconciler.
    pub fn runs_reconciler(self) -> bool {
        matches!(self, Role::All | Role::Reconciler)
    }

    /// Whether this role serves the read API.
    pub fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Reconciler => "reconciler",
        })
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `mistd run`'s command line. Every field is optional here, so that [`Settings::resolve`]
/// can tell "not given" (fall back to the file, then the default) from "given".
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// A TOML file with any of the settings below (keys as the flags without `--`, e.g.
    /// `skip-deltas = 2`); relative paths in it are relative to its folder.
    #[arg(long, env = "MIST_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The spec repository: a local git repository (read in place and watched) or a URL
    /// (`https://`, `ssh://`, `file://`; mirrored under the data folder).
    #[arg(long, env = "MIST_SPECS", value_name = "DIR|URL")]
    pub specs: Option<String>,

    /// The branch whose tip is the desired state [default: main].
    #[arg(long, env = "MIST_BRANCH", value_name = "NAME")]
    pub branch: Option<String>,

    /// The NAS root: `incoming/` (the admins' builds, never written) and mistd's artifacts.
    #[arg(long, env = "MIST_NAS", value_name = "DIR")]
    pub nas: Option<PathBuf>,

    /// The state folder: the SQLite database, a remote's mirror, scratch space.
    #[arg(long, env = "MIST_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// The database, `sqlite://PATH` or `postgres://user@host/db` (never with a password:
    /// use PGPASSFILE) [default: SQLite in the data folder].
    #[arg(long, env = "MIST_DB", value_name = "URL")]
    pub db: Option<String>,

    /// The HTTP address: /healthz, /readyz, /metrics, the webhook and the API [default:
    /// 127.0.0.1:8080].
    #[arg(long, env = "MIST_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// What this process runs [default: all].
    #[arg(long, env = "MIST_ROLE", value_enum)]
    pub role: Option<Role>,

    /// Time between full resyncs and fetches of a remote: seconds, or a number with s, m or
    /// h [default: 60].
    #[arg(long, env = "MIST_RESYNC", value_name = "DURATION", value_parser = parse_duration)]
    pub resync: Option<Duration>,

    /// Warm skip deltas: each of this many versions before the previous one gets a delta
    /// straight to the latest [default: 2].
    #[arg(long, env = "MIST_SKIP_DELTAS", value_name = "N")]
    pub skip_deltas: Option<usize>,

    /// The most of the Ready versions, in percent, one spec commit may retire without an
    /// admin's confirmation (`mistpipe confirm-retire`); a commit that would retire more is
    /// held and everything stays served [default: 50].
    #[arg(long, env = "MIST_MAX_RETIRE_PERCENT", value_name = "PERCENT",
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub max_retire_percent: Option<u8>,

    /// How many jobs run at once, across every process sharing the database [default: the
    /// number of cores].
    #[arg(long, env = "MIST_CONCURRENCY", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..4096))]
    pub concurrency: Option<u64>,

    /// How often an ingested build is re-scanned for drift (changed since ingest)
    /// [default: 6h].
    #[arg(long, env = "MIST_VERIFY_INTERVAL", value_name = "DURATION",
          value_parser = parse_duration)]
    pub verify_interval: Option<Duration>,

    /// A file holding the git webhook's HMAC secret; without one the webhook is not served.
    #[arg(long, env = "MIST_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,

    /// Steam's store, where games with a `steamAppId` get their description, header image,
    /// genres, developers and release date (`URL/api/appdetails?appids=ID`)
    /// [default: `https://store.steampowered.com`].
    #[arg(long, env = "MIST_STEAM_URL", value_name = "URL")]
    pub steam_url: Option<String>,

    /// A file holding the key that signs login tokens (at least 32 bytes) [default: one
    /// generated into the data folder on first start, `jwt-secret`, mode 0600].
    #[arg(long, env = "MIST_JWT_SECRET_FILE", value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// How long a login token is valid: seconds, or a number with s, m, h or d
    /// [default: 24h].
    #[arg(long, env = "MIST_TOKEN_LIFETIME", value_name = "DURATION",
          value_parser = parse_duration)]
    pub token_lifetime: Option<Duration>,

    /// A reverse proxy (an address or CIDR, e.g. 10.0.0.0/8) whose `X-Forwarded-For` or
    /// `Forwarded` header names the client for the login limits; repeat for several, or
    /// separate with commas in the variable. From any other peer the headers are ignored
    /// [default: none].
    #[arg(
        long = "trusted-proxy",
        env = "MIST_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<TrustedProxy>,

    /// How log lines look; the filter is `RUST_LOG` [default: text].
    #[arg(long, env = "MIST_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Notifications: Discord and generic webhooks, templates.
    #[command(flatten)]
    pub notify: notify::NotifyArgs,
}

/// The `--config` file: the same settings as the flags, keys spelt like the flags.
///
/// ```toml
/// specs = "/srv/git/mist-specs"
/// nas = "/srv/mist"
/// data = "/var/lib/mist"
/// listen = "127.0.0.1:8080"
/// role = "all"
/// resync = "60s"            # or 60
/// skip-deltas = 2
/// webhook-secret-file = "/etc/mist/credentials/webhook-secret"
/// token-lifetime = "24h"
/// trusted-proxy = ["10.0.0.0/8"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    /// See [`RunArgs::specs`].
    pub specs: Option<String>,
    /// See [`RunArgs::branch`].
    pub branch: Option<String>,
    /// See [`RunArgs::nas`].
    pub nas: Option<PathBuf>,
    /// See [`RunArgs::data`].
    pub data: Option<PathBuf>,
    /// See [`RunArgs::db`].
    pub db: Option<String>,
    /// See [`RunArgs::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`RunArgs::role`].
    pub role: Option<Role>,
    /// See [`RunArgs::resync`].
    pub resync: Option<FileDuration>,
    /// See [`RunArgs::skip_deltas`].
    pub skip_deltas: Option<usize>,
    /// See [`RunArgs::max_retire_percent`].
    pub max_retire_percent: Option<u8>,
    /// See [`RunArgs::concurrency`].
    pub concurrency: Option<u64>,
    /// See [`RunArgs::verify_interval`].
    pub verify_interval: Option<FileDuration>,
    /// See [`RunArgs::webhook_secret_file`].
    pub webhook_secret_file: Option<PathBuf>,
    /// See [`RunArgs::steam_url`].
    pub steam_url: Option<String>,
    /// See [`RunArgs::jwt_secret_file`].
    pub jwt_secret_file: Option<PathBuf>,
    /// See [`RunArgs::token_lifetime`].
    pub token_lifetime: Option<FileDuration>,
    /// See [`RunArgs::trusted_proxies`]: `trusted-proxy = ["10.0.0.0/8", "fd00::/8"]`.
    pub trusted_proxy: Option<Vec<String>>,
    /// See [`RunArgs::log_format`].
    pub log_format: Option<LogFormat>,
    /// See [`notify::NotifyArgs::discord_webhook_file`].
    pub discord_webhook_file: Option<PathBuf>,
    /// See [`notify::NotifyArgs::discord_admin_webhook_file`].
    pub discord_admin_webhook_file: Option<PathBuf>,
    /// See [`notify::NotifyArgs::notify_webhook_file`].
    pub notify_webhook_file: Option<PathBuf>,
    /// See [`notify::NotifyArgs::notify_webhook_secret_file`].
    pub notify_webhook_secret_file: Option<PathBuf>,
    /// See [`notify::NotifyArgs::notify_templates`].
    pub notify_templates: Option<PathBuf>,
}

/// A duration in the config file: seconds, or a string such as `"90s"`, `"5m"`, `"24h"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FileDuration {
    /// Seconds.
    Seconds(u64),
    /// A number with an optional unit.
    Text(String),
}

/// What `mistd run` runs with, after merging.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The spec repository; `None` only for the `api` role.
    pub specs: Option<SpecsSource>,
    /// The branch followed.
    pub branch: String,
    /// The NAS root; `None` only for the `api` role.
    pub nas: Option<PathBuf>,
    /// The state folder; `None` only for the `api` role with an explicit `--db`.
    pub data: Option<PathBuf>,
    /// The database URL (may hold a path, never a password).
    pub db_url: String,
    /// The HTTP address.
    pub listen: SocketAddr,
    /// What this process runs.
    pub role: Role,
    /// Time between resyncs.
    pub resync: Duration,
    /// Warm skip deltas per game.
    pub skip_deltas: usize,
    /// The most of the Ready versions, in percent, a commit may retire unconfirmed.
    pub max_retire_percent: u8,
    /// Jobs at once.
    pub concurrency: usize,
    /// Time between digest re-verifications.
    pub verify_interval: Duration,
    /// The webhook secret's file, if the webhook is served.
    pub webhook_secret_file: Option<PathBuf>,
    /// Steam's store: its base URL.
    pub steam_url: String,
    /// The login token key's file; `None` generates one into the data folder.
    pub jwt_secret_file: Option<PathBuf>,
    /// How long a login token is valid.
    pub token_lifetime: Duration,
    /// The reverse proxies whose forwarding headers name the client.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// How log lines look.
    pub log_format: LogFormat,
    /// Where notifications go.
    pub notify: notify::NotifySettings,
}

/// The secrets [`Settings`] name, read from their files. Their `Debug` shows nothing.
#[derive(Debug, Default)]
pub struct Secrets {
    /// The webhook's HMAC secret, if configured.
    pub webhook: Option<WebhookSecret>,
    /// The notification sinks, their URLs and keys read from their files.
    pub notify_sinks: Vec<Sink>,
}

/// Why the settings cannot be used. Each message names the setting and how to give it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read the config file {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown or mistyped key.
    #[error("invalid config file {path}: {error}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The TOML parser's complaint, with the line and column.
        error: FileConfigError,
    },
    /// A duration in the config file cannot be parsed.
    #[error("invalid config file {path}: `{key}`: {error}")]
    FileDuration {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong.
        error: DurationError,
    },
    /// A `trusted-proxy` in the config file is not an address or CIDR.
    #[error("invalid config file {path}: `trusted-proxy`: {error}")]
    TrustedProxy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: TrustedProxyError,
    },
    /// A setting this role needs is missing.
    #[error("no {what} given: use {flag}, {env} or `{key}` in the config file")]
    Missing {
        /// What the setting is.
        what: &'static str,
        /// Its flag.
        flag: &'static str,
        /// Its variable.
        env: &'static str,
        /// Its key in the config file.
        key: &'static str,
    },
    /// A number in the config file is out of its range.
    #[error("invalid config file: `{key}` is {value}; it must be from 0 to {max}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value given.
        value: u64,
        /// The largest allowed.
        max: u64,
    },
    /// `mistd status --data DIR` found no database in DIR.
    #[error("no database at {path}: mistd has not run with this data folder (or use --db)")]
    NoDatabase {
        /// The database file looked for.
        path: PathBuf,
    },
    /// The database URL carries a password.
    #[error(
        "the database URL must not hold a password (it would show in the process list and \
         logs): put it in a pgpass file and point PGPASSFILE at it"
    )]
    PasswordInUrl,
    /// A secret file cannot be read.
    #[error("cannot read the {what} file {path}")]
    ReadSecret {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A secret file that must hold a URL does not.
    #[error("the {what} file {path} does not hold an http:// or https:// URL")]
    NotAUrl {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The Steam store's URL is not an http(s) URL.
    #[error("the Steam store URL `{0}` is not an http:// or https:// URL")]
    SteamUrl(String),
    /// A secret file is empty.
    #[error("the {what} file {path} is empty")]
    EmptySecret {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
}

/// Why a config file's text is not a config: the TOML parser's message, with the line and
/// column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.to_string().trim_end())]
pub struct FileConfigError(toml::de::Error);

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text does not start with a number.
    #[error("`{0}` is not a duration such as 60, 90s, 5m or 2h")]
    NotADuration(String),
    /// The number has a unit that is not one of the known ones.
    #[error("unknown unit `{unit}` in `{text}`: use s, m, h or d")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// The duration does not fit in a `Duration`.
    #[error("`{0}` is too long")]
    TooLong(String),
}

impl FileConfig {
    /// Reads and parses a config file, and makes its relative paths relative to its folder.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file_config = FileConfig::parse(&text).map_err(|error| ConfigError::ParseFile {
            path: path.to_path_buf(),
            error,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        file_config.make_paths_relative_to(base);
        Ok(file_config)
    }

    /// Parses a config file's text; the error is the parser's.
    pub fn parse(text: &str) -> Result<FileConfig, FileConfigError> {
        toml::from_str(text).map_err(FileConfigError)
    }

    fn make_paths_relative_to(&mut self, base: &Path) {
        let rebase = |path: &mut Option<PathBuf>| {
            if let Some(path) = path
                && path.is_relative()
            {
                *path = base.join(&*path);
            }
        };
        rebase(&mut self.nas);
        rebase(&mut self.data);
        rebase(&mut self.webhook_secret_file);
        rebase(&mut self.jwt_secret_file);
        rebase(&mut self.discord_webhook_file);
        rebase(&mut self.discord_admin_webhook_file);
        rebase(&mut self.notify_webhook_file);
        rebase(&mut self.notify_webhook_secret_file);
        rebase(&mut self.notify_templates);
        if let Some(specs) = &mut self.specs
            && let SpecsSource::Local(path) = SpecsSource::parse(specs)
            && path.is_relative()
        {
            *specs = base.join(path).to_string_lossy().into_owned();
        }
    }
}

impl Settings {
    /// Merges the command line (flags and variables, already merged by clap) over the config
    /// file over the defaults, and checks that the role has what it needs.
    pub fn resolve(args: &RunArgs, file: &FileConfig) -> Result<Settings, ConfigError> {
        let file_duration = |key: &'static str, value: &Option<FileDuration>| {
            value
                .as_ref()
                .map(|value| match value {
                    FileDuration::Seconds(seconds) => Ok(Duration::from_secs(*seconds)),
                    FileDuration::Text(text) => parse_duration(text),
                })
                .transpose()
                .map_err(|error| ConfigError::FileDuration {
                    path: args.config.clone().unwrap_or_default(),
                    key,
                    error,
                })
        };
        let role = args.role.or(file.role).unwrap_or(Role::All);
        let specs = args.specs.clone().or_else(|| file.specs.clone());
        let nas = args.nas.clone().or_else(|| file.nas.clone());
        let data = args.data.clone().or_else(|| file.data.clone());
        let db = args.db.clone().or_else(|| file.db.clone());

        if role.runs_reconciler() {
            if specs.is_none() {
                return Err(missing("spec repository", "--specs", "MIST_SPECS", "specs"));
            }
            if nas.is_none() {
                return Err(missing("NAS root", "--nas", "MIST_NAS", "nas"));
            }
            if data.is_none() {
                return Err(missing("data folder", "--data", "MIST_DATA", "data"));
            }
        }
        let db_url = match (db, &data) {
            (Some(url), _) => url,
            (None, Some(data)) => mist_db::sqlite_url_in(data),
            (None, None) => {
                return Err(missing(
                    "data folder or database",
                    "--data or --db",
                    "MIST_DATA or MIST_DB",
                    "data",
                ));
            }
        };
        if url_has_password(&db_url) {
            return Err(ConfigError::PasswordInUrl);
        }

        Ok(Settings {
            specs: specs.as_deref().map(SpecsSource::parse),
            branch: args
                .branch
                .clone()
                .or_else(|| file.branch.clone())
                .unwrap_or_else(|| DEFAULT_BRANCH.to_string()),
            nas,
            data,
            db_url,
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid address")),
            role,
            resync: args
                .resync
                .or(file_duration("resync", &file.resync)?)
                .unwrap_or(DEFAULT_RESYNC),
            skip_deltas: args
                .skip_deltas
                .or(file.skip_deltas)
                .unwrap_or(DEFAULT_SKIP_DELTAS),
            max_retire_percent: match args.max_retire_percent.or(file.max_retire_percent) {
                Some(percent) if percent > 100 => {
                    return Err(ConfigError::OutOfRange {
                        key: "max-retire-percent",
                        value: percent.into(),
                        max: 100,
                    });
                }
                Some(percent) => percent,
                None => mist_reconciler::diff::DiffConfig::default().max_retire_percent,
            },
            concurrency: args
                .concurrency
                .or(file.concurrency)
                .map_or_else(default_concurrency, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                })
                .max(1),
            verify_interval: args
                .verify_interval
                .or(file_duration("verify-interval", &file.verify_interval)?)
                .unwrap_or(DEFAULT_VERIFY_INTERVAL),
            webhook_secret_file: args
                .webhook_secret_file
                .clone()
                .or_else(|| file.webhook_secret_file.clone()),
            steam_url: steam_url(args.steam_url.as_deref().or(file.steam_url.as_deref()))?,
            jwt_secret_file: args
                .jwt_secret_file
                .clone()
                .or_else(|| file.jwt_secret_file.clone()),
            token_lifetime: args
                .token_lifetime
                .or(file_duration("token-lifetime", &file.token_lifetime)?)
                .unwrap_or(mist_api::config::DEFAULT_TOKEN_LIFETIME),
            trusted_proxies: if args.trusted_proxies.is_empty() {
                file.trusted_proxy
                    .iter()
                    .flatten()
                    .map(|given| {
                        given.parse().map_err(|error| ConfigError::TrustedProxy {
                            path: args.config.clone().unwrap_or_default(),
                            error,
                        })
                    })
                    .collect::<Result<_, _>>()?
            } else {
                args.trusted_proxies.clone()
            },
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            notify: notify::NotifySettings::resolve(
                &args.notify,
                &notify::NotifySettings {
                    discord_webhook_file: file.discord_webhook_file.clone(),
                    discord_admin_webhook_file: file.discord_admin_webhook_file.clone(),
                    notify_webhook_file: file.notify_webhook_file.clone(),
                    notify_webhook_secret_file: file.notify_webhook_secret_file.clone(),
                    notify_templates: file.notify_templates.clone(),
                },
            ),
        })
    }
}

impl Secrets {
    /// Reads the secret files the settings name. Surrounding whitespace (a trailing newline
    /// from `openssl rand -hex 32 > file`) is not part of a secret.
    pub fn load(settings: &Settings) -> Result<Secrets, ConfigError> {
        let webhook = settings
            .webhook_secret_file
            .as_deref()
            .map(|path| {
                let secret = read_secret("webhook secret", path)?;
                WebhookSecret::new(secret).map_err(|_| ConfigError::EmptySecret {
                    what: "webhook secret",
                    path: path.to_path_buf(),
                })
            })
            .transpose()?;
        if let Some(path) = &settings.jwt_secret_file {
            // The API reads it again when it starts (`mist_api::secret::JwtSecret`); reading it here
            // makes a wrong path fail with the other secrets, before anything starts.
            read_secret("JWT secret", path)?;
        }
        let notify_sinks = notify::notify_sinks(&settings.notify, read_secret, |what, path| {
            ConfigError::NotAUrl {
                what,
                path: path.to_path_buf(),
            }
        })?;
        Ok(Secrets {
            webhook,
            notify_sinks,
        })
    }
}

/// The Steam store's base URL given (or the default), checked to be http(s).
fn steam_url(given: Option<&str>) -> Result<String, ConfigError> {
    let url = given
        .unwrap_or(mist_reconciler::steam::DEFAULT_STEAM_URL)
        .trim();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ConfigError::SteamUrl(url.to_owned()))
    }
}

/// One job per core, as the reconciler's default.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n_cores| n_cores.get())
}

/// Parses `90`, `90s`, `5m`, `2h` or `1d` (also with `ms`) into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split_at);
    let number: u64 = number
        .parse()
        .map_err(|_| DurationError::NotADuration(text.to_owned()))?;
    let seconds_per_unit = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(number)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        other => {
            return Err(DurationError::UnknownUnit {
                unit: other.to_owned(),
                text: text.to_owned(),
            });
        }
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| DurationError::TooLong(text.to_owned()))
}

fn missing(
    what: &'static str,
    flag: &'static str,
    env: &'static str,
    key: &'static str,
) -> ConfigError {
    ConfigError::Missing {
        what,
        flag,
        env,
        key,
    }
}

/// Whether a URL has `user:password@` in its authority.
fn url_has_password(url: &str) -> bool {
    let Some(scheme_end) = url.find("://") else {
        return false;
    };
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority
        .rfind('@')
        .is_some_and(|at| authority[..at].contains(':'))
}

fn read_secret(what: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::ReadSecret {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    let trimmed = bytes.trim_ascii().to_vec();
    if trimmed.is_empty() {
        return Err(ConfigError::EmptySecret {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests;
