//! The README's first hour, scripted as a newcomer would follow it (issue 13): `mistd demo`
//! serving on loopback; a friend going through "For friends" (`mist login`, `list`,
//! `install`, `update`, `verify`, `launch`, `uninstall`); an admin going through "For admins"
//! (`mistpipe hook install`, `new game`, `new version`, `user add`, `validate`, `plan`, a
//! commit, `status`). Each step checks what a newcomer is told: where a game went, what the
//! marks of `mist list` mean, that `mist update` alone mentions `--all`, what to try when a
//! URL lacks `http://`, that a spec's bad indentation is pointed at with a hint, that
//! `mistpipe` can use the login of `mist login`, and that exit codes follow docs/cli.md.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    Client, assert_success, die_with_spawning_thread, mistd_bin, output_with_stdin, password_of,
    wait_for, workspace_bin,
};

/// How long the demo may take to be made and converge in a debug build on a busy machine.
const DEMO_TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn a_newcomer_follows_the_readme() {
    let root = tempfile::tempdir().unwrap();
    let demo = Demo::start(root.path());
    let url = demo.url.clone();
    let friend_password = password_of(&demo.stdout, "friend");
    let admin_password = password_of(&demo.stdout, "admin");
    // "Try next" tells the friend how to start, with this server's address.
    assert!(
        demo.stdout
            .contains(&format!("mist login --server {url} --user friend")),
        "{}",
        demo.stdout
    );

    let friend = Client::new();
    friend_hour(&friend, &demo, &friend_password);
    admin_hour(&friend, &demo, &admin_password);
}

/// "For friends", in the README's order.
fn friend_hour(friend: &Client, demo: &Demo, password: &str) {
    let url = &demo.url;
    let stdin = format!("{password}\n");

    // The address as `mistd demo` printed it, without the scheme: what to try instead.
    let bare = url.trim_start_matches("http://");
    let out = friend.run_with_stdin(
        &[
            "login",
            "--server",
            bare,
            "--user",
            "friend",
            "--password-stdin",
        ],
        &stdin,
    );
    expect_code(&out, 2);
    assert!(stderr(&out).contains(&format!("http://{bare}")), "{out:?}");
    // A password piped in without --password-stdin is not read: the command says why.
    let out = friend.run_with_stdin(&["login", "--server", url, "--user", "friend"], &stdin);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("--password-stdin"), "{out:?}");

    let out = friend.run_with_stdin(
        &[
            "login",
            "--server",
            url,
            "--user",
            "friend",
            "--password-stdin",
        ],
        &stdin,
    );
    assert_success(&out);
    assert!(stdout(&out).starts_with("Logged in to"), "{out:?}");

    let out = friend.run(&["list"]);
    assert_success(&out);
    assert!(stdout(&out).contains("starfall"), "{out:?}");
    assert!(
        stdout(&out).contains("-  not installed (`mist install GAME`)"),
        "{out:?}"
    );

    // `mist install` says where the game went.
    let out = friend.run(&["install", "starfall"]);
    assert_success(&out);
    let library = friend.data().join("library").join("starfall");
    assert!(
        stderr(&out).contains(&format!(
            "starfall installed: nothing → 1.2.0 in {}",
            library.display()
        )),
        "{out:?}"
    );
    // An older lantern, so that an update is waiting.
    assert_success(&friend.run(&["install", "lantern", "--version", "1.0"]));
    let out = friend.run(&["list"]);
    assert_success(&out);
    assert!(stdout(&out).contains("1.0 *"), "{out:?}");
    assert!(
        stdout(&out)
            .contains("*  an update is waiting: `mist update GAME`, or `mist update --all`"),
        "{out:?}"
    );

    // `mist update` alone names the way to update everything.
    let out = friend.run(&["update"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("mist update --all"), "{out:?}");
    let out = friend.run(&["update", "--all"]);
    assert_success(&out);
    assert!(
        stderr(&out).contains("lantern updated: 1.0 → 2.0"),
        "{out:?}"
    );
    assert!(stderr(&out).contains("starfall is up to date"), "{out:?}");
    assert!(
        !stderr(&out).contains(" bytes"),
        "sizes in human units: {out:?}"
    );

    // `mist verify`: 0 when intact, 1 when damaged (a check that says no), 0 once repaired.
    let out = friend.run(&["verify", "starfall"]);
    assert_success(&out);
    assert!(stderr(&out).contains("starfall 1.2.0 is intact"), "{out:?}");
    let program = library.join("bin/starfall");
    let mut bytes = std::fs::read(&program).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x5a;
    std::fs::write(&program, bytes).unwrap();
    let out = friend.run(&["verify", "starfall"]);
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("mist verify starfall --repair"),
        "{out:?}"
    );
    let out = friend.run(&["verify", "starfall", "--repair"]);
    assert_success(&out);

    let out = friend.run(&["launch", "starfall", "--", "--windowed"]);
    assert_success(&out);
    assert!(stdout(&out).contains("arguments: --windowed"), "{out:?}");

    let out = friend.run(&["uninstall", "starfall"]);
    assert_success(&out);
    assert!(stdout(&out).starts_with("Uninstalled starfall"), "{out:?}");
    assert!(!library.exists());
}

