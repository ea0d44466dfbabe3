//! The API's speed targets, measured against the established tools in the same run:
//!
//! - `GET /v1/games` as a friend with wrk (2 threads, 64 connections): requests per second
//!   and the 99th percentile latency (targets: ≥ 15,000/s, p99 ≤ 20 ms);
//! - downloading a 1 GiB artifact with curl, against nginx serving the same file from the
//!   same folder (`sendfile on`, one worker), runs alternating (target: ≥ 0.8 × nginx).
//!
//! The API runs in this process on a 2-worker tokio runtime over a read-only SQLite handle,
//! populated like the HTTP tests (`tests/it/common.rs`). Tools that are not installed are
//! skipped with a note (`apt-get install wrk nginx curl`).
//!
//! Run: `cargo bench -p mist-api --bench serve` (`MIST_BENCH_SECONDS`, default 10, sets the
//! wrk duration; `MIST_BENCH_DOWNLOAD_MIB`, default 1024, the artifact size).

#[allow(dead_code)]
#[path = "../tests/it/common.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{TestApi, artifacts_dir, pattern};
use mist_db::state::{ArtifactKind, VersionState};
use mist_db::testing::TestDb;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Runs a command off the runtime's workers (they serve the API meanwhile); its stdout.
async fn run(program: &'static str, args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(program)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            output.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .expect("join")
}

async fn bench() {
    let api = TestApi::start(TestDb::sqlite().await, common::defaults).await;
    common::world(&api).await;
    let token = api.login("alice").await;
    let auth = format!("Authorization: Bearer {token}");

    println!("| measurement | mist | peer | mist / peer | target |");
    println!("|---|---:|---:|---:|---|");
    if have("wrk") {
        let seconds = env_number("MIST_BENCH_SECONDS", 10);
        let out = run(
            "wrk",
            vec![
                "-t2".into(),
                "-c64".into(),
                format!("-d{seconds}s"),
                "--latency".into(),
                "-H".into(),
                auth.clone(),
                api.url("/v1/games"),
            ],
        )
        .await;
        let rate = out
            .lines()
            .find_map(|line| line.strip_prefix("Requests/sec:"))
            .and_then(|rest| rest.trim().parse::<f64>().ok())
            .expect("wrk printed Requests/sec");
        let p99 = out
            .lines()
            .find_map(|line| line.trim().strip_prefix("99%"))
            .map(|rest| rest.trim().to_owned())
            .expect("wrk printed the 99% latency");
        let non_2xx = out
            .lines()
            .find(|line| line.contains("Non-2xx"))
            .map_or("none".to_owned(), |line| line.trim().to_owned());
        println!("| GET /v1/games, requests/s | {rate:.0} | | | ≥ 15,000 |");
        println!("| GET /v1/games, p99 latency | {p99} | | | ≤ 20 ms |");
        println!("| GET /v1/games, non-2xx answers | {non_2xx} | | | none |");
    } else {
        println!("| GET /v1/games | skipped: wrk is not installed | | | |");
    }

    let mib = env_number("MIST_BENCH_DOWNLOAD_MIB", 1024) as usize;
    let big = pattern(mib << 20, 7);
    let address = api.put_artifact(ArtifactKind::Pack, &big).await;
    drop(big);
    api.add_version("open", "9.0", 9, VersionState::Ready, None, Some(&address))
        .await;
    let hex = address.trim_start_matches("blake3:").to_owned();
    let relative = format!("{}/{hex}", &hex[..2]);
    if !have("curl") {
        println!("| download | skipped: curl is not installed | | | |");
        return;
    }
    let nginx = have("nginx").then(|| Nginx::start(&artifacts_dir(api.nas.path())));
    let mist_url = api.url(&format!("/v1/artifacts/{address}"));
    let (mut mist_best, mut peer_best) = (0f64, 0f64);
    for _ in 0..3 {
        mist_best = mist_best.max(download(&mist_url, Some(&auth)).await);
        if let Some(nginx) = &nginx {
            let url = format!("http://127.0.0.1:{}/{relative}", nginx.port);
            peer_best = peer_best.max(download(&url, None).await);
        }
    }
    let gbs = |bytes_per_second: f64| format!("{:.2} GB/s", bytes_per_second / 1e9);
    if nginx.is_some() {
        println!(
            "| download {mib} MiB, best of 3 (peer: nginx) | {} | {} | {:.2} | ≥ 0.8 |",
            gbs(mist_best),
            gbs(peer_best),
            mist_best / peer_best
        );
    } else {
        println!(
            "| download {mib} MiB, best of 3 | {} | nginx not installed | | ≥ 0.8 × nginx |",
            gbs(mist_best)
        );
    }
}

/// One download to /dev/null; bytes per second as curl measured them.
async fn download(url: &str, header: Option<&str>) -> f64 {
    let mut args = vec![
        "--silent".to_owned(),
        "--fail".to_owned(),
        "-o".to_owned(),
        "/dev/null".to_owned(),
        "-w".to_owned(),
        "%{speed_download}".to_owned(),
    ];
    if let Some(header) = header {
        args.extend(["-H".to_owned(), header.to_owned()]);
    }
    args.push(url.to_owned());
    run("curl", args)
        .await
        .trim()
        .parse()
        .expect("curl printed a speed")
}

/// nginx serving `root` on a free port from a temp prefix; stopped on drop.
struct Nginx {
    port: u16,
    child: std::process::Child,
    _prefix: tempfile::TempDir,
}

impl Nginx {
    fn start(root: &Path) -> Nginx {
        let prefix = tempfile::tempdir().expect("nginx prefix");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        std::fs::create_dir_all(prefix.path().join("logs")).expect("logs");
        let conf = prefix.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "{user}worker_processes 1;\ndaemon off;\nerror_log {prefix}/logs/error.log;\n\
                 pid {prefix}/nginx.pid;\nevents {{ worker_connections 64; }}\n\
                 http {{ access_log off; sendfile on; tcp_nopush on;\n\
                 client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;\n\
                 fastcgi_temp_path {prefix}/fastcgi; uwsgi_temp_path {prefix}/uwsgi;\n\
                 scgi_temp_path {prefix}/scgi;\n\
                 server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n",
                // Started as root, nginx's workers would run as `nobody`, which cannot
                // read the temp dirs.
                user = if unsafe { libc::geteuid() } == 0 {
                    "user root;\n"
                } else {
                    ""
                },
                prefix = prefix.path().display(),
                root = root.display(),
            ),
        )
        .expect("nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(prefix.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        // Poll until it accepts connections (with a deadline).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Nginx {
            port,
            child,
            _prefix: prefix,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers before it exits (SIGKILL would orphan them).
        // SAFETY: kill(2) on our own child's pid, which `wait` has not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
