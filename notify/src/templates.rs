//! The messages' templates: `templates/notify/discord/<kind>.json.j2`, built in, each
//! replaceable by a file of the same name in an admin's folder (`--notify-templates DIR`).
//!
//! The templates produce JSON and are auto-escaped as JSON: `{{ value }}` writes a JSON
//! literal, so no title or note can break the message. Every template is rendered with sample
//! facts when loaded, so a broken override is an error at start-up, naming its file, not at
//! the first notification.

use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, Value};
use mist_db::outbox::NotificationKind;
use mist_wire::notification::{DigestFacts, VersionFacts};

/// The built-in Discord templates, by notification kind.
const DISCORD: [(NotificationKind, &str, &str); 4] = [
    (
        NotificationKind::Ready,
        "discord/ready.json.j2",
        include_str!("../../templates/notify/discord/ready.json.j2"),
    ),
    (
        NotificationKind::Stalled,
        "discord/stalled.json.j2",
        include_str!("../../templates/notify/discord/stalled.json.j2"),
    ),
    (
        NotificationKind::Recovered,
        "discord/recovered.json.j2",
        include_str!("../../templates/notify/discord/recovered.json.j2"),
    ),
    (
        NotificationKind::Digest,
        "discord/digest.json.j2",
        include_str!("../../templates/notify/discord/digest.json.j2"),
    ),
];

/// The loaded templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

/// Why a template cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// An override file exists but cannot be read.
    #[error("cannot read the template {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A template does not parse or does not render.
    #[error("template {name} ({origin}) does not render")]
    Render {
        /// The template's name, e.g. `discord/ready.json.j2`.
        name: &'static str,
        /// Where it comes from: `built in` or the override's path.
        origin: String,
        /// minijinja's error, with the line.
        #[source]
        source: minijinja::Error,
    },
    /// A template renders something that is not JSON.
    #[error("template {name} ({origin}) does not render JSON")]
    NotJson {
        /// The template's name.
        name: &'static str,
        /// Where it comes from.
        origin: String,
        /// The parser's error, with the line and column.
        #[source]
        source: serde_json::Error,
    },
}

impl Templates {
    /// The built-in templates, each replaced by `<dir>/<name>` when `dir` has that file.
    /// Every template is rendered once with sample facts to check it.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Json);
        env.add_filter("size", size);
        let mut origins = Vec::new();
        for (_, name, builtin) in DISCORD {
            let override_path = dir.map(|dir| dir.join(name)).filter(|path| path.is_file());
            let (source, origin) = match override_path {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| TemplateError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    (text, path.display().to_string())
                }
                None => (builtin.to_owned(), "built in".to_owned()),
            };
            env.add_template_owned(name, source)
                .map_err(|source| TemplateError::Render {
                    name,
                    origin: origin.clone(),
                    source,
                })?;
            origins.push((name, origin));
        }
        let templates = Templates { env };
        for ((kind, _, _), (name, origin)) in DISCORD.iter().zip(origins) {
            let rendered = templates
                .render_discord_text(*kind, &sample(*kind))
                .map_err(|source| TemplateError::Render {
                    name,
                    origin: origin.clone(),
                    source,
                })?;
            serde_json::from_str::<serde_json::Value>(&rendered).map_err(|source| {
                TemplateError::NotJson {
                    name,
                    origin,
                    source,
                }
            })?;
        }
        Ok(templates)
    }

    /// A Discord message body for a notification of `kind` with these facts.
    pub fn render_discord(
        &self,
        kind: NotificationKind,
        facts: &serde_json::Value,
    ) -> Result<Vec<u8>, minijinja::Error> {
        self.render_discord_text(kind, facts)
            .map(std::string::String::into_bytes)
    }

    fn render_discord_text(
        &self,
        kind: NotificationKind,
        facts: &serde_json::Value,
    ) -> Result<String, minijinja::Error> {
        let name = DISCORD
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map_or("discord/ready.json.j2", |(_, name, _)| name);
        self.env
            .get_template(name)?
            .render(minijinja::value::Serde(facts))
    }
}

/// The `size` filter: bytes as a readable size, `1.5 MB` (`unknown` for what is not a
/// byte count).
fn size(bytes: Value) -> String {
    bytes
        .as_i64()
        .and_then(|b| u64::try_from(b).ok())
        .map_or_else(|| "unknown".to_owned(), mist_platform::units::human_size)
}

/// Facts of the shape the reconciler writes, to check a template with.
pub fn sample(kind: NotificationKind) -> serde_json::Value {
    let version = VersionFacts {
        game: "celeste".to_owned(),
        title: "Celeste \"Farewell\"".to_owned(),
        version: "1.4".to_owned(),
        notes: Some("New chapter.\nFixed saves.".to_owned()),
        full_size: Some(1_500_000_000),
        update_from: Some("1.3".to_owned()),
        update_size: Some(12_000_000),
        reason: Some("SourceMissing".to_owned()),
        message: Some("the build incoming/celeste/1.4 is not on the NAS".to_owned()),
    };
    let facts = match kind {
        NotificationKind::Digest => serde_json::to_value(DigestFacts {
            count: 2,
            game_count: 1,
            versions: vec![version.clone(), version],
        }),
        _ => serde_json::to_value(version),
    };
    facts.expect("facts of strings and numbers always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_template_renders_json_that_keeps_quotes_and_newlines() {
        let templates = Templates::load(None).unwrap();
        let body = templates
            .render_discord(NotificationKind::Ready, &sample(NotificationKind::Ready))
            .unwrap();
        let message: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let embed = &message["embeds"][0];
        assert_eq!(embed["title"], "Celeste \"Farewell\" 1.4 is ready");
        assert_eq!(embed["description"], "New chapter.\nFixed saves.");
        assert_eq!(embed["fields"][0]["value"], "12.0 MB from 1.3");
        assert_eq!(embed["fields"][1]["value"], "1.5 GB");
    }

    #[test]
    fn an_override_replaces_a_template_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("discord")).unwrap();
        let path = dir.path().join("discord/stalled.json.j2");
        std::fs::write(&path, "{\"content\": {{ \"Stalled: \" ~ title }}}").unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let body = templates
            .render_discord(
                NotificationKind::Stalled,
                &sample(NotificationKind::Stalled),
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"content": "Stalled: Celeste \"Farewell\""}"#
        );

        std::fs::write(&path, "Stalled: {{ title }}").unwrap();
        let error = Templates::load(Some(dir.path())).unwrap_err();
        assert!(
            error.to_string().contains("discord/stalled.json.j2")
                && error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
        assert!(matches!(error, TemplateError::NotJson { .. }), "{error:?}");
    }
}