/// "For admins", in the README's order, in the demo's own spec repository.
fn admin_hour(friend: &Client, demo: &Demo, password: &str) {
    let url = &demo.url;
    let specs = demo.dir.join("specs");
    let nas = demo.dir.join("nas");
    let mistpipe = Mistpipe::new(friend);

    // A hook outside a git repository: said in words.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = mistpipe.run(elsewhere.path(), &["hook", "install"], "");
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("the current folder is not in a git repository"),
        "{out:?}"
    );
    let out = mistpipe.run(&specs, &["hook", "install"], "");
    assert_success(&out);

    // A new game and its first build on the NAS.
    let build = nas.join("incoming/celeste/1.4.0.1");
    std::fs::create_dir_all(build.join("bin")).unwrap();
    let files = [
        ("bin/celeste", "#!/bin/sh\necho celeste\n"),
        ("README.txt", "Celeste 1.4.0.1\n"),
    ];
    for (path, text) in files {
        std::fs::write(build.join(path), text).unwrap();
    }
    let n_bytes: usize = files.iter().map(|(_, text)| text.len()).sum();
    assert_success(&mistpipe.run(
        &specs,
        &["new", "game", "celeste", "--title", "Celeste"],
        "",
    ));
    let nas_arg = nas.display().to_string();
    let out = mistpipe.run(
        &specs,
        &[
            "new",
            "version",
            "celeste",
            "1.4.0.1",
            "--source",
            "incoming/celeste/1.4.0.1",
            "--nas",
            &nas_arg,
        ],
        "",
    );
    assert_success(&out);
    assert!(
        stderr(&out).contains(&format!("2 files, {n_bytes} B: blake3:")),
        "{out:?}"
    );
    let out = mistpipe.run(
        &specs,
        &["user", "add", "alice", "--role", "user", "--password-stdin"],
        "a-long-password\n",
    );
    assert_success(&out);

    // A spec indented wrongly: the line at fault, and what to do about it.
    let broken = specs.join("users/bob.yaml");
    std::fs::write(
        &broken,
        "apiVersion: mist/v1\nkind: User\nmetadata:\n  name: bob\nspec:\n  role: user\n   \
         disabled: true\n",
    )
    .unwrap();
    let out = mistpipe.run(&specs, &["validate"], "");
    expect_code(&out, 1);
    assert!(stdout(&out).contains("users/bob.yaml:7:"), "{out:?}");
    assert!(
        stdout(&out).contains("hint:") && stdout(&out).contains("indent"),
        "{out:?}"
    );
    std::fs::remove_file(&broken).unwrap();

    let out = mistpipe.run(&specs, &["validate"], "");
    assert_success(&out);
    assert!(
        stdout(&out).contains("4 games, 12 versions, 3 users"),
        "{out:?}"
    );
    for json in [
        &["validate", "--json"][..],
        &["validate", "--format", "json"],
    ] {
        let out = mistpipe.run(&specs, json, "");
        assert_success(&out);
        assert_eq!(stdout(&out).trim(), "[]", "{out:?}");
    }

    let admin_stdin = format!("{password}\n");
    let login = ["--server", url, "--user", "admin", "--password-stdin"];
    let out = mistpipe.run(&specs, &[&["plan"][..], &login].concat(), &admin_stdin);
    expect_code(&out, 1);
    assert!(stdout(&out).contains("+ game celeste"), "{out:?}");
    assert!(stdout(&out).contains("+ user alice"), "{out:?}");

    // The commit runs the hook, which validates what is staged.
    git(&specs, &["add", "-A"]);
    git(&specs, &["commit", "-q", "-m", "celeste 1.4.0.1"]);

    let args = [&["status", "--json"][..], &login].concat();
    wait_for("celeste 1.4.0.1 Ready", Duration::from_secs(120), || {
        let out = mistpipe.run(&specs, &args, &admin_stdin);
        assert_success(&out);
        let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let ready = status["games"].as_array().unwrap().iter().any(|game| {
            game["name"] == "celeste"
                && game["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|version| version["name"] == "1.4.0.1" && version["ready"] == true)
        });
        ready.then_some(())
    });
    let out = mistpipe.run(&specs, &[&["status"][..], &login].concat(), &admin_stdin);
    assert_success(&out);
    assert!(
        stdout(&out).contains("OK: every version is Ready."),
        "{out:?}"
    );

    // Without --server or --user, mistpipe uses the friend's `mist login`.
    let out = mistpipe.run(&specs, &["status"], "");
    assert_success(&out);
    assert!(stdout(&out).contains("A user's view"), "{out:?}");
    assert!(stdout(&out).contains("celeste: Ready 1.4.0.1"), "{out:?}");
}

