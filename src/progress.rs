//! Progress bars for long commands (indicatif): drawn on standard error only
//! when it is a terminal, only once a command has run for a second, and
//! never with `--quiet` or `--json`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::{Duration, Instant};

/// How long a command runs before its bar appears.
const DELAY: Duration = Duration::from_secs(1);

/// A bar over a known number of steps, or a spinner for one long call.
pub struct Progress {
    bar: ProgressBar,
    start: Instant,
    shown: bool,
    enabled: bool,
}

impl Progress {
    /// A bar over `total` steps labelled `what`; `enabled` false keeps it silent.
    pub fn steps(total: u64, what: &str, enabled: bool) -> Progress {
        Progress::counting(total, what, "steps", enabled)
    }

    /// A bar over `total` training iterations.
    pub fn iterations(total: u64, what: &str, enabled: bool) -> Progress {
        Progress::counting(total, what, "iterations", enabled)
    }

    fn counting(total: u64, what: &str, unit: &str, enabled: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{msg}} {{wide_bar}} {{pos}}/{{len}} {unit}  {{per_sec}}  eta {{eta}}"
            ))
            .expect("a valid template"),
        );
        bar.set_message(what.to_string());
        Progress {
            bar,
            start: Instant::now(),
            shown: false,
            enabled,
        }
    }

    /// A spinner with the elapsed time, for one call that cannot report progress.
    pub fn spinner(what: &str, enabled: bool) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("a valid template"),
        );
        bar.set_message(what.to_string());
        if enabled {
            // The spinner turns by itself; it becomes visible after the delay.
            bar.enable_steady_tick(Duration::from_millis(120));
            let shown = bar.clone();
            std::thread::spawn(move || {
                std::thread::sleep(DELAY);
                if !shown.is_finished() {
                    shown.set_draw_target(ProgressDrawTarget::stderr());
                }
            });
        }
        Progress {
            bar,
            start: Instant::now(),
            shown: true,
            enabled,
        }
    }

    /// Sets the text before the bar (live numbers of a long run).
    pub fn message(&self, text: &str) {
        self.bar.set_message(text.to_string());
    }

    /// One more step done.
    pub fn inc(&mut self) {
        self.bar.inc(1);
        if self.enabled && !self.shown && self.start.elapsed() >= DELAY {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
