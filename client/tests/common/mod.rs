//! One `mistd demo` for the whole test binary, served by `mistd run --role api` on loopback,
//! and helpers to run `mist` against it with private config and data folders.
//!
//! The demo takes tens of seconds to converge, so every test shares it ([`server`]). The
//! server is started from a thread that lives as long as the test process, with
//! `PR_SET_PDEATHSIG`, so it dies with the test binary however that ends.
#![allow(dead_code)] // Each test file uses a different part of this module.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The running demo server.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The friend's password.
    pub password: String,
    /// The demo's NAS: builds under `incoming/<game>/<version>`.
    pub nas: PathBuf,
}

/// The shared server, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start_server)
}

/// `mist` with its own folders under `home`.
pub struct Client {
    /// Config, data and install folders live below it.
    pub home: tempfile::TempDir,
}

impl Client {
    /// A client with fresh folders, logged in as the demo friend.
    pub fn logged_in() -> Client {
        Client::logged_in_to(&server().url)
    }

    /// A client with fresh folders, logged in as the demo friend through `url` (a proxy in
    /// front of the shared server).
    pub fn logged_in_to(url: &str) -> Client {
        let client = Client::new();
        let server = server();
        let output = client.run_with_stdin(
            &[
                "login",
                "--server",
                url,
                "--user",
                "friend",
                "--password-stdin",
            ],
            &format!("{}\n", server.password),
        );
        assert_success(&output);
        client
    }

    /// A client with fresh folders, not logged in.
    pub fn new() -> Client {
        Client {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// The config folder.
    pub fn config(&self) -> PathBuf {
        self.home.path().join("config")
    }

    /// The data folder.
    pub fn data(&self) -> PathBuf {
        self.home.path().join("data")
    }

    /// A `mist` command with this client's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        mist_command(self.home.path(), args)
    }

    /// Runs `mist` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run mist")
    }

    /// Runs `mist` with `stdin` as its standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        output_with_stdin(&mut self.command(args), stdin)
    }

    /// Runs `mist … --json` successfully and parses its standard output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let output = self.run(&args);
        assert_success(&output);
        serde_json::from_slice(&output.stdout).expect("JSON on standard output")
    }
}

/// A `mist` command whose config and data folders and `HOME` are below `home`, without the
/// `MIST_*` variables a developer's shell may set.
pub fn mist_command(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mist"));
    command
        .args(args)
        .env("MIST_CONFIG_DIR", home.join("config"))
        .env("MIST_DATA_DIR", home.join("data"))
        .env("HOME", home)
        .env_remove("MIST_SERVER")
        .env_remove("MIST_USER")
        .env_remove("MIST_JOBS")
        .env_remove("MIST_LIMIT_RATE")
        .env_remove("MIST_PROGRESS")
        .stdin(Stdio::null());
    command
}

