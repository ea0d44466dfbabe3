//! `mistpipe status`: a server's status report (`GET /v1/status`, the content of
//! `mistd status --json`), as the same table `mistd status` prints or as the JSON itself.

use std::io::Write;
use std::process::ExitCode;

use mist_wire::status::{FriendStatus, StatusReport, StatusView};

use crate::remote::{ServerArgs, Session};

#[derive(clap::Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the server's JSON as it came (one document), for scripts.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(&args.server)?;
    let view: StatusView = session.get(&["v1", "status"])?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = match &view {
        StatusView::Admin(report) => render(report, session.base().as_str()),
        StatusView::Friend(status) => render_friend(status, session.base().as_str()),
    };
    write!(out, "{text}")?;
    Ok(ExitCode::SUCCESS)
}

/// A friend's token sees only the Ready versions of their games: no specs, no queue.
fn render_friend(status: &FriendStatus, server: &str) -> String {
    let mut text = format!("Server {server}\n");
    text.push_str("A user's view: only the Ready versions of the games you see.\n\n");
    for game in &status.games {
        let versions: Vec<&str> = game
            .versions
            .iter()
            .map(|version| version.name.as_str())
            .collect();
        if versions.is_empty() {
            text.push_str(&format!("{}: nothing Ready\n", game.name));
        } else {
            text.push_str(&format!("{}: Ready {}\n", game.name, versions.join(" ")));
        }
    }
    text
}

/// The text form: `mistd status`'s table, and a closing verdict that names every Stalled
/// version, so trouble is never only a word in a wide table.
fn render(report: &StatusReport, server: &str) -> String {
    let mut text = format!("Server {server}\n");
    text.push_str(&mist_status_view::render_table(report));
    text.push('\n');
    let stalled = mist_status_view::stalled_versions(report);
    let n_errors = report.errors.len();
    if stalled.is_empty() && n_errors == 0 {
        let count = mist_status_view::ready_count(report);
        if count.ready == count.total {
            text.push_str("OK: every version is Ready.\n");
        } else {
            text.push_str(&format!(
                "OK: nothing is Stalled; {} of {} Ready, the rest in progress or retired.\n",
                count.ready,
                mist_platform::units::count(count.total as u64, "version")
            ));
        }
        return text;
    }
    if n_errors > 0 {
        text.push_str(&format!(
            "ATTENTION: the latest spec commit has {}; the server keeps the last good one.\n",
            mist_platform::units::count(n_errors as u64, "error")
        ));
    }
    if !stalled.is_empty() {
        text.push_str(&format!(
            "ATTENTION: {} version{} Stalled (not served until fixed):\n",
            stalled.len(),
            if stalled.len() == 1 { " is" } else { "s are" }
        ));
        for line in stalled {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A report from its JSON, with the fields these tests do not care about filled in.
    fn report(mut json: serde_json::Value) -> StatusReport {
        for key in ["commit", "lastAppliedRevision", "lastAttemptedRevision"] {
            json.as_object_mut()
                .unwrap()
                .entry(key)
                .or_insert(json!(null));
        }
        for game in json["games"].as_array_mut().unwrap() {
            for version in game["versions"].as_array_mut().unwrap() {
                let version = version.as_object_mut().unwrap();
                let ready = version["ready"].as_bool().unwrap();
                version.entry("status").or_insert(json!(if ready {
                    "Ready"
                } else {
                    "Reconciling"
                }));
                version.entry("reason").or_insert(json!(""));
                version.entry("message").or_insert(json!(""));
                version.entry("progress").or_insert(json!(null));
            }
        }
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn stalled_versions_are_named_in_a_closing_verdict() {
        let report = report(json!({
            "commit": "0123456789abcdef", "lastAppliedRevision": "0123456789abcdef",
            "lastAttemptedRevision": "0123456789abcdef", "errors": [], "queue": [],
            "games": [{"name": "starfall", "suspended": false, "versions": [
                {"name": "1.0", "ready": true, "status": "Ready", "reason": "Ready", "message": ""},
                {"name": "1.1", "ready": false, "status": "Stalled", "reason": "SourceMissing",
                 "message": "the build incoming/starfall/1.1 is not on the NAS"}]}]
        }));
        let text = render(&report, "http://127.0.0.1:1/");
        assert!(
            text.ends_with(
                "ATTENTION: 1 version is Stalled (not served until fixed):\n  \
                 starfall 1.1: SourceMissing: the build incoming/starfall/1.1 is not on the NAS\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_converged_server_says_ok() {
        let report = report(json!({"commit": "c", "errors": [], "queue": [], "games": [
            {"name": "a", "suspended": false, "versions": [{"name": "1", "ready": true}]}]}));
        assert!(render(&report, "s").ends_with("OK: every version is Ready.\n"));
    }

    #[test]
    fn a_users_view_lists_ready_versions() {
        let status: FriendStatus = serde_json::from_value(json!({"games": [
            {"name": "a", "versions": [{"name": "1", "ready": true}]},
            {"name": "b", "versions": []}]}))
        .unwrap();
        assert_eq!(
            render_friend(&status, "s"),
            "Server s\nA user's view: only the Ready versions of the games you see.\n\n\
             a: Ready 1\nb: nothing Ready\n"
        );
    }
}
