//! `mistd run` as a process: health, readiness, metrics, the webhook, a new commit becoming
//! Ready, SIGHUP and a graceful SIGTERM; and the configuration contract's failures.

mod common;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use common::{Mistd, commit_all, http_get, http_request, run_args, wait_converged, wait_for};

/// The demo's versions.
const N_DEMO_VERSIONS: usize = 11;

#[test]
fn run_serves_ops_routes_reconciles_a_new_commit_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = mistd::demo::generate(&tmp.path().join("demo")).unwrap();
    let secret_file = tmp.path().join("webhook-secret");
    std::fs::write(&secret_file, "s3cret-for-tests\n").unwrap();
    let incoming_before = common::file_facts(&layout.nas.join("incoming"));

    let mut args = run_args(&layout.specs_repo, &layout.nas, &layout.data);
    args.extend([OsStr::new("--webhook-secret-file"), secret_file.as_os_str()]);
    let mut mistd = Mistd::run(&args, &tmp.path().join("mistd.log"));
    mistd.wait_healthy(Duration::from_secs(30));
    let address = mistd.address;

    // Ready once the database answers and a first pass finished.
    wait_for(
        "GET /readyz = 200",
        Duration::from_secs(120),
        |last| match http_get(address, "/readyz") {
            Ok((200, body)) => Some(body),
            Ok((status, body)) => {
                *last = format!("{status} {body}");
                None
            }
            Err(e) => {
                *last = e.to_string();
                None
            }
        },
    );

    let (status, metrics) = http_get(address, "/metrics").unwrap();
    assert_eq!(status, 200, "{metrics}");
    for expected in [
        "# TYPE mist_queue_depth gauge",
        "mist_queue_depth ",
        "mist_queue_jobs{state=\"queued\"}",
        "mist_database_up 1",
        "mist_last_successful_reconcile_timestamp_seconds ",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected:?} not in:\n{metrics}"
        );
    }

    wait_converged(&layout.data, N_DEMO_VERSIONS, Duration::from_secs(600));

    // Release starfall 1.3.0: a copy of 1.2.0 with one more file, committed like an admin.
    let old_build = layout.nas.join("incoming/starfall/1.2.0");
    let new_build = layout.nas.join("incoming/starfall/1.3.0");
    common::copy_tree(&old_build, &new_build);
    std::fs::write(new_build.join("new-level.txt"), "a new level\n").unwrap();
    let incoming_with_new_build = common::file_facts(&layout.nas.join("incoming"));
    std::fs::write(
        layout.specs_repo.join("games/starfall/versions/1.3.0.yaml"),
        "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"1.3.0\"\n  game: starfall\n\
         spec:\n  source: incoming/starfall/1.3.0\n  notes: A new level.\n",
    )
    .unwrap();
    let committed_at = Instant::now();
    let commit = commit_all(&layout.specs_repo, "Release starfall 1.3.0");
    let report = wait_converged(&layout.data, N_DEMO_VERSIONS + 1, Duration::from_secs(300));
    eprintln!(
        "new commit {} Ready after {:.2} s",
        &commit[..12],
        committed_at.elapsed().as_secs_f64()
    );
    assert_eq!(
        report["commit"].as_str(),
        Some(commit.as_str()),
        "{report:#}"
    );

    // The webhook: a genuine delivery is accepted, a forged one refused.
    let body = br#"{"ref":"refs/heads/main"}"#;
    let secret = mist_reconciler::webhook::WebhookSecret::new("s3cret-for-tests").unwrap();
    let signature = format!(
        "sha256={}",
        mist_reconciler::webhook::signature_hex(&secret, body)
    );
    let (status, _) = http_request(
        address,
        "POST",
        "/v1/hooks/git",
        &[("X-Hub-Signature-256", &signature)],
        body,
    )
    .unwrap();
    assert_eq!(status, 202);
    let (status, _) = http_request(
        address,
        "POST",
        "/v1/hooks/git",
        &[("X-Hub-Signature-256", "sha256=00")],
        body,
    )
    .unwrap();
    assert_eq!(status, 401);

    // SIGHUP reconciles now; it must not end the process.
    mistd.signal(libc::SIGHUP);
    wait_for("SIGHUP in the log", Duration::from_secs(10), |_| {
        mistd.log_text().contains("SIGHUP received").then_some(())
    });
    let (status, _) = http_get(address, "/healthz").unwrap();
    assert_eq!(status, 200);
    assert!(
        mistd.child.try_wait().unwrap().is_none(),
        "SIGHUP ended mistd"
    );
    let (status, body) = http_get(address, "/readyz").unwrap();
    assert_eq!(status, 200, "{body}");

    mistd.signal(libc::SIGTERM);
    let (exit, took) = mistd.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "{exit}:\n{}", mistd.log_text());
    eprintln!("stopped {:.2} s after SIGTERM", took.as_secs_f64());

    let log = mistd.log_text();
    assert!(
        !log.contains("s3cret-for-tests"),
        "the secret was logged:\n{log}"
    );
    assert_eq!(
        common::file_facts(&layout.nas.join("incoming")),
        incoming_with_new_build,
        "mistd changed a build under incoming/"
    );
    assert!(incoming_before.len() < incoming_with_new_build.len());
}

