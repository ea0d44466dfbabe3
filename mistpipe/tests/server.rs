//! `mistpipe status` and `mistpipe plan` against a real server: `mistd`'s demo (a git spec
//! repository, a NAS with three games, two users) served by `mistd run --role all` on
//! 127.0.0.1 with a random port, and the real `mistpipe` binary as a process.
//!
//! The server runs inside this test process through `mistd`'s library (`run::serve`, what
//! `mistd run` calls), because a dev-dependency cannot provide another package's binary. It
//! is started once for every test here (they only read from it) and ends with the process.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use common::{Dir, Out, mistpipe_with_env};
use mistd::config::{FileConfig, Role, RunArgs, Secrets, Settings};
use serde_json::Value;

/// The demo server every test here talks to.
struct DemoServer {
    url: String,
    specs: PathBuf,
    admin_password: String,
    friend_password: String,
    /// A token for the admin, from a real login.
    admin_token: String,
}

/// The demo server, started by the first test that asks. If starting it fails, that test
/// shows why and the others fail with a poisoned lock.
fn server() -> &'static DemoServer {
    static SERVER: LazyLock<DemoServer> = LazyLock::new(start_demo_server);
    &SERVER
}

/// Generates the demo (afresh: its passwords are only known to the call that makes them),
/// serves it, and waits until the reconciler has applied the specs.
fn start_demo_server() -> DemoServer {
    // One fixed folder below the target dir, replaced on every run, so runs do not pile up
    // demos in the system's temp dir.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mistpipe-server-demo");
    if root.exists() {
        std::fs::remove_dir_all(&root).expect("remove the previous run's demo");
    }
    let layout = mistd::demo::generate(&root).expect("generate the demo");
    let password = |name: &str| {
        layout
            .users
            .iter()
            .find(|user| user.name == name)
            .and_then(|user| user.password.clone())
            .unwrap_or_else(|| panic!("the demo made {name} with a password"))
    };
    let args = RunArgs {
        specs: Some(layout.specs_repo.to_string_lossy().into_owned()),
        branch: Some(layout.branch.clone()),
        nas: Some(layout.nas.clone()),
        data: Some(layout.data.clone()),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        role: Some(Role::All),
        ..RunArgs::default()
    };
    let settings = Settings::resolve(&args, &FileConfig::default()).expect("demo settings");
    let (sender, receiver) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let listening = sender.clone();
        let result = runtime.block_on(async move {
            let metrics = mistd::server::install_metrics()?;
            // The sender is dropped at once: a dropped sender never requests a stop.
            let (_, shutdown) = mistd::run::shutdown_channel();
            mistd::run::serve(
                &settings,
                Secrets::default(),
                metrics,
                shutdown,
                |address| {
                    let _ = listening.send(Ok(address));
                },
            )
            .await
        });
        let _ = sender.send(Err(format!("mistd stopped: {result:?}")));
    });
    let address = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("mistd listens within a minute")
        .unwrap_or_else(|error| panic!("{error}"));
    let url = format!("http://{address}");

    // Users can log in once the first pass has published them; /readyz says it ran. Failed
    // logins would count towards the rate limit, so they are not the thing polled.
    wait_for("the reconciler's first pass (GET /readyz = 200)", || {
        let response = client().get(format!("{url}/readyz")).send();
        match response {
            Ok(response) if response.status() == 200 => Ok(()),
            Ok(response) => Err(Value::from(response.status().as_u16())),
            Err(error) => Err(Value::from(error.to_string())),
        }
    });
    let admin_password = password("admin");
    let admin_token = login(&url, "admin", &admin_password);
    // The first pass writes every game, version and user row; jobs go on in the background.
    wait_for("the demo's specs to be applied", || {
        let games = get(&url, "/v1/games", &admin_token);
        let n_versions: usize = games["games"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|game| game["versions"].as_array().map_or(0, Vec::len))
            .sum();
        (n_versions == 11).then_some(()).ok_or(games)
    });
    DemoServer {
        url,
        specs: layout.specs_repo.clone(),
        friend_password: password("friend"),
        admin_password,
        admin_token,
    }
}

