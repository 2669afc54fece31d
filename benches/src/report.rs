//! Shared reporting: latency histograms (HDR, microseconds), percentile summaries in
//! milliseconds, and output as a human table or JSON on stdout.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency a histogram records (longer ones are clamped to it): one hour.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        match Histogram::new_with_bounds(1, MAX_MICROS, 3) {
            Ok(hist) => Latency { hist },
            Err(e) => unreachable!("constant histogram bounds are valid: {e}"),
        }
    }

    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS).clamp(1, MAX_MICROS);
        self.hist.saturating_record(us);
    }

    /// Adds everything recorded in `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Both have the same bounds, so adding cannot fail; clamp by re-recording if it ever did.
        if self.hist.add(&other.hist).is_err() {
            for v in other.hist.iter_recorded() {
                self.hist.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The percentile summary, in milliseconds.
    pub fn summary(&self) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        if self.hist.is_empty() {
            return Percentiles::default();
        }
        let q = |p: f64| ms(self.hist.value_at_quantile(p));
        Percentiles {
            count: self.hist.len(),
            mean: self.hist.mean().round() / 1000.0,
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: ms(self.hist.max()),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p999: f64,
    pub max: f64,
}

/// Error or event counts by name, sorted.
pub type Counts = BTreeMap<String, u64>;

/// Adds `n` to `name` in `counts`.
pub fn bump(counts: &mut Counts, name: &str, n: u64) {
    *counts.entry(name.to_owned()).or_insert(0) += n;
}

/// Merges `other` into `into`.
pub fn merge_counts(into: &mut Counts, other: &Counts) {
    for (k, v) in other {
        bump(into, k, *v);
    }
}

/// A human-readable report: a title and aligned `key: value` lines, with latency tables.
#[derive(Debug, Default)]
pub struct Text {
    lines: Vec<String>,
}

impl Text {
    /// Starts a report.
    pub fn new(title: &str) -> Self {
        Text { lines: vec![format!("== {title} ==")] }
    }

    /// One `key: value` line.
    pub fn kv(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        self.lines.push(format!("{key:<22} {value}"));
        self
    }

    /// A free line.
    pub fn line(&mut self, line: impl Into<String>) -> &mut Self {
        self.lines.push(line.into());
        self
    }

    /// A latency table header followed by rows, one per named histogram.
    pub fn latencies(&mut self, rows: &[(&str, Percentiles)]) -> &mut Self {
        self.lines.push(format!(
            "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "mean", "p50", "p90", "p99", "p99.9", "max"
        ));
        for (name, p) in rows {
            self.lines.push(format!(
                "{:<22} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                name, p.count, p.mean, p.p50, p.p90, p.p99, p.p999, p.max
            ));
        }
        self
    }

    /// The report as text.
    pub fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}

/// Writes `s` to stdout (the only place results go; progress goes to stderr).
pub fn emit(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes `value` as pretty JSON to stdout.
pub fn emit_json(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    emit(&s)
}

/// `a / secs`, rounded to one decimal; 0 for an empty window.
pub fn per_sec(n: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        crate::sys::round1(n as f64 / secs)
    }
}

/// Counts as `a=1 b=2`, or `none`.
pub fn counts_inline(c: &Counts) -> String {
    if c.is_empty() {
        "none".to_owned()
    } else {
        c.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_ms() {
        let mut l = Latency::new();
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        let p = l.summary();
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.5, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.5, "{p:?}");
        let mut m = Latency::new();
        m.merge(&l);
        m.record(Duration::from_secs(7200));
        assert_eq!(m.count(), 1001);
        assert!((m.summary().max - 3_600_000.0).abs() < 3_600.0);
        assert_eq!(Latency::new().summary(), Percentiles::default());
    }

    #[test]
    fn counts_merge() {
        let mut a = Counts::new();
        bump(&mut a, "x", 2);
        let mut b = Counts::new();
        bump(&mut b, "x", 1);
        bump(&mut b, "y", 1);
        merge_counts(&mut a, &b);
        assert_eq!(counts_inline(&a), "x=3 y=1");
        assert_eq!(counts_inline(&Counts::new()), "none");
    }
}
