//! Notifications end to end: `mistd run --discord-webhook-file FILE` against a loopback HTTP
//! server that answers as Discord documents its webhooks (204; 429 with `retry_after` in the
//! body and `Retry-After`; 5xx). The first sync sends one digest; each new version is
//! announced once, within 2 s of being Ready (measured from mistd's own log); and SIGKILLs
//! while messages are pending lose none and double none.

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Mistd, commit_all, small_demo, wait_converged, wait_for};

/// SIGKILLs of `mistd` while messages are pending.
const KILLS: usize = 10;
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(300);

/// How the fake Discord answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// 204 No Content, as Discord answers a webhook without `?wait=true`.
    Accept,
    /// 503 for the next `n` requests, then 429 with `retry_after` 0.2 s.
    Refuse { n_server_errors: usize },
}

/// A message the fake Discord received.
#[derive(Clone, Debug)]
struct Message {
    /// Milliseconds since the epoch when it arrived.
    at_ms: i64,
    body: serde_json::Value,
    status: u16,
}

/// A fake Discord webhook endpoint on 127.0.0.1, one thread per connection.
struct FakeDiscord {
    address: SocketAddr,
    state: Arc<Mutex<(Mode, Vec<Message>)>>,
}

impl FakeDiscord {
    fn start() -> FakeDiscord {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new((Mode::Accept, Vec::new())));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve_connection(stream, &shared));
            }
        });
        FakeDiscord { address, state }
    }

    fn url(&self) -> String {
        format!("http://{}/api/webhooks/42/t0ken", self.address)
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().0 = mode;
    }

    fn messages(&self) -> Vec<Message> {
        self.state.lock().unwrap().1.clone()
    }

    /// The titles of the messages answered 2xx, in order.
    fn accepted_titles(&self) -> Vec<String> {
        self.messages()
            .iter()
            .filter(|m| (200..300).contains(&m.status))
            .map(|m| {
                m.body["embeds"][0]["title"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }
}

/// Serves HTTP/1.1 requests on one connection (reqwest keeps connections alive).
fn serve_connection(stream: TcpStream, state: &Mutex<(Mode, Vec<Message>)>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut content_length = 0;
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let response = {
            let mut guard = state.lock().unwrap();
            let (status, response) = match guard.0 {
                Mode::Accept => (204, "HTTP/1.1 204 No Content\r\n\r\n".to_owned()),
                Mode::Refuse { n_server_errors } if n_server_errors > 0 => {
                    guard.0 = Mode::Refuse {
                        n_server_errors: n_server_errors - 1,
                    };
                    let text = "upstream connect error";
                    (
                        503,
                        format!(
                            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\n\r\n{text}",
                            text.len()
                        ),
                    )
                }
                Mode::Refuse { .. } => {
                    let text = r#"{"message": "You are being rate limited.", "retry_after": 0.2, "global": false}"#;
                    (
                        429,
                        format!(
                            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\
                             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                            text.len()
                        ),
                    )
                }
            };
            guard.1.push(Message {
                at_ms: now_ms(),
                body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                status,
            });
            response
        };
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn run_args<'a>(specs: &'a Path, nas: &'a Path, data: &'a Path, hook: &'a Path) -> Vec<&'a OsStr> {
    let mut args = common::run_args(specs, nas, data);
    args.extend([
        OsStr::new("--discord-webhook-file"),
        hook.as_os_str(),
        OsStr::new("--resync"),
        OsStr::new("2s"),
        OsStr::new("--log-format"),
        OsStr::new("json"),
    ]);
    args
}

/// Adds version `version` of `game` (a build and its spec) and commits it.
fn add_version(specs: &Path, nas: &Path, game: &str, version: &str) {
    let build = nas.join("incoming").join(game).join(version);
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(build.join("notes.txt"), format!("{game} {version}\n")).unwrap();
    std::fs::write(build.join("data.bin"), vec![version.len() as u8; 50_000]).unwrap();
    std::fs::write(
        specs
            .join("games")
            .join(game)
            .join("versions")
            .join(format!("{version}.yaml")),
        format!(
            "apiVersion: mist/v1\nkind: Version\nmetadata:\n  name: \"{version}\"\n  \
             game: {game}\nspec:\n  source: incoming/{game}/{version}\n  \
             notes: \"Release {version}\"\n"
        ),
    )
    .unwrap();
    commit_all(specs, &format!("{game} {version}"));
}

/// The epoch milliseconds of mistd's JSON log line `version ready` for game/version.
fn ready_logged_at(log: &str, game: &str, version: &str) -> Option<i64> {
    log.lines().find_map(|line| {
        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
        // mistd's JSON lines put the event's fields next to the timestamp.
        let fields = &entry;
        (fields["message"] == "version ready"
            && fields["game"] == game
            && fields["version"] == version)
            .then(|| rfc3339_ms(entry["timestamp"].as_str()?))?
    })
}

/// `2026-12-07T20:01:02.345678Z` as epoch milliseconds (UTC, days from the civil date).
fn rfc3339_ms(text: &str) -> Option<i64> {
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms_parts = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, s) = (hms_parts.next()??, hms_parts.next()??, hms_parts.next()??);
    let ms = format!("{fraction:0<3}")[..3].parse::<i64>().ok()?;
    Some(((days * 24 + h) * 60 + min) * 60_000 + s * 1000 + ms)
}

#[test]
fn first_sync_digest_then_each_version_once_within_2s_and_none_lost_or_doubled_by_sigkill() {
    let temp = tempfile::tempdir().unwrap();
    let demo = small_demo(temp.path(), &[("alpha", 3), ("beta", 2)], 64 * 1024);
    let data = temp.path().join("data");
    let hook = temp.path().join("discord-webhook");
    let discord = FakeDiscord::start();
    std::fs::write(&hook, format!("{}\n", discord.url())).unwrap();
    let args = run_args(&demo.specs, &demo.nas, &data, &hook);
    let log = |n: usize| temp.path().join(format!("mistd-{n}.log"));

    // The first sync: five versions Ready, one digest.
    let mut mistd = Mistd::run(&args, &log(0));
    mistd.wait_healthy(Duration::from_secs(30));
    wait_converged(&data, demo.n_versions, CONVERGE_TIMEOUT);
    wait_for("the digest", Duration::from_secs(10), |last| {
        *last = format!("{:?}", discord.accepted_titles());
        (!discord.accepted_titles().is_empty()).then_some(())
    });
    assert_eq!(
        discord.accepted_titles(),
        ["Mist is ready: 5 versions of 2 games"]
    );
    assert!(
        !mistd.log_text().contains("t0ken"),
        "the webhook URL is never logged"
    );

    // A new version: announced once, within 2 s of Ready.
    add_version(&demo.specs, &demo.nas, "alpha", "2.0");
    wait_for("the announcement", CONVERGE_TIMEOUT, |last| {
        *last = format!("{:?}", discord.accepted_titles());
        (discord.accepted_titles().len() == 2).then_some(())
    });
    let sent = discord.messages().last().unwrap().clone();
    assert_eq!(sent.body["embeds"][0]["title"], "alpha 2.0 is ready");
    assert_eq!(sent.body["embeds"][0]["description"], "Release 2.0");
    let ready_at = ready_logged_at(&mistd.log_text(), "alpha", "2.0")
        .expect("mistd logs when a version is Ready");
    let latency_ms = sent.at_ms - ready_at;
    eprintln!("notification left {latency_ms} ms after the version was Ready");
    assert!(
        (0..2000).contains(&latency_ms),
        "sent {latency_ms} ms after Ready"
    );

    // Three more versions while Discord refuses (two 503s, then 429s): pending messages,
    // and SIGKILLs while they are.
    discord.set_mode(Mode::Refuse { n_server_errors: 2 });
    for version in ["2.1", "2.2"] {
        add_version(&demo.specs, &demo.nas, "alpha", version);
    }
    add_version(&demo.specs, &demo.nas, "beta", "2.0");
    wait_converged(&data, demo.n_versions + 4, CONVERGE_TIMEOUT);
    for kill_idx in 0..KILLS {
        let n_before = discord.messages().len();
        wait_for(
            "an attempt while refused",
            Duration::from_secs(60),
            |last| {
                *last = format!("{} requests", discord.messages().len());
                (discord.messages().len() > n_before).then_some(())
            },
        );
        mistd.kill();
        mistd = Mistd::run(&args, &log(kill_idx + 1));
        mistd.wait_healthy(Duration::from_secs(30));
    }
    let refused = discord
        .messages()
        .iter()
        .filter(|m| m.status == 429 || m.status == 503)
        .count();
    assert!(refused >= KILLS, "{refused} refused attempts");

    discord.set_mode(Mode::Accept);
    let want = [
        "Mist is ready: 5 versions of 2 games",
        "alpha 2.0 is ready",
        "alpha 2.1 is ready",
        "alpha 2.2 is ready",
        "beta 2.0 is ready",
    ];
    wait_for("every pending message", Duration::from_secs(60), |last| {
        *last = format!("{:?}", discord.accepted_titles());
        (discord.accepted_titles().len() >= want.len()).then_some(())
    });
    // Once the outbox holds nothing due or pending for the sink, nothing more can be sent:
    // a doubled message would already be among those received.
    wait_settled(&data, "discord");
    let mut titles = discord.accepted_titles();
    titles.sort();
    assert_eq!(titles, want, "each once: none lost, none doubled");
}

/// Waits until the database in `data` has nothing due or waiting for a retry for `sink`.
fn wait_settled(data: &Path, sink: &str) {
    use mist_db::Db;
    use mist_db::outbox::Audience;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = runtime
        .block_on(Db::connect_read_only(&mist_db::sqlite_url_in(data)))
        .unwrap();
    let audiences = [Audience::Friends, Audience::Admins];
    wait_for("the sink settled", Duration::from_secs(60), |last| {
        let due = runtime
            .block_on(db.due_notifications(sink, &audiences, i64::MAX, 10))
            .unwrap();
        let retry = runtime.block_on(db.next_retry_at(sink)).unwrap();
        *last = format!("{} due, next retry {retry:?}", due.len());
        (due.is_empty() && retry.is_none()).then_some(())
    });
}
