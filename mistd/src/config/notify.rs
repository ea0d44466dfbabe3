//! The notification settings of `mistd run`: where messages go and which templates render
//! them. Every endpoint's URL is a secret (a Discord webhook URL carries its token), so only
//! the files holding them are settings; [`notify_sinks`] reads them.

use std::path::{Path, PathBuf};

use mist_db::outbox::Audience;
use mist_notify::sink::{SecretUrl, Sink, SinkKind};

/// The notification flags, part of [`super::RunArgs`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NotifyArgs {
    /// A file holding the Discord webhook URL of the friends' channel: new versions, and
    /// stalled and recovered ones too when no admin webhook is given.
    #[arg(long, env = "MIST_DISCORD_WEBHOOK_FILE", value_name = "FILE")]
    pub discord_webhook_file: Option<PathBuf>,

    /// A file holding the Discord webhook URL of the admins' channel: versions that went
    /// stalled or recovered.
    #[arg(long, env = "MIST_DISCORD_ADMIN_WEBHOOK_FILE", value_name = "FILE")]
    pub discord_admin_webhook_file: Option<PathBuf>,

    /// A file holding the URL of a generic webhook that receives every notification as JSON.
    #[arg(long, env = "MIST_NOTIFY_WEBHOOK_FILE", value_name = "FILE")]
    pub notify_webhook_file: Option<PathBuf>,

    /// A file holding the key that signs the generic webhook's bodies (HMAC-SHA256, header
    /// `X-Mist-Signature-256`).
    #[arg(long, env = "MIST_NOTIFY_WEBHOOK_SECRET_FILE", value_name = "FILE")]
    pub notify_webhook_secret_file: Option<PathBuf>,

    /// A folder whose `discord/<event>.json.j2` files replace the built-in message templates.
    #[arg(long, env = "MIST_NOTIFY_TEMPLATES", value_name = "DIR")]
    pub notify_templates: Option<PathBuf>,
}

/// The notification settings after merging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifySettings {
    /// See [`NotifyArgs::discord_webhook_file`].
    pub discord_webhook_file: Option<PathBuf>,
    /// See [`NotifyArgs::discord_admin_webhook_file`].
    pub discord_admin_webhook_file: Option<PathBuf>,
    /// See [`NotifyArgs::notify_webhook_file`].
    pub notify_webhook_file: Option<PathBuf>,
    /// See [`NotifyArgs::notify_webhook_secret_file`].
    pub notify_webhook_secret_file: Option<PathBuf>,
    /// See [`NotifyArgs::notify_templates`].
    pub notify_templates: Option<PathBuf>,
}

impl NotifySettings {
    /// The flags (and variables) over `file`, the same settings from the config file.
    pub fn resolve(args: &NotifyArgs, file: &NotifySettings) -> NotifySettings {
        let pick = |flag: &Option<PathBuf>, key: &Option<PathBuf>| flag.clone().or(key.clone());
        NotifySettings {
            discord_webhook_file: pick(&args.discord_webhook_file, &file.discord_webhook_file),
            discord_admin_webhook_file: pick(
                &args.discord_admin_webhook_file,
                &file.discord_admin_webhook_file,
            ),
            notify_webhook_file: pick(&args.notify_webhook_file, &file.notify_webhook_file),
            notify_webhook_secret_file: pick(
                &args.notify_webhook_secret_file,
                &file.notify_webhook_secret_file,
            ),
            notify_templates: pick(&args.notify_templates, &file.notify_templates),
        }
    }
}

/// The sinks the settings name, their URLs and key read from their files by `read_secret`;
/// a file that holds no http(s) URL is the error `not_a_url` makes.
pub fn notify_sinks<E>(
    settings: &NotifySettings,
    read_secret: impl Fn(&'static str, &Path) -> Result<Vec<u8>, E>,
    not_a_url: impl Fn(&'static str, &Path) -> E,
) -> Result<Vec<Sink>, E> {
    let url = |what: &'static str, path: &PathBuf| -> Result<SecretUrl, E> {
        let bytes = read_secret(what, path)?;
        match String::from_utf8(bytes) {
            Ok(text) if text.starts_with("http://") || text.starts_with("https://") => {
                Ok(SecretUrl::new(text))
            }
            _ => Err(not_a_url(what, path)),
        }
    };
    let mut sinks = Vec::new();
    let has_admin_channel = settings.discord_admin_webhook_file.is_some();
    if let Some(path) = &settings.discord_webhook_file {
        let mut audiences = vec![Audience::Friends];
        if !has_admin_channel {
            audiences.push(Audience::Admins);
        }
        sinks.push(Sink {
            name: "discord".to_owned(),
            url: url("Discord webhook", path)?,
            kind: SinkKind::Discord,
            audiences,
        });
    }
    if let Some(path) = &settings.discord_admin_webhook_file {
        sinks.push(Sink {
            name: "discord-admins".to_owned(),
            url: url("Discord admin webhook", path)?,
            kind: SinkKind::Discord,
            audiences: vec![Audience::Admins],
        });
    }
    if let Some(path) = &settings.notify_webhook_file {
        let key = settings
            .notify_webhook_secret_file
            .as_ref()
            .map(|path| read_secret("notification webhook key", path))
            .transpose()?;
        sinks.push(Sink {
            name: "webhook".to_owned(),
            url: url("notification webhook", path)?,
            kind: SinkKind::Webhook { key },
            audiences: vec![Audience::Friends, Audience::Admins],
        });
    }
    Ok(sinks)
}