/// `mistd run --role api` over the demo in `demo` on a free loopback port, logging to `log`;
/// returns the command (not started) and the address it will listen on.
pub fn mistd_api_command(mistd: &Path, demo: &Path, log: std::fs::File) -> (Command, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut command = Command::new(mistd);
    command
        .arg("run")
        .args(["--role", "api", "--listen", &address.to_string()])
        .arg("--data")
        .arg(demo.join("data"))
        .arg("--nas")
        .arg(demo.join("nas"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    (command, address)
}

/// Whether `GET path` on `address` answers 200.
pub fn answers_200(address: SocketAddr, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: mistd\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    stream.read_to_string(&mut response).is_ok() && response.starts_with("HTTP/1.1 200")
}

/// Panics with both output streams unless `mist` succeeded.
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "mist failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every file and folder below `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

fn target_dir() -> PathBuf {
    // <target>/debug/deps/<test binary>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The `mistd` binary, built on demand.
pub fn mistd_bin() -> PathBuf {
    workspace_bin("mistd", "mistd")
}

/// The binary `bin` of the workspace's `package`, built on demand: cargo does not build
/// another package's binaries for a test, and artifact dependencies are unstable.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
    assert!(status.success(), "cargo build -p {package} failed");
    let path = target_dir().join(bin);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Makes `command`'s process die (SIGKILL) when the thread that starts it ends, however the
/// test ends: spawn it from a thread that lives as long as the process needs to.
pub fn die_with_spawning_thread(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn start_server() -> Server {
    let mistd = mistd_bin();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("client-e2e-{}", std::process::id()));
    remove_stale_demos();
    std::fs::create_dir_all(&root).unwrap();
    let demo = root.join("demo");
    let output = Command::new(&mistd)
        .arg("demo")
        .arg("--dir")
        .arg(&demo)
        .arg("--no-serve")
        .output()
        .expect("run mistd demo");
    assert!(output.status.success(), "mistd demo failed: {output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let password = password_of(&stdout, "friend");
    let log = std::fs::File::create(root.join("mistd.log")).unwrap();
    let (mut command, address) = mistd_api_command(&mistd, &demo, log);
    die_with_spawning_thread(&mut command);
    // The parent-death signal fires when the thread that forked exits, so fork from a
    // thread that lives as long as the process.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut child = command.spawn().expect("start mistd run");
        sender.send(()).unwrap();
        let status = child.wait();
        panic!("mistd run exited: {status:?}");
    });
    receiver.recv().unwrap();
    wait_for("GET /healthz = 200", Duration::from_secs(60), || {
        answers_200(address, "/healthz").then_some(())
    });
    Server {
        url: format!("http://{address}"),
        password,
        nas: demo.join("nas"),
    }
}

/// The password `mistd demo` printed for `user` (`  <user>  <role>  <password>`).
pub fn password_of(stdout: &str, user: &str) -> String {
    stdout
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.len() == 3 && words[0] == user)
        .map(|words| words[2].to_owned())
        .unwrap_or_else(|| panic!("no password for {user} in:\n{stdout}"))
}

/// Removes the demos of earlier test runs whose process is gone (each is tens of MB).
fn remove_stale_demos() {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix("client-e2e-"))
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// What the [`FaultyProxy`] does to the bodies of `/v1/artifacts/*` responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: every byte passes through.
    None,
    /// Closes the connection after this many body bytes, on the first artifact response
    /// longer than that only.
    DropAfterOnce(u64),
    /// Flips one byte in the middle of the body of the first artifact response only.
    CorruptOnce,
    /// Flips one byte in the middle of the body of every artifact response.
    CorruptAlways,
}

/// A test-only HTTP/1.1 proxy on `127.0.0.1:0` in front of the real `mistd` that breaks
/// artifact downloads as its [`Fault`] says; all other requests pass through unchanged. Each
/// connection carries one request (`Connection: close` is forced both ways), so the proxy
/// only parses the request and response heads.
pub struct FaultyProxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Debug)]
struct ProxyState {
    upstream: SocketAddr,
    fault: std::sync::Mutex<Fault>,
    /// Faults left to inject for the `*Once` faults.
    armed: std::sync::atomic::AtomicBool,
    /// The request heads of every artifact request, in order.
    artifact_requests: std::sync::Mutex<Vec<String>>,
    /// Artifact responses that were broken.
    n_faults: std::sync::atomic::AtomicUsize,
}

