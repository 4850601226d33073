//! How a long command shows its [`Progress`]: a bar on a terminal (indicatif: bytes or items,
//! rate and ETA, a spinner where the total is not known in advance), JSON lines on stderr with
//! `--json` (the result stays alone on stdout, one document, as the command documents it),
//! and nothing otherwise: a log or a pipe gets only the final summary.
//!
//! The display reads the shared counters from a thread of its own, a few times a second, so
//! the work never waits on the terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState as BarState, ProgressStyle};
use parking_lot::{Condvar, Mutex};

use crate::progress::{Progress, ProgressState, Unit};

/// `--json` of a long command.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct ProgressArgs {
    /// Print the result as JSON on stdout, and progress as JSON lines on stderr.
    #[arg(long)]
    pub json: bool,
}

/// How often the counters are read: a bar is redrawn, and a new stage gets its JSON event.
const TICK: Duration = Duration::from_millis(100);
/// How often a JSON event is written within one stage.
const JSON_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
enum Mode {
    Bar,
    Json,
}

/// Runs `work`, showing its progress as `command` (`gc`, `vault verify`) for as long as it
/// runs; the bar is cleared when it ends, so that the command's summary stands alone.
pub fn with_progress<T>(
    command: &str,
    json: bool,
    work: impl FnOnce(&Progress) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mode = if json {
        Mode::Json
    } else if std::io::stderr().is_terminal() {
        Mode::Bar
    } else {
        return work(&Progress::new());
    };
    let progress = Progress::new();
    let stop = (Mutex::new(false), Condvar::new());
    std::thread::scope(|scope| {
        // Without a display thread the work runs undisplayed.
        let _shown = std::thread::Builder::new()
            .name("snapfs-progress".into())
            .spawn_scoped(scope, || show(command, mode, &progress, &stop));
        let outcome = work(&progress);
        *stop.0.lock() = true;
        stop.1.notify_all();
        outcome
    })
}

/// The display's loop: draws until `stop`, then once more (the final reading).
fn show(command: &str, mode: Mode, progress: &Progress, stop: &(Mutex<bool>, Condvar)) {
    let started = Instant::now();
    let mut bar: Option<(String, ProgressBar)> = None;
    // The stage and time of the last JSON event.
    let mut written: Option<(String, Instant)> = None;
    loop {
        // Read in this order, the reading after the stop is the work's final one.
        let stopping = *stop.0.lock();
        let state = progress.state();
        match mode {
            Mode::Json => {
                let due = match &written {
                    Some((stage, at)) => *stage != state.stage || at.elapsed() >= JSON_EVERY,
                    None => !state.stage.is_empty(),
                };
                if due || stopping {
                    event(command, &state, started.elapsed(), stopping);
                    written = Some((state.stage.clone(), Instant::now()));
                }
            }
            Mode::Bar if !state.stage.is_empty() => {
                let current = match &bar {
                    Some((stage, current)) if *stage == state.stage => current,
                    _ => {
                        if let Some((_, old)) = bar.take() {
                            old.finish_and_clear();
                        }
                        &bar.insert((state.stage.clone(), new_bar(command, &state)))
                            .1
                    }
                };
                current.set_position(state.done);
            }
            Mode::Bar => {}
        }
        if stopping {
            break;
        }
        let mut stopped = stop.0.lock();
        if !*stopped {
            stop.1.wait_for(&mut stopped, TICK);
        }
    }
    if let Some((_, bar)) = bar {
        bar.finish_and_clear();
    }
}

/// A bar for a new stage: with a length and an ETA where the total is known, a spinner with
/// the rate where it is not.
fn new_bar(command: &str, state: &ProgressState) -> ProgressBar {
    let (amount, rate) = match state.unit {
        Unit::Bytes => ("{bytes}", "{binary_bytes_per_sec}"),
        Unit::Items => ("{human_pos}", "{items_per_sec}"),
    };
    // Drawn only once it is set up, or its first frame shows an empty stage.
    let (bar, template) = match state.total {
        Some(total) => {
            let of = match state.unit {
                Unit::Bytes => "{total_bytes}",
                Unit::Items => "{human_len}",
            };
            (
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()),
                format!("{{prefix}}: {{msg}} [{{wide_bar}}] {amount}/{of} {rate}, ETA {{eta}}"),
            )
        }
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
            format!("{{spinner}} {{prefix}}: {{msg}} {amount} ({rate}), {{elapsed}}"),
        ),
    };
    let style = ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "items_per_sec",
            |state: &BarState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:.0}/s", state.per_sec());
            },
        )
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(command.to_owned());
    bar.set_message(state.stage.clone());
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.enable_steady_tick(TICK);
    bar
}

/// One JSON progress event on stderr (documented in `docs/JSON.md`).
fn event(command: &str, state: &ProgressState, elapsed: Duration, last: bool) {
    let line = serde_json::json!({
        "event": "progress",
        "command": command,
        "stage": state.stage,
        "unit": state.unit,
        "done": state.done,
        "total": state.total,
        "elapsed_secs": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "finished": last,
    });
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_terminal_or_json_the_work_runs_undisplayed() {
        // Test output is not a terminal.
        let value = with_progress("gc", false, |progress| {
            progress.stage("marking trees", Unit::Items, Some(1));
            progress.add(1);
            Ok(7)
        })
        .expect("ran");
        assert_eq!(value, 7);
    }

    #[test]
    fn an_error_of_the_work_is_the_commands() {
        let err = with_progress("gc", true, |_| -> anyhow::Result<()> {
            anyhow::bail!("no space left")
        })
        .expect_err("failed");
        assert_eq!(err.to_string(), "no space left");
    }
}