/// The `api` role never creates or migrates a database: without one it refuses to start;
/// with one it is ready as soon as the database answers (it runs no reconciler).
#[test]
fn the_api_role_needs_an_existing_database_and_no_reconciler() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let args: Vec<&OsStr> = vec![
        OsStr::new("--role"),
        OsStr::new("api"),
        OsStr::new("--data"),
        data.as_os_str(),
    ];
    let refused = common::mistd_output(
        &[
            &[OsStr::new("run")],
            &args[..],
            &[OsStr::new("--listen"), OsStr::new("127.0.0.1:1")],
        ]
        .concat(),
    );
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("error:"), "{stderr}");

    // What the reconciler does first: create and migrate the database.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = mist_db::Db::connect(&mist_db::sqlite_url_in(&data))
            .await
            .unwrap();
        db.close().await;
    });

    let json_args: Vec<&OsStr> =
        [&args[..], &[OsStr::new("--log-format"), OsStr::new("json")]].concat();
    let mut mistd = Mistd::run(&json_args, &tmp.path().join("api.log"));
    mistd.wait_healthy(Duration::from_secs(30));
    // JSON logs: one object per line, with the message and its fields at the top level.
    let log = mistd.log_text();
    let first: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("a log line")).expect("a JSON log line");
    assert_eq!(first["level"], "INFO", "{log}");
    assert_eq!(first["role"], "api", "{log}");
    let (status, body) = http_get(mistd.address, "/readyz").unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, metrics) = http_get(mistd.address, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("mist_queue_depth 0"), "{metrics}");
    // No reconciler, so no webhook.
    let (status, _) = http_request(mistd.address, "POST", "/v1/hooks/git", &[], b"{}").unwrap();
    assert_eq!(status, 404);
    // `systemctl reload` must not end the api role either.
    mistd.signal(libc::SIGHUP);
    wait_for("SIGHUP in the log", Duration::from_secs(10), |_| {
        mistd.log_text().contains("SIGHUP received").then_some(())
    });
    assert!(
        mistd.child.try_wait().unwrap().is_none(),
        "SIGHUP ended mistd"
    );
    mistd.signal(libc::SIGTERM);
    let (exit, _) = mistd.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "{exit}:\n{}", mistd.log_text());
}

