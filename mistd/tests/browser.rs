//! The pages in a real browser: `mistd demo` makes and converges a demo, `mistd run` serves
//! it (reconciler and API in one process, drift re-scans every 2 s), and
//! `api/tests/browser/pages.mjs` drives headless Chromium through it with playwright-core,
//! checking every page with axe-core: a friend signs in, sees the store and a game page and
//! never the board; a friend without the private game's grant never sees that game, on a page
//! or through the API; an admin watches the board follow, without a reload, a refused commit
//! (its error with file and line), a new version going Reconciling → Ready with its ingest's
//! log, and a tampered build going Stalled. The screenshots land in `docs/screenshots/`.
//!
//! Needs Debian's `chromium` (or `MIST_CHROMIUM`) and `npm ci --prefix api/tests/browser`;
//! without them the test fails and says so.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Mistd, password_of};

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

#[test]
fn the_pages_in_headless_chromium() {
    let root = repository_root();
    let browser_dir = root.join("api/tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && browser_dir.join("node_modules/axe-core").is_dir(),
        "the browser test needs its npm packages: run `npm ci --prefix api/tests/browser`"
    );
    let chromium = std::env::var_os("MIST_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.is_file(),
        "the browser test needs Chromium at {} (Debian: `apt-get install chromium`, or set \
         MIST_CHROMIUM)",
        chromium.display()
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let stdout = common::run_demo(&dir);
    let (specs, nas, data) = (dir.join("specs"), dir.join("nas"), dir.join("data"));
    let mut args = common::run_args(&specs, &nas, &data);
    args.extend([
        OsStr::new("--verify-interval"),
        OsStr::new("2s"),
        OsStr::new("--resync"),
        OsStr::new("2s"),
    ]);
    let mut server = Mistd::run(&args, &tmp.path().join("mistd.log"));
    server.wait_healthy(Duration::from_secs(60));

    let output = Command::new("node")
        .arg(browser_dir.join("pages.mjs"))
        .current_dir(&browser_dir)
        .env("MIST_URL", format!("http://{}", server.address))
        .env("MIST_FRIEND_PASSWORD", password_of(&stdout, "friend"))
        .env("MIST_ADMIN_PASSWORD", password_of(&stdout, "admin"))
        .env("MIST_SPECS", &specs)
        .env("MIST_NAS", &nas)
        .env("MIST_SCREENSHOTS", root.join("docs/screenshots"))
        .env("MIST_CHROMIUM", &chromium)
        .output()
        .expect("run node (Node.js 20 or later must be on PATH)");
    let script_out = String::from_utf8_lossy(&output.stdout);
    let script_err = String::from_utf8_lossy(&output.stderr);
    println!("{script_out}");
    assert!(
        output.status.success(),
        "the browser script failed ({}):\n{script_out}\n{script_err}\n--- mistd log:\n{}",
        output.status,
        server.log_text()
    );
}
