//! Output: tables for people, one JSON object for scripts, progress bars
//! only on a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::{CliError, scrub};

/// A table with a header row.
pub(crate) fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    table
}

/// Prints a two-column table headed `title`: one row per `(name, value)`.
pub(crate) fn print_pairs<'a>(
    title: &str,
    pairs: impl IntoIterator<Item = (&'a str, String)>,
) -> Result<(), CliError> {
    let mut out = table([title, ""]);
    for (name, value) in pairs {
        out.add_row([name.to_owned(), value]);
    }
    print(out)
}

/// Prints `text` on stdout (scrubbed of secrets).
pub(crate) fn print(text: impl std::fmt::Display) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", scrub(&text.to_string())).map_err(|source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    })
}

/// Prints `value` as one line of JSON on stdout.
pub(crate) fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string(value).map_err(|e| CliError::Io {
        what: "encoding JSON".to_owned(),
        source: std::io::Error::other(e),
    })?;
    print(text)
}

/// Milliseconds with two decimals.
pub(crate) fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 100_000.0).round() / 100.0
}

/// An empty latency histogram: microseconds, 1 µs to 10 minutes, three
/// significant digits. Fill it with [`record_latency`].
pub(crate) fn latency_histogram() -> Result<Histogram<u64>, CliError> {
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| CliError::Io {
        what: "latency histogram".to_owned(),
        source: std::io::Error::other(e),
    })
}

/// Records `latency` in a [`latency_histogram`] (longer ones count as its
/// upper bound).
pub(crate) fn record_latency(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

/// The latency at quantile `q` (0.0..=1.0) of a [`latency_histogram`], in
/// milliseconds with two decimals.
pub(crate) fn quantile_ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    ms(Duration::from_micros(histogram.value_at_quantile(q)))
}

/// The longest latency of a [`latency_histogram`], in milliseconds with two
/// decimals.
pub(crate) fn max_ms(histogram: &Histogram<u64>) -> f64 {
    ms(Duration::from_micros(histogram.max()))
}

/// Rounds to two decimals, for JSON figures.
pub(crate) fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A progress bar on stderr when it is a terminal and JSON was not asked
/// for; a hidden one otherwise.
pub(crate) fn progress(len: u64, what: &str, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Peak resident memory of this process in MiB (`VmHWM`), if known.
pub(crate) fn max_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(round2(kib / 1024.0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(max_rss_mb().is_some_and(|mb| mb > 0.0));
        }
    }

    #[test]
    fn latencies_in_milliseconds() {
        let mut histogram = latency_histogram().unwrap();
        for micros in [1_000, 2_000, 3_000, 4_000] {
            record_latency(&mut histogram, Duration::from_micros(micros));
        }
        record_latency(&mut histogram, Duration::ZERO);
        assert_eq!(histogram.len(), 5);
        assert_eq!(quantile_ms(&histogram, 0.5), 2.0);
        assert_eq!(max_ms(&histogram), 4.0);
    }

    #[test]
    fn rounding() {
        assert_eq!(ms(Duration::from_micros(1234)), 1.23);
        assert_eq!(round2(2.345_6), 2.35);
    }
}
