//! What a person sees of a long command while it runs: a progress bar (indicatif) on standard
//! error, and the warnings and damaged entries the host reports, printed above it.
//!
//! The bar is drawn only for a person watching: when standard error is a terminal, and never
//! with `--quiet` or `--format json` ([`shown`]). Piped or redirected, a run prints exactly what
//! it would without the bar. Every command that may run longer than a second reports through
//! it: `batch`, `scale-test`, `import`, `export`, `lint`, `stamp` (counts from the host's
//! [`Events::progress`]) and `train` (a spinner while the model is fitted, [`Progress::phase`]).
//! The bar appears only after half a second, so quick runs never flash one.

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use registry_core::Damaged;
use registry_host::events::{self, Events};

use crate::registry::Damage;
use crate::{Format, output};

/// How long a run goes before its bar is drawn.
const DELAY: Duration = Duration::from_millis(500);

/// Whether a progress bar is drawn: only for a person watching a terminal, never with
/// `--quiet` or `--format json`.
pub fn shown(stderr_is_terminal: bool, quiet: bool, format: Format) -> bool {
    stderr_is_terminal && !quiet && matches!(format, Format::Text)
}

/// The [`Events`] of a command run from the command line: a progress bar when [`shown`],
/// warnings and damaged entries on standard error as they come.
pub struct Progress {
    on: bool,
    start: Instant,
    bar: Option<ProgressBar>,
    /// The damaged entries met, for the exit code.
    pub damage: Damage,
}

impl Progress {
    /// The events of a command run with `format`, drawing a bar if [`shown`].
    pub fn new(format: Format) -> Progress {
        Progress::drawn(shown(io::stderr().is_terminal(), output::quiet(), format))
    }

    fn drawn(on: bool) -> Progress {
        Progress {
            on,
            start: Instant::now(),
            bar: None,
            damage: Damage::default(),
        }
    }

    /// A spinner with `message`, for work that reports no counts (fitting a model): shown at
    /// once, turning on its own until [`Events::finished`].
    pub fn phase(&mut self, message: &str) {
        if !self.on {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        });
        bar.set_style(spinner());
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
    }

    /// Runs `f` with the bar out of the way, for a line printed on standard error.
    fn above(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}

fn spinner() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg} [{wide_bar}] {percent:>3}% (eta {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The count as the bar says it: `12,345 requests, 3,210/s`.
fn counted(p: &events::Progress, elapsed: Duration) -> String {
    let rate = p.processed as f64 / elapsed.as_secs_f64().max(1e-9);
    format!("{} {}, {rate:.0}/s", p.processed, p.unit)
}

impl Events for Progress {
    fn warning(&mut self, message: &str) {
        self.above(|| output::warnings(&[message.to_owned()]));
    }

    fn progress(&mut self, p: events::Progress) {
        let elapsed = self.start.elapsed();
        if !self.on || elapsed < DELAY {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
            match p.done {
                Some(_) => bar.set_style(bar_style()),
                None => {
                    bar.set_style(spinner());
                    bar.enable_steady_tick(Duration::from_millis(100));
                }
            }
            bar
        });
        if let Some(done) = p.done {
            bar.set_position((done.clamp(0.0, 1.0) * 1000.0) as u64);
        }
        bar.set_message(counted(&p, elapsed));
    }

    fn finished(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn damaged(&mut self, damaged: &Damaged) {
        let damage = &mut self.damage;
        match &self.bar {
            Some(bar) => bar.suspend(|| damage.report(std::slice::from_ref(damaged))),
            None => damage.report(std::slice::from_ref(damaged)),
        }
    }
}

impl Drop for Progress {
    /// A command that failed midway leaves no bar behind its error.
    fn drop(&mut self) {
        self.finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_only_for_a_person_at_a_terminal() {
        assert!(shown(true, false, Format::Text));
        assert!(!shown(false, false, Format::Text), "piped or redirected");
        assert!(!shown(true, true, Format::Text), "--quiet");
        assert!(!shown(true, false, Format::Json), "--format json");
    }

    #[test]
    fn no_bar_is_made_when_not_shown() {
        let mut p = Progress::drawn(false);
        p.start -= DELAY * 2;
        p.progress(events::Progress {
            processed: 10,
            done: Some(0.5),
            unit: "records",
        });
        p.phase("training");
        assert!(p.bar.is_none());
    }

    #[test]
    fn a_bar_waits_before_it_is_drawn_and_goes_when_finished() {
        let mut p = Progress::drawn(true);
        let at = |processed| events::Progress {
            processed,
            done: None,
            unit: "files",
        };
        p.progress(at(1));
        assert!(p.bar.is_none(), "a quick run draws nothing");
        p.start -= DELAY * 2;
        p.progress(at(2));
        assert!(p.bar.is_some());
        p.finished();
        assert!(p.bar.is_none());
    }

    #[test]
    fn the_count_names_its_unit_and_rate() {
        let p = events::Progress {
            processed: 300,
            done: None,
            unit: "entries",
        };
        assert_eq!(counted(&p, Duration::from_secs(2)), "300 entries, 150/s");
    }
}