impl FaultyProxy {
    /// A proxy in front of the shared server, injecting `fault`.
    pub fn start(fault: Fault) -> FaultyProxy {
        let upstream: SocketAddr = server()
            .url
            .strip_prefix("http://")
            .unwrap()
            .parse()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = std::sync::Arc::new(ProxyState {
            upstream,
            fault: std::sync::Mutex::new(fault),
            armed: std::sync::atomic::AtomicBool::new(true),
            artifact_requests: std::sync::Mutex::new(Vec::new()),
            n_faults: std::sync::atomic::AtomicUsize::new(0),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = shared.clone();
                std::thread::spawn(move || {
                    // A client giving up mid-way is not the proxy's problem.
                    let _ = proxy_one(&state, stream);
                });
            }
        });
        FaultyProxy { url, state }
    }

    /// Injects `fault` from now on (a `*Once` fault fires on the next artifact response).
    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
        self.state
            .armed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The heads of the artifact requests seen so far.
    pub fn artifact_requests(&self) -> Vec<String> {
        self.state.artifact_requests.lock().unwrap().clone()
    }

    /// How many artifact responses were broken.
    pub fn n_faults(&self) -> usize {
        self.state
            .n_faults
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Reads up to and including the blank line that ends an HTTP head; returns the head and
/// whatever was read past it.
fn read_head(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    use std::io::Read;
    let mut buffer = Vec::new();
    let mut chunk = [0; 8192];
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buffer).into_owned(), rest));
        }
        let n_read = stream.read(&mut chunk)?;
        if n_read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n_read]);
    }
}

/// The head with any `Connection` header replaced by `Connection: close`.
fn with_connection_close(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

fn proxy_one(state: &ProxyState, mut client: TcpStream) -> std::io::Result<()> {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let (request, body_start) = read_head(&mut client)?;
    let path = request.split_whitespace().nth(1).unwrap_or_default();
    let is_artifact = path.starts_with("/v1/artifacts/");
    let mut upstream = TcpStream::connect(state.upstream)?;
    upstream.write_all(with_connection_close(&request).as_bytes())?;
    upstream.write_all(&body_start)?;
    // Any rest of the request body (a login's JSON) follows on its own.
    let (mut from_client, mut to_upstream) = (client.try_clone()?, upstream.try_clone()?);
    std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_upstream));

    let (response, mut pending) = read_head(&mut upstream)?;
    client.write_all(with_connection_close(&response).as_bytes())?;
    let status = response.split_whitespace().nth(1).unwrap_or_default();
    let length: Option<u64> =
        header_value(&response, "content-length").and_then(|v| v.parse().ok());
    let fault = if is_artifact {
        state
            .artifact_requests
            .lock()
            .unwrap()
            .push(request.clone());
        let fault = *state.fault.lock().unwrap();
        let fires = match fault {
            Fault::None => false,
            Fault::CorruptAlways => true,
            // Only a body longer than the cut can be cut.
            Fault::DropAfterOnce(limit) if length.is_none_or(|length| length <= limit) => false,
            Fault::DropAfterOnce(_) | Fault::CorruptOnce => {
                state.armed.swap(false, Ordering::SeqCst)
            }
        };
        if fires && (status == "200" || status == "206") && length.is_some() {
            state.n_faults.fetch_add(1, Ordering::SeqCst);
            fault
        } else {
            Fault::None
        }
    } else {
        Fault::None
    };
    let flip_at = length.unwrap_or(0) / 2;
    let mut sent: u64 = 0;
    let mut chunk = vec![0; 16 * 1024];
    loop {
        if pending.is_empty() {
            let n_read = upstream.read(&mut chunk)?;
            if n_read == 0 {
                break;
            }
            pending.extend_from_slice(&chunk[..n_read]);
        }
        if let Fault::DropAfterOnce(limit) = fault
            && sent + pending.len() as u64 >= limit
        {
            let keep = (limit - sent) as usize;
            client.write_all(&pending[..keep])?;
            client.flush()?;
            // Cut the transfer short: the client sees the body end early.
            client.shutdown(std::net::Shutdown::Both)?;
            return Ok(());
        }
        if matches!(fault, Fault::CorruptOnce | Fault::CorruptAlways)
            && (sent..sent + pending.len() as u64).contains(&flip_at)
        {
            pending[(flip_at - sent) as usize] ^= 0x5a;
        }
        client.write_all(&pending)?;
        sent += pending.len() as u64;
        pending.clear();
    }
    client.flush()?;
    client.shutdown(std::net::Shutdown::Both)
}

/// Runs `command` to its end with `stdin` as its standard input, capturing its output.
pub fn output_with_stdin(command: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("start {command:?}: {error}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
