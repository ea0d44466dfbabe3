//! Progress bars on standard error, one per stage, hidden with `--quiet` or when standard
//! error is not a terminal. `--progress plain` (or `MIST_PROGRESS=plain`) prints plain lines
//! instead, for scripts and tests: `<stage> <done>/<total> [message]`, e.g.
//! `download 1048576/5242880`, a few times a second and once more when the stage ends.
//!
//! Bars only move forward: a download that has to start an artifact over does not count its
//! bytes twice, and each artifact's last byte is only counted once its digest is verified,
//! so a download bar reaches its total exactly when every artifact is ready for use.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when standard error is a terminal, nothing otherwise.
    Auto,
    /// Plain `<stage> <done>/<total>` lines on standard error, terminal or not.
    Plain,
    /// Nothing.
    Off,
}

/// Where the bars go.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    plain: bool,
}

impl Progress {
    /// Bars on standard error unless `quiet` or standard error is not a terminal.
    pub fn new(quiet: bool) -> Progress {
        Progress::with_mode(if quiet {
            ProgressMode::Off
        } else {
            ProgressMode::Auto
        })
    }

    /// Progress shown as `mode` says.
    pub fn with_mode(mode: ProgressMode) -> Progress {
        let target = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
            plain: mode == ProgressMode::Plain,
        }
    }

    /// Bars drawn nowhere.
    pub fn hidden() -> Progress {
        Progress::new(true)
    }

    /// A bar for a stage: drawn by the shared bars, or alone as plain lines.
    fn add(&self, total: u64, template: &str) -> ProgressBar {
        if self.plain {
            let target = ProgressDrawTarget::term_like_with_hz(Box::new(PlainLines::default()), 4);
            let bar = ProgressBar::with_draw_target(Some(total), target);
            bar.set_style(
                ProgressStyle::with_template("{prefix} {pos}/{len} {wide_msg}")
                    .expect("valid template"),
            );
            return bar;
        }
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A byte counter with rate and ETA, e.g. for downloads.
    pub fn bytes(&self, label: &str, total: u64) -> ProgressBar {
        let bar = self.add(
            total,
            "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
        );
        bar.set_prefix(label.to_owned());
        bar
    }

    /// A step counter, e.g. for applying updates.
    pub fn steps(&self, label: &str, total: u64) -> ProgressBar {
        let bar = self.add(total, "{prefix:>10} [{bar:30}] {pos}/{len} {elapsed} {msg}");
        bar.set_prefix(label.to_owned());
        bar
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }
}

/// A "terminal" that turns each redraw of one bar into one plain line on standard error,
/// ignoring cursor moves and padding.
#[derive(Default)]
struct PlainLines {
    line: Mutex<String>,
}

impl PlainLines {
    fn emit(&self, line: &mut String) {
        let text = line.trim_matches(|c: char| c == '\r' || c.is_whitespace());
        if !text.is_empty() {
            eprintln!("{text}");
        }
        line.clear();
    }
}

impl std::fmt::Debug for PlainLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlainLines")
    }
}

impl indicatif::TermLike for PlainLines {
    fn width(&self) -> u16 {
        200
    }

    fn move_cursor_up(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _n: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        let mut line = self.line.lock().expect("progress lock");
        line.push_str(s);
        self.emit(&mut line);
        Ok(())
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.line.lock().expect("progress lock").push_str(s);
        Ok(())
    }

    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        self.emit(&mut self.line.lock().expect("progress lock"));
        Ok(())
    }
}

/// One artifact's share of a shared byte bar: only ever moves forward, and keeps its last
/// byte until [`ArtifactProgress::verified`].
#[derive(Clone)]
pub struct ArtifactProgress {
    bar: ProgressBar,
    size: u64,
    counted: Arc<Mutex<u64>>,
}

impl ArtifactProgress {
    /// The share of `size` bytes of `bar`.
    pub fn new(bar: ProgressBar, size: u64) -> ArtifactProgress {
        ArtifactProgress {
            bar,
            size,
            counted: Arc::new(Mutex::new(0)),
        }
    }

    /// The artifact has `bytes` bytes on disk.
    pub fn at(&self, bytes: u64) {
        self.advance_to(bytes.min(self.size.saturating_sub(1)));
    }

    /// The artifact is complete and verified.
    pub fn verified(&self) {
        self.advance_to(self.size);
    }

    fn advance_to(&self, position: u64) {
        let mut counted = self.counted.lock().expect("progress lock");
        if position > *counted {
            self.bar.inc(position - *counted);
            *counted = position;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_progress_only_moves_forward_and_ends_on_verification() {
        let bar = ProgressBar::hidden();
        bar.set_length(200);
        let first = ArtifactProgress::new(bar.clone(), 100);
        let second = ArtifactProgress::new(bar.clone(), 100);
        first.at(60);
        first.at(10); // Started over: no step back.
        assert_eq!(bar.position(), 60);
        first.at(100);
        assert_eq!(bar.position(), 99, "the last byte waits for the digest");
        second.at(100);
        second.verified();
        first.verified();
        first.verified();
        assert_eq!(bar.position(), 200);
    }
}