/// [`server`], once every demo version is Ready: what `status` shows is then fixed.
fn converged_server() -> &'static DemoServer {
    static CONVERGED: LazyLock<()> = LazyLock::new(|| {
        let server = server();
        wait_for("every demo version to be Ready", || {
            let status = get(&server.url, "/v1/status", &server.admin_token);
            let versions: Vec<&Value> = status["games"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|game| game["versions"].as_array().into_iter().flatten())
                .collect();
            let all_ready = versions.len() == 11 && versions.iter().all(|v| v["ready"] == true);
            all_ready.then_some(()).ok_or(status)
        });
    });
    LazyLock::force(&CONVERGED);
    server()
}

/// Polls `check` every 50 ms until it succeeds; panics with its last answer after 5 minutes
/// (a debug build on a busy machine converges the demo in well under one).
fn wait_for(what: &str, mut check: impl FnMut() -> Result<(), Value>) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let last = match check() {
            Ok(()) => return,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last answer: {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn login(url: &str, user: &str, password: &str) -> String {
    let response = client()
        .post(format!("{url}/v1/auth/login"))
        .header("Content-Type", "application/json")
        .body(serde_json::json!({"user": user, "password": password}).to_string())
        .send()
        .expect("mistd answers a login");
    assert_eq!(response.status(), 200, "login as {user}");
    let answer: Value = serde_json::from_str(&response.text().unwrap()).unwrap();
    answer["token"].as_str().unwrap().to_owned()
}

fn get(url: &str, path: &str, token: &str) -> Value {
    let response = client()
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .expect("mistd answers");
    assert_eq!(response.status(), 200, "GET {path}");
    serde_json::from_str(&response.text().unwrap()).unwrap()
}

/// A token file for `token` in `dir`.
fn token_file(dir: &Dir, token: &str) -> String {
    dir.write("token", &format!("{token}\n"));
    dir.join("token").to_string_lossy().into_owned()
}

/// Runs `mistpipe` with `args` and an admin token from a file, and checks that no secret
/// shows in what it printed.
fn mistpipe_as_admin(args: &[&str]) -> Out {
    let server = server();
    let dir = Dir::new();
    let token = token_file(&dir, &server.admin_token);
    let mut all_args = args.to_vec();
    all_args.extend(["--server", &server.url, "--token-file", &token]);
    let out = mistpipe_with_env(dir.path(), &all_args, "", &[]);
    assert_no_secrets(&out);
    out
}

#[track_caller]
fn assert_no_secrets(out: &Out) {
    let server = server();
    for (what, secret) in [
        ("the admin's token", server.admin_token.as_str()),
        ("the admin's password", &server.admin_password),
        ("the friend's password", &server.friend_password),
    ] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{what} was printed:\n{out}"
        );
    }
}