#[test]
fn settings_come_from_flags_env_and_the_config_file_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing configured: exit 2 (wrong usage) and say how to give the spec repository.
    let output = std::process::Command::new(common::mistd_bin())
        .arg("run")
        .env_remove("MIST_SPECS")
        .env_remove("MIST_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--specs") && stderr.contains("MIST_SPECS"),
        "{stderr}"
    );

    // A config file with an unknown key: exit 2 with the key and the line.
    let config = tmp.path().join("mistd.toml");
    std::fs::write(&config, "nas = \"/srv/mist\"\nresink = 60\n").unwrap();
    let output = std::process::Command::new(common::mistd_bin())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("resink") && stderr.contains("line 2"),
        "{stderr}"
    );

    // A password in the database URL is refused without being echoed.
    let output = std::process::Command::new(common::mistd_bin())
        .args(["run", "--role", "api"])
        .env("MIST_DB", "postgres://mist:hunter2@db/mist")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PGPASSFILE"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // `mistd status` on a folder where mistd never ran: exit 2, and says so.
    let output = std::process::Command::new(common::mistd_bin())
        .arg("status")
        .arg("--data")
        .arg(tmp.path())
        .env_remove("MIST_DB")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no database at"), "{stderr}");

    // The help documents the precedence.
    let output = std::process::Command::new(common::mistd_bin())
        .args(["run", "--help"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("flag > MIST_* variable > --config file > default"),
        "{stdout}"
    );
}

#[test]
fn a_busy_port_fails_before_any_work_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = common::small_demo(tmp.path(), &[("doom", 1)], 4096);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let data = tmp.path().join("new").join("data");
    let args = common::run_args(&demo.specs, &demo.nas, &data);
    let output = common::mistd_output(
        &[
            &[OsStr::new("run")],
            &args[..],
            &[OsStr::new("--listen"), OsStr::new(&address)],
        ]
        .concat(),
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
    assert!(stderr.contains("--listen"), "{stderr}");
    // Said once, not once as a log line and again as the last line.
    assert_eq!(stderr.matches("cannot listen on").count(), 1, "{stderr}");
    assert!(!tmp.path().join("new").exists(), "a data folder was made");

    // The demo: refused before it is made.
    let demo_dir = tmp.path().join("mist-demo");
    let output = common::mistd_output(&[
        OsStr::new("demo"),
        OsStr::new("--dir"),
        demo_dir.as_os_str(),
        OsStr::new("--listen"),
        OsStr::new(&address),
    ]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("cannot listen on").count(), 1, "{stderr}");
    assert!(!demo_dir.exists(), "the demo was made");
}

#[test]
fn a_failed_start_leaves_no_half_made_data_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = common::small_demo(tmp.path(), &[("doom", 1)], 4096);
    // A NAS that is a file: the reconciler cannot open its artifact store.
    let nas = tmp.path().join("nas-file");
    std::fs::write(&nas, "not a folder").unwrap();
    let data = tmp.path().join("new").join("data");
    let args = common::run_args(&demo.specs, &nas, &data);
    let output = common::run_output(&args);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(
        !tmp.path().join("new").exists(),
        "a half-made data folder was left"
    );
}

#[test]
fn a_second_reconciler_on_one_sqlite_database_is_refused_in_words() {
    let tmp = tempfile::tempdir().unwrap();
    let demo = common::small_demo(tmp.path(), &[("doom", 1)], 4096);
    let data = tmp.path().join("data");
    let args = run_args(&demo.specs, &demo.nas, &data);
    let mut first = Mistd::run(&args, &tmp.path().join("first.log"));
    first.wait_healthy(Duration::from_secs(60));

    // The same data folder, so the same SQLite file: refused before it touches anything.
    let output = common::run_output(&args);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "the SQLite database {} is in use by another process (pid {})",
        data.join("mist.db").display(),
        first.child.id()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains("Postgres"),
        "says how to run several: {stderr}"
    );

    // The first one goes on, and a reader (the api role) may share the file with it.
    assert_eq!(http_get(first.address, "/healthz").unwrap().0, 200);
    let api_args: Vec<&OsStr> = [&args[..], &[OsStr::new("--role"), OsStr::new("api")]].concat();
    let mut reader = Mistd::run(&api_args, &tmp.path().join("api.log"));
    reader.wait_healthy(Duration::from_secs(60));

    // Once the first has stopped, the file is free again.
    first.kill();
    let mut second = Mistd::run(&args, &tmp.path().join("second.log"));
    second.wait_healthy(Duration::from_secs(60));
}
