//! Progress of a run on a terminal (a bar with an ETA) or, in logs, one line per step.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Progress on a terminal (bar with ETA) or, in logs, one line per step.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
}

impl Progress {
    /// A bar (or log lines) for `total` steps.
    pub fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} ETA {eta} {wide_msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
        }
    }

    /// One step done, with what it was.
    pub fn step(&mut self, msg: &str) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(msg.to_string());
                bar.inc(1);
            }
            None => eprintln!("[{}/{}] {msg}", self.done, self.total),
        }
    }

    /// A message without a step.
    pub fn note(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(msg.to_string()),
            None => eprintln!("{msg}"),
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
