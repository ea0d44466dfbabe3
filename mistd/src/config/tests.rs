//! The settings' merge, parsing and secrets.

use super::*;

fn args(build: impl FnOnce(&mut RunArgs)) -> RunArgs {
    let mut args = RunArgs {
        specs: Some("/specs".into()),
        nas: Some("/nas".into()),
        data: Some("/data".into()),
        ..RunArgs::default()
    };
    build(&mut args);
    args
}

#[test]
fn flags_beat_the_file_which_beats_the_defaults() {
    let file = FileConfig::parse(
        "listen = \"0.0.0.0:9000\"\nresync = \"5m\"\nskip-deltas = 4\nrole = \"api\"\n",
    )
    .unwrap();
    let settings = Settings::resolve(&args(|a| a.skip_deltas = Some(1)), &file).unwrap();
    assert_eq!(settings.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(settings.resync, Duration::from_secs(300));
    assert_eq!(settings.skip_deltas, 1);
    assert_eq!(settings.role, Role::Api);
    assert_eq!(settings.branch, "main");
    assert_eq!(settings.verify_interval, DEFAULT_VERIFY_INTERVAL);
    assert_eq!(settings.db_url, mist_db::sqlite_url_in(Path::new("/data")));

    let defaults = Settings::resolve(&args(|_| {}), &FileConfig::default()).unwrap();
    assert_eq!(defaults.listen, DEFAULT_LISTEN.parse().unwrap());
    assert_eq!(defaults.role, Role::All);
    assert_eq!(defaults.resync, DEFAULT_RESYNC);
    assert_eq!(defaults.log_format, LogFormat::Text);
}

#[test]
fn the_file_rejects_unknown_keys_with_a_position() {
    let error = FileConfig::parse("specs = \"/s\"\nresink = 5\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("resink"), "{error}");
    assert!(error.contains("line 2"), "{error}");
}

#[test]
fn file_paths_are_relative_to_the_file() {
    let mut file = FileConfig::parse(
        "specs = \"specs\"\nnas = \"/abs/nas\"\ndata = \"data\"\n\
         webhook-secret-file = \"secret\"",
    )
    .unwrap();
    file.make_paths_relative_to(Path::new("/etc/mist"));
    assert_eq!(file.specs.as_deref(), Some("/etc/mist/specs"));
    assert_eq!(file.nas.as_deref(), Some(Path::new("/abs/nas")));
    assert_eq!(file.data.as_deref(), Some(Path::new("/etc/mist/data")));
    assert_eq!(
        file.webhook_secret_file.as_deref(),
        Some(Path::new("/etc/mist/secret"))
    );

    let mut remote = FileConfig::parse("specs = \"https://git.example/specs.git\"").unwrap();
    remote.make_paths_relative_to(Path::new("/etc/mist"));
    assert_eq!(
        remote.specs.as_deref(),
        Some("https://git.example/specs.git")
    );
}

#[test]
fn the_reconciler_needs_specs_nas_and_data_and_the_api_does_not() {
    let error = Settings::resolve(&args(|a| a.specs = None), &FileConfig::default());
    assert!(
        matches!(
            error,
            Err(ConfigError::Missing {
                flag: "--specs",
                ..
            })
        ),
        "{error:?}"
    );
    let api_only = args(|a| {
        a.role = Some(Role::Api);
        a.specs = None;
        a.nas = None;
        a.data = None;
        a.db = Some("postgres://mist@db/mist".into());
    });
    let settings = Settings::resolve(&api_only, &FileConfig::default()).unwrap();
    assert_eq!(settings.specs, None);
    assert_eq!(settings.db_url, "postgres://mist@db/mist");
}

#[test]
fn token_lifetime_from_the_flag_the_file_or_the_default() {
    let default = Settings::resolve(&args(|_| {}), &FileConfig::default()).unwrap();
    assert_eq!(
        default.token_lifetime,
        mist_api::config::DEFAULT_TOKEN_LIFETIME
    );
    let file = FileConfig::parse("token-lifetime = \"12h\"").unwrap();
    let from_file = Settings::resolve(&args(|_| {}), &file).unwrap();
    assert_eq!(from_file.token_lifetime, Duration::from_secs(12 * 60 * 60));
    let from_flag = Settings::resolve(
        &args(|a| a.token_lifetime = Some(Duration::from_secs(60))),
        &file,
    )
    .unwrap();
    assert_eq!(from_flag.token_lifetime, Duration::from_secs(60));
}

#[test]
fn passwords_in_database_urls_are_refused() {
    let cases = [
        ("postgres://mist:hunter2@db/mist", true),
        ("postgres://mist@db/mist", false),
        ("postgres://db/mist?user=a:b@c", false),
        ("sqlite:///var/lib/mist/mist.db", false),
    ];
    for (url, has_password) in cases {
        assert_eq!(url_has_password(url), has_password, "{url}");
    }
    let error = Settings::resolve(
        &args(|a| a.db = Some("postgres://mist:hunter2@db/mist".into())),
        &FileConfig::default(),
    )
    .unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[test]
fn durations() {
    let cases = [
        ("60", Ok(Duration::from_secs(60))),
        ("90s", Ok(Duration::from_secs(90))),
        ("5m", Ok(Duration::from_secs(300))),
        ("2h", Ok(Duration::from_secs(7200))),
        ("1d", Ok(Duration::from_secs(86400))),
        ("250ms", Ok(Duration::from_millis(250))),
    ];
    for (text, want) in cases {
        assert_eq!(parse_duration(text), want, "{text}");
    }
    for bad in ["", "m", "5 parsecs", "-1", "1.5h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn secrets_are_trimmed_and_empty_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("webhook-secret");
    std::fs::write(&secret_path, "s3cret\n").unwrap();
    let mut settings = Settings::resolve(&args(|_| {}), &FileConfig::default()).unwrap();
    settings.webhook_secret_file = Some(secret_path.clone());
    let secrets = Secrets::load(&settings).unwrap();
    assert!(secrets.webhook.is_some());
    assert!(!format!("{secrets:?}").contains("s3cret"));

    std::fs::write(&secret_path, "\n").unwrap();
    assert!(matches!(
        Secrets::load(&settings),
        Err(ConfigError::EmptySecret { .. })
    ));
}

#[test]
fn notification_files_from_the_flag_or_the_file_and_their_urls_stay_secret() {
    let dir = tempfile::tempdir().unwrap();
    let friends = dir.path().join("discord");
    let admins = dir.path().join("discord-admins");
    std::fs::write(
        &friends,
        "https://discord.example/api/webhooks/1/friends-token\n",
    )
    .unwrap();
    std::fs::write(
        &admins,
        "https://discord.example/api/webhooks/2/admins-token",
    )
    .unwrap();
    let mut file =
        FileConfig::parse("discord-webhook-file = \"discord\"\nnotify-templates = \"templates\"\n")
            .unwrap();
    file.make_paths_relative_to(dir.path());
    let settings = Settings::resolve(&args(|_| {}), &file).unwrap();
    assert_eq!(
        settings.notify.discord_webhook_file.as_deref(),
        Some(friends.as_path())
    );
    assert_eq!(
        settings.notify.notify_templates,
        Some(dir.path().join("templates"))
    );
    // Without an admin channel, the friends' channel hears everything.
    let secrets = Secrets::load(&settings).unwrap();
    assert_eq!(secrets.notify_sinks.len(), 1);
    assert_eq!(secrets.notify_sinks[0].audiences.len(), 2);

    let with_admins = Settings::resolve(
        &args(|a| a.notify.discord_admin_webhook_file = Some(admins.clone())),
        &file,
    )
    .unwrap();
    let secrets = Secrets::load(&with_admins).unwrap();
    let names: Vec<&str> = secrets
        .notify_sinks
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["discord", "discord-admins"]);
    assert!(!format!("{secrets:?}").contains("token"), "{secrets:?}");

    std::fs::write(&admins, "discord.example/no-scheme").unwrap();
    let error = Secrets::load(&with_admins).unwrap_err();
    assert!(matches!(error, ConfigError::NotAUrl { .. }), "{error:?}");
    assert!(!error.to_string().contains("no-scheme"), "{error}");
}

#[test]
fn trusted_proxies_from_the_flags_or_the_file() {
    let file = FileConfig::parse("trusted-proxy = [\"10.0.0.0/8\", \"fd00::/8\"]\n").unwrap();
    let settings = Settings::resolve(&args(|_| {}), &file).unwrap();
    let shown: Vec<String> = settings
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["10.0.0.0/8", "fd00::/8"]);
    let flag = args(|a| a.trusted_proxies = vec!["192.0.2.7".parse().unwrap()]);
    let settings = Settings::resolve(&flag, &file).unwrap();
    assert_eq!(
        settings.trusted_proxies.len(),
        1,
        "the flags replace the file's list"
    );
    assert!(
        Settings::resolve(&args(|_| {}), &FileConfig::default())
            .unwrap()
            .trusted_proxies
            .is_empty(),
        "trusts no proxy by default"
    );
    let bad = FileConfig::parse("trusted-proxy = [\"10.0.0.1/8\"]\n").unwrap();
    let error = Settings::resolve(&args(|a| a.config = Some("/etc/mist.toml".into())), &bad)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("/etc/mist.toml")
            && error.contains("trusted-proxy")
            && error.contains("10.0.0.1/8"),
        "{error}"
    );
}