/// `mistd demo` serving on a free loopback port, killed when the test ends.
struct Demo {
    _child: Child,
    /// The demo folder.
    dir: PathBuf,
    /// `http://127.0.0.1:<port>`.
    url: String,
    /// What it printed up to `Serving the demo on …`.
    stdout: String,
}

impl Demo {
    fn start(root: &Path) -> Demo {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let dir = root.join("mist-demo");
        let log = root.join("mistd-demo.log");
        let mut command = Command::new(mistd_bin());
        command
            .arg("demo")
            .arg("--dir")
            .arg(&dir)
            .args(["--listen", &listen])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        die_with_spawning_thread(&mut command);
        let mut child = command.spawn().expect("start mistd demo");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + DEMO_TIMEOUT;
        let mut stdout = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(Ok(line)) => {
                    stdout.push_str(&line);
                    stdout.push('\n');
                    if line.starts_with("Serving the demo on") {
                        break;
                    }
                }
                _ => panic!(
                    "mistd demo did not start serving:\n{stdout}\n--- stderr\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        }
        Demo {
            _child: child,
            dir,
            url: format!("http://{listen}"),
            stdout,
        }
    }
}

/// `mistpipe`, run as the admin on the friend's machine: the friend's `mist` folders, no
/// server settings from the environment.
struct Mistpipe {
    bin: PathBuf,
    config: PathBuf,
}

impl Mistpipe {
    fn new(friend: &Client) -> Mistpipe {
        Mistpipe {
            bin: workspace_bin("mistpipe", "mistpipe"),
            config: friend.config(),
        }
    }

    fn run(&self, cwd: &Path, args: &[&str], stdin: &str) -> Output {
        output_with_stdin(
            Command::new(&self.bin)
                .current_dir(cwd)
                .args(args)
                .env("MIST_CONFIG_DIR", &self.config)
                .env_remove("MIST_SERVER")
                .env_remove("MIST_TOKEN")
                .env_remove("GIT_DIR")
                .env_remove("GIT_INDEX_FILE"),
            stdin,
        )
    }
}

/// Runs the `git` command line in `cwd` (its hooks included), which must succeed.
fn git(cwd: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(cwd)
        .args([
            "-c",
            "user.name=Newcomer",
            "-c",
            "user.email=new@mist.invalid",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .output()
        .expect("this test needs the `git` command line");
    assert_success(&out);
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn expect_code(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "{output:?}");
}
