//! `mistpipe status`: a server's status report (`GET /v1/status`, the content of
//! `mistd status --json`), as the same table `mistd status` prints or as the JSON itself.

use std::io::Write;
use std::process::ExitCode;

use serde_json::Value;

use crate::remote::{ServerArgs, Session, nonsense};

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
    let report = session.get_json(&["v1", "status"])?;
    if report.get("games").and_then(Value::as_array).is_none() {
        let url = session.base().join("v1/status")?;
        return Err(nonsense(&url, "no `games` list in the status"));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    write!(out, "{}", render(&report, session.base().as_str()))?;
    Ok(ExitCode::SUCCESS)
}

/// The text form: `mistd status`'s table, and a closing verdict that names every Stalled
/// version, so trouble is never only a word in a wide table.
fn render(report: &Value, server: &str) -> String {
    let mut text = format!("Server {server}\n");
    // A friend's token sees only the Ready versions of their games: no specs, no queue.
    let admin_view = report.get("queue").is_some() || report.get("commit").is_some();
    if !admin_view {
        text.push_str("A user's view: only the Ready versions of the games you see.\n\n");
        for game in report["games"].as_array().into_iter().flatten() {
            let name = game.get("name").and_then(Value::as_str).unwrap_or("-");
            let versions: Vec<&str> = game
                .get("versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|version| version.get("name").and_then(Value::as_str))
                .collect();
            if versions.is_empty() {
                text.push_str(&format!("{name}: nothing Ready\n"));
            } else {
                text.push_str(&format!("{name}: Ready {}\n", versions.join(" ")));
            }
        }
        return text;
    }
    text.push_str(&mist_status_view::render_table(report));
    text.push('\n');
    let stalled = mist_status_view::stalled_versions(report);
    let n_errors = report
        .get("errors")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if stalled.is_empty() && n_errors == 0 {
        let count = mist_status_view::ready_count(report);
        if count.ready == count.total {
            text.push_str("OK: every version is Ready.\n");
        } else {
            text.push_str(&format!(
                "OK: nothing is Stalled; {} of {} versions Ready, the rest in progress or retired.\n",
                count.ready, count.total
            ));
        }
        return text;
    }
    if n_errors > 0 {
        text.push_str(&format!(
            "ATTENTION: the latest spec commit has {n_errors} error{}; the server keeps the last good one.\n",
            if n_errors == 1 { "" } else { "s" }
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

    #[test]
    fn stalled_versions_are_named_in_a_closing_verdict() {
        let report = json!({
            "commit": "0123456789abcdef", "lastAppliedRevision": "0123456789abcdef",
            "lastAttemptedRevision": "0123456789abcdef", "errors": [], "queue": [],
            "games": [{"name": "starfall", "suspended": false, "versions": [
                {"name": "1.0", "ready": true, "status": "Ready", "reason": "Ready", "message": ""},
                {"name": "1.1", "ready": false, "status": "Stalled", "reason": "SourceMissing",
                 "message": "the build incoming/starfall/1.1 is not on the NAS"}]}]
        });
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
        let report = json!({"commit": "c", "errors": [], "queue": [], "games": [
            {"name": "a", "suspended": false, "versions": [{"name": "1", "ready": true}]}]});
        assert!(render(&report, "s").ends_with("OK: every version is Ready.\n"));
    }

    #[test]
    fn a_users_view_lists_ready_versions() {
        let report = json!({"games": [{"name": "a", "versions": [{"name": "1", "ready": true}]},
                                      {"name": "b", "versions": []}]});
        assert_eq!(
            render(&report, "s"),
            "Server s\nA user's view: only the Ready versions of the games you see.\n\n\
             a: Ready 1\nb: nothing Ready\n"
        );
    }
}
