//! Progress bars on standard error, one per stage, hidden with `--quiet` or when standard
//! error is not a terminal.
//!
//! Bars only move forward: a download that has to start an artifact over does not count its
//! bytes twice, and each artifact's last byte is only counted once its digest is verified,
//! so a download bar reaches its total exactly when every artifact is ready for use.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where the bars go.
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
}

impl Progress {
    /// Bars on standard error unless `quiet` or standard error is not a terminal.
    pub fn new(quiet: bool) -> Progress {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    /// Bars drawn nowhere.
    pub fn hidden() -> Progress {
        Progress::new(true)
    }

    /// A byte counter with rate and ETA, e.g. for downloads.
    pub fn bytes(&self, label: &str, total: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A step counter, e.g. for applying updates.
    pub fn steps(&self, label: &str, total: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
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
