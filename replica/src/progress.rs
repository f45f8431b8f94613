//! Progress of a replica catching up on the log: a bar on a terminal
//! (indicatif), a line in the log every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use wal_bus::Offset;

/// Behind by fewer records than this, a replica just applies them quietly.
const REPORT_FROM_RECORDS: u64 = 10_000;
const LOG_EVERY: Duration = Duration::from_secs(2);

/// One terminal area shared by every replica of the process.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

pub(crate) struct CatchUp {
    name: String,
    from: Offset,
    target: Offset,
    started: Instant,
    last_line: Instant,
    bar: Option<ProgressBar>,
}

impl CatchUp {
    /// Starts reporting when `applied` is far enough behind `end`.
    pub(crate) fn begin(name: &str, applied: Offset, end: Offset) -> Option<CatchUp> {
        if end.saturating_sub(applied) < REPORT_FROM_RECORDS {
            return None;
        }
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = bars().add(ProgressBar::new(end - applied));
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} catching up [{bar:30}] {pos}/{len} records ({per_sec}, eta {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(name.to_owned());
            bar
        });
        tracing::info!(
            replica = name,
            applied,
            log_end = end,
            "catching up on the log"
        );
        Some(CatchUp {
            name: name.to_owned(),
            from: applied,
            target: end,
            started: Instant::now(),
            last_line: Instant::now(),
            bar,
        })
    }

    /// Records progress; returns true once the target is reached.
    pub(crate) fn update(&mut self, applied: Offset) -> bool {
        let done = applied >= self.target;
        let pos = applied
            .saturating_sub(self.from)
            .min(self.target - self.from);
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        } else if done || self.last_line.elapsed() >= LOG_EVERY {
            self.last_line = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(replica = %self.name, applied, target = self.target,
                records_per_sec = (pos as f64 / secs) as u64, "catching up");
        }
        if done {
            if let Some(bar) = &self.bar {
                bar.finish_and_clear();
            }
            tracing::info!(replica = %self.name, records = self.target - self.from,
                secs = self.started.elapsed().as_secs_f64(), "caught up");
        }
        done
    }
}
