//! The progress bar on stderr while a phase runs: requests done out of
//! `-n`, or seconds out of `--duration`. Hidden with `--quiet`, and by
//! indicatif itself when stderr is not a terminal, so `--json` output
//! piped to a script stays clean.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::load::Stop;

/// How often the bar is redrawn; reading one counter, so nearly free.
const TICK: Duration = Duration::from_millis(100);

pub struct Progress {
    bar: ProgressBar,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing; `done` reads how many requests have completed.
    pub fn start(
        label: &'static str,
        quiet: bool,
        stop: Stop,
        done: impl Fn() -> u64 + Send + 'static,
    ) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(length(stop)), target);
        bar.set_style(style(stop));
        bar.set_prefix(label);
        let ticker = (!bar.is_hidden()).then(|| tokio::spawn(tick(bar.clone(), stop, done)));
        Progress { bar, ticker }
    }

    pub fn finish(self) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// The bar counts requests, or milliseconds of a timed run.
fn length(stop: Stop) -> u64 {
    match stop {
        Stop::Count(n) => n,
        Stop::Time(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
    }
}

fn style(stop: Stop) -> ProgressStyle {
    let template = match stop {
        Stop::Count(_) => "{prefix:>7} [{bar:30}] {pos}/{len} requests  {msg}  eta {eta}",
        Stop::Time(_) => "{prefix:>7} [{bar:30}] {elapsed}  {msg}",
    };
    ProgressStyle::with_template(template)
        .expect("valid progress template")
        .progress_chars("=> ")
}

async fn tick(bar: ProgressBar, stop: Stop, done: impl Fn() -> u64) {
    let start = tokio::time::Instant::now();
    let mut interval = tokio::time::interval(TICK);
    loop {
        interval.tick().await;
        let (done, elapsed) = (done(), start.elapsed());
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        match stop {
            Stop::Count(_) => {
                bar.set_position(done);
                bar.set_message(format!("{rate:.0} req/s"));
            }
            Stop::Time(_) => {
                bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                bar.set_message(format!("{done} requests  {rate:.0} req/s"));
            }
        }
    }
}