/// A copy of the demo's spec repository's checkout, without `.git`.
fn spec_checkout() -> Dir {
    let dir = Dir::new();
    copy_tree(&server().specs, dir.path());
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == ".git" {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// status

#[test]
fn status_prints_the_table_and_a_verdict() {
    let server = converged_server();
    let out = mistpipe_as_admin(&["status"]).expect_code(0);
    assert!(
        out.stdout
            .starts_with(&format!("Server {}/\nSpecs: commit ", server.url)),
        "{out}"
    );
    for needle in [
        "GAME",
        "VERSION",
        "READY",
        "lantern",
        "starfall",
        "tidewater",
        "1.0.0",
    ] {
        assert!(out.stdout.contains(needle), "no {needle:?} in:\n{out}");
    }
    assert!(out.stdout.contains("\n11/11 versions ready\n"), "{out}");
    assert!(
        out.stdout.ends_with("\nOK: every version is Ready.\n"),
        "{out}"
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn status_json_is_the_servers_document() {
    let out = mistpipe_as_admin(&["status", "--json"]).expect_code(0);
    let report: Value = serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    for key in [
        "commit",
        "lastAppliedRevision",
        "lastAttemptedRevision",
        "errors",
        "games",
        "queue",
    ] {
        assert!(report.get(key).is_some(), "no {key} in {report}");
    }
    let names: Vec<&str> = report["games"]
        .as_array()
        .unwrap()
        .iter()
        .map(|game| game["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lantern", "starfall", "tidewater"]);
}

#[test]
fn status_logs_in_with_a_password_from_stdin_or_takes_the_token_from_the_environment() {
    let server = server();
    let dir = Dir::new();
    let stdin = format!("{}\n", server.admin_password);
    let out = mistpipe_with_env(
        dir.path(),
        &[
            "status",
            "--server",
            &server.url,
            "--user",
            "admin",
            "--password-stdin",
        ],
        &stdin,
        &[],
    )
    .expect_code(0);
    assert_no_secrets(&out);
    assert!(out.stdout.contains("starfall"), "{out}");

    let out = mistpipe_with_env(
        dir.path(),
        &["status", "--json"],
        "",
        &[
            ("MIST_SERVER", server.url.as_str()),
            ("MIST_TOKEN", server.admin_token.as_str()),
        ],
    )
    .expect_code(0);
    assert_no_secrets(&out);

    // A friend sees only the Ready versions of their games, and is told so.
    let stdin = format!("{}\n", server.friend_password);
    let out = mistpipe_with_env(
        dir.path(),
        &[
            "status",
            "--server",
            &server.url,
            "--user",
            "friend",
            "--password-stdin",
        ],
        &stdin,
        &[],
    )
    .expect_code(0);
    assert_no_secrets(&out);
    assert!(out.stdout.contains("A user's view"), "{out}");
}

// ---------------------------------------------------------------------------------------
// plan

#[test]
fn plan_of_the_servers_own_specs_is_in_sync() {
    let specs = spec_checkout();
    let dir = specs.path().to_str().unwrap();
    let out = mistpipe_as_admin(&["plan", dir]).expect_code(0);
    assert_eq!(
        out.stdout, "In sync: the server has what the specs say (3 games, 11 versions, 2 users).\n",
        "{out}"
    );
    let out = mistpipe_as_admin(&["plan", dir, "--json"]).expect_code(0);
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["inSync"], true, "{out}");
    assert_eq!(plan["changes"], serde_json::json!([]), "{out}");
}

#[test]
fn plan_lists_every_change_to_a_spec_folder() {
    let specs = spec_checkout();
    // A new game with a version, a new version of an existing game, one version removed, the
    // friend removed (and so their grant), one game suspended.
    specs.write(
        "games/comet/game.yaml",
        "apiVersion: mist/v1\nkind: Game\nmetadata:\n  name: comet\nspec:\n  title: Comet\n",
    );
    specs.write(
        "games/comet/versions/1.0.yaml",
        "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"1.0\"\n  game: comet\n\
         spec:\n  source: incoming/comet/1.0\n",
    );
    specs.write(
        "games/starfall/versions/9.9.yaml",
        "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"9.9\"\n  game: starfall\n\
         spec:\n  source: incoming/starfall/9.9\n",
    );
    std::fs::remove_file(specs.join("games/starfall/versions/1.0.0.yaml")).unwrap();
    std::fs::remove_file(specs.join("users/friend.yaml")).unwrap();
    let lantern = specs
        .read("games/lantern/game.yaml")
        .replace("  grants:\n    - friend\n", "  grants: []\n");
    specs.write("games/lantern/game.yaml", &lantern);
    let tidewater = specs
        .read("games/tidewater/game.yaml")
        .replace("suspend: false", "suspend: true");
    specs.write("games/tidewater/game.yaml", &tidewater);

    let dir = specs.path().to_str().unwrap();
    let out = mistpipe_as_admin(&["plan", dir]).expect_code(1);
    assert_eq!(
        out.stdout,
        "\
+ game comet (public)
+ version comet 1.0
+ version starfall 9.9
- version starfall 1.0.0 (retired: no longer served, and nothing is deleted: no retention policy prunes it)
~ game tidewater (suspended: left exactly as it is)
- user friend (deleted: can no longer log in)
Plan: 3 to add, 1 to change, 2 to remove (server: 3 games, 2 users).
",
        "{out}"
    );

    let out = mistpipe_as_admin(&["plan", dir, "--json"]).expect_code(1);
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["inSync"], false);
    let changes: Vec<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| {
            format!(
                "{} {} {}{}",
                change["action"].as_str().unwrap(),
                change["kind"].as_str().unwrap(),
                change["game"]
                    .as_str()
                    .map_or(String::new(), |game| format!("{game} ")),
                change["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            "add game comet",
            "add version comet 1.0",
            "add version starfall 9.9",
            "remove version starfall 1.0.0",
            "change game tidewater",
            "remove user friend"
        ]
    );
}

#[test]
fn plan_of_invalid_specs_prints_the_problems_and_exits_2() {
    let specs = spec_checkout();
    let starfall = specs
        .read("games/starfall/game.yaml")
        .replace("suspend: false", "suspend: maybe");
    specs.write("games/starfall/game.yaml", &starfall);
    let dir = specs.path().to_str().unwrap();
    let out = mistpipe_as_admin(&["plan", dir]).expect_code(2);
    let problem = format!("{dir}/games/starfall/game.yaml:");
    assert!(
        out.stderr
            .lines()
            .any(|line| line.starts_with(&problem) && line.contains(": error: ")),
        "{out}"
    );
    assert!(out.stderr.contains("are invalid (1 problem)"), "{out}");
    assert_eq!(out.stdout, "");
}

#[test]
fn plan_needs_an_admin() {
    let server = server();
    let specs = spec_checkout();
    let stdin = format!("{}\n", server.friend_password);
    let out = mistpipe_with_env(
        specs.path(),
        &[
            "plan",
            "--server",
            &server.url,
            "--user",
            "friend",
            "--password-stdin",
        ],
        &stdin,
        &[],
    )
    .expect_code(2);
    assert_no_secrets(&out);
    assert!(out.stderr.contains("plan needs an admin"), "{out}");
}

// ---------------------------------------------------------------------------------------
// errors: exit 2, a clear message, no secret

#[test]
fn an_unreachable_server_exits_2() {
    // A port that was free a moment ago: bound, read, let go.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let dir = Dir::new();
    for command in ["status", "plan"] {
        let out = mistpipe_with_env(
            dir.path(),
            &[command, "--server", &url],
            "",
            &[("MIST_TOKEN", "some.token.value")],
        )
        .expect_code(2);
        assert!(
            out.stderr
                .starts_with(&format!("error: cannot reach the server at {url}/v1/")),
            "{out}"
        );
        assert!(!out.stderr.contains("some.token.value"), "{out}");
    }
}

#[test]
fn a_bad_token_or_password_exits_2_without_printing_it() {
    let server = server();
    let dir = Dir::new();
    // A well-formed token signed with another key.
    let forged = {
        let mut parts: Vec<String> = server.admin_token.split('.').map(str::to_owned).collect();
        parts[2] = "c2lnbmVkLWJ5LXNvbWVvbmUtZWxzZQ".to_string();
        parts.join(".")
    };
    let file = token_file(&dir, &forged);
    for args in [
        vec!["status", "--server", &server.url, "--token-file", &file],
        vec!["plan", "--server", &server.url, "--token-file", &file],
    ] {
        let out = mistpipe_with_env(dir.path(), &args, "", &[]).expect_code(2);
        assert!(out.stderr.contains("the server refused the token"), "{out}");
        assert!(
            !out.stderr.contains(&forged) && !out.stdout.contains(&forged),
            "{out}"
        );
    }

    let out = mistpipe_with_env(
        dir.path(),
        &[
            "status",
            "--server",
            &server.url,
            "--user",
            "admin",
            "--password-stdin",
        ],
        "not-the-password\n",
        &[],
    )
    .expect_code(2);
    assert!(out.stderr.contains("login as admin refused"), "{out}");
    assert!(!out.stderr.contains("not-the-password"), "{out}");

    let out =
        mistpipe_with_env(dir.path(), &["status", "--server", &server.url], "", &[]).expect_code(2);
    assert!(out.stderr.contains("no credentials"), "{out}");
}

#[test]
fn a_password_is_read_from_stdin_only_with_password_stdin() {
    let server = server();
    let dir = Dir::new();
    let stdin = format!("{}\n", server.admin_password);
    let out = mistpipe_with_env(
        dir.path(),
        &["status", "--server", &server.url, "--user", "admin"],
        &stdin,
        &[],
    )
    .expect_code(2);
    assert!(out.stderr.contains("pass --password-stdin"), "{out}");
    assert_no_secrets(&out);
}

#[test]
fn status_and_plan_use_the_login_mist_saved_for_the_same_server() {
    let server = server();
    let dir = Dir::new();
    let config = dir.path().join("mist-config");
    std::fs::create_dir(&config).unwrap();
    // What `mist login --server URL --user admin` saves.
    let saved = serde_json::json!({
        "server": format!("{}/", server.url),
        "user": "admin",
        "token": server.admin_token,
        "expiresAt": null,
    });
    std::fs::write(config.join("credentials.json"), saved.to_string()).unwrap();
    let config = config.to_str().unwrap();

    // The same server, with or without --server, with or without its trailing `/`.
    let with_server = ["status", "--server", server.url.as_str()];
    for args in [&with_server[..], &["status"]] {
        let out =
            mistpipe_with_env(dir.path(), args, "", &[("MIST_CONFIG_DIR", config)]).expect_code(0);
        assert!(out.stdout.contains("starfall"), "{out}");
        assert!(
            out.stderr
                .contains("Signed in as admin with the login `mist login` saved"),
            "{out}"
        );
        assert_no_secrets(&out);
    }
    let specs = spec_checkout();
    mistpipe_with_env(
        dir.path(),
        &["plan", "--repo", specs.path().to_str().unwrap()],
        "",
        &[("MIST_CONFIG_DIR", config)],
    )
    .expect_code(0);

    // Another server: the saved login is not sent there.
    let out = mistpipe_with_env(
        dir.path(),
        &["status", "--server", "http://127.0.0.1:9"],
        "",
        &[("MIST_CONFIG_DIR", config)],
    )
    .expect_code(2);
    assert!(out.stderr.contains("no credentials"), "{out}");
    assert!(out.stderr.contains("saved a login to"), "{out}");
}

#[test]
fn a_server_url_without_its_scheme_says_what_to_try() {
    let dir = Dir::new();
    let out = mistpipe_with_env(
        dir.path(),
        &["status", "--server", "127.0.0.1:9"],
        "",
        &[("MIST_TOKEN", "t")],
    )
    .expect_code(2);
    assert!(out.stderr.contains("e.g. http://127.0.0.1:9"), "{out}");
    // Nothing listens on port 9: is the server running?
    let out = mistpipe_with_env(
        dir.path(),
        &["status", "--server", "http://127.0.0.1:9"],
        "",
        &[("MIST_TOKEN", "t")],
    )
    .expect_code(2);
    assert!(out.stderr.contains("is the server running"), "{out}");
}

#[test]
fn an_answer_that_is_not_mist_exits_2() {
    // A real HTTP server that is not Mist: it answers every request with a web page.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = "<html>hello</html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = Dir::new();
    let out = mistpipe_with_env(
        dir.path(),
        &["status", "--server", &url],
        "",
        &[("MIST_TOKEN", "t")],
    )
    .expect_code(2);
    assert!(
        out.stderr.contains(&format!(
            "unexpected answer from {url}/v1/status: the answer is not JSON"
        )),
        "{out}"
    );
}
